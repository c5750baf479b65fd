"""Training batches: drawn inside the compiled step from stored fields, then preprocessed there.

The train data is one group of stored fields per domain (`jtl.domains.Split.fields`: uint8
images stay uint8 on the device), named by role: `source` (or `source.0`, `source.1`, ... for
several sources) and `target`. A step draws `batch_size` examples of every group, runs each
group's pipeline (`jtl.domains.pp`: scaling, resize, normalisation, augmentation from the
step's key) and hands the method one group per role, `{"x": model input, "y": labels}`; several
sources are concatenated into `source` (equal shares, DomainBed's minibatches) with a `domain`
field giving each example's source index, so a method can also treat each source apart.

Indices come from `jax.random` keyed by the step, so the same batches are drawn whether the
fields live on the device (`draw`) or stay on the host and are streamed (`host_batches`), and
whatever the chunking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jtl.domains import Domain
from jtl.domains.pp import FIELD_GROUPS, Pipeline

Arrays = Mapping[str, Mapping[str, jax.Array | np.ndarray]]


def group_names(role: str, count: int) -> list[str]:
    """`source` for one source domain, `source.0`, `source.1`, ... for several."""
    return [role] if count == 1 else [f"{role}.{k}" for k in range(count)]


def train_groups(roles: Mapping[str, Sequence[Domain]], uses: frozenset[str]
                 ) -> tuple[dict, dict[str, Pipeline]]:
    """(stored train fields per group, pipeline per group): only the fields a method declares
    in `uses` (`<role>/x`: the model's input fields, `<role>/y`: labels, `<role>/index`: each
    example's position in the split; target labels stay behind unless asked for)."""
    data: dict = {}
    pps: dict[str, Pipeline] = {}
    for role, domains in roles.items():
        wanted = [f for f in ("x", "y", "index") if f"{role}/{f}" in uses]
        if not wanted or not domains:
            continue
        for name, dom in zip(group_names(role, len(domains)), domains, strict=True):
            split = dom.train
            fields = (FIELD_GROUPS[split.pp.field] if "x" in wanted else ()) + (
                ("label",) if "y" in wanted else ())
            data[name] = {f: split.fields[f] for f in fields}
            if "index" in wanted:
                data[name]["index"] = np.arange(len(split), dtype=np.int32)
            pps[name] = split.pp
    return data, pps


def sizes(data: Arrays) -> dict[str, int]:
    return {dom: len(next(iter(arrs.values()))) for dom, arrs in data.items()}


def draw_indices(n: Mapping[str, int], key: jax.Array, batch_size: int) -> dict[str, jax.Array]:
    """Uniform with-replacement indices per group (one key each, from `fold_in`)."""
    return {dom: jax.random.randint(jax.random.fold_in(key, i), (batch_size,), 0, n[dom])
            for i, dom in enumerate(sorted(n))}


def draw(data: Arrays, key: jax.Array, batch_size: int) -> dict:
    idx = draw_indices(sizes(data), key, batch_size)
    return {dom: {f: jnp.take(a, idx[dom], axis=0) for f, a in arrs.items()}
            for dom, arrs in data.items()}


STREAM_LABEL = "stream_label"  # the stream's labels: scored by the trainer, never a method's


def stream_positions(step: jax.Array, batch_size: int, n: int) -> tuple[jax.Array, jax.Array]:
    """Positions of step `step`'s batch in a stream of `n` examples read once, in order, and
    which of them are scored: the last batch is filled up from the stream's start (one
    compiled shape), and those repeats are not scored again."""
    pos = step * batch_size + jnp.arange(batch_size)
    return pos % n, pos < n


def draw_stream(data: Arrays, step: jax.Array, batch_size: int
                ) -> tuple[dict, jax.Array, jax.Array]:
    """(the step's batch of the target stream, its labels, 1.0 where an example is scored)."""
    group = data["target"]
    n = len(group[STREAM_LABEL])
    idx, valid = stream_positions(step, batch_size, n)
    taken = {f: jnp.take(a, idx, axis=0) for f, a in group.items()}
    labels = taken.pop(STREAM_LABEL)
    return {"target": taken}, labels, valid.astype(jnp.float32)


def host_batches(data: Arrays, keys: jax.Array, batch_size: int) -> dict:
    """Streaming path: the same indices as `draw`, gathered on the host, stacked per step."""
    n = sizes(data)
    idx = jax.device_get(jax.vmap(lambda k: draw_indices(n, k, batch_size))(keys))
    return {dom: {f: np.asarray(a)[idx[dom]] for f, a in arrs.items()}
            for dom, arrs in data.items()}


# Offset of the augmentation keys among a step's batch-key fold-ins (the draws use 0..groups-1).
AUGMENT_KEYS = 1 << 16


def prepare(raw: Mapping[str, Mapping[str, jax.Array]], pps: Mapping[str, Pipeline],
            key: jax.Array) -> dict:
    """Drawn fields -> the method's batch: each group's pipeline (augmented from `key`), then
    the groups of a role concatenated, with their `domain` index when there are several."""
    out: dict = {}
    for i, name in enumerate(sorted(raw)):
        fields, role = raw[name], name.split(".")[0]
        group = {}
        if "label" in fields:
            group["y"] = fields["label"]
        if "index" in fields:
            group["index"] = fields["index"]
        input_fields = [f for f in fields if f not in ("label", "index")]
        if input_fields:
            group["x"] = pps[name](fields, jax.random.fold_in(key, AUGMENT_KEYS + i)
                                   if pps[name].augment else None)
        out.setdefault(role, []).append(group)
    batch = {}
    for role, groups in out.items():
        if len(groups) == 1:
            batch[role] = groups[0]
            continue
        merged = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *groups)
        n = len(jax.tree_util.tree_leaves(groups[0])[0])
        merged["domain"] = jnp.repeat(jnp.arange(len(groups), dtype=jnp.int32), n)
        batch[role] = merged
    return batch
