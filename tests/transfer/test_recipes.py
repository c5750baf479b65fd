"""Recipes end to end: what each one loads, freezes and trains, by parameter path."""

from __future__ import annotations

import numpy as np
import pytest
from flax import nnx

from jtl.errors import JtlError
from jtl.train import train_and_evaluate
from jtl.train.trainer import build
from tests.conftest import compose_cfg
from tests.transfer.conftest import SMALL, final_params, leaves


def fresh_params(cfg) -> dict[str, np.ndarray]:
    """The parameters a run of `cfg` starts from before anything is loaded."""
    from omegaconf import OmegaConf

    net = build(OmegaConf.to_container(cfg, resolve=True))[3]
    return leaves(nnx.split(net)[1].to_pure_dict())


def run(small_cfg, tmp_path, name, *overrides):
    cfg = small_cfg("method=target_only", *overrides)
    train_and_evaluate(cfg, tmp_path / name)
    return cfg, leaves(final_params(tmp_path / name))


def test_feature_extractor_keeps_every_backbone_param_and_trains_the_head(
        small_cfg, source_run, tmp_path):
    src = leaves(final_params(source_run))
    cfg, out = run(small_cfg, tmp_path, "fe", "transfer=feature_extractor",
                   f"init_from={source_run}")
    fresh = fresh_params(cfg)
    backbone = [p for p in out if p.startswith("backbone/")]
    assert len(backbone) == 4
    for p in backbone:
        np.testing.assert_array_equal(out[p], src[p])  # bit-identical to the source's
    for p in ("head/kernel", "head/bias"):
        assert not np.array_equal(out[p], fresh[p])  # trained from its fresh draw
        assert not np.array_equal(out[p], src[p])    # and not the source's head


@pytest.mark.parametrize("k", [1, 2])
def test_freeze_k_freezes_exactly_the_first_k_blocks(small_cfg, source_run, tmp_path, k):
    src = leaves(final_params(source_run))
    _, out = run(small_cfg, tmp_path, f"k{k}", "transfer=freeze_k", f"transfer.freeze_k={k}",
                 f"init_from={source_run}")
    for block in range(2):
        for leaf in ("kernel", "bias"):
            p = f"backbone/blocks/{block}/linear/{leaf}"
            assert np.array_equal(out[p], src[p]) == (block < k), p


def test_freeze_k_beyond_the_backbone_is_a_user_error(small_cfg, source_run, tmp_path):
    with pytest.raises(JtlError, match="only 2 blocks"):
        run(small_cfg, tmp_path, "k3", "transfer=freeze_k", "transfer.freeze_k=3",
            f"init_from={source_run}")


def test_dont_load_leaves_params_at_their_fresh_initialisation(small_cfg, source_run,
                                                               tmp_path):
    src = leaves(final_params(source_run))
    cfg, out = run(small_cfg, tmp_path, "dl", f"init_from={source_run}", "freeze='.*'",
                   "dont_load='backbone/blocks/1/.*|head/.*'")
    fresh = fresh_params(cfg)
    for p in out:
        expected = fresh[p] if p.startswith(("backbone/blocks/1/", "head/")) else src[p]
        np.testing.assert_array_equal(out[p], expected, err_msg=p)
    assert not np.array_equal(fresh["head/kernel"], src["head/kernel"])


def test_lp_ft_holds_the_backbone_for_the_first_half(small_cfg, source_run, tmp_path):
    """lp_ft switching at step 5 of 10 is, at step 5, exactly the 5-step linear probe (same
    head updates, backbone untouched), and fine-tunes the backbone afterwards."""
    from jtl.train.checkpoint import manager

    src = leaves(final_params(source_run))
    _, end = run(small_cfg, tmp_path, "lpft", "transfer=lp_ft", f"init_from={source_run}",
                 "trainer.checkpoint_every=5", "trainer.keep_checkpoints=3")
    with manager(tmp_path / "lpft" / "checkpoints") as m:
        half = leaves(m.restore(5)["params"])
    _, lp = run(small_cfg, tmp_path, "lp", "transfer=feature_extractor",
                f"init_from={source_run}", "trainer.steps=5", "trainer.eval_every=5",
                "trainer.checkpoint_every=5", "trainer.log_every=5")
    for p in lp:
        np.testing.assert_array_equal(half[p], lp[p], err_msg=p)
        if p.startswith("backbone/"):
            np.testing.assert_array_equal(half[p], src[p], err_msg=p)
            assert not np.array_equal(end[p], src[p]), p  # fine-tuned in the second half


def test_recipe_without_a_source_is_a_user_error(small_cfg, tmp_path):
    with pytest.raises(JtlError, match="pretrain=<experiment>"):
        run(small_cfg, tmp_path, "x", "transfer=finetune")


def test_unknown_transfer_key_is_a_user_error(small_cfg, source_run, tmp_path):
    with pytest.raises(JtlError, match="no key"):
        run(small_cfg, tmp_path, "x", "transfer=finetune", "+transfer.freze_k=1",
            f"init_from={source_run}")


def test_prototype_recipe_on_new_classes_trains_nothing_and_beats_chance(small_cfg, source_run,
                                                                   tmp_path):
    src = leaves(final_params(source_run))
    s = train_and_evaluate(small_cfg("method=target_only", "transfer=prototype",
                                     f"init_from={source_run}", "target.per_class=1",
                                     "trainer.batch_over_split=resample",
                                     "source.classes=[0,1,2,3,4]",
                                     "target.classes=[7,8,9]"), tmp_path / "p")
    out = leaves(final_params(tmp_path / "p"))
    # a head of the target's 3 classes replaces the source run's 10-class one
    assert s["num_classes"] == 3 and out["head/kernel"].shape == (16, 3)
    assert "source/test/accuracy" not in s  # another label space: not scored with this head
    for p in out:
        if p.startswith("backbone/"):
            np.testing.assert_array_equal(out[p], src[p])
    assert s["target/test/accuracy"] > 0.5  # 1 example per class, 3 classes: chance is 1/3


@pytest.mark.parametrize("center", ["source", "support"])
def test_cl2n_prototype_recipe_centres_on_the_named_set(small_cfg, source_run, tmp_path, center):
    """The head equals prototype_head on the loaded backbone's features, centred on the mean
    feature of the source train set or of the support set, as `transfer.center` says."""
    import jax.numpy as jnp

    from jtl.models.base import prototype_head
    from jtl.train.runs import features, load_run

    run_dir = tmp_path / center
    train_and_evaluate(small_cfg("transfer=prototype_cl2n", f"transfer.center={center}",
                                 f"init_from={source_run}", "target.per_class=2",
                                 "trainer.batch_over_split=resample",
                                 "source.classes=[0,1,2,3,4]", "target.classes=[7,8,9]"),
                       run_dir)
    r = load_run(run_dir)
    support = features(r.model, r.target.train.x)
    mean = (features(r.model, r.source.train.x) if center == "source" else support).mean(0)
    want = prototype_head(jnp.asarray(support), jnp.asarray(r.target.train.y), 3, "cl2n",
                          jnp.asarray(mean))
    got = leaves(final_params(run_dir))
    np.testing.assert_allclose(got["head/kernel"], want["kernel"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["head/bias"], want["bias"], rtol=1e-5, atol=1e-6)


def test_unknown_prototype_metric_or_center_is_a_user_error(small_cfg, source_run, tmp_path):
    for bad in ("transfer.metric=manhattan", "transfer.center=target"):
        with pytest.raises(JtlError, match="use one of"):
            train_and_evaluate(small_cfg("transfer=prototype_cl2n", f"init_from={source_run}",
                                         bad), tmp_path / bad)


@pytest.fixture(scope="module")
def bn_source_run(tmp_path_factory):
    """A completed run of an MLP with batch norm in both backbone blocks."""
    run_dir = tmp_path_factory.mktemp("bn") / "src"
    train_and_evaluate(compose_cfg([*SMALL, "model.norm=batch"]), run_dir)
    return run_dir


@pytest.mark.parametrize("recipe,frozen_blocks", [("feature_extractor", (0, 1)),
                                                  ("freeze_k", (0,))])
def test_frozen_batch_norm_keeps_its_running_statistics(small_cfg, bn_source_run, tmp_path,
                                                        recipe, frozen_blocks):
    """A frozen block is a fixed function: its batch-norm statistics stay bit-identical to the
    source's (they would follow the target batches in training mode); a trained block's move."""
    src = leaves(final_params(bn_source_run))
    _, out = run(small_cfg, tmp_path, recipe, f"transfer={recipe}", "model.norm=batch",
                 f"init_from={bn_source_run}")
    stats = [p for p in out if p.endswith(("/mean", "/var"))]
    assert len(stats) == 4
    for p in stats:
        block = int(p.split("/")[2])
        if block in frozen_blocks:
            np.testing.assert_array_equal(out[p], src[p])
        else:
            assert not np.array_equal(out[p], src[p])
    assert not np.array_equal(out["head/kernel"], src["head/kernel"])


def test_keep_blocks_cuts_the_backbone_and_loads_what_is_left(small_cfg, source_run, tmp_path):
    """`transfer.keep_blocks=1`: the network is the source's first block and a new head on
    its output; that block is loaded bit-identical and frozen under feature_extractor."""
    src = leaves(final_params(source_run))
    _, out = run(small_cfg, tmp_path, "cut", "transfer=feature_extractor",
                 "transfer.keep_blocks=1", f"init_from={source_run}")
    assert not any(p.startswith("backbone/blocks/1/") for p in out)
    assert out["head/kernel"].shape == (32, 10)  # on block 0's 32 features, not block 1's 16
    for p in (p for p in out if p.startswith("backbone/")):
        np.testing.assert_array_equal(out[p], src[p])


def test_keep_blocks_out_of_range_is_a_user_error(small_cfg, source_run, tmp_path):
    # 0 is refused by the schema before any work; 3 by the backbone, which knows it has 2.
    for k, says in ((0, r"keep_blocks=0: must be an integer >= 1"), (3, r"keep_blocks=.*1\.\.2")):
        with pytest.raises(JtlError, match=says):
            run(small_cfg, tmp_path, f"k{k}", "transfer=finetune", f"transfer.keep_blocks={k}",
                f"init_from={source_run}")


def test_lenet_cut_after_its_conv_blocks_has_flat_conv_features():
    import jax.numpy as jnp

    from jtl.methods import build_method
    from jtl.models import build_network

    cfg = {"name": "lenet", "input_shape": [28, 28, 1]}
    net = build_network(cfg, 5, build_method({"name": "target_only"}), 0, keep_blocks=2)
    assert len(net.backbone.blocks) == 2 and net.backbone.feature_dim == 4 * 4 * 50
    assert net(jnp.zeros((3, 28, 28, 1))).shape == (3, 5)
