"""Makes helper modules in tests/ (e.g. config_schemas) importable under pytest's importlib import mode, and holds
the session-wide fixtures several test modules share."""

import contextlib
import io
import os
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

REPO = Path(__file__).resolve().parents[1]
# A small but dense shop: every user has enough requests for user×category/brand weights to be learnable.
DENSE_TINY = {"n_users": 100, "n_items": 300, "n_sessions": 12000}


class CTRRunDir(NamedTuple):
    run_dir: Path  # the run directory `tfrec train ctr` wrote
    shop: Path  # the dataset directory it trained on
    output: str  # what the command printed


@pytest.fixture(scope="session")
def ctr_run(tmp_path_factory) -> CTRRunDir:
    """One `tfrec train ctr --config configs/ctr.yaml` run on a dense tiny shop written as a dataset directory (with
    the generator's ground truth beside it), shared by tests/models/test_ctr.py and tests/cli/test_cli.py: training
    (mostly tracing the model's graph) is the slowest part of both, and neither changes the run directory."""
    from tfrec.cli.main import main
    from tfrec.data.dataset_io import write_dataset
    from tfrec.data.synthetic import SyntheticConfig, generate

    base = tmp_path_factory.mktemp("ctr_shared")
    shop, run_dir = base / "shop", base / "run"
    data = generate(SyntheticConfig.preset("tiny", seed=11, **DENSE_TINY))
    write_dataset(data.dataset, str(shop), format="csv")
    data.ground_truth.save(str(shop))
    argv = ["train", "ctr", "--config", str(REPO / "configs" / "ctr.yaml"), "--run-dir", str(run_dir),
            "--set", "data.source=directory", "--set", f"data.path={shop}",
            "--set", "training.epochs=20", "--set", "training.verbose=0"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(argv)
    assert code == 0, printed.getvalue()
    return CTRRunDir(run_dir, shop, printed.getvalue())


# `make test` runs the suite on two pytest-xdist workers with --dist loadgroup. Every test is grouped by its file, so a
# module-scoped fixture is built once; files sharing a session fixture form one group, so it is built once too.
SHARED_SESSION_GROUPS = {"server/search/": "search_models", "models/test_ctr.py": "ctr_run",
                         "cli/test_cli.py": "ctr_run"}


def pytest_collection_modifyitems(config, items):
    tests_dir = Path(__file__).resolve().parent
    for item in items:
        relative = Path(str(item.fspath)).resolve().relative_to(tests_dir).as_posix()
        group = next((g for prefix, g in SHARED_SESSION_GROUPS.items() if relative.startswith(prefix)), relative)
        item.add_marker(pytest.mark.xdist_group(group))
