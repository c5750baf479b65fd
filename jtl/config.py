"""Composing `conf/` from Python, as `python -m jtl.train` does: the one place tools,
notebooks, benchmarks and the pretraining cache get a run's config from overrides."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jtl.errors import JtlError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose(overrides: Sequence[str], config_name: str = "config") -> dict[str, Any]:
    """`conf/<config_name>.yaml` with `overrides`, resolved to plain containers. Safe inside a
    running Hydra app (its global state is restored); Hydra's errors become one JtlError."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from hydra.initialize import get_gh_backup, restore_gh_from_backup
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=list(overrides))
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]
    except (HydraException, OmegaConfBaseException) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise JtlError(f"cannot compose {list(overrides)}: {first}") from e
    finally:
        restore_gh_from_backup(backup)
