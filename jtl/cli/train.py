"""`python -m jtl.train` / `jtl-train`: Hydra composes `conf/`, `train_and_evaluate` runs it."""

from __future__ import annotations

import logging
import sys
import time
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from jtl.errors import JtlError

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
log = logging.getLogger("jtl")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _main(cfg: DictConfig) -> float | None:
    from jtl.train import train_and_evaluate
    from jtl.train.writer import atomic_write_json

    for noisy in ("absl", "jax"):  # orbax's and jax's INFO lines would drown the progress bar
        logging.getLogger(noisy).setLevel(logging.WARNING)
    workdir = Path(HydraConfig.get().runtime.output_dir)
    t0 = time.time()
    try:
        summary = train_and_evaluate(cfg, workdir)
    except Exception as e:
        # The run dir records the failure, so a sweep's report can count it.
        atomic_write_json(workdir / "summary.json", {
            "status": "failed", "error": f"{type(e).__name__}: {e}", "seed": cfg.seed,
            "method": cfg.method.name, "wall_time_s": time.time() - t0})
        if isinstance(e, JtlError):
            print(f"jtl: error: {e}", file=sys.stderr)
            if HydraConfig.get().mode.name == "RUN":
                sys.exit(2)
            return None
        traceback.print_exc()
        raise
    print(f"source {summary['source']} test accuracy: {summary['source/test/accuracy']:.4f}")
    print(f"target {summary['target']} test accuracy: {summary['target/test/accuracy']:.4f}")
    print(f"run dir: {workdir}")
    return summary["target/test/accuracy"]


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
