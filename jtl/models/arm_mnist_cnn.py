"""DomainBed's ARM (Adaptive Risk Minimization, Zhang et al. 2021, its ARM-CML variant) for the
MNIST data sets: a context network whose output, averaged over a support set, is one more
input channel of MNIST_CNN. It changes the network and what a prediction reads (the rows
predicted together), not the loss: a model, trained by any method (DomainBed's ARM is ERM's
update on it: `method=source_only`).

DomainBed (`domainbed/algorithms.py` `ARM(ERM)`, `domainbed/networks.py` `ContextNet`):
`ContextNet(C)` is Conv2d(C, 64, 5, padding 2), BatchNorm2d, ReLU, Conv2d(64, 64, 5, padding
2), BatchNorm2d, ReLU, Conv2d(64, 1, 5, padding 2); `predict(x)` splits the batch into
consecutive groups of `support_size` rows when it divides the batch (else one group, the whole
batch), averages the context map over each group, repeats it to the group's rows and feeds
`cat([x, context], channel)` to MNIST_CNN on C + 1 channels (jtl/models/mnist_cnn.py, built
here with one more input channel) and the linear head.

Which parameters train: DomainBed builds ERM's Adam over `self.network.parameters()` in
`ERM.__init__`, before ARM adds `self.context_net`, so the context network is never updated:
it stays at its initialisation, its BatchNorm layers' running statistics alone change (train
mode in `update`, running averages in `eval`). `train_context: false` (default) is that:
its weights are `Fixed` variables, which jtl's optimizer never touches (as the BatchNorm
statistics: `jtl.train.step.stat_paths`), so neither gradient nor weight decay moves them and
they are not counted in `num_params`; its BatchNorm runs as every jtl BatchNorm (batch
statistics in the training step, running averages everywhere else). `train_context: true`
trains it with the rest, as the ARM paper's ARM-CML does.

Support sets. Training: the trainer concatenates the sources' minibatches of
`trainer.batch_size` rows each, source after source (`jtl.train.data.prepare`), so
`support_size: ${trainer.batch_size}` (the config's default) makes each group one
environment's minibatch, DomainBed's `hparams['batch_size']` on ERM's `cat(minibatches)`.
Evaluation (`jtl.train.evaluate`) runs each split in batches of 1000 rows in split order (not
shuffled, as DomainBed's eval loaders): a support size that divides 1000 (8, the CPU
protocol's) gives consecutive groups of that size, as DomainBed; one that does not (64,
DomainBed's MNIST default) makes each 1000-row batch one group, where DomainBed's eval batches
of 64 give groups of 64. A split of more than 1000 rows has its last batch zero-padded to 1000
rows, and the padding rows enter the context of the group(s) they fall in (DomainBed's last
batch is only shorter); a split of at most 1000 rows is one batch, unpadded.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jtl.errors import JtlError
from jtl.models.base import MODELS, batch_norm
from jtl.models.conv import Conv
from jtl.models.mnist_cnn import MnistCnn, torch_uniform

CONTEXT_WIDTH = 64
CONTEXT_KERNEL = 5


class Fixed(nnx.BatchStat):
    """A weight that no optimizer updates: jtl's optimizer leaves every `BatchStat` variable
    alone (`build_optimizer(fixed=stat_paths(net))`) and the step writes back the value the
    forward pass left, here unchanged."""


class ContextNet(nnx.Module):
    """DomainBed's ContextNet: (B, H, W, C) -> (B, H, W, 1), three 5x5 'same' convolutions,
    the first two followed by BatchNorm (torch's momentum 0.1, eps 1e-5) and ReLU."""

    def __init__(self, cin: int, rngs: nnx.Rngs, conv_impl: str) -> None:
        pad = (CONTEXT_KERNEL - 1) // 2
        convs = []
        for a, b in ((cin, CONTEXT_WIDTH), (CONTEXT_WIDTH, CONTEXT_WIDTH), (CONTEXT_WIDTH, 1)):
            init = torch_uniform(CONTEXT_KERNEL * CONTEXT_KERNEL * a)
            convs.append(Conv(a, b, (CONTEXT_KERNEL, CONTEXT_KERNEL),
                              padding=((pad, pad), (pad, pad)), kernel_init=init,
                              bias_init=init, impl=conv_impl, rngs=rngs))
        self.convs = nnx.List(convs)
        self.norms = nnx.List([batch_norm(CONTEXT_WIDTH, rngs) for _ in range(2)])

    def __call__(self, x: jax.Array) -> jax.Array:
        for conv, norm in zip(self.convs[:2], self.norms, strict=True):
            x = jax.nn.relu(norm(conv(x)))
        return self.convs[2](x)


def fix(module: nnx.Module) -> None:
    """Turn every `nnx.Param` of `module` into a `Fixed` variable of the same value."""
    for _, m in module.iter_modules():
        for name, v in list(vars(m).items()):
            if isinstance(v, nnx.Param):
                setattr(m, name, Fixed(v.get_value()))


@MODELS.register("arm_mnist_cnn")
class ArmMnistCnn(MnistCnn):
    """MNIST_CNN on C + 1 channels behind DomainBed's ContextNet (module docstring).

    `support_size`: rows per support set (conf default `${trainer.batch_size}`, the
    per-source minibatch); `train_context`: false keeps the context network at its
    initialisation (DomainBed), true trains it. `blocks` are MNIST_CNN's (freeze_k and
    keep_blocks count them); the context network is `backbone/context/...`."""

    def __init__(self, input_shape: tuple[int, ...], rngs: nnx.Rngs, support_size: int,
                 train_context: bool = False, conv_impl: str = "auto") -> None:
        if isinstance(support_size, bool) or not isinstance(support_size, int) or \
                support_size < 1:
            raise JtlError(f"model.support_size={support_size!r}: an integer >= 1 (DomainBed: "
                           "the per-environment batch size, trainer.batch_size)")
        *hw, cin = (int(d) for d in input_shape)
        super().__init__((*hw, cin + 1), rngs, conv_impl)  # the network first, as DomainBed
        self.context = ContextNet(cin, rngs, "xla" if conv_impl == "auto" else conv_impl)
        if not train_context:
            fix(self.context)
        self.support_size = support_size
        self.train_context = bool(train_context)

    def contexts(self, x: jax.Array) -> jax.Array:
        """(B, H, W, 1): each row's support-set mean of the context map (DomainBed's predict:
        groups of `support_size` consecutive rows when that divides B, else the whole batch)."""
        b = x.shape[0]
        s = self.support_size if b % self.support_size == 0 else b
        c = self.context(x)
        if not self.train_context:
            c = jax.lax.stop_gradient(c)  # no gradient to fixed weights: skip its backward
        c = c.reshape(b // s, s, *c.shape[1:]).mean(axis=1)
        return jnp.repeat(c, s, axis=0)

    def maps(self, x: jax.Array) -> jax.Array:
        return super().maps(jnp.concatenate([x, self.contexts(x)], axis=-1))
