"""Experiments config: loading, validation errors naming the field, and the stable hash assignment."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tfrec.config import ConfigError
from tfrec.online.experiments import (
    Arm, Experiment, arm_tag, assign, assign_many, hash_unit, load_experiments, parse_arm_tag,
)

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "experiments.yaml"

GOOD = """
version_labels: [stable, canary]
experiments:
  - name: exp
    salt: s1
    start: "2024-01-01T00:00:00Z"
    end: 1706745600
    arms:
      - {name: a, weight: 0.2, version_label: stable}
      - {name: b, weight: 0.3, version_label: canary}
      - {name: c, weight: 0.5, pipeline: {fusion: rrf}}
"""


def _write(tmp_path, text):
    path = tmp_path / "experiments.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_repository_config_loads():
    config = load_experiments(CONFIG)
    canary = config.get("ranker_canary")
    assert canary.control == "stable" and canary.treatments == ["canary"]
    assert canary.start == 1704067200 and canary.end is None  # ISO text became epoch seconds
    assert config.get("diversity").salt == "diversity"  # salt defaults to the name
    with pytest.raises(KeyError, match="no experiment 'nope'"):
        config.get("nope")


def test_defaults_and_time_window(tmp_path):
    exp = load_experiments(_write(tmp_path, GOOD)).get("exp")
    assert exp.control == "a" and exp.primary_metric == "ctr" and exp.arm("c").pipeline == {"fusion": "rrf"}
    assert exp.start == 1704067200 and exp.end == 1706745600
    assert exp.is_running(1704067200) and not exp.is_running(1704067199) and not exp.is_running(1706745600)


@pytest.mark.parametrize("change, field, words", [
    (("weight: 0.5, pipeline", "weight: 0.6, pipeline"), "experiments[0].arms", "sum to 1, got 1.1"),
    (("name: b,", "name: a,"), "experiments[0].arms[1].name", "duplicate arm name 'a'"),
    (("version_label: canary", "version_label: beta"), "experiments[0].arms[1].version_label",
     "unknown version label 'beta'"),
    (("weight: 0.2, version_label: stable", "weight: 0.2"), "experiments[0].arms[0].version_label", "serves nothing"),
    (("weight: 0.2,", "weight: -0.2,"), "experiments[0].arms[0].weight", "must be in [0, 1]"),
    (("salt: s1", "salt: s1\n    control: z"), "experiments[0].control", "control 'z' is not an arm"),
    (("end: 1706745600", "end: 1600000000"), "experiments[0].end", "must be after start"),
    (("salt: s1", "salt: s1\n    primary_metric: clicks"), "experiments[0].primary_metric", "expected one of"),
    (("start: \"2024-01-01T00:00:00Z\"", "start: \"yesterday\""), "experiments[0].start", "yesterday"),
])
def test_bad_config_names_file_and_field(tmp_path, change, field, words):
    path = _write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as info:
        load_experiments(path)
    assert info.value.source == str(path)
    assert info.value.path == field
    assert words in str(info.value)


def test_duplicate_experiment_names(tmp_path):
    body = GOOD.split("experiments:\n", 1)[1]
    path = _write(tmp_path, GOOD + body)
    with pytest.raises(ConfigError, match=r"experiments\[1\]\.name: duplicate experiment name 'exp'"):
        load_experiments(path)


def test_split_proportions_on_100k_ids(tmp_path):
    exp = load_experiments(_write(tmp_path, GOOD)).get("exp")
    ids = [f"user-{i}" for i in range(100_000)]
    arms = assign_many(exp, ids)
    for arm, weight in (("a", 0.2), ("b", 0.3), ("c", 0.5)):
        share = np.mean(arms == arm)
        tolerance = 4 * np.sqrt(weight * (1 - weight) / len(ids))  # 4 binomial standard errors
        assert abs(share - weight) < tolerance, (arm, share)
    # the hash is uniform: its deciles hold 10% each
    counts = np.histogram(hash_unit(exp.salt, ids), bins=10, range=(0, 1))[0]
    assert np.all(np.abs(counts / len(ids) - 0.1) < 4 * np.sqrt(0.09 / len(ids)))


def test_assignment_is_stable_and_salted(tmp_path):
    exp = load_experiments(_write(tmp_path, GOOD)).get("exp")
    ids = [f"u{i}" for i in range(2_000)]
    first = assign_many(exp, ids)
    assert list(first) == [assign(exp, u) for u in ids]  # one id at a time = batch
    assert np.array_equal(first, assign_many(exp, list(reversed(ids)))[::-1])  # order does not matter
    resalted = Experiment(exp.name, exp.arms, salt="other")
    resalted.validate()
    moved = np.mean(assign_many(resalted, ids) != first)
    assert 0.5 < moved < 0.75  # a new salt reshuffles: P(differ) = 1 - (.2^2 + .3^2 + .5^2) = 0.62


def test_assignment_is_the_same_in_another_process(tmp_path):
    """sha256, not Python's hash(): a fresh interpreter with another PYTHONHASHSEED agrees on every user."""
    exp = load_experiments(_write(tmp_path, GOOD)).get("exp")
    ids = [f"u{i}" for i in range(300)]
    script = (f"from tfrec.online.experiments import load_experiments, assign_many\n"
              f"e = load_experiments({str(tmp_path / 'experiments.yaml')!r}).get('exp')\n"
              f"print(','.join(assign_many(e, ['u%d' % i for i in range(300)])))")
    env = dict(os.environ, PYTHONHASHSEED="12345", TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True,
                         cwd=REPO, timeout=120)
    assert out.stdout.strip().split(",") == list(assign_many(exp, ids))



def test_hash_recipe_is_pinned():
    """Golden values: changing the hash recipe would silently move every live user to another arm."""
    assert hash_unit("s1", ["u0", "U000001"]) == pytest.approx([0.154597933982, 0.829289317667], abs=1e-11)


def test_zero_weight_arm_gets_nobody():
    exp = Experiment("e", [Arm("a", 0.5, pipeline={"x": 1}), Arm("off", 0.0, pipeline={"x": 2}),
                           Arm("b", 0.5, pipeline={"x": 3})])
    exp.validate()
    arms = assign_many(exp, [str(i) for i in range(5_000)])
    assert "off" not in set(arms) and {"a", "b"} == set(arms)


def test_arm_tags_round_trip():
    exp = Experiment("e", [Arm("a", 0.5, pipeline={"x": 1}), Arm("b", 0.5, pipeline={"x": 2})])
    exp.validate()
    recorded = [arm_tag(exp, "a"), "b", "other:a", "", None, "e:zzz"]
    assert list(parse_arm_tag(exp, recorded)) == ["a", "b", "", "", "", ""]
