"""The persistent compilation cache: where it goes, that it can be turned off, and that a second
run of the same config compiles nothing new (its entries are read, none are added)."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from jax import monitoring

from jtl.train import compile_cache, train_and_evaluate


@pytest.fixture
def restore_cache():
    """Leave JAX's cache as the test found it (off unless the environment turned it on)."""
    before = jax.config.jax_compilation_cache_dir
    yield
    jax.config.update("jax_compilation_cache_dir", before)
    compile_cache.compilation_cache.reset_cache()


def test_cache_dir_default_env_and_off(monkeypatch, tmp_path):
    monkeypatch.delenv(compile_cache.ENV, raising=False)
    assert compile_cache.cache_dir() == Path.home() / ".cache" / "jtl" / "xla"
    monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "xla"))
    assert compile_cache.cache_dir() == tmp_path / "xla"
    for off in ("0", "off", "OFF", "false"):
        monkeypatch.setenv(compile_cache.ENV, off)
        assert compile_cache.cache_dir() is None


def test_enable_is_idempotent_and_follows_the_env(monkeypatch, tmp_path, restore_cache):
    monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "a"))
    assert compile_cache.enable() == tmp_path / "a"
    assert compile_cache.enable() == tmp_path / "a"
    jax.jit(lambda x: x * 3.0 + 1.0)(jnp.arange(5.0)).block_until_ready()
    assert any((tmp_path / "a").iterdir())
    monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "b"))
    assert compile_cache.enable() == tmp_path / "b"
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "b")
    monkeypatch.setenv(compile_cache.ENV, "off")
    assert compile_cache.enable() is None
    assert jax.config.jax_compilation_cache_dir is None


def test_second_run_reads_the_cache_and_adds_nothing(monkeypatch, tmp_path, fast_cfg,
                                                     restore_cache):
    cache = tmp_path / "xla"
    monkeypatch.setenv(compile_cache.ENV, str(cache))
    hits: list[str] = []

    def listen(event: str, **kwargs) -> None:
        if event == "/jax/compilation_cache/cache_hits":
            hits.append(event)

    monitoring.register_event_listener(listen)
    try:
        cfg = fast_cfg("trainer.steps=4", "trainer.eval_every=4")
        jax.clear_caches()  # what earlier tests compiled in this process is compiled again
        train_and_evaluate(cfg, tmp_path / "first")  # enables the cache itself
        first = sorted(p.name for p in cache.iterdir())
        assert first and not hits
        jax.clear_caches()  # as a new process: nothing compiled in memory
        train_and_evaluate(cfg, tmp_path / "second")
        assert sorted(p.name for p in cache.iterdir()) == first
        assert len(hits) >= 1
    finally:
        monitoring.unregister_event_listener(listen)
