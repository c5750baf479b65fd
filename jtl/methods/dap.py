"""Direct Attribute Prediction (Lampert et al. 2009): zero-shot classes through attributes.

Each class k has a binary attribute code A[k] (M attributes): a table in
`conf/attributes/<name>.yaml` or any yaml file (`method.attributes=/path/mine.yaml`). On
the *seen* classes only, an attribute predictor (`attr/`, a linear layer on the backbone's
features, M sigmoid outputs) learns p(a_m = 1 | x):

    loss = mean_m BCE(attr(f(x))_m, A[seen[y]]_m)

A class never trained on is then recognised by the code its predicted attributes fit best:
with independent attributes and uniform attribute priors, DAP's
argmax_z prod_m p(a_m = A[z]_m | x) / p(A[z]_m) is `dap_predict`. The source domain is the
seen classes (`source.classes`, relabelled 0..k-1 in that order; `method.seen` names the same
list); the measure `zero_shot` scores unseen classes. `head` is not trained by this method.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import yaml
from flax import nnx

from jtl.errors import JtlError
from jtl.methods.base import METHODS, Method


def load_attributes(name: str) -> dict[str, Any]:
    """An attribute table by name (`conf/attributes/<name>.yaml`) or by path to a yaml file."""
    from jtl.config import CONF_DIR

    path = Path(name).expanduser()
    if not path.suffix:
        path = CONF_DIR / "attributes" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (CONF_DIR / "attributes").glob("*.yaml"))
        raise JtlError(f"dap: no attribute table '{name}' ({path} is missing); give one of "
                       f"{known} or a path to a yaml file with `names` and `codes`")
    table = yaml.safe_load(path.read_text())
    return table if isinstance(table, dict) else {}


def attribute_codes(attributes: Mapping[str, Any]) -> np.ndarray:
    """The (classes, M) 0/1 code table of an attribute config ({names, codes}), checked."""
    codes = np.asarray(attributes.get("codes", []), dtype=np.float32)
    names = list(attributes.get("names", []))
    if codes.ndim != 2 or codes.shape[1] != len(names) or not np.isin(codes, (0, 1)).all():
        raise JtlError("attributes need `names` (M of them) and `codes`, one row of M 0/1 "
                       "values per class; see conf/attributes/seven_segment.yaml")
    if len(np.unique(codes, axis=0)) != len(codes):
        raise JtlError("attributes: two classes share one code, so DAP cannot tell them apart; "
                       "give every class a distinct code")
    return codes


def check_seen(codes: np.ndarray, names: Sequence[str], seen: Sequence[int]) -> None:
    """Every attribute must be seen both on and off among the seen classes: a predictor never
    shown one value of an attribute cannot recognise an unseen class that has it."""
    bad = [c for c in seen if not 0 <= c < len(codes)]
    if bad:
        raise JtlError(f"dap: seen classes {bad} have no row in the attribute table "
                       f"({len(codes)} classes)")
    sub = codes[list(seen)]
    one_valued = [n for n, col in zip(names, sub.T, strict=True) if col.min() == col.max()]
    if one_valued:
        raise JtlError(f"dap: attribute(s) {one_valued} take one value over the seen classes "
                       f"{list(seen)}; choose `source.classes` so every attribute is seen on "
                       "and off")


def dap_predict(attr_logits: jax.Array, codes: jax.Array) -> jax.Array:
    """Index of the candidate code (rows of `codes`, (K, M)) that maximises
    sum_m log p(a_m = codes[k, m] | x) under the predicted attribute probabilities."""
    log_on, log_off = jax.nn.log_sigmoid(attr_logits), jax.nn.log_sigmoid(-attr_logits)
    scores = log_on @ codes.T + log_off @ (1.0 - codes).T
    return jnp.argmax(scores, axis=-1)


@METHODS.register("dap")
@dataclasses.dataclass(frozen=True)
class DAP(Method):
    attributes: str = "seven_segment"  # conf/attributes/<name>.yaml, or a path to a yaml file
    # The original class id of each source label 0..k-1: the list given as `source.classes`;
    # None: the source holds every class of the table, labelled by its row.
    seen: tuple[int, ...] | None = None
    uses = frozenset({"source/x", "source/y"})
    trainable = "(backbone|neck|attr)/.*"

    def __post_init__(self) -> None:
        codes = self.codes  # a missing or malformed table fails here, before any data loads
        if self.seen is not None:
            object.__setattr__(self, "seen", tuple(int(c) for c in self.seen))
            check_seen(codes, self.names, self.seen)

    @functools.cached_property
    def table(self) -> dict[str, Any]:
        return load_attributes(self.attributes)

    @property
    def names(self) -> list[str]:
        return list(self.table["names"])

    @property
    def codes(self) -> np.ndarray:
        """(classes, M) 0/1 codes of every class of the table."""
        return attribute_codes(self.table)

    @property
    def seen_classes(self) -> list[int]:
        return list(range(len(self.codes))) if self.seen is None else list(self.seen)

    def modules(self, feature_dim, num_classes, rngs):
        if num_classes != len(self.seen_classes):
            raise JtlError(f"dap: the domains have {num_classes} classes but "
                           f"{len(self.seen_classes)} are seen; set method.seen to the list "
                           "given as source.classes (and target.classes)")
        return {"attr": nnx.Linear(feature_dim, len(self.names), rngs=rngs)}

    def loss(self, model, batch, key, progress):
        src = batch["source"]
        logits = model.attr(model.features(src["x"]))
        codes = jnp.asarray(self.codes[self.seen_classes])
        bce = optax.sigmoid_binary_cross_entropy(logits, codes[src["y"]]).mean()
        acc = jnp.mean(dap_predict(logits, codes) == src["y"])
        return bce, {"attr_loss": bce, "seen_dap_acc": acc}
