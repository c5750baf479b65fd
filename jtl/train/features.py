"""The frozen-feature cache: a frozen pretrained backbone's features computed once, on disk.

When a run's backbone is a fixed function (every `backbone/` parameter frozen, its BatchNorm
layers in evaluation mode) and comes exactly from `model.weights`, its output on an example
never changes during training. `trainer.feature_cache: auto` (default) then computes it once
per image under the domain's *evaluation* pipeline (resize, centre crop, normalisation) and
trains only what is left, neck, head and method modules, on a `features` field: the run's
domains become feature domains (`Split.fields["features"]`, (N, D) float32) and the
network's backbone an identity that keeps the backbone's parameters (`CachedBackbone`), so
parameter paths, checkpoints, `num_params`, freezing and the summary are those of the run
without the cache. Everything after the backbone is the same run: same batches (same keys,
same split sizes), same neck/head/method initialisation, same selection, seeds vmapped.

Train augmentation. A cached feature is one view of an image, so train augmentation cannot
vary per step: a cached run trains on the evaluation view (the linear-probe protocol of
Kornblith et al. 2019 and CLIP's, which fit the probe on centre-crop features). With
`augment` null the cached run equals the uncached frozen run up to float order; with
`augment` set (e.g. `pp=tllib_imagenet`'s crop + flip) it differs by that augmentation,
which `trainer.feature_cache=false` restores (at the cost of a backbone pass per step).

Where, keyed by what. `<paths.tfds_dir>/features/<space>/<entry>/{features,digests}.npy`,
beside the decoded image folders (jtl's prepared data). `space` = sha256 of (the checkpoint's
sha256, the model config without the weights path, `transfer.keep_blocks`, `neck.pool`, the
evaluation pipeline, this module's VERSION): what makes a feature. `entry` = the sha256 of
the split's rows, each row by its content (blake2b of its stored bytes): the domain config
(env, storage size, subsets, split seed) reaches the cache through the pixels it selects, so
a changed image or subset is a new entry, never a stale read. A split's rows already computed
for another entry of the space (a source's splits, then the same domain as a target scored
whole) are read from there: each image is run through the backbone once per space. Entries
are written to a partial folder and renamed, under a lock; a long extraction also saves every
CHUNK rows as an entry of their own, so an interrupted one resumes where it stopped.

Text. A text domain's input is its `tokens` + `mask` (N, T) int32 (`tokenizer=` on the
domain); a frozen text backbone (`model=bert`/`minilm`, `transfer=feature_extractor`) has no
BatchNorm and no train augmentation, so its pooled output in evaluation mode is the feature
with no change of protocol: the cached run equals the uncached one up to float order. A row
is its token ids and mask (the row digest of the (2, T) stack); the space adds the tokenizer
identity of the run's text domains (each tokenizer.json's sha256, max_length, padding,
truncation) to the model config (pooling, normalize, input_shape): a changed tokenizer, text
or pooling is a new key, never a stale read.

Not applicable (the run trains the uncached way, and says why in the log): a backbone that
trains, or whose BatchNorm uses batch statistics; no `model.weights`, or `init_from` /
`pretrain` loading backbone arrays (the backbone then depends on the seed or on another run:
one vmapped program shares one data set; `dont_load='backbone/.*'` keeps model.weights'
backbone, cached); statistics-only methods (they update BatchNorm statistics); methods that
read the model input itself (`INPUT_METHODS`: mixup, SimCLR's views, the autoencoder's
reconstruction); online streams; domains that are neither images nor tokens, or that mix them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jtl.domains import Domain, Split
from jtl.domains.base import load_context
from jtl.domains.pp import FIELD_GROUPS, Pipeline
from jtl.errors import JtlError
from jtl.methods import Method
from jtl.models import pretrained
from jtl.models.base import Backbone, Network, param_paths
from jtl.rundir import file_lock
from jtl.train.checkpoint import loads
from jtl.train.optim import trainable_labels
from jtl.train.step import frozen_norms, stat_paths
from jtl.transfer import Recipe

log = logging.getLogger("jtl")
VERSION = 1  # of the cache's layout and extraction; part of the space key
INPUTS = ("image", "tokens")  # the stored inputs a backbone's features are cached from
TEXT_KEYS = ("max_length", "padding", "truncation")  # a text domain's featurizing settings
MODES = ("auto", True, False)  # true: the cache must apply (else an error saying why)
# Methods whose loss reads the model input itself, not only the network's output on it.
INPUT_METHODS = frozenset({"mixup", "simclr", "autoencoder"})
BATCH = 32  # rows (images, texts) per backbone call (one compiled shape; the last batch padded)
CHUNK = 256  # rows of a long extraction saved as an entry of their own as they are done


class CachedBackbone(Backbone):
    """The backbone of a cached run: its input is already the backbone's (pooled) output.
    It keeps the original backbone's attributes (so `backbone/...` parameters stay in the
    run's state and checkpoints, unused and frozen) and is the identity on features."""

    reads = ("features",)
    normalize = None

    def __init__(self, inner: Backbone, feature_dim: int) -> None:
        for name, value in vars(inner).items():
            if not name.startswith("_"):
                setattr(self, name, value)
        self.feature_dim = int(feature_dim)

    def __call__(self, x: jax.Array) -> jax.Array:
        return x

    def maps(self, x: jax.Array) -> jax.Array:
        return x


def mode(cfg: Mapping[str, Any]) -> str | bool:
    value = (cfg.get("trainer") or {}).get("feature_cache", "auto")
    if value not in MODES:
        raise JtlError(f"trainer.feature_cache={value!r}: auto (cache a frozen backbone's "
                       "features when the run allows), true (must) or false (never)")
    return value


def why_not(cfg: Mapping[str, Any], domains: list[Domain], method: Method, net: Network
            ) -> str | None:
    """Why the run cannot train on cached features; None when it can."""
    if not mode(cfg):
        return "trainer.feature_cache=false"
    if cfg.get("online"):
        return "an online stream adapts as it reads"
    if method.trainable is None:
        return "a statistics-only method updates BatchNorm statistics"
    if cfg["method"]["name"] in INPUT_METHODS:
        return f"method {cfg['method']['name']} reads the model input itself"
    if not cfg["model"].get("weights"):
        return "no model.weights (a fresh backbone depends on the seed)"
    fields = {d.train.field for d in domains}
    if not fields <= set(INPUTS):
        return "a domain is neither images nor tokens"
    if len(fields) > 1:
        return "the run's domains mix images and tokens"
    recipe = Recipe.from_cfg(cfg.get("transfer"))
    freeze = recipe.freeze(cfg.get("freeze"), len(net.backbone.blocks))
    params = nnx.split(net)[1].to_pure_dict()
    if (cfg.get("init_from") or cfg.get("pretrain")) and loads_backbone(cfg, recipe, params):
        return ("init_from/pretrain loads the backbone from a run (dont_load='backbone/.*' "
                "keeps model.weights' backbone and caches it)")
    labels = jax.tree_util.tree_leaves(trainable_labels(params, method.trainable, freeze,
                                                        fixed=stat_paths(net)))
    if any(p.startswith("backbone/") and label != "frozen"
           for p, label in zip(param_paths(params), labels, strict=True)):
        return "the backbone trains (freeze does not cover backbone/)"
    norms = [path for path, m in net.backbone.iter_modules() if isinstance(m, nnx.BatchNorm)]
    frozen = frozen_norms(net, freeze)
    if any(("backbone", *path) not in frozen for path in norms):
        return "a backbone BatchNorm uses batch statistics"
    return None


def loads_backbone(cfg: Mapping[str, Any], recipe: Recipe, params: Any) -> bool:
    """Whether `init_from` replaces a backbone array (`checkpoint.loads`, the loader's own
    rule): if none, the backbone is `model.weights`' own and its features are the cached
    ones, e.g. a source-free run from a frozen-feature source run that adapts only the neck
    and head."""
    load, dont = cfg.get("load") or ".*", recipe.dont_load(cfg.get("dont_load"))
    return any(p.startswith("backbone/") and loads(p, load, dont) for p in param_paths(params))


def space(cfg: Mapping[str, Any], weights_sha: str, pp: Pipeline,
          text: list[dict] | None = None) -> tuple[str, dict]:
    """(key, what it hashes) of the features one network and pipeline make; `text`: the
    tokenizer identity of a text run's domains (`text_identity`; None for images, whose key
    is then what it was before text)."""
    model = {k: v for k, v in cfg["model"].items() if k != "weights"}
    what = {"version": VERSION, "weights_sha256": weights_sha, "model": model,
            "keep_blocks": Recipe.from_cfg(cfg.get("transfer")).keep_blocks,
            "neck_pool": (cfg.get("neck") or {}).get("pool"),
            "pp": {"field": pp.field, "shape": pp.shape, "mean": pp.mean, "std": pp.std,
                   "resize": pp.resize, "eval_ops": list(pp.eval_ops)}}
    if text is not None:
        what["text"] = text
    blob = json.dumps(what, sort_keys=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:20], what


def text_identity(cfg: Mapping[str, Any]) -> list[dict]:
    """The tokenizers of a text run's domains (sources, target, evals), each once: its
    tokenizer.json's sha256 and the domain's max_length, padding and truncation (sorted, so
    the same tokenizer for every role is one entry and pairs of products share a space)."""
    from jtl.domains._offline import sha256_of
    from jtl.domains.text import FEATURE_DEFAULTS
    from jtl.domains.tokenize import tokenizer_file
    from jtl.train.build import resolve_roles, source_cfgs

    ctx = load_context(cfg.get("paths") or {})
    roles = resolve_roles(dict(cfg))
    seen: dict[str, dict] = {}
    for dcfg in [*source_cfgs(roles), roles["target"], *(roles.get("eval") or [])]:
        spec = dcfg.get("tokenizer")
        if spec is None:
            raise JtlError(f"feature cache: text domain '{dcfg.get('name')}' has no tokenizer")
        entry = {"tokenizer_sha256": sha256_of(tokenizer_file(str(spec), ctx)),
                 **{k: dcfg.get(k, FEATURE_DEFAULTS[k]) for k in TEXT_KEYS}}
        seen[json.dumps(entry, sort_keys=True)] = entry
    return [seen[k] for k in sorted(seen)]


def stored_input(split: Split) -> np.ndarray:
    """The rows the cache keys and the backbone reads: images as stored; a text split's
    tokens and mask stacked (N, 2, T) int32, so a row's digest is its token ids and mask."""
    if split.field == "tokens":
        return np.stack([np.asarray(split.fields["tokens"], np.int32),
                         np.asarray(split.fields["mask"], np.int32)], axis=1)
    return split.stored


def model_fields(field: str, x: jax.Array) -> dict[str, jax.Array]:
    """`stored_input` rows -> the fields the pipeline reads (`stored_input` undone)."""
    if field == "tokens":
        return {"tokens": x[:, 0], "mask": x[:, 1]}
    return {field: x}


def row_digests(x: np.ndarray) -> np.ndarray:
    """(N,) 16-byte digests of each row's stored bytes (dtype and shape included)."""
    head = f"{x.dtype.str}{x.shape[1:]}".encode()
    return np.array([hashlib.blake2b(head + np.ascontiguousarray(r).tobytes(),
                                     digest_size=16).digest() for r in x], dtype="S16")


def backbone_fn(net: Network, params: Mapping[str, Any], pp: Pipeline
                ) -> Callable[[np.ndarray], np.ndarray]:
    """Stored rows (B, ...) (`stored_input`) -> the neck's input (B, D): the backbone in
    evaluation mode on the evaluation pipeline (its maps averaged when the neck pools; a
    text backbone's own pooled output: a text neck never pools)."""
    model = nnx.merge(nnx.graphdef(net), params)
    pool = net.neck.pool
    graphdef, state = nnx.split(model.backbone)

    @jax.jit
    def run(state: Any, x: jax.Array) -> jax.Array:
        bb = nnx.merge(graphdef, state)
        inp = pp(model_fields(pp.field, x))
        return bb.maps(inp).mean(axis=(1, 2)) if pool else bb(inp)

    def call(x: np.ndarray) -> np.ndarray:
        return np.asarray(run(state, jnp.asarray(x)), np.float32)

    return call


def extract(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """`fn` over `x` in batches of BATCH (the last zero-padded: one compiled shape)."""
    out = []
    for start in range(0, len(x), BATCH):
        part = x[start:start + BATCH]
        pad = BATCH - len(part)
        if pad:
            part = np.concatenate([part, np.zeros((pad, *part.shape[1:]), part.dtype)])
        out.append(fn(part)[:BATCH - pad])
        log.debug("feature cache: %d/%d rows", min(start + BATCH, len(x)), len(x))
    return np.concatenate(out)


class Store:
    """The entries of one space: split features by their rows' digests."""

    def __init__(self, root: Path, key: str, what: Mapping[str, Any]) -> None:
        self.dir = Path(root) / "features" / key
        self.key, self.what = key, what
        self.computed = self.reused = 0  # rows, over this run

    def entries(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.iterdir() if (p / "digests.npy").is_file()
                      and not p.name.endswith(".partial"))

    def get(self, x: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], name: str
            ) -> tuple[np.ndarray, str]:
        """(features of `x`'s rows, its entry key): read, assembled from other entries' rows,
        or computed for the rows no entry has."""
        digests = row_digests(x)
        entry = hashlib.sha256(digests.tobytes()).hexdigest()[:20]
        folder = self.dir / entry
        if (folder / "features.npy").is_file():
            self.reused += len(x)
            return self._read(folder, len(x)), entry
        self.dir.mkdir(parents=True, exist_ok=True)
        with file_lock(self.dir / ".lock"):
            if not (folder / "features.npy").is_file():  # another process may have made it
                feats = self._assemble(digests, x, fn)
                self._write(folder, digests, feats, name)
            else:
                self.reused += len(x)
        return self._read(folder, len(x)), entry

    def _assemble(self, digests: np.ndarray, x: np.ndarray,
                  fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        known: dict[bytes, tuple[Path, int]] = {}
        for e in self.entries():
            for i, d in enumerate(np.load(e / "digests.npy")):
                known.setdefault(bytes(d), (e, i))
        have = np.array([bytes(d) in known for d in digests], bool)
        feats: np.ndarray | None = None
        todo = np.flatnonzero(~have)
        for start in range(0, len(todo), CHUNK):  # each chunk its own entry: resumable
            rows = todo[start:start + CHUNK]
            new = extract(fn, x[rows])
            if feats is None:
                feats = np.zeros((len(x), new.shape[1]), np.float32)
            feats[rows] = new
            if len(todo) > CHUNK:
                part = digests[rows]
                self._write(self.dir / hashlib.sha256(part.tobytes()).hexdigest()[:20], part,
                            new, f"rows {start}-{start + len(rows) - 1} of a split")
        if have.any():
            cache: dict[Path, np.ndarray] = {}
            for i in np.flatnonzero(have):
                e, j = known[bytes(digests[i])]
                if e not in cache:
                    cache[e] = np.load(e / "features.npy", mmap_mode="r")
                if feats is None:
                    feats = np.zeros((len(x), cache[e].shape[1]), np.float32)
                feats[i] = cache[e][j]
        self.computed += int((~have).sum())
        self.reused += int(have.sum())
        return feats

    def _write(self, folder: Path, digests: np.ndarray, feats: np.ndarray, name: str) -> None:
        if (folder / "features.npy").is_file():
            return
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        np.save(partial / "features.npy", feats)
        np.save(partial / "digests.npy", digests)
        (partial / "meta.json").write_text(json.dumps(
            {"space": self.what, "first_split": name, "rows": len(digests)}, indent=1,
            default=list))
        if not (self.dir / "space.json").is_file():
            (self.dir / "space.json").write_text(json.dumps(self.what, indent=1, default=list))
        os.replace(partial, folder)

    @staticmethod
    def _read(folder: Path, n: int) -> np.ndarray:
        feats = np.load(folder / "features.npy")
        if feats.ndim != 2 or len(feats) != n:
            raise JtlError(f"{folder}: a damaged feature cache entry ({feats.shape} for {n} "
                           "rows); delete that folder and run again")
        return feats


def feature_split(split: Split, feats: np.ndarray) -> Split:
    """`split` with its input (image, or tokens + mask) replaced by `feats`, read as they are."""
    rest = {k: v for k, v in split.fields.items() if k not in FIELD_GROUPS[split.field]}
    return Split({"features": feats, **rest}, Pipeline(field="features"))


def wrap(net: Network, feature_dim: int) -> Network:
    """`net` reading cached features: the backbone an identity keeping its parameters, the
    neck's pooling done already (in the cache)."""
    net.backbone = CachedBackbone(net.backbone, feature_dim)
    net.neck.pool = None
    return net


def is_cached(cfg: Mapping[str, Any], target: Domain) -> bool:
    """Whether `target` is a cached run's feature domain (an image or text model reading
    features)."""
    from jtl.models import MODELS

    return target.train.field == "features" and \
        "features" not in MODELS.get(cfg["model"]["name"]).reads


def apply(cfg: Mapping[str, Any], roles: Any, method: Method, net: Network
          ) -> tuple[Any, Network]:
    """(roles, net) of the run on cached features when it can (`why_not`), else unchanged.
    `roles` (a `jtl.train.build.Roles`) comes back with its domains' splits as features and
    `feature_cache` set to what summary.json records of the cache."""
    domains = [*roles.sources, roles.target, *roles.evals.values()]
    reason = why_not(cfg, domains, method, net)
    if reason is not None:
        if mode(cfg) is True:
            raise JtlError(f"trainer.feature_cache=true: this run cannot train on cached "
                           f"features ({reason}); set trainer.feature_cache=auto or false")
        if mode(cfg) == "auto" and cfg["model"].get("weights"):
            log.info("feature cache: not used (%s)", reason)
        return roles, net
    spec = cfg["model"]["weights"]
    params = nnx.split(net)[1].to_pure_dict()
    params, report = pretrained.load(params, spec, type(net.backbone))
    if any(p.startswith("backbone/") for p in report["new"]):
        if mode(cfg) is True:
            raise JtlError("trainer.feature_cache=true: model.weights leaves backbone "
                           "parameters fresh; set trainer.feature_cache=auto or false")
        log.info("feature cache: not used (model.weights leaves backbone parameters fresh)")
        return roles, net
    pp = roles.target.train.pp
    text = text_identity(cfg) if pp.field == "tokens" else None
    key, what = space(cfg, report["sha256"], pp, text)
    store = Store(load_context(cfg.get("paths") or {}).tfds_dir, key, what)
    fn = backbone_fn(net, params, pp)
    dim = net.neck.linear.kernel.shape[0] if net.neck.linear is not None else net.neck.feature_dim
    entries: dict[str, str] = {}

    def convert(dom: Domain, role: str) -> Domain:
        splits = {}
        for part in ("train", "val", "test"):
            split = getattr(dom, part)
            if dataclasses.replace(split.pp, augment=()) != dataclasses.replace(pp, augment=()):
                raise JtlError(f"feature cache: {role} '{dom.name}' has another pipeline "
                               "than the target; set trainer.feature_cache=false")
            feats, entries[f"{role}/{part}"] = (store.get(stored_input(split), fn,
                                                          f"{role}/{part}")
                                                if len(split) else
                                                (np.zeros((0, dim), np.float32), "empty"))
            splits[part] = feature_split(split, feats)
        return dataclasses.replace(dom, **splits)

    names = ["source" if len(roles.sources) == 1 else f"source.{i}"
             for i in range(len(roles.sources))]
    sources = tuple(convert(d, n) for d, n in zip(roles.sources, names, strict=True))
    target = convert(roles.target, "target")
    evals = {n: convert(d, f"eval/{n}") for n, d in roles.evals.items()}
    info = {"space": key, "dir": str(store.dir), "splits": entries,
            "computed_rows": store.computed, "reused_rows": store.reused,
            "view": "evaluation pipeline (train augmentation not applied: "
                    f"augment={list(pp.augment) or None})" if text is None else
                    "the text backbone in evaluation mode on tokens + mask"}
    log.info("feature cache %s: %d %s computed, %d read", key, store.computed,
             "texts" if text is not None else "images",
             store.reused)
    roles = dataclasses.replace(roles, sources=sources, target=target, evals=evals,
                                feature_cache=info)
    return roles, wrap(net, dim)

