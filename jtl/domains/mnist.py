"""MNIST at the published protocol: the official 60,000 train / 10,000 test images.

`backend: auto` reads the offline IDX files under `paths.data_dir` when they are there and
otherwise the TFDS catalog's `mnist` (same images, same split); `offline` or `tfds` forces one.
Validation is held out of the 60,000 train images by `build_domain` (`val_fraction`), never
out of the test set.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jtl.domains._offline import load_offline
from jtl.domains.base import DOMAINS, LoadContext, RawData
from jtl.errors import JtlError

# sha256 of the files under `paths.data_dir` (see shared/data/README.md); train-images is
# re-compressed there, so its .gz sum differs from the official .gz (the content does not).
FILES = {
    "mnist/train-images-idx3-ubyte.gz":
        "71524e2cd1ad2968737f7f2f2ff69cbfc32df8ccddff51593f7cb2d4e0eb5b64",
    "mnist/train-labels-idx1-ubyte.gz":
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "mnist/t10k-images-idx3-ubyte.gz":
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "mnist/t10k-labels-idx1-ubyte.gz":
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
BACKENDS = ("auto", "offline", "tfds")


def backend(cfg: Mapping[str, Any], data_dir: Path) -> str:
    """`offline` or `tfds`: auto is offline as soon as any of the files is there, so a
    half-present copy is reported as missing files, never silently replaced by a download."""
    choice = str(cfg.get("backend") or "auto")
    if choice not in BACKENDS:
        raise JtlError(f"mnist: unknown backend '{choice}'; use one of {', '.join(BACKENDS)}.")
    if choice != "auto":
        return choice
    return "offline" if any((Path(data_dir) / rel).exists() for rel in FILES) else "tfds"


@DOMAINS.register("mnist")
def load(cfg: Mapping[str, Any], ctx: LoadContext) -> RawData:
    """28x28 uint8 digits (value range [0, 255]), 60,000 train / 10,000 test."""
    if backend(cfg, ctx.data_dir) == "tfds":
        from jtl.domains import tfds

        try:
            return tfds.load({"dataset": "mnist"}, ctx)
        except JtlError as e:
            raise JtlError(f"no offline MNIST files under {Path(ctx.data_dir) / 'mnist'}: point "
                           f"`paths.data_dir` at the folder holding mnist/ (the TFDS fallback "
                           f"failed too: {e})") from e
    splits = load_offline("JtlMnistOffline", ctx.data_dir, ctx.tfds_dir, "mnist", FILES,
                          "set `<source|target>.backend=tfds` to read TFDS's mnist instead")
    (x_tr, y_tr), (x_te, y_te) = splits["train"], splits["test"]
    return RawData(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te, num_classes=10)
