"""`trainer.search`: DomainBed's random hyper-parameter search as lanes of one vmapped program
(issue 24). Samples are DomainBed's draws; each lane is an ordinary run dir whose saved config
trains the same run alone (within float order); an interrupted search resumes."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from jtl import rundir
from jtl.errors import JtlError
from jtl.train import train_and_evaluate
from jtl.train.checkpoint import manager
from jtl.train.search import METHOD_SPACES, SPACE, Search, sample, seed_hash, space
from tests.conftest import FAST, compose_cfg, interrupt_once

SOURCES = ("sources=[{name: sklearn_digits}, "
           "{name: sklearn_digits, shifts: [{name: noise, std: 3.0}]}]")
RUN = [*FAST, SOURCES, "method=irm", "optim=adam", "trainer.steps=20", "trainer.eval_every=10",
       "trainer.checkpoint_every=10", "trainer.log_every=10"]
SEARCH = [*RUN, "trainer.search={samples: 3}", "trainer.seeds=[0,1]"]
# Float order only (see test_seeds.py); a lane fed another lane's values differs by ~1e-2 here.
ATOL = 1e-5


def params(run_dir):
    with manager(run_dir / rundir.CHECKPOINTS) as m:
        return [np.asarray(a) for a in
                jax.tree_util.tree_leaves(m.restore(m.latest_step())["params"])]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    out = tmp_path_factory.mktemp("search")
    return out, train_and_evaluate(compose_cfg(SEARCH), out)


def test_samples_are_domainbeds_draws_inside_its_ranges():
    cfg = compose_cfg([*RUN, "trainer.search={samples: 20}"])
    dists = space(cfg, Search(samples=20))
    # sklearn digits is not one of DomainBed's MNIST sets: its other data sets' lr range, and
    # weight decay searched; the batch size is fixed by default.
    assert [d.key for d in dists] == ["optim.lr", "optim.weight_decay", "method.weight",
                                      "method.anneal_steps"]
    assert sample(dists, 0, 0) == {}  # hparams_seed 0: the defaults (the config)
    draws = [sample(dists, k, t) for k in range(1, 20) for t in range(3)]
    assert draws == [sample(dists, k, t) for k in range(1, 20) for t in range(3)]
    for d in dists:
        vals = [v[d.key] for v in draws]
        assert all(d.contains(v) for v in vals), d
        assert len(set(vals)) > (30 if d.integer else 50)  # each (k, trial) its own draw
    assert all(isinstance(v["method.anneal_steps"], int) for v in draws)
    # DomainBed's lines, literally: RandomState(seed_hash(seed_hash(k, trial), name)).
    r = np.random.RandomState(seed_hash(seed_hash(3, 1), "irm_lambda"))
    assert sample(dists, 3, 1)["method.weight"] == 10 ** r.uniform(-1, 5)
    r = np.random.RandomState(seed_hash(seed_hash(3, 1), "irm_penalty_anneal_iters"))
    assert sample(dists, 3, 1)["method.anneal_steps"] == int(10 ** r.uniform(0, 4))
    assert seed_hash(0, 0) == int(__import__("hashlib").md5(b"(0, 0)").hexdigest(), 16) % 2**31
    # DomainBed's MNIST data sets: lr 10^U(-4.5, -2.5), no weight decay search.
    small = compose_cfg([*RUN, "domain@target=colored_mnist",
                         "sources=[{name: colored_mnist}, {name: colored_mnist}]"])
    keys = {d.key: d for d in space(small, Search())}
    assert "optim.weight_decay" not in keys and (keys["optim.lr"].lo, keys["optim.lr"].hi) == (
        -4.5, -2.5)
    lrs = [sample(list(keys.values()), k, 0)["optim.lr"] for k in range(1, 200)]
    assert -4.5 <= math.log10(min(lrs)) < -4.4 and -2.6 < math.log10(max(lrs)) <= -2.5
    assert SPACE[True][0].name == "lr" and set(METHOD_SPACES) >= {"irm", "vrex", "group_dro",
                                                                  "mixup", "source_only"}


def test_vmapped_search_equals_separate_runs_of_each_lanes_config(searched, tmp_path):
    out, result = searched
    assert result["samples"] == [0, 1, 2] and result["seeds"] == [0, 1]
    assert sorted(result["runs"]) == [f"sample{k}/seed{s}" for k in range(3) for s in (0, 1)]
    for name in ("sample1/seed0", "sample2/seed1"):
        lane = out / name
        cfg = rundir.load_config(lane)
        s = rundir.read_summary(lane)
        k, seed = int(name[6]), int(name[-1])
        assert s["search"]["sample"] == k and s["seed"] == seed == cfg["seed"]
        assert cfg["trainer"]["search"] is None and cfg["trainer"]["seeds"] is None
        for key, v in s["search"]["values"].items():  # the sampled values written in
            group, field = key.split(".")
            assert cfg[group][field] == v
        alone = train_and_evaluate(cfg, tmp_path / name.replace("/", "_"))
        assert alone["fingerprint"] == s["fingerprint"]  # an ordinary run of those values
        assert rundir.identity(rundir.load_config(tmp_path / name.replace("/", "_"))) == \
            rundir.identity(cfg)
        for a, b in zip(params(lane), params(tmp_path / name.replace("/", "_")), strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=ATOL)
        assert abs(s["target/test/accuracy"] - alone["target/test/accuracy"]) < 0.01
    # sample 0 is the config itself; the samples differ from it and from each other (their
    # own lr, weight decay, penalty weight and anneal step, traced per lane).
    base = rundir.load_config(out / "sample0/seed0")
    assert base["method"] == compose_cfg(RUN)["method"] and base["optim"]["lr"] == 1e-3
    v1 = rundir.read_summary(out / "sample1/seed0")["search"]["values"]
    v1b = rundir.read_summary(out / "sample1/seed1")["search"]["values"]
    assert v1 != v1b  # each trial its own draw (DomainBed's seed_hash(hparams_seed, trial))
    p = {n: params(out / n)[0] for n in result["runs"]}
    assert not np.allclose(p["sample0/seed0"], p["sample1/seed0"], atol=1e-4)
    assert not np.allclose(p["sample1/seed0"], p["sample2/seed0"], atol=1e-4)


def test_an_interrupted_search_resumes(searched, tmp_path, monkeypatch):
    out, _ = searched
    interrupt_once(monkeypatch, at=15)  # after the step-10 checkpoint, before step 20's
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(compose_cfg(SEARCH), tmp_path)
    assert all(rundir.completed_summary(tmp_path / n) is None
               for n in ("sample0/seed0", "sample2/seed1"))
    monkeypatch.undo()
    resumed = train_and_evaluate(compose_cfg(SEARCH), tmp_path)
    for name in resumed["runs"]:
        for a, b in zip(params(tmp_path / name), params(out / name), strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    # A completed search is not retrained.
    stamp = (tmp_path / "sample1/seed0" / rundir.SUMMARY).stat().st_mtime_ns
    train_and_evaluate(compose_cfg(SEARCH), tmp_path)
    assert (tmp_path / "sample1/seed0" / rundir.SUMMARY).stat().st_mtime_ns == stamp


@pytest.mark.slow  # three programs compiled: ~40 s on a busy 2-core CPU
def test_a_sampled_batch_size_is_its_own_program(tmp_path):
    """`fix: []` samples the batch size too (DomainBed's 2^U(3, 5.5) here): lanes with another
    batch size are another program, each lane's config holds its own."""
    out = train_and_evaluate(compose_cfg([*RUN, "trainer.steps=4", "trainer.eval_every=4",
                                          "trainer.checkpoint_every=4", "trainer.log_every=4",
                                          "trainer.search={samples: 3, start: 1, fix: []}"]),
                             tmp_path)
    sizes = {n: rundir.load_config(tmp_path / n)["trainer"]["batch_size"] for n in out["runs"]}
    assert sizes == {n: out["runs"][n]["search"]["values"]["trainer.batch_size"]
                     for n in out["runs"]}
    assert all(8 <= b <= 45 for b in sizes.values()) and len(set(sizes.values())) > 1


def test_search_errors_are_one_line(tmp_path):
    with pytest.raises(JtlError, match="no DomainBed space for method=dann"):
        train_and_evaluate(compose_cfg([*FAST, "method=dann", "trainer.search={samples: 2}"]),
                           tmp_path / "a")
    with pytest.raises(JtlError, match="not searched"):
        train_and_evaluate(compose_cfg([*RUN, "trainer.search={samples: 2, fix: [optim.b1]}"]),
                           tmp_path / "b")
    with pytest.raises(JtlError, match=r"trainer\.search\.samples"):
        train_and_evaluate(compose_cfg([*RUN, "trainer.search={samples: 0}"]), tmp_path / "c")
    with pytest.raises(JtlError, match=r"trainer.search has no key|trainer\.search"):
        train_and_evaluate(compose_cfg([*RUN, "trainer.search={sample: 2}"]), tmp_path / "d")


def test_every_space_row_names_a_field_of_its_method():
    """A renamed method field would make its DomainBed row write a key the method refuses."""
    import dataclasses

    from jtl.methods import METHODS

    for name, dists in METHOD_SPACES.items():
        fields = {f.name for f in dataclasses.fields(METHODS.get(name))}
        for d in dists:
            group, field = d.key.split(".")
            assert group == "method" and field in fields, (name, d.key)
