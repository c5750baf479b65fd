"""Transfer recipes as config (`conf/transfer/<name>.yaml`), read by the one trainer.

A recipe file is `# @package _global_`: it sets the keys jtl already has (`dont_load` to
replace the head, `freeze` regexes) and a `transfer:` section for what they cannot say:

    transfer:
      name: freeze_k
      freeze_k: 1          # the first k backbone blocks join `freeze`
      head: linear         # linear | prototype (nearest class mean of labeled target features)
      metric: euclidean    # the prototype head's: euclidean | cosine | cl2n
      center: source       # cl2n's: the mean feature of the source train set | of the support
      keep_blocks: null    # keep the backbone's first k blocks only; the head sits on their output
      groups: []           # per-group optimizer settings (jtl.train.optim.Group)
      layer_decay: null    # discriminative lr: block i of n at lr / decay^(n - i), head at lr
      bn: train            # backbone BatchNorm while training: train | frozen (below)

BatchNorm while fine-tuning (`bn`): `train` (TLlib's choice, the default) normalises the
trained blocks with batch statistics and updates their running averages; `frozen` keeps every
backbone BatchNorm on its (pretrained) running statistics, never updated, as `model.eval()`
on the backbone would (its scale and shift still train where the block trains). Either way a
frozen block's BatchNorm is a fixed function (jtl.train.step.frozen_norms). `frozen` is
`freeze` over the backbone's running statistics, so nothing else changes. With `transfer=none`
write `+transfer.bn=frozen`.

Every recipe but `none` needs a run to start from (`pretrain=` or `init_from=`).

A neck (`neck:`, `jtl.models.base.Neck`: TLlib's bottleneck between backbone and head) is
trained like the head: recipes freeze `backbone/...` only, so it trains where the head does;
a group of the head (`params: head/.*`) is its group too (linear_probe's lr_mult, l2_sp's
l2); and a recipe's new head (`dont_load: head/.*`) comes with a new neck, as TLlib puts a
fresh bottleneck on a pretrained backbone. A prototype head is the class means of the neck's
features. Without a bottleneck the neck has no parameters and none of this changes a run.

No recipe has a loop of its own: freezing and groups are optax labels, lp_ft's two phases a
transform that holds the backbone for the first part of the steps, L2-SP a gradient term
toward the pretrained values held in the optimizer state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jtl.domains import Split
from jtl.errors import JtlError
from jtl.models.base import METRICS, prototype_head

HEADS = ("linear", "prototype")
CENTERS = ("source", "support")  # cl2n's center: which labeled set's mean feature
BN_MODES = ("train", "frozen")
# The backbone's BatchNorm running statistics (`jtl.models.base.batch_norm`'s mean and var).
BN_STATS = "backbone/.*/(?:mean|var)"
# The head's regex in recipes, and what it becomes so that the neck goes with the head.
HEAD, HEAD_AND_NECK = "head/.*", "(?:head|neck)/.*"


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The `transfer:` section of a run's config (absent: no recipe)."""

    name: str = "none"
    freeze_k: int = 0
    head: str = "linear"
    metric: str = "euclidean"
    center: str = "source"
    keep_blocks: int | None = None
    groups: tuple[Mapping[str, Any], ...] = ()
    layer_decay: float | None = None
    bn: str = "train"

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any] | None) -> Recipe:
        if not cfg:
            return cls()
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise JtlError(f"transfer has no key(s) {unknown}; it takes {sorted(known)}")
        recipe = cls(**{**cfg, "groups": tuple(cfg.get("groups") or ())})
        if recipe.head not in HEADS:
            raise JtlError(f"transfer.head={recipe.head!r}: use one of {list(HEADS)}")
        if recipe.metric not in METRICS:
            raise JtlError(f"transfer.metric={recipe.metric!r}: use one of {list(METRICS)}")
        if recipe.bn not in BN_MODES:
            raise JtlError(f"transfer.bn={recipe.bn!r}: use one of {list(BN_MODES)}")
        if recipe.center not in CENTERS:
            raise JtlError(f"transfer.center={recipe.center!r}: use one of {list(CENTERS)}")
        if isinstance(recipe.freeze_k, bool) or not isinstance(recipe.freeze_k, int) or \
                recipe.freeze_k < 0:
            raise JtlError(f"transfer.freeze_k={recipe.freeze_k!r}: an integer >= 0")
        return recipe

    def check_init(self, cfg: Mapping[str, Any]) -> None:
        """A recipe that transfers needs something to transfer from: a run, or published
        weights (`model.weights`)."""
        if self.name != "none" and not (cfg.get("init_from") or cfg.get("pretrain") or
                                        (cfg.get("model") or {}).get("weights")):
            raise JtlError(f"transfer={self.name} starts from a pretrained run: name it with "
                           "pretrain=<experiment> (found or trained once, cached) or "
                           "init_from=<run dir>, or give model.weights=<checkpoint>")

    def dont_load(self, dont_load: str | None) -> str | None:
        """A recipe's `dont_load`: its new head (`head/.*`) brings a new neck."""
        return HEAD_AND_NECK if self.name != "none" and dont_load == HEAD else dont_load

    def freeze(self, freeze: str | None, num_blocks: int) -> str | None:
        """The user's `freeze` regex joined with the first `freeze_k` backbone blocks (and the
        backbone's BatchNorm statistics under `bn: frozen`)."""
        if self.freeze_k > num_blocks:
            raise JtlError(f"transfer.freeze_k={self.freeze_k}: the backbone has only "
                           f"{num_blocks} blocks")
        parts = [freeze] if freeze else []
        if self.freeze_k:
            blocks = "|".join(str(i) for i in range(self.freeze_k))
            parts.append(f"backbone/blocks/({blocks})/.*")
        if self.bn == "frozen":
            parts.append(BN_STATS)
        return "|".join(f"(?:{p})" for p in parts) if len(parts) > 1 else (
            parts[0] if parts else None)


    def all_groups(self, num_blocks: int) -> tuple[Mapping[str, Any], ...]:
        """`groups` (the head's group covering the neck too), then one group per backbone
        block when `layer_decay` is set (first match wins, so an explicit group overrides a
        generated one)."""
        groups = tuple({**g, "params": HEAD_AND_NECK} if g.get("params") == HEAD else g
                       for g in self.groups)
        if not self.layer_decay:
            return groups
        if self.layer_decay < 1:
            raise JtlError(f"transfer.layer_decay={self.layer_decay}: a factor >= 1")
        return (*groups, *({"params": f"backbone/blocks/{i}/.*",
                                 "lr_mult": float(self.layer_decay) ** -(num_blocks - i)}
                                for i in range(num_blocks)))


def with_prototype_head(graphdef: nnx.GraphDef, params: dict, train: Split, num_classes: int,
                        metric: str = "euclidean", center: Split | None = None,
                        batch_size: int = 1000) -> dict:
    """`params` with the head set to the class means of the labeled target train features
    (`jtl.models.base.prototype_head`), computed with the (loaded) backbone and neck
    (`Network.features`). cl2n subtracts
    the mean feature of `center` (SimpleShot: the source train set), or of `train` when
    `center` is None."""
    model = nnx.merge(graphdef, params)
    embed = jax.jit(lambda x: model.features(x))

    def feats(split: Split) -> jax.Array:
        return jnp.concatenate([embed(jnp.asarray(split.x[i:i + batch_size]))
                                for i in range(0, len(split), batch_size)])

    support = feats(train)
    mean = None if metric != "cl2n" else (feats(center) if center is not None else
                                          support).mean(0)
    head = prototype_head(support, jnp.asarray(train.y), num_classes, metric, mean)
    return {**params, "head": {k: np.asarray(v, dtype=np.asarray(params["head"][k]).dtype)
                               for k, v in head.items()}}
