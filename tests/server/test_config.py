"""models.config and batching_parameters.txt parsing, version policies."""

import pytest

from tfrec.server.config import (BatchingOptions, ConfigError, load_batching_parameters, load_model_server_config,
                                 parse_model_server_config)
from tfrec.server.policy import allowed_versions

MODELS = """
model_config_list {
  config { name: "ctr" base_path: "/models/ctr" model_platform: "tensorflow"
           model_version_policy { latest { num_versions: 2 } } }
  config { name: "retrieval" base_path: "/models/retrieval" model_version_policy { all {} } }
  config { name: "intent" base_path: "/models/intent"
           model_version_policy { specific { versions: 1 versions: 3 } }
           version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 3 } }
  config { name: "plain" base_path: "/models/plain" }
}
"""


def test_models_config_policies_and_labels(tmp_path):
    path = tmp_path / "models.config"
    path.write_text(MODELS)
    models = {m.name: m for m in load_model_server_config(str(path)).model_config_list.config}
    assert models["ctr"].base_path == "/models/ctr"
    assert allowed_versions(models["ctr"], [1, 2, 3]) == {2, 3}
    assert allowed_versions(models["retrieval"], [1, 2, 3]) == {1, 2, 3}
    assert allowed_versions(models["intent"], [1, 2]) == {1}
    assert allowed_versions(models["plain"], [4, 1, 9]) == {9}  # default: latest 1
    assert dict(models["intent"].version_labels) == {"stable": 1, "canary": 3}


@pytest.mark.parametrize("text, problem", [
    ('model_config_list { config { name: "a" base_path: "/x" } ', "models.config"),  # syntax: names file + line
    ('model_config_list { config { name: "a" } }', "base_path is empty"),
    ('model_config_list { config { base_path: "/x" } }', "name is empty"),
    ('model_config_list { config { name: "a" base_path: "/x" } config { name: "a" base_path: "/y" } }', "twice"),
    ('model_config_list { config { name: "a" base_path: "/x" model_version_policy { specific {} } } }',
     "lists no versions"),
    ('model_config_list { config { name: "a" base_path: "/x" model_platform: "pytorch" } }', "pytorch"),
    ('model_config_list { config { name: "a" base_path: "/x" version_labels { key: "s" value: 0 } } }', "'s'"),
    ('custom_model_config {}', "custom_model_config"),
    ('model_config_list { config { name: "a" base_path: "/x" bogus: 1 } }', "bogus"),
])
def test_models_config_errors_name_file_and_problem(text, problem):
    with pytest.raises(ConfigError) as info:
        parse_model_server_config(text, "serving/models.config")
    assert str(info.value).startswith("serving/models.config:") and problem in str(info.value)


def test_batching_parameters(tmp_path):
    path = tmp_path / "batching_parameters.txt"
    path.write_text("max_batch_size { value: 64 }\nbatch_timeout_micros { value: 2000 }\n"
                    "max_enqueued_batches { value: 100 }\nnum_batch_threads { value: 4 }\n"
                    'thread_pool_name { value: "batch_threads" }\nallowed_batch_sizes: 16\nallowed_batch_sizes: 64\n'
                    "pad_variable_length_inputs: true\n")
    assert load_batching_parameters(str(path)) == BatchingOptions(64, 2000, 100, 4, (16, 64))
    defaults = load_batching_parameters(None)
    assert (defaults.max_batch_size, defaults.batch_timeout_micros, defaults.max_enqueued_batches) == (1000, 0, 10)


@pytest.mark.parametrize("text, problem", [
    ("max_batch_size { value: 8 } allowed_batch_sizes: 4", "must equal max_batch_size"),
    ("max_batch_size { value: 8 } allowed_batch_sizes: 8 allowed_batch_sizes: 4", "increasing"),
    ("num_batch_threads { value: 0 }", "num_batch_threads must be >= 1"),
    ("max_batch_size: 8", "batching_parameters.txt"),  # a wrapper field needs { value: ... }
    ("max_batch_sizes { value: 8 }", "max_batch_sizes"),
])
def test_batching_parameter_errors(tmp_path, text, problem):
    path = tmp_path / "batching_parameters.txt"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_batching_parameters(str(path))
    assert str(path) in str(info.value) and problem in str(info.value)
    with pytest.raises(ConfigError, match="no such file"):
        load_batching_parameters(str(tmp_path / "missing.txt"))
