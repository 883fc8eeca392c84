"""The command line end to end on a tiny synthetic shop, plus its error paths and --help on every command."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tfrec.cli.main import main

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "configs" / "ctr.yaml")


def _tfrec(*argv):
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    out = tmp_path_factory.mktemp("shop")
    assert _tfrec("data", "generate", "--out", out, "--preset", "tiny", "--seed", "3") == 0
    return out


def test_generate_writes_tables_and_ground_truth(shop):
    names = set(os.listdir(shop))
    assert {"catalog.csv", "events.csv", "users.csv", "ground_truth.json", "ground_truth.npz"} <= names


def test_validate_clean_and_corrupted(shop, tmp_path, capsys):
    assert _tfrec("data", "validate", shop) == 0
    assert "no bad rows" in capsys.readouterr().out
    bad = tmp_path / "bad"
    shutil.copytree(shop, bad)
    lines = (bad / "events.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    header = lines[0].strip().split(",")
    row = lines[5].rstrip("\r\n").split(",")
    row[header.index("event_type")] = "teleport"
    lines[5] = ",".join(row) + "\r\n"
    (bad / "events.csv").write_text("".join(lines), encoding="utf-8")
    assert _tfrec("data", "validate", bad) == 1
    out = capsys.readouterr().out
    assert "events.csv" in out and "row 5" in out and "event_type" in out
    assert _tfrec("data", "validate", bad, "--fail-fast") == 2
    err = capsys.readouterr().err
    assert "events.csv row 5 (line 6), field 'event_type'" in err and "teleport" in err
    # Training refuses the bad row unless told to skip it; skipping counts it and keeps every other row.
    train = ["train", "ctr", "--config", CONFIG, "--set", "data.source=directory", "--set", f"data.path={bad}"]
    assert _tfrec(*train) == 2
    assert "events.csv row 5 (line 6), field 'event_type'" in capsys.readouterr().err
    from tfrec.data.sources import DataConfig, describe, load_source

    good = load_source(DataConfig(source="directory", path=str(shop)))
    skipped = load_source(DataConfig(source="directory", path=str(bad), skip_bad_rows=True))
    assert skipped.report.total_skipped == 1
    assert len(skipped.dataset.events) == len(good.dataset.events) - 1
    assert skipped.ground_truth is not None  # the generator's ground truth travels with the directory
    assert any("skipped" in line for line in describe(skipped))


def test_train_evaluate_export_round_trip(ctr_run, tmp_path, capsys):
    # `tfrec train ctr --config configs/ctr.yaml` on a dataset directory: the session's shared run (conftest.py).
    run, out = ctr_run.run_dir, ctr_run.output
    assert "AUC" in out and "ground truth" in out
    capsys.readouterr()
    for name in ("config.yaml", "metrics.json", "history.csv", "features/features.json", "checkpoints/best.index"):
        assert (run / name).exists(), name
    assert any((run / "logs" / "train").iterdir())  # TensorBoard event files
    trained = json.loads((run / "metrics.json").read_text())["test"]

    assert _tfrec("evaluate", "--run", run, "--json") == 0
    from_checkpoint = json.loads(capsys.readouterr().out)
    assert from_checkpoint["auc"] == pytest.approx(trained["auc"], abs=1e-6)

    models = tmp_path / "models"
    assert _tfrec("export", "--run", run, "--base-dir", models, "--name", "ctr") == 0
    assert (models / "ctr" / "1" / "saved_model.pb").exists()
    assert _tfrec("export", "--run", run, "--base-dir", models, "--name", "ctr") == 0  # next version
    assert sorted(os.listdir(models / "ctr")) == ["1", "2"]
    capsys.readouterr()
    assert _tfrec("evaluate", "--run", run, "--saved-model", models / "ctr" / "2", "--json") == 0
    from_saved_model = json.loads(capsys.readouterr().out)
    assert from_saved_model["auc"] == pytest.approx(trained["auc"], abs=1e-5)
    assert _tfrec("export", "--run", run, "--base-dir", models, "--version", "1") == 2
    assert "already exists" in capsys.readouterr().err


def test_config_errors_name_the_key(tmp_path, capsys):
    assert _tfrec("train", "ctr", "--config", CONFIG, "--set", "training.batch_size=big") == 2
    assert "training.batch_size: expected an int, got 'big'" in capsys.readouterr().err
    assert _tfrec("train", "ctr", "--config", CONFIG, "--set", "model.hash_bucket=5") == 2
    assert "did you mean 'hash_buckets'" in capsys.readouterr().err
    assert _tfrec("evaluate", "--run", tmp_path / "nothing") == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [[], ["data"], ["data", "generate"], ["data", "validate"], ["train"], ["train", "ctr"], ["evaluate"],
     ["export"], ["demo"]],
)
def test_help_on_every_command(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv + ["--help"])
    assert exc.value.code == 0
    assert "usage: tfrec" in capsys.readouterr().out


def test_console_script_is_installed():
    exe = Path(sys.executable).with_name("tfrec")
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "generate or validate datasets" in proc.stdout
