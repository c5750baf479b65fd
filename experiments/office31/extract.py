"""Fill the frozen-feature cache for the three Office-31 domains (each image once):
one build per domain as source (its splits cover every image) and as target (read back)."""

from __future__ import annotations

import sys
import time

from hydra import compose, initialize_config_dir

from jtl.train import features
from jtl.train.build import build_all
from jtl.train.lanes import plain
from tests.conftest import CONF

_extract = features.extract


def extract(fn, x):  # progress on stdout
    t0 = time.time()
    out = _extract(fn, x)
    print(f"  {len(x)} images in {time.time() - t0:.0f} s", flush=True)
    return out


features.extract = extract

# The CPU protocol's resolution (run_da.sh's CPU overrides): 128 x 128 crops of 146 x 146.
CPU = ["model.input_shape=[128,128,3]", "pp.resize=146"]
PAIRS = [("amazon", "webcam"), ("dslr", "amazon"), ("webcam", "dslr")]

for s, t in PAIRS:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "experiment=office31_da", *CPU, f"domain@source=office31_{s}",
            f"domain@target=office31_{t}", *sys.argv[1:]])
    t0 = time.time()
    b = build_all(plain(cfg))
    print(s, t, b.roles.feature_cache["computed_rows"], "computed",
          b.roles.feature_cache["reused_rows"], "reused", f"{time.time() - t0:.0f} s",
          flush=True)
