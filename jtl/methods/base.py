"""The method contract.

A method is a frozen dataclass whose fields are its hyper-parameters (the keys of
`conf/method/<name>.yaml` other than `name`). It says which batches it needs (`uses`), which
extra modules it adds beside `backbone` and `head` (e.g. a domain discriminator under `disc/`),
which parameters it trains (`trainable`, a regex on paths like `backbone/conv1/kernel`), and
its loss. It never owns a training loop: `jtl.train` runs every method.

The trainer hands the loss only the arrays named in `uses`, so a transductive method cannot
read target labels even by mistake. A batch holds one group per role (`source`, `target`),
each `{"x": model input, "y": labels}`; with several sources, `source` holds every source's
equal share concatenated, and `source["domain"]` each example's source index (DomainBed's
per-domain minibatches), so a method may treat each source apart.

State beyond parameters: batch-norm statistics, updated by the step itself, and the method's
own state (`init_state`: e.g. pseudo-labels of every target train example, class centroids),
a pytree that lives beside the parameters in the train state (checkpointed, vmapped over
seeds, restored on resume) and that the step reads and may update (`loss_with_state`). The
boundary hook `on_boundary` runs at every chunk boundary (evaluation, checkpoint and log
steps, and every `boundary_every` steps) with whole splits at hand and returns new
parameters and state (pseudo-labels over a split, statistics such as AdaBN's). A batch
group carries `index`, each example's position in its train split, when the method asks for
`<role>/index`, so a step can look its examples up in such state. A statistics-only method
(`trainable = None`) takes no gradient step: its run is the hook at the last step, from
`init_from`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jtl.errors import JtlError
from jtl.registry import Registry

# {"source": {"x": (B,H,W,C), "y": (B,)}, "target": {"x": ...}}: only the keys in `Method.uses`.
Batch = Mapping[str, Mapping[str, jax.Array]]

# Every array a method may ask for.
ALL_INPUTS = frozenset({"source/x", "source/y", "source/index",
                        "target/x", "target/y", "target/index"})


@dataclasses.dataclass(frozen=True)
class Method:
    """Base class; subclasses are registered with `@METHODS.register("<name>")`."""

    # Which arrays the loss reads, e.g. {"source/x", "source/y", "target/x"}.
    uses: ClassVar[frozenset[str]] = frozenset({"source/x", "source/y"})
    # Regex on parameter paths that this method trains (further restricted by `freeze`);
    # None: statistics only, no optimizer step (the run is `on_boundary` at the last step).
    trainable: ClassVar[str | None] = ".*"
    # The hook also runs every this many steps (None: at the trainer's marks only).
    boundary_every: ClassVar[int | None] = None

    def aligns(self) -> str | None:
        """'features' when the method's own term acts on `model.features` only (a domain
        discriminator under gradient reversal, a feature discrepancy): it then moves nothing
        unless something under the features trains, which the trainer warns about."""
        return None

    def modules(self, feature_dim: int, num_classes: int, rngs: nnx.Rngs) -> dict[str, nnx.Module]:
        """Extra modules, stored beside backbone/head under their key (e.g. `disc`)."""
        return {}

    def loss(
        self, model: nnx.Module, batch: Batch, key: jax.Array, progress: jax.Array
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Scalar loss and scalar metrics for one step.

        `model.features(x)` gives features (B, D) (backbone, then neck), `model.head(f)`
        logits, and extra modules are attributes (`model.disc`). `progress` is
        step / (total steps - 1): 0 at the first step, exactly 1 at the last, for schedules
        such as DANN's lambda. `key` is this step's PRNG key.
        """
        raise NotImplementedError

    def init_state(self, params: Any, ctx: Boundary) -> Any:
        """The method's state at step 0, from the initial parameters (`ctx.step == 0`); None:
        the method has none (the train state then has no `method` entry)."""
        return None

    def loss_with_state(self, model: nnx.Module, state: Any, batch: Batch, key: jax.Array,
                        progress: jax.Array) -> tuple[jax.Array, dict[str, jax.Array], Any]:
        """`loss` for methods with state: (loss, metrics, the state after this step). The
        state is not differentiated; default: `loss`, the state unchanged."""
        loss, metrics = self.loss(model, batch, key, progress)
        return loss, metrics, state

    def on_boundary(self, params: Any, state: Any, ctx: Boundary) -> tuple[Any, Any]:
        """(parameters, method state) after the chunk ending at `ctx.step`; default: as they
        are. Runs on the host between compiled chunks, once per seed lane."""
        return params, state


@dataclasses.dataclass(frozen=True)
class Boundary:
    """What `Method.on_boundary` sees: the step reached, the run's length, the network's
    graph, the run's domains (`jtl.train.build.Roles`: whole splits with their pipelines) and
    a PRNG key of this boundary and seed."""

    step: int
    total: int
    graphdef: nnx.GraphDef
    roles: Any
    key: jax.Array

    def logits(self, params: Any, split: Any) -> Any:
        """The network's logits (N, C) over a whole split, in evaluation mode, under the
        split's evaluation pipeline (compiled once per network)."""
        from jtl.train.evaluate import make_predict  # jtl.train imports the methods

        return make_predict(self.graphdef)(params, split)


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return jnp.mean(jnp.argmax(logits, -1) == labels)


METHODS: Registry[type[Method]] = Registry("method", "jtl.methods", "method")


def build_method(cfg: Mapping[str, Any]) -> Method:
    """`conf/method/<name>.yaml` -> Method instance; unknown keys are an error, not ignored."""
    cfg = dict(cfg)
    cls = METHODS.get(cfg.pop("name"))
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(cfg) - fields)
    if unknown:
        raise JtlError(
            f"method '{cls.__name__}' has no hyper-parameter(s) {unknown}; "
            f"it takes {sorted(fields)}"
        )
    bad = set(cls.uses) - ALL_INPUTS
    if bad:
        raise JtlError(f"method {cls.__name__} asks for unknown inputs {sorted(bad)}")
    return cls(**cfg)
