"""The typed config schema (issue 21): every key of every option has a type, a wrong-typed or
out-of-range value is one `jtl: error:` line naming the key before any data is loaded, and
swapping a group's option composes under every experiment.

On the old main the CLI cases below trained to "completed" (`optim.lr=-0.001`,
`test_fraction=1.5`, `max_train=-1`, `value_range=[0,1e39]`) or printed a traceback (the
rest); `experiment=digits_m2u model=mlp` failed with "MLP got an unexpected keyword argument
'features'".
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from jtl import schema
from jtl.config import compose
from jtl.errors import JtlError
from tests.reliability.kit import ARGS, cli

CONF = Path(__file__).resolve().parents[2] / "conf"
GROUPS = ("method", "model", "optim", "trainer", "transfer", "experiment", "neck", "pp",
          "online", "text_features")
# Options that need a key without a default (`???`) to compose.
NEEDS = {("domain", "npz"): ["target.path=x.npz"], ("domain", "tfds"): ["target.dataset=x"],
         ("domain", "imagefolder"): ["target.root=x"], ("domain", "text"): ["target.path=x.csv"]}
SECTIONS = {"neck": schema.Neck, "pp": schema.Preprocess, "online": schema.Online,
            "text_features": schema.TextFeatures}
WRONG = ["abc", [0.1], {"x": 1}, 1.5, True]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def every_option() -> list[list[str]]:
    out = [[f"{g}={o}"] for g in GROUPS for o in options(g)]
    out += [[f"domain@target={d}", *NEEDS.get(("domain", d), [])] for d in options("domain")]
    return out


def leaves(cfg: object, prefix: str = "") -> list[str]:
    if isinstance(cfg, dict) and cfg:
        return [k for key, v in cfg.items() for k in leaves(v, f"{prefix}{key}.")]
    return [prefix.rstrip(".")]


def set_key(cfg: dict, dotted: str, value: object) -> dict:
    cfg = copy.deepcopy(cfg)
    *path, last = dotted.split(".")
    node = cfg
    for p in path:
        node = node[p]
    node[last] = value
    return cfg


@pytest.fixture(scope="module")
def composed() -> dict[str, dict]:
    return {" ".join(ov): compose(ov) for ov in every_option()}


def test_every_option_and_experiment_is_valid(composed):
    for name, cfg in composed.items():
        try:
            schema.validate(cfg)
        except JtlError as e:  # pragma: no cover - the assertion message is the point
            pytest.fail(f"{name}: {e}")


def test_a_wrong_type_of_every_key_is_one_line_naming_it(composed, monkeypatch):
    """Every leaf of every option, set to a value of a type it does not take."""
    checked = 0
    for name, cfg in composed.items():
        for key in leaves({k: v for k, v in cfg.items() if k != "hydra"}):
            spec = key_spec(cfg, key)
            wrong = next((w for w in WRONG if not schema.type_ok(w, spec.tp)), None)
            assert wrong is not None, f"{name}: {key} accepts anything (type {spec.tp})"
            with pytest.raises(JtlError) as e:
                schema.validate(set_key(cfg, key, wrong))
            msg = str(e.value)
            assert key in msg and "\n" not in msg, (name, key, msg)
            checked += 1
    assert checked > 500


def key_spec(cfg: dict, key: str) -> schema.Key:
    """The schema's spec of one dotted key of a composed config."""
    head, _, rest = key.partition(".")
    if head in ("source", "target") and cfg[head] is None:  # a source-free experiment
        return schema.Key(dict | None)
    if head in ("source", "target"):
        keys = schema.dataclass_keys(schema.DomainCommon)
        keys.update({k: schema.Key(t) for k, t in
                     schema.DOMAIN_KEYS.get(cfg[head]["name"], {}).items()})
    elif head == "trainer":
        keys = schema.dataclass_keys(schema.Trainer)
    elif head == "paths":
        keys = schema.dataclass_keys(schema.Paths)
    elif head == "optim":
        keys = schema.dataclass_keys(schema.OPTIMIZERS[cfg["optim"]["name"]])
    elif head == "model" and rest.startswith("config."):  # a config.json's fields
        return schema.MODEL_CONFIG_KEYS[rest.split(".")[1]]
    elif head == "model":
        keys = schema._model_keys(cfg["model"]["name"])
    elif head == "method":
        keys = schema._method_keys(cfg["method"]["name"])
    elif head == "transfer":
        keys = schema._recipe_keys()
    elif head in SECTIONS:  # optional groups: null, or their own keys
        if not rest:
            return schema.Key(dict | None)
        keys = schema.dataclass_keys(SECTIONS[head])
    else:
        return schema.dataclass_keys(schema.Root)[key]
    return keys[rest.split(".")[0]]


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_model_composes_under_every_experiment(experiment):
    """Experiments select options and never pin another option's keys (issue 20)."""
    for model in options("model"):
        cfg = compose([f"experiment={experiment}", f"model={model}"])
        schema.validate(cfg)
        assert cfg["model"]["name"] in (model, "lenet", "mlp", "bert",
                                        "efficientnet_lite0")  # presets keep their base's


def test_digits_experiments_keep_their_identity():
    """lenet_tllib is a preset of lenet: the digits study's run dirs keep their fingerprint."""
    from jtl import rundir

    assert rundir.fingerprint(compose(["experiment=digits_m2u"])) == "19b230b1ff66135e"
    assert rundir.fingerprint(compose(["experiment=digits_u2m", "method=dann"])) == \
        "583f4e8f531383c2"


@pytest.mark.parametrize(("overrides", "says"), [
    (["optim.lr=abc"], "optim.lr='abc': must be a number > 0"),
    (["optim.lr=[0.1]"], "optim.lr=[0.1]: must be a number > 0"),
    (["optim.lr=-0.001"], "optim.lr=-0.001: must be a number > 0"),
    (["method=dann", "method.weight=abc"], "method.weight='abc'"),
    (["target.max_train=abc"], "target.max_train='abc'"),
    (["target.max_train=-1"], "target.max_train=-1: must be an integer >= 1"),
    (["target.test_fraction=abc"], "target.test_fraction='abc'"),
    (["target.test_fraction=1.5"], "target.test_fraction=1.5: must be a number > 0 and < 1"),
    (["domain@target=npz", "target.path=x.npz", "target.num_classes=abc"],
     "target.num_classes='abc'"),
    (["target.shifts=[{name:rotate,degrees:abc}]"], "target.shifts[0].degrees='abc'"),
    (["target.split_seed=-1"], "target.split_seed=-1"),
    (["seed=1e20"], "seed=1e+20: must be an integer >= 0 and <= 1073741824"),
    (["seed=4294967296"], "seed=4294967296"),
    (["model.input_shape=[0,0,1]"],
     "model.input_shape=[0, 0, 1]: must be a list, each an integer >= 1"),
    (["trainer.steps=1e9"], "trainer.steps=1000000000 with eval/log/checkpoint every"),
    (["target.value_range=[1,0]"], "target.value_range=[1, 0]: must be [lo, hi] with lo < hi"),
    (["target.per_class=abc"], "target.per_class='abc'"),
    (["trainer.seeds=[0,0]"], "trainer.seeds=[0, 0]: a non-empty list of distinct seeds"),
    (["model.nosuch=1"], None),  # Hydra's own: "Could not override"
    (["+model.features=256"], "model 'mlp' has no key(s) ['features']"),
])
def test_cli_one_line_before_any_data(overrides, says, tmp_path, monkeypatch, capsys):
    from jtl.train import trainer

    def no_data(*a, **k):
        raise AssertionError("data loaded before the config was checked")

    monkeypatch.setattr(trainer, "load_domains", no_data)
    code, _, err = cli([*ARGS, f"hydra.run.dir={tmp_path / 'run'}", *overrides],
                       monkeypatch, capsys)
    assert code == 2, err
    assert err.startswith("jtl: error: ") and err.count("\n") == 1, err
    assert says is None or says in err, err
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(("overrides", "says"), [
    (["max_samples=0"], "max_samples=0: must be an integer >= 1"),
    (["max_samples=-5"], "max_samples=-5"),
    (["max_samples=abc"], "max_samples='abc'"),
    (["step=abc"], "step='abc'"),
    (["measure=[pad]", "measure.pad.n_boot=abc"], "measure.pad.n_boot='abc'"),
    (["measure=[pad]", "measure.pad.n_boot=0"], "measure.pad.n_boot=0"),
])
def test_measure_options_one_line(overrides, says, tmp_path, capsys):
    from jtl.cli import measure

    code = measure.main([f"run_dir={tmp_path}", *overrides])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("jtl: error: ") and err.count("\n") == 1 and says in err, err
