"""Office-31 (Saenko et al. 2010): amazon 2817, dslr 498, webcam 795 images of 31 classes.

An `imagefolder` domain over the shared images, `<data_dir>/office31/<env>/images/<class>/`,
checked against `office31/MANIFEST.sha256` (itself against its published sum) and the
published counts. `env: amazon|dslr|webcam` names the domain (run dirs read
`office31.amazon_to_office31.webcam`). No split is published: `test: held_out` (default)
holds 20% of every class out; the usual protocol scores the whole target: `test: all`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jtl.domains import imagefolder
from jtl.domains.base import DOMAINS, LoadContext, RawData
from jtl.errors import JtlError

COUNTS = {"amazon": 2817, "dslr": 498, "webcam": 795}
MANIFEST = "office31/MANIFEST.sha256"


@DOMAINS.register("office31")
def load(cfg: Mapping[str, Any], ctx: LoadContext) -> RawData:
    env = cfg.get("env", "amazon")
    if env not in COUNTS:
        raise JtlError(f"env={env!r}: one of {list(COUNTS)}")
    raw = imagefolder.load({**cfg, "root": f"office31/{env}/images", "manifest": MANIFEST},
                           ctx)
    if len(raw.y_train) != COUNTS[env] or len(raw.class_names) != 31:
        raise JtlError(f"office31/{env}: {len(raw.y_train)} images in "
                       f"{len(raw.class_names)} classes, published {COUNTS[env]} in 31; "
                       "restore the shared data (office31/README.md)")
    return raw
