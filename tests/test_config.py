"""jtl.config.compose: the CLI's config from Python, Hydra's errors as one JtlError."""

from __future__ import annotations

import pytest

from jtl.config import compose
from jtl.errors import JtlError
from tests.conftest import compose_cfg


def test_compose_equals_the_cli_composition():
    overrides = ["experiment=digits_u2m", "method=dann", "seed=4"]
    from omegaconf import OmegaConf

    assert compose(overrides) == OmegaConf.to_container(compose_cfg(overrides), resolve=True)


def test_compose_errors_are_one_line():
    with pytest.raises(JtlError, match="method/nope"):
        compose(["method=nope"])
