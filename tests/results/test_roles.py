"""NTG pairing keys on roles: several sources pair with a source_only of the same sources, a
source-free run with the source model it starts from."""

from __future__ import annotations

import pytest

from jtl.errors import JtlError
from jtl.results.baselines import (
    SOURCE_ONLY,
    BaselineCache,
    baseline_overrides,
    compare,
    load_transfer_run,
    reference_key,
)
from jtl.train import train_and_evaluate
from tests.conftest import compose_cfg

BASE = ["domain@target=sklearn_digits", "target.shifts=[invert]", "model=mlp",
        "model.hidden=[16]", "model.norm=batch", "trainer=debug", "trainer.progress=false",
        "trainer.tensorboard=false"]


def test_several_sources_key_and_compose_their_source_only():
    from jtl.train.build import resolve_roles
    from jtl.train.lanes import plain

    cfg = resolve_roles(plain(compose_cfg([*BASE, "sources=[mnist,usps]", "method=dann"])))
    key = reference_key(cfg, SOURCE_ONLY)
    assert [d["name"] for d in key["sources"]] == ["mnist", "usps"] and "source" not in key
    one = resolve_roles(plain(compose_cfg([*BASE, "domain@source=mnist", "method=dann"])))
    assert reference_key(one, SOURCE_ONLY)["source"]["name"] == "mnist"  # as before
    over = baseline_overrides(cfg, 0, SOURCE_ONLY)
    assert "source=null" in over and any(o.startswith("++sources=[") for o in over)
    again = resolve_roles(plain(compose_cfg(over)))  # the overrides compose that reference
    assert reference_key(again, SOURCE_ONLY) == key


def test_a_source_free_run_pairs_with_its_own_source_model(tmp_path):
    src = tmp_path / "source"
    train_and_evaluate(compose_cfg([*BASE, "domain@source=sklearn_digits"]), src)
    ab = tmp_path / "adabn"
    train_and_evaluate(compose_cfg([*BASE, "method=adabn", "source=null",
                                    f"init_from={src}"]), ab)
    cache = BaselineCache(tmp_path / "baselines", launch=False)
    c = compare([load_transfer_run(ab)], cache)
    own = c.per_run[ab]
    assert own["ntg_source_only_dir"] == str(src) and not cache.launched
    assert own["ntg_adaptation_gain"] == pytest.approx(own["ntg_source_only_err"]
                                                       - own["ntg_transfer_err"])
    other = tmp_path / "other_target"
    train_and_evaluate(compose_cfg([*BASE, "method=adabn", "source=null", f"init_from={src}",
                                    "target.shifts=[]"]), other)
    with pytest.raises(JtlError, match="another target"):
        compare([load_transfer_run(other)], cache)
