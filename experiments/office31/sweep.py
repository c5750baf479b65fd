"""The Office-31 runs, in one process (the network's eager init and the data compile once, not
once per run: on a shared 2-core CPU a fresh process spent ~2 minutes building before its
first step). Each (task, method) or (target, k, recipe) is one `jtl.train` run of
`experiment=office31_da` / `office31_ft` with the overrides below, seeds 0-2 vmapped, in
`<out>/<task>/<method>` / `<out>/<target>/k<k>/<recipe>`; completed runs are not retrained.

    sweep.py da [--out DIR] [--methods dann,cdan] [--tasks A2W,D2W] [overrides ...]
    sweep.py ft [--out DIR] [--recipes linear_probe,lp_ft] [--targets dslr] [--ks 1,3,all]
                [overrides ...]

The `overrides` (e.g. the CPU protocol's resolution, or gpu.sh's fine-tuning) go to every run.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from jtl.errors import JtlError
from jtl.train.trainer import train_and_evaluate
from tests.conftest import CONF

DOMAINS = {"A": "amazon", "D": "dslr", "W": "webcam"}
TASKS = ("A2W", "D2W", "W2D", "A2D", "D2A", "W2A")
METHODS = ("source_only", "dann", "cdan", "mcc", "mdd", "mmd")
# TLlib's per-method settings (examples/domain_adaptation/image_classification/mcc.sh,
# mdd.sh and the scripts' argparse defaults); the others take office31_da's (dann.py's).
METHOD_OVERRIDES = {
    "mcc": ["neck.bottleneck_dim=1024", "optim.lr=0.005"],
    "mdd": ["neck.bottleneck_dim=1024", "optim.lr=0.004", "optim.weight_decay=5e-4"],
}
RECIPES = ("linear_probe", "freeze_k", "finetune", "lp_ft", "target_only")
BACKBONE_01 = '+transfer.groups=[{params: "backbone/.*", lr_mult: 0.1}]'  # TLlib's 0.1x
RECIPE_OVERRIDES = {
    "linear_probe": ["transfer=linear_probe"],
    # the first half of Lite0's 18 blocks frozen (a priori), the rest at 0.1x the head's lr
    "freeze_k": ["transfer=freeze_k", "transfer.freeze_k=9", BACKBONE_01],
    "finetune": ["transfer=finetune", BACKBONE_01],
    "lp_ft": ["transfer=lp_ft"],
    "target_only": ["transfer=none", "model.weights=null"],  # from scratch
}
KS = ("1", "3", "all")


def jobs(args: argparse.Namespace) -> list[tuple[Path, list[str]]]:
    out: list[tuple[Path, list[str]]] = []
    if args.table == "da":
        for task in args.tasks or TASKS:
            s, t = DOMAINS[task[0]], DOMAINS[task[2]]
            for m in args.methods or METHODS:
                extra = [f"trainer.steps={args.steps_mcc}"] if m == "mcc" and \
                    args.steps_mcc else []
                out.append((args.out / task / m, [
                    "experiment=office31_da", f"domain@source=office31_{s}",
                    f"domain@target=office31_{t}", f"method={m}",
                    *METHOD_OVERRIDES.get(m, []), *args.overrides, *extra]))
    else:
        for target in args.targets or ("amazon", "dslr", "webcam"):
            for k in args.ks or KS:
                for r in args.recipes or ("linear_probe",):
                    out.append((args.out / target / f"k{k}" / r, [
                        "experiment=office31_ft", f"domain@target=office31_{target}",
                        f"target.per_class={'null' if k == 'all' else k}",
                        *RECIPE_OVERRIDES[r], *args.overrides]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("table", choices=("da", "ft"))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--methods", type=lambda v: v.split(","), help="comma-separated")
    ap.add_argument("--tasks", type=lambda v: v.split(","), help="comma-separated")
    ap.add_argument("--recipes", type=lambda v: v.split(","), help="comma-separated")
    ap.add_argument("--targets", type=lambda v: v.split(","), help="comma-separated")
    ap.add_argument("--ks", type=lambda v: v.split(","), help=f"comma-separated, of {KS}")
    ap.add_argument("--steps-mcc", type=int, default=None)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_intermixed_args()
    if bad := sorted(set(args.ks or ()) - set(KS)):
        ap.error(f"--ks {bad}: k is one of {KS}")
    args.out = args.out or Path(f"experiments/office31/runs/{args.table}")
    logging.basicConfig(level=logging.WARNING)
    failed = []
    for run_dir, overrides in jobs(args):
        overrides = [*overrides, "trainer.seeds=[0,1,2]", "trainer.tensorboard=false"]
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
        t0 = time.time()
        try:
            out = train_and_evaluate(cfg, run_dir, overrides=overrides)
            accs = [round(100 * r.get("selected/val/target/test/accuracy", float("nan")), 1)
                    for r in out["runs"].values()]
            print(f"{run_dir}: {accs} ({time.time() - t0:.0f} s)", flush=True)
        except JtlError as e:
            failed.append(f"{run_dir}: {e}")
            print(f"{run_dir}: FAILED {e}", flush=True)
    if failed:
        sys.exit("\n".join(failed))


if __name__ == "__main__":
    main()
