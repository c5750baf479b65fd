"""Config -> the run's domains (by role), method, network and initial parameters.

What training, `load_run`, analysis, measures, experiments and benchmarks import: a reopened
run is built by the same code as the run that was trained.

Roles. A run has `sources` (zero, one or several labeled domains), one `target` (the domain
adapted to and always evaluated; its labels reach the loss only if the method `uses` them) and
optional `eval` domains (scored at every evaluation as `eval/<name>/...`, never trained on).
`source` (one dict, `domain@source=<name>`) is the one-source case; `sources: [mnist, usps]`
(names of `conf/domain/<name>.yaml`, or mappings with `name:` plus overrides) replaces it, and
`source: null` with no `sources` is a source-free run (a method that reads no source data,
from `init_from`). `resolve_roles` writes the named domains out in full, so a saved config
holds what was trained on.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
from flax import nnx
from omegaconf import OmegaConf

from jtl import inputs
from jtl.domains import Domain, bow, build_domain
from jtl.domains.base import load_context
from jtl.domains.pp import check_augment, check_pp
from jtl.errors import JtlError
from jtl.methods import Method, build_method
from jtl.models import MODELS, Network, build_network, pretrained
from jtl.models.base import param_paths
from jtl.train import checkpoint as ckpt
from jtl.train import features
from jtl.train.optim import trainable_labels
from jtl.transfer import Recipe, with_prototype_head

log = logging.getLogger("jtl")
DOMAIN_CONF = Path(__file__).resolve().parents[2] / "conf" / "domain"


@dataclasses.dataclass(frozen=True)
class Roles:
    """The run's domains: `sources` (possibly none), `target`, `evals` (name -> domain)."""

    sources: tuple[Domain, ...]
    target: Domain
    evals: Mapping[str, Domain] = dataclasses.field(default_factory=dict)
    # Set when the domains hold a frozen backbone's cached features (`jtl.train.features`):
    # what summary.json records of the cache.
    feature_cache: Mapping[str, Any] | None = None

    @property
    def source(self) -> Domain | None:
        """The first source (the one-source case), None for a source-free run."""
        return self.sources[0] if self.sources else None

    @property
    def source_name(self) -> str | None:
        return "+".join(d.name for d in self.sources) or None


def _domain_cfg(entry: Any, key: str) -> dict:
    """A `sources`/`eval` entry: a domain name, or a mapping with `name:` and overrides of
    `conf/domain/<name>.yaml`."""
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
        raise JtlError(f"{key}={entry!r}: a domain name or a mapping with name:")
    path = DOMAIN_CONF / f"{entry['name']}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in DOMAIN_CONF.glob("*.yaml"))
        raise JtlError(f"{key}: no domain '{entry['name']}' (conf/domain/); known: {known}")
    base = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    return {**base, **dict(entry)}


def resolve_roles(cfg: dict) -> dict:
    """`cfg` with `sources` and `eval` written out as full domain configs; with `sources`
    set, `source` becomes null (the sources replace it, and do not carry its choice in the
    run's identity). Idempotent: a saved config resolves to itself."""
    out = dict(cfg)
    for key in ("sources", "eval"):
        entries = out.get(key)
        if entries is None:
            continue
        if isinstance(entries, str | Mapping) or not isinstance(entries, Sequence):
            entries = [entries]
        out[key] = [_domain_cfg(e, f"{key}[{i}]") for i, e in enumerate(entries)]
        if not out[key]:
            raise JtlError(f"{key}=[]: name at least one domain, or leave it null")
    if out.get("sources"):
        out["source"] = None
    return out


def source_cfgs(cfg: Mapping[str, Any]) -> list[dict]:
    if cfg.get("sources"):
        return list(resolve_roles(dict(cfg))["sources"])
    return [cfg["source"]] if cfg.get("source") else []


def eval_names(cfgs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each eval domain's key in the metrics: its name, or `<name>.<i>` when names repeat."""
    names = [str(c["name"]) for c in cfgs]
    return [n if names.count(n) == 1 else f"{n}.{i}" for i, n in enumerate(names)]


def load_roles(cfg: Mapping[str, Any]) -> Roles:
    """Every domain of a run, each carrying the model's pipeline (input shape, normalisation
    constants, the run's `augment` for training, `pp`'s resize and evaluation ops); label
    spaces checked against the method."""
    cfg = resolve_roles(dict(cfg))
    ctx = load_context(cfg.get("paths") or {})
    model = MODELS.get(cfg["model"]["name"])
    shape = tuple(cfg["model"]["input_shape"])
    aug = check_augment(cfg.get("augment"))
    pre = check_pp(cfg.get("pp"), aug, shape)

    def load(dcfg: Mapping[str, Any], role: str) -> Domain:
        dom = build_domain(dcfg, shape, ctx, role=role, normalize=model.normalize, augment=aug,
                           preprocess=pre)
        check_reads(dom, cfg["model"]["name"], model.reads, role)
        return dom

    evals = cfg.get("eval") or []
    named = [*[("source" if len(cfg.get("sources") or [1]) == 1 else f"sources[{i}]", c)
               for i, c in enumerate(source_cfgs(cfg))], ("target", cfg["target"]),
             *[(f"eval[{i}]", c) for i, c in enumerate(evals)]]
    # text_features=bow: one vocabulary from the sources' and target's train texts, set on
    # every text domain (jtl/domains/bow.py); {} otherwise.
    text_keys = bow.resolve(cfg, ctx, named)
    built = [load({**c, **text_keys.get(r, {})}, r) for r, c in named]
    n_src = len(built) - 1 - len(evals)
    roles = Roles(tuple(built[:n_src]), built[n_src],
                  dict(zip(eval_names(evals), built[n_src + 1:], strict=True)))
    check_label_spaces(roles, build_method(cfg["method"]), cfg)
    return roles


def check_reads(dom: Domain, model: str, reads: Sequence[str], role: str) -> None:
    field = dom.train.field
    if field not in reads:
        raise JtlError(f"{role} '{dom.name}' holds {field} and model '{model}' reads "
                       f"{'/'.join(reads)}: choose a model that reads {field} (e.g. "
                       f"{'model=mlp' if field == 'features' else 'another model'})")


def load_domains(cfg: Mapping[str, Any]) -> tuple[Domain | None, Domain]:
    """(first source or None, target): the one-source view of `load_roles`."""
    roles = load_roles(cfg)
    return roles.source, roles.target


def check_label_spaces(roles: Roles, method: Method, cfg: Mapping[str, Any] | None = None
                       ) -> None:
    """The one `head` scores the target; a method that trains it on source labels needs the
    source's class count (a method with a `source_classes` field has a source head of its
    own, e.g. multitask), and the same classes: after `classes=` relabelling both count
    0..k-1, so the domains' original class ids (`Domain.class_ids`) are compared. An unlabeled
    domain serves only methods that read no labels of it, and the target needs test labels:
    every run reports target test accuracy. A source-free run's method reads no source."""
    target = roles.target
    if not roles.sources and any(u.startswith("source/") for u in method.uses):
        raise JtlError(f"source is null (a source-free run) and method {type(method).__name__} "
                       "trains on source data: name a source (domain@source=<name> or "
                       "sources=[...]), or use a method that reads only the target (adabn)")
    for role, dom in [*(("source", s) for s in roles.sources), ("target", target)]:
        if f"{role}/y" in method.uses and dom.labels != "all":
            raise JtlError(
                f"{role} '{dom.name}' has no labels (an npz without 'y') and method "
                f"{type(method).__name__} trains on them: use a method that reads none "
                "(simclr, autoencoder), or give the domain its labels")
    if target.labels == "none":
        raise JtlError(f"target '{target.name}' has no labels at all; jtl reports accuracy on "
                       "the target's test split: save its test images and labels as "
                       "'x_test'/'y_test' in the npz")
    for source in roles.sources:
        if source.num_classes != target.num_classes and "source/y" in method.uses and \
                not has_source_head(method):
            raise JtlError(
                f"source '{source.name}' has {source.num_classes} classes and target "
                f"'{target.name}' has {target.num_classes}: one head cannot score both. Use "
                "domains with one label space, or train the target with method=target_only "
                "init_from=<source run> dont_load='head/.*' (or pretrain=<source experiment> "
                "transfer=finetune).")
        if ("source/y" in method.uses and "target/y" not in method.uses
                and not has_source_head(method) and source.class_ids and target.class_ids
                and source.class_ids != target.class_ids):
            raise JtlError(
                f"source '{source.name}' has class ids {list(source.class_ids)} and target "
                f"'{target.name}' {list(target.class_ids)} (label k is the k-th of each): "
                f"method {type(method).__name__} trains the head on source labels only, so it "
                "would score target images as other classes (a chance-level result). Give "
                "source.classes and target.classes the same ids in the same order, or train on "
                "target labels: method=target_only init_from=<source run> dont_load='head/.*' "
                "(or pretrain=<source experiment> transfer=finetune).")
    if len(roles.sources) > 1 and has_source_head(method):
        raise JtlError(f"method {type(method).__name__} has a source head of its own and takes "
                       "one source; several sources need a method sharing the target's head")


def has_source_head(method: Method) -> bool:
    """A method with a `source_classes` field trains a source head of its own (multitask)."""
    return any(f.name == "source_classes" for f in dataclasses.fields(method))


def same_label_space(cfg: Mapping[str, Any], source: Domain, target: Domain,
                     source_cfg: Mapping[str, Any] | None = None) -> bool:
    """Whether the head's classes mean the same on both domains (then source splits are
    evaluated with it too): equal class counts and equal `classes` subsets."""
    scfg = source_cfg if source_cfg is not None else (cfg.get("source") or {})
    return source.num_classes == target.num_classes and (
        (scfg.get("classes") or None) == (cfg["target"].get("classes") or None))


@dataclasses.dataclass(frozen=True)
class Built:
    roles: Roles
    method: Method
    net: Network


def build_all(cfg: Mapping[str, Any]) -> Built:
    """Domains by role, method and a freshly initialised network of a run's config."""
    inputs.verify(cfg)
    roles = load_roles(cfg)
    method = build_method(cfg["method"])
    if has_source_head(method) and not method.source_classes:
        method = dataclasses.replace(method, source_classes=roles.source.num_classes)
    net = network(cfg, roles.target.num_classes, method, model_input_shape(cfg, roles.target))
    check_token_ids(roles, net, cfg["model"]["name"])
    roles, net = features.apply(cfg, roles, method, net)  # a frozen backbone: cached features
    return Built(roles, method, net)


def build(cfg: Mapping[str, Any]) -> tuple[Domain | None, Domain, Method, Network]:
    """(first source or None, target, method, network): shared by training and by `load_run`,
    so a reopened run is the network that was trained (on the files it recorded:
    `jtl.inputs.verify`)."""
    b = build_all(cfg)
    return b.roles.source, b.roles.target, b.method, b.net


def check_token_ids(roles: Roles, net: nnx.Module, model: str) -> None:
    """Token ids inside the model's vocabulary: an id past the word embedding (a tokenizer
    of another model) would be gathered as NaN or a clamped row, silently."""
    word = next((m for path, m in nnx.iter_graph(net.backbone)
                 if isinstance(m, nnx.Embed) and path and path[-1] == "word"), None)
    if word is None:
        return
    doms = [*(("source", d) for d in roles.sources), ("target", roles.target),
            *(("eval", d) for d in roles.evals.values())]
    for role, dom in doms:
        for name in ("train", "val", "test"):
            tok = getattr(dom, name).fields.get("tokens")
            if tok is None or not tok.size:
                continue
            lo, hi = int(tok.min()), int(tok.max())
            if lo < 0 or hi >= word.num_embeddings:
                raise JtlError(
                    f"{role} '{dom.name}' {name} has token ids {lo}..{hi} and model '{model}' "
                    f"embeds {word.num_embeddings}: the tokenizer is not this model's (give the "
                    "domain the checkpoint's own tokenizer.json as its tokenizer)")


def model_input_shape(cfg: Mapping[str, Any], target: Domain) -> tuple[int, ...]:
    """The model's input shape: `model.input_shape` for images; a vector domain's own width
    (features (N, D) -> (D,))."""
    if target.train.field == "features":
        return tuple(target.train.fields["features"].shape[1:])
    return tuple(cfg["model"]["input_shape"])


def network(cfg: Mapping[str, Any], num_classes: int, method: Method,
            input_shape: Sequence[int] | None = None) -> Network:
    """The run's fresh network: its model, cut where its recipe says (`transfer.keep_blocks`),
    and its `neck` (null: none)."""
    model = dict(cfg["model"])
    if input_shape is not None:
        model["input_shape"] = list(input_shape)
    return build_network(model, num_classes, method, init_seed(cfg),
                         Recipe.from_cfg(cfg.get("transfer")).keep_blocks, cfg.get("neck"))


def init_seed(cfg: Mapping[str, Any]) -> int:
    """Seed of the fresh parameters. A run started from another run's checkpoint draws its
    non-loaded parameters (a new head) from another stream than a from-scratch run of the same
    seed: otherwise the "new" head would be the source run's own initial head, which the
    loaded backbone co-adapted with."""
    seed = int(cfg["seed"])
    return seed + 1_000_003 if cfg.get("init_from") else seed


def initial_params(cfg: Mapping[str, Any], target: Domain, method: Method,
                   net: Network | None = None, source: Domain | None = None) -> Any:
    """The parameters a run starts from: fresh (`net`, else built from the config's init
    seed), then the checkpoint `model.weights` names (`jtl.models.pretrained`: the backbone;
    the head stays fresh), then what `init_from` loads, then the recipe's head (prototype;
    its cl2n centre may be the `source` train set's mean feature)."""
    if net is None and features.is_cached(cfg, target):  # the image network, reading features
        net = features.wrap(network(cfg, target.num_classes, method),
                            target.train.fields["features"].shape[1])
    elif net is None:
        net = network(cfg, target.num_classes, method, model_input_shape(cfg, target))
    graphdef, params = nnx.split(net)
    params = params.to_pure_dict()
    if cfg["model"].get("weights"):
        params, report = pretrained.load(params, cfg["model"]["weights"],
                                         MODELS.get(cfg["model"]["name"]))
        log.info("model.weights %s: loaded %d arrays; new: %s; ignored: %s", report["path"],
                 report["loaded"], ", ".join(report["new"]) or "none",
                 ", ".join(report["ignored"]) or "none")
    recipe = Recipe.from_cfg(cfg.get("transfer"))
    if cfg.get("init_from"):
        params, loaded = ckpt.load_params(cfg["init_from"], params, cfg.get("load") or ".*",
                                          recipe.dont_load(cfg.get("dont_load")),
                                          cfg.get("init_from_step"))
        log.info("init_from %s: loaded %d arrays", cfg["init_from"], len(loaded))
    if recipe.head == "prototype":
        center = None
        if recipe.metric == "cl2n" and recipe.center == "source":
            if source is None:
                raise JtlError("transfer.metric=cl2n with center=source needs the source domain")
            center = source.train
        params = with_prototype_head(graphdef, params, target.train, target.num_classes,
                                     recipe.metric, center)
    return params


def weights_summary(cfg: Mapping[str, Any], params: Any) -> dict[str, Any]:
    """`{"weights": {path, sha256, loaded, new, ignored, not_converted}}` for summary.json
    when `model.weights` is set (which parameters came from the checkpoint, which are new),
    else {}: the report of loading it into `params`' paths again (a fraction of a second)."""
    spec = cfg["model"].get("weights")
    model = MODELS.get(cfg["model"]["name"])
    return {"weights": pretrained.load(params, spec, model)[1]} if spec else {}


def untrained_head(cfg: Mapping[str, Any], params: Any, method: Method, freeze: str | None,
                   recipe: Recipe) -> bool:
    """True when the run's `head/` is neither trained (by the optimizer's own labels), nor
    loaded from a run, nor a prototype: its accuracy is that of a random linear layer (a
    self-supervised method's run). A statistics-only method (`trainable = None`) trains
    nothing but loads its head with the rest."""
    if method.trainable is None:  # statistics only: nothing trained
        labels = trainable_labels(params, ".*", ".*")
    else:
        labels = trainable_labels(params, method.trainable, freeze)
    heads = [(p, label) for p, label in zip(param_paths(params),
                                            jax.tree_util.tree_leaves(labels), strict=True)
             if p.startswith("head/")]
    load, dont_load = cfg.get("load") or ".*", cfg.get("dont_load")
    loaded = bool(cfg.get("init_from")) and any(
        re.fullmatch(load, p) and not (dont_load and re.fullmatch(dont_load, p))
        for p, _ in heads)
    trained = any(label != "frozen" for _, label in heads)
    return not (trained or loaded or recipe.head == "prototype")
