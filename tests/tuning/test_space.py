"""Search spaces: loading, validation messages that name the hyperparameter and path, and `define`."""

import textwrap
from pathlib import Path

import pytest

import tfrec  # noqa: F401  (routes tf.keras to tf-keras before keras_tuner imports it)
import keras_tuner as kt
from tfrec.config import ConfigError, from_dict
from tfrec.training.ctr_job import load_ctr_config
from tfrec.tuning import CTRTuningJob, check_paths, define, load_space
from tfrec.tuning.space import SearchSpace

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ctr_config():
    return load_ctr_config(str(REPO / "configs" / "ctr.yaml"))


def _space(tmp_path, hyperparameters: str, tuner: str = "{algorithm: random, max_trials: 2}") -> SearchSpace:
    path = tmp_path / "space.yaml"
    path.write_text(f"tuner: {tuner}\nhyperparameters:\n" + textwrap.indent(textwrap.dedent(hyperparameters), "  "))
    return load_space(path)


def test_the_shipped_ctr_space_fits_the_ctr_config(ctr_config):
    space = load_space(REPO / "configs" / "tuning" / "ctr.yaml")
    check_paths(space, ctr_config, CTRTuningJob.fixed_paths)
    assert space.tuner.algorithm == "bayesian" and space.tuner.max_trials == 10
    assert space.tuner.objective == "val_auc" and space.tuner.direction == "max"
    assert space.paths == {
        "learning_rate": "training.optimizer.learning_rate",
        "optimizer": "training.optimizer.name",
        "batch_size": "training.batch_size",
        "l2": "model.l2",
        "hash_buckets": "model.hash_buckets",
    }
    lr = space.hyperparameters[0]
    assert (lr.min, lr.max, lr.sampling) == (1e-3, 3e-2, "log")


def test_unknown_path_names_the_hyperparameter_and_the_path(tmp_path, ctr_config):
    space = _space(tmp_path, """
        - {name: lr, path: training.optimizer.learning_rat, type: float, min: 0.001, max: 0.1}
    """)
    with pytest.raises(ConfigError) as err:
        check_paths(space, ctr_config, source="space.yaml")
    message = str(err.value)
    assert "hyperparameter 'lr'" in message and "'training.optimizer.learning_rat'" in message
    assert "did you mean 'learning_rate'" in message
    assert err.value.path == "hyperparameters[0].path"


def test_values_that_the_job_config_rejects_are_caught_at_load(tmp_path, ctr_config):
    space = _space(tmp_path, """
        - {name: buckets, path: model.hash_buckets, type: choice, values: [1024, 0]}
    """)
    with pytest.raises(ConfigError, match=r"hyperparameter 'buckets'.*value 0 .*hash_buckets must be >= 1"):
        check_paths(space, ctr_config)
    wrong_type = _space(tmp_path, """
        - {name: batch, path: training.batch_size, type: float, min: 16, max: 64}
    """)
    with pytest.raises(ConfigError, match=r"hyperparameter 'batch'.*training.batch_size: expected an int"):
        check_paths(wrong_type, ctr_config)


def test_data_preparation_paths_cannot_be_tuned(tmp_path, ctr_config):
    space = _space(tmp_path, """
        - {name: preset, path: data.preset, type: choice, values: [tiny, small]}
    """)
    with pytest.raises(ConfigError, match="'data.preset' cannot be tuned: 'data' is read once"):
        check_paths(space, ctr_config, CTRTuningJob.fixed_paths)


@pytest.mark.parametrize(
    "hyperparameter,where,message",
    [
        ("{path: model.l2, type: float, min: 0, max: 0.1, sampling: log}", "hyperparameters[0].min",
         "log sampling needs min > 0"),
        ("{path: model.hash_buckets, type: choice, values: []}", "hyperparameters[0].values", "non-empty list"),
        ("{path: model.hash_buckets, type: choice}", "hyperparameters[0].values", "non-empty list"),
        ("{path: model.l2, type: float, min: 0.1, max: 0.01}", "hyperparameters[0].min", "must be < max"),
        ("{path: model.l2, type: float, min: 0.1}", "hyperparameters[0].max", "needs min and max"),
        ("{path: training.epochs, type: int, min: 1.5, max: 4}", "hyperparameters[0].min", "needs an int"),
        ("{path: model.l2, type: float, values: [1, 2], min: 0, max: 1}", "hyperparameters[0].values",
         "do not apply to a float"),
        ("{path: model.l2, type: choice, values: [1, a]}", "hyperparameters[0].values", "one type"),
        ("{path: model.l2, type: uniform, min: 0, max: 1}", "hyperparameters[0].type", "expected one of"),
        ("{path: model.l2, type: choice, values: [1, 2], default: 3}", "hyperparameters[0].default",
         "not one of the values"),
    ],
)
def test_bad_hyperparameters_fail_at_load_with_their_position(tmp_path, hyperparameter, where, message):
    with pytest.raises(ConfigError) as err:
        _space(tmp_path, f"- {hyperparameter}\n")
    assert err.value.path == where, str(err.value)
    assert message in err.value.reason and err.value.source.endswith("space.yaml")


def test_space_level_errors(tmp_path):
    with pytest.raises(ConfigError, match="name 'a' repeats hyperparameters\\[0\\]"):
        _space(tmp_path, """
            - {name: a, path: model.l2, type: float, min: 0.1, max: 1}
            - {name: a, path: training.epochs, type: int, min: 1, max: 3}
        """)
    with pytest.raises(ConfigError, match="at least one hyperparameter"):
        _space(tmp_path, "[]\n")
    with pytest.raises(ConfigError, match="tuner.algorithm: expected one of .*did you mean 'random'"):
        _space(tmp_path, "- {path: model.l2, type: boolean}\n", tuner="{algorithm: randm}")
    with pytest.raises(ConfigError, match="tuner.factor: hyperband's factor must be >= 2"):
        _space(tmp_path, "- {path: model.l2, type: boolean}\n", tuner="{factor: 1}")


def test_define_registers_types_and_ranges_and_returns_dotted_overrides():
    space = from_dict(SearchSpace, {"hyperparameters": [
        {"name": "lr", "path": "training.optimizer.learning_rate", "type": "float", "min": 1e-3, "max": 3e-2,
         "sampling": "log"},
        {"name": "batch", "path": "training.batch_size", "type": "choice", "values": [256, 1024]},
        {"path": "model.hash_buckets", "type": "int", "min": 1024, "max": 8192, "step": 1024, "default": 2048},
        {"name": "opt", "path": "training.optimizer.name", "type": "choice", "values": ["adam", "ftrl"]},
        {"name": "cache", "path": "training.cache", "type": "boolean", "default": True},
    ]})
    hp = kt.HyperParameters()
    defaults = define(hp, space)
    assert defaults == {
        "training.optimizer.learning_rate": pytest.approx(1e-3), "training.batch_size": 256,
        "model.hash_buckets": 2048, "training.optimizer.name": "adam", "training.cache": True,
    }
    registered = {h.name: h for h in hp.space}
    assert set(registered) == {"lr", "batch", "model.hash_buckets", "opt", "cache"}  # an unnamed one is its path
    lr = registered["lr"]
    assert isinstance(lr, kt.engine.hyperparameters.Float)
    assert (lr.min_value, lr.max_value, lr.sampling) == (1e-3, 3e-2, "log")
    buckets = registered["model.hash_buckets"]
    assert isinstance(buckets, kt.engine.hyperparameters.Int)
    assert (buckets.min_value, buckets.max_value, buckets.step) == (1024, 8192, 1024)
    assert isinstance(registered["batch"], kt.engine.hyperparameters.Choice)
    assert registered["batch"].values == [256, 1024]
    assert isinstance(registered["cache"], kt.engine.hyperparameters.Boolean)

    # Values the oracle chose come back as plain Python values at their config paths.
    hp.values.update({"lr": 0.02, "batch": 1024, "model.hash_buckets": 4096, "opt": "ftrl", "cache": False})
    chosen = define(hp, space)
    assert chosen == {
        "training.optimizer.learning_rate": 0.02, "training.batch_size": 1024, "model.hash_buckets": 4096,
        "training.optimizer.name": "ftrl", "training.cache": False,
    }
    assert type(chosen["training.batch_size"]) is int and type(chosen["training.optimizer.learning_rate"]) is float

    # Random samples stay inside the declared domains.
    for seed in range(20):
        sample = {h.name: h.random_sample(seed) for h in hp.space}
        assert 1e-3 <= sample["lr"] <= 3e-2 and sample["batch"] in (256, 1024)
        assert sample["model.hash_buckets"] in range(1024, 8193, 1024)


def test_also_paths_and_list_choices_reach_every_path():
    import keras_tuner as kt

    from tfrec.config import from_dict
    from tfrec.tuning import SearchSpace, define

    space = from_dict(SearchSpace, {"hyperparameters": [
        {"name": "depth", "path": "model.query.hidden", "also_paths": ["model.candidate.hidden"], "type": "choice",
         "values": [[], [128], [256, 128]]},
        {"name": "dim", "path": "model.query.output_dim", "also_paths": ["model.candidate.output_dim"],
         "type": "choice", "values": [32, 64]},
    ]})
    hp = kt.HyperParameters()
    overrides = define(hp, space)
    assert overrides == {"model.query.hidden": [], "model.candidate.hidden": [], "model.query.output_dim": 32,
                         "model.candidate.output_dim": 32}
    hp.values["depth"] = "[256, 128]"
    assert space.overrides(hp.values)["model.candidate.hidden"] == [256, 128]


def test_a_path_tuned_twice_is_refused():
    from tfrec.config import ConfigError, from_dict
    from tfrec.tuning import SearchSpace

    with pytest.raises(ConfigError, match=r"model.candidate.output_dim.*more than one hyperparameter"):
        from_dict(SearchSpace, {"hyperparameters": [
            {"name": "a", "path": "model.query.output_dim", "also_paths": ["model.candidate.output_dim"], "type": "boolean"},
            {"name": "b", "path": "model.candidate.output_dim", "type": "boolean"},
        ]})
