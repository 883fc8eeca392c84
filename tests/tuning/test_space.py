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


# ----------------------------------------------------------------------------------------- conditional hyperparameters
CONDITIONAL = [
    {"name": "cross_layers", "path": "model.cross_layers", "type": "choice", "values": [0, 1, 2]},
    {"name": "cross_rank", "type": "choice", "values": ["full", "low_rank"],
     "when": {"name": "cross_layers", "values": [1, 2]}},
    {"name": "projection_dim", "path": "model.projection_dim", "type": "int", "min": 4, "max": 16, "step": 4,
     "when": {"name": "cross_rank", "values": ["low_rank"]}},
    {"name": "depth", "path": "model.deep_units", "type": "choice", "values": [[64], [128, 64]]},
    {"name": "dropout", "path": "model.dropout", "type": "float", "min": 0.0, "max": 0.3,
     "when": {"name": "depth", "values": [[128, 64]]}},
]


def test_conditional_hyperparameters_are_active_only_under_their_parents_values():
    space = from_dict(SearchSpace, {"hyperparameters": CONDITIONAL})
    hp = kt.HyperParameters()
    # The first build takes the defaults: no cross layers, so the rank switch and the projection are inactive.
    assert define(hp, space) == {"model.cross_layers": 0, "model.deep_units": [64]}
    registered = {h.name: h for h in hp.space}
    assert [(c.name, c.values) for c in registered["projection_dim"].conditions] == [
        ("cross_layers", [1, 2]), ("cross_rank", ["low_rank"])]  # nested: the switch's own condition comes first
    assert [(c.name, c.values) for c in registered["dropout"].conditions] == [("depth", ["[128, 64]"])]

    def chosen(**values):
        trial = hp.copy()
        trial.values = dict(values)
        return define(trial, space)

    assert chosen(cross_layers=1, cross_rank="full", depth="[64]") == {"model.cross_layers": 1,
                                                                      "model.deep_units": [64]}
    assert chosen(cross_layers=2, cross_rank="low_rank", projection_dim=8, depth="[128, 64]", dropout=0.2) == {
        "model.cross_layers": 2, "model.projection_dim": 8, "model.deep_units": [128, 64], "model.dropout": 0.2}
    # A value left over for an inactive hyperparameter is not applied: its parent's value rules.
    assert "model.projection_dim" not in chosen(cross_layers=0, cross_rank="low_rank", projection_dim=8, depth="[64]")

    # What the oracle samples respects the conditions: children appear exactly when their parents allow them.
    oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective("score", "max"), max_trials=30, seed=3)
    oracle.update_space(hp)
    seen = set()
    for _ in range(30):
        values = oracle.populate_space("x")["values"]
        assert ("cross_rank" in values) == (values["cross_layers"] > 0), values
        assert ("projection_dim" in values) == (values.get("cross_rank") == "low_rank"), values
        assert ("dropout" in values) == (values["depth"] == "[128, 64]"), values
        seen.add(values.get("projection_dim"))
    assert {None, 4, 8, 12, 16} <= seen


@pytest.mark.parametrize(
    "when,where,message",
    [
        ({"name": "cross_layer", "values": [1]}, "hyperparameters[1].when.name",
         "'cross_rank' depends on 'cross_layer', which is not a hyperparameter of this space (declared before it: "
         "'cross_layers')"),
        ({"name": "projection_dim", "values": [4]}, "hyperparameters[1].when.name",
         "'cross_rank' depends on 'projection_dim' (hyperparameters[2]), which must be declared before it"),
        ({"name": "cross_rank", "values": ["full"]}, "hyperparameters[1].when.name", "must be declared before it"),
        ({"name": "cross_layers", "values": [1, 5]}, "hyperparameters[1].when.values",
         "'cross_rank': values [5] are not in the domain of 'cross_layers' (one of [0, 1, 2])"),
        ({"name": "cross_layers", "values": [True]}, "hyperparameters[1].when.values", "values [True] are not"),
        ({"name": "cross_layers", "values": []}, "hyperparameters[1].when.values", "an empty list is not"),
    ],
)
def test_bad_conditions_name_the_hyperparameter(when, where, message):
    hyperparameters = [dict(h) for h in CONDITIONAL[:3]]
    hyperparameters[1]["when"] = when
    with pytest.raises(ConfigError) as err:
        from_dict(SearchSpace, {"hyperparameters": hyperparameters}, "space.yaml")
    assert err.value.path == where and message in err.value.reason, str(err.value)
    assert str(err.value).startswith("space.yaml: " + where)


def test_range_and_boolean_parents_check_their_domain():
    def space(parent, values):
        return {"hyperparameters": [dict(parent, name="p"), {"name": "c", "path": "model.l2", "type": "boolean",
                                                              "when": {"name": "p", "values": values}}]}

    ranged = {"path": "model.cross_layers", "type": "int", "min": 1, "max": 7, "step": 2}
    assert from_dict(SearchSpace, space(ranged, [1, 7])).hyperparameters[1].when.values == [1, 7]
    for bad in ([2], [9], [1.0], ["1"]):  # off the step, out of range, wrong types
        with pytest.raises(ConfigError, match=r"'c': values .* not in the domain of 'p' \(int in \[1, 7\] in steps"):
            from_dict(SearchSpace, space(ranged, bad))
    flag = {"path": "training.cache", "type": "boolean"}
    assert from_dict(SearchSpace, space(flag, [True])).hyperparameters[1].when.values == [True]
    with pytest.raises(ConfigError, match=r"values \[1\] are not in the domain of 'p' \(true or false\)"):
        from_dict(SearchSpace, space(flag, [1]))


def test_a_switch_needs_a_name_and_a_dependent():
    with pytest.raises(ConfigError, match="'cross_rank' has no path and no hyperparameter's `when` names it"):
        from_dict(SearchSpace, {"hyperparameters": CONDITIONAL[:2]})
    with pytest.raises(ConfigError, match=r"hyperparameters\[0\]\.path: needs a path into the job config"):
        from_dict(SearchSpace, {"hyperparameters": [{"type": "boolean"}]})


def test_the_shipped_ranker_space_fits_the_ranker_config():
    from tfrec.training.ranker_job import load_ranker_config
    from tfrec.tuning.ranker import RankerTuningJob

    space = load_space(REPO / "configs" / "tuning" / "ranker.yaml")
    config = load_ranker_config(str(REPO / "configs" / "ranker.yaml"))
    check_paths(space, config, RankerTuningJob.fixed_paths)
    assert config.model.projection_dim is None  # `cross_rank: full` (projection_dim inactive) means full rank
    by_name = {h.name: h for h in space.hyperparameters}
    assert by_name["projection_dim"].when.name == "cross_rank" and by_name["projection_dim"].when.values == ["low_rank"]
    assert by_name["cross_rank"].path is None and space.tuner.objective in config.monitors()
    assert {"model.cross_layers", "model.structure", "model.projection_dim", "model.deep_units", "model.dropout",
            "model.embedding_dim", "training.optimizer.learning_rate", "model.tasks.purchase"} <= set(space.paths.values())
