"""The source_only row of the MNIST-C table: each seed's source model (the `init_from` its
source-free runs started from) scored in evaluation mode (its own BatchNorm statistics) on the
same corrupted target test split those runs were scored on, and on the online runs' stream
(the same examples in the stream's order, in the trainer's logging windows, for the curves).
Writes `<runs dir>/<corruption>/source_only.json`: {"<seed>": accuracy, "stream<seed>":
[accuracy per window, once an online run of it exists], "source_run<seed>": dir}; a
corruption whose file is complete is skipped.
Usage: mnistc_source.py <runs dir> <corruption>..."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from jtl import rundir
from jtl.train import runs
from jtl.train.build import build_method, load_roles, network
from jtl.train.online import stream_roles

SEEDS = (0, 1, 2)
ONLINE = ("bn_adapt", "tent")  # the cell's online runs: their config names the stream


def completed(cell: Path, seed: int, methods: tuple[str, ...] | None = None) -> list[Path]:
    return [r for r in sorted(cell.glob(f"*/seed{seed}"))
            if (methods is None or r.parent.name in methods)
            and rundir.completed_summary(r) is not None]


def source_network(src: str, num_classes: int) -> object:
    """The source run's network at its final checkpoint, built from its config without loading
    its domains (runs.load_run would read MNIST and USPS again)."""
    from flax import nnx

    cfg = rundir.load_config(src)
    net = network(cfg, num_classes, build_method(cfg["method"]), cfg["model"]["input_shape"])
    graphdef, params = nnx.split(net)
    step = runs.checkpoint_steps(src)[-1]
    return nnx.merge(graphdef, runs.restore_params(src, step, params.to_pure_dict()))


def accuracy(network: object, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return runs.features(network, x, "logits").argmax(1) == y


def main(out: Path, corruptions: list[str]) -> None:
    networks: dict[str, object] = {}
    for c in corruptions:
        dest, cell = out / c / "source_only.json", out / c
        online = completed(cell, 0, ONLINE)
        ref = online or completed(cell, 0)
        if not ref or (dest.exists() and ("stream0" in json.loads(dest.read_text())
                                           or not online)):
            continue  # done, or nothing new: the stream needs an online run's config
        cfg = rundir.load_config(ref[0])
        roles = load_roles(cfg)
        test = roles.target.test
        stream, window = None, None
        if online:
            batch = int(cfg["trainer"]["batch_size"])
            stream = stream_roles(cfg["online"], roles, batch)[0].target.train
            window = batch * int(cfg["trainer"]["log_every"])  # a metrics.jsonl row's examples
        row: dict[str, object] = {"window": window}
        for seed in SEEDS:
            runs_s = completed(cell, seed)
            if not runs_s:
                continue
            src = str(rundir.load_config(runs_s[0])["init_from"])
            if src not in networks:
                networks[src] = source_network(src, roles.target.num_classes)
            row[str(seed)] = float(accuracy(networks[src], test.x, test.y).mean())
            if stream is not None:
                hits = accuracy(networks[src], stream.x, stream.y)
                row[f"stream{seed}"] = [float(hits[i * window:(i + 1) * window].mean())
                                        for i in range(math.ceil(len(hits) / window))]
            row[f"source_run{seed}"] = src
        dest.write_text(json.dumps(row, indent=1, sort_keys=True) + "\n")
        print(c, {k: v for k, v in row.items() if k in {"0", "1", "2"}})


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
