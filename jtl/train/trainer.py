"""`train_and_evaluate(cfg, workdir)`: the one trainer every method runs on.

The path from a yaml key to a number in `summary.json`: domains are built from `source`/
`target`, the method from `method`, the network from `model` plus the method's modules, the
optimizer from `optim` with the method's `trainable` regex and the user's `freeze` regex; the
loop runs chunks of `trainer.steps_per_call` steps, evaluates every `trainer.eval_every`,
checkpoints every `trainer.checkpoint_every`, and writes `summary.json` at the end.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx
from omegaconf import DictConfig, OmegaConf

from jtl.domains import Domain, LoadContext, build_domain
from jtl.errors import JtlError
from jtl.methods import Method, build_method
from jtl.models import Network, build_network
from jtl.train import checkpoint as ckpt
from jtl.train.data import host_batches, train_arrays
from jtl.train.evaluate import make_eval
from jtl.train.optim import build_optimizer
from jtl.train.step import init_state, make_chunk, make_step, step_keys
from jtl.train.writer import MetricWriter, atomic_write_json

log = logging.getLogger("jtl")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Above this many bytes of train arrays, batches are streamed from the host.
DEVICE_DATA_LIMIT = 2 << 30


def load_context(paths: Mapping[str, Any]) -> LoadContext:
    data_dir = paths.get("data_dir") or os.environ.get("JTL_DATA_DIR")
    if not data_dir:
        candidates = [Path.cwd() / "../shared/data", PROJECT_ROOT / "../shared/data"]
        data_dir = next((c for c in candidates if c.is_dir()), candidates[-1])
    tfds_dir = paths.get("tfds_dir") or os.environ.get("JTL_TFDS_DIR") or (
        Path.home() / ".cache/jtl/tfds")
    return LoadContext(data_dir=Path(data_dir).resolve(), tfds_dir=Path(tfds_dir))


def load_domains(cfg: Mapping[str, Any]) -> tuple[Domain, Domain]:
    ctx = load_context(cfg.get("paths") or {})
    shape = tuple(cfg["model"]["input_shape"])
    source = build_domain(cfg["source"], shape, ctx)
    target = build_domain(cfg["target"], shape, ctx)
    if source.num_classes != target.num_classes:
        raise JtlError(
            f"source '{source.name}' has {source.num_classes} classes and target "
            f"'{target.name}' has {target.num_classes}: one head cannot score both. Use domains "
            "with one label space, or train the target with method=target_only "
            "source=<the target domain> init_from=<source run> dont_load='head/.*'.")
    return source, target


def steps_per_call(cfg: Mapping[str, Any], has_conv: bool) -> int:
    """`auto`: per-step on XLA:CPU for conv models (convs run slower inside a scan there), else
    chunks up to the evaluation interval (measured in benchmarks/trainer_speed.py)."""
    value = cfg["steps_per_call"]
    if value != "auto":
        return max(int(value), 1)
    if jax.default_backend() == "cpu" and has_conv:
        return 1
    return min(int(cfg["eval_every"]), 500)


def boundaries(total: int, every: list[int]) -> list[int]:
    """Steps where a chunk must end: evaluations, checkpoints, logs, the last step."""
    marks = {total}
    for e in every:
        if e > 0:
            marks.update(range(e, total, e))
    return sorted(marks)


def build(cfg: Mapping[str, Any]) -> tuple[Domain, Domain, Method, Network]:
    """Domains, method and a freshly initialised network of a run's config: shared by training
    and by `load_run`, so a reopened run is the network that was trained."""
    source, target = load_domains(cfg)
    method = build_method(cfg["method"])
    net = build_network(cfg["model"], source.num_classes, method, init_seed(cfg))
    return source, target, method, net


def init_seed(cfg: Mapping[str, Any]) -> int:
    """Seed of the fresh parameters. A run started from another run's checkpoint draws its
    non-loaded parameters (a new head) from another stream than a from-scratch run of the same
    seed: otherwise the "new" head would be the source run's own initial head, which the
    loaded backbone co-adapted with."""
    seed = int(cfg["seed"])
    return seed + 1_000_003 if cfg.get("init_from") else seed


def _plain(cfg: Any) -> dict:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


def _selection(history: list[dict], labeled: str) -> dict[str, float | str]:
    """Model selection over the evaluations: honest (validation split of the domain whose
    labels the method trains on) beside the oracle (target test labels, for reference only)."""
    evals = [r for r in history if f"{labeled}/val/accuracy" in r]
    if not evals:
        return {}
    honest = max(evals, key=lambda r: (r[f"{labeled}/val/accuracy"], -r["step"]))
    oracle = max(evals, key=lambda r: (r["target/test/accuracy"], -r["step"]))
    return {
        "selected/val/split": f"{labeled}/val",
        "selected/val/step": honest["step"],
        "selected/val/target/test/accuracy": honest["target/test/accuracy"],
        "selected/oracle/step": oracle["step"],
        "selected/oracle/target/test/accuracy": oracle["target/test/accuracy"],
    }


def train_and_evaluate(cfg: DictConfig | Mapping[str, Any], workdir: str | Path) -> dict:
    """Train one run into `workdir` (resuming from its latest checkpoint) and return its summary."""
    t0 = time.time()
    cfg = _plain(cfg)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    tcfg = cfg["trainer"]
    total = int(tcfg["steps"])
    summary_path = workdir / "summary.json"
    hydra_cfg = workdir / ".hydra" / "config.yaml"
    if not hydra_cfg.exists():  # called from Python: keep the run dir contract for load_run
        hydra_cfg.parent.mkdir(exist_ok=True)
        OmegaConf.save(OmegaConf.create(cfg), hydra_cfg)

    if cfg.get("measure"):  # unknown measure names fail now, not after training
        from jtl.measures.run import split_ntg

        split_ntg(cfg["measure"])
    source, target, method, net = build(cfg)
    seed = int(cfg["seed"])
    has_conv = type(net.backbone).has_conv
    graphdef, params = nnx.split(net)
    params = params.to_pure_dict()
    if cfg.get("init_from"):
        params, loaded = ckpt.load_params(cfg["init_from"], params, cfg.get("load") or ".*",
                                          cfg.get("dont_load"))
        log.info("init_from %s: loaded %d arrays", cfg["init_from"], len(loaded))
    tx = build_optimizer(cfg["optim"], params, total, method.trainable, cfg.get("freeze"))
    state = init_state(params, tx)

    mngr = ckpt.manager(workdir / "checkpoints", int(tcfg.get("keep_checkpoints", 2)))
    restored = ckpt.restore_latest(mngr, state)
    if restored is not None:
        state = restored
    start = int(state["step"])
    if start:
        log.info("resuming %s from step %d", workdir, start)
    writer = MetricWriter(workdir, start, bool(tcfg.get("tensorboard", True)))

    data = train_arrays(source, target, method.uses)
    nbytes = sum(a.nbytes for d in data.values() for a in d.values())
    mode = tcfg.get("data_on_device", "auto")
    streamed = (nbytes > DEVICE_DATA_LIMIT) if mode == "auto" else not bool(mode)
    if not streamed:
        data = jax.device_put(data)
    spc = steps_per_call(tcfg, has_conv)
    batch_size = int(tcfg["batch_size"])
    step_fn = make_step(graphdef, method, tx, total)
    chunks: dict[int, Any] = {}
    evaluate = make_eval(graphdef)
    run_key = jax.random.fold_in(jax.random.key(seed), 1)
    eval_every, log_every = int(tcfg["eval_every"]), int(tcfg["log_every"])
    ckpt_every = int(tcfg["checkpoint_every"])

    def run_evals(params: Any) -> dict[str, float]:
        out = {}
        for name, split in [("source/val", source.val), ("source/test", source.test),
                            ("target/val", target.val), ("target/test", target.test)]:
            for k, v in evaluate(params, split).items():
                out[f"{name}/{k}"] = v
        return out

    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=start, desc=f"{cfg['method']['name']} seed={seed}",
               unit="step", disable=not tcfg.get("progress", True), dynamic_ncols=True)
    marks = [m for m in boundaries(total, [eval_every, log_every, ckpt_every]) if m > start]
    step, pending = start, []
    last_eval: dict[str, float] = {}
    for mark in marks:
        while step < mark:
            n = min(spc, mark - step)
            if n not in chunks:
                chunks[n] = jax.jit(make_chunk(step_fn, batch_size, n, streamed),
                                    donate_argnums=0)
            if streamed:
                keys = jax.vmap(lambda t: step_keys(run_key, t)[0])(step + np.arange(n))
                batch = host_batches(data, keys, batch_size)
                state, metrics = chunks[n](state, batch, run_key)
            else:
                state, metrics = chunks[n](state, data, run_key)
            pending.append(metrics)
            step += n
            bar.update(n)
        row: dict[str, float] = {}
        if mark % log_every == 0 or mark == total:
            stacked = jax.device_get(pending)
            row.update({f"train/{k}": float(np.mean(np.concatenate([m[k] for m in stacked])))
                        for k in stacked[0]})
            pending = []
            if not np.isfinite(row["train/loss"]):
                raise JtlError(f"the training loss is {row['train/loss']} at step {mark}: lower "
                               "optim.lr or a method's weight")
        if mark % eval_every == 0 or mark == total:
            last_eval = run_evals(state["params"])
            row.update(last_eval)
        if row:
            writer.write(mark, row)
            bar.set_postfix({k.split("/", 1)[1] if k.startswith("train/") else k: f"{v:.3f}"
                             for k, v in row.items()
                             if k in ("train/loss", "source/test/accuracy",
                                      "target/test/accuracy")})
        if mark % ckpt_every == 0 or mark == total:
            mngr.save(mark, args=ckpt.ocp.args.StandardSave(state))
    bar.close()
    mngr.wait_until_finished()
    mngr.close()
    writer.close()
    if not last_eval:  # resumed a finished run: read the final evaluation back
        last_eval = {k: v for k, v in writer.rows[-1].items() if "/" in k and
                     not k.startswith("train/")}

    summary = {
        "status": "completed",
        "step": step,
        "seed": seed,
        "method": cfg["method"]["name"],
        "source": source.name,
        "target": target.name,
        "model": cfg["model"]["name"],
        "steps_per_call": spc,
        "num_params": int(sum(np.size(p) for p in jax.tree_util.tree_leaves(state["params"]))),
        **last_eval,
        **_selection(writer.rows, "target" if "target/y" in method.uses else "source"),
        "wall_time_s": time.time() - t0,
    }
    atomic_write_json(summary_path, summary)
    if cfg.get("measure"):  # `+measure=[pad,mmd]`: measures.json beside the summary
        from jtl.measures.run import measure_run

        try:
            measure_run(workdir, cfg["measure"])
        except JtlError as e:  # training did complete: keep its summary
            log.error("measures failed (the run itself completed): %s", e)
    return summary
