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

from built_once import built_once  # noqa: E402
from demo_run import DemoRun, demo_run_at, run_demo  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# A small but dense shop: every user has enough requests for user×category/brand weights to be learnable.
DENSE_TINY = {"n_users": 100, "n_items": 300, "n_sessions": 12000}


class CTRRunDir(NamedTuple):
    run_dir: Path  # the run directory `tfrec train ctr` wrote
    shop: Path  # the dataset directory it trained on
    output: str  # what the command printed


def _train_shared_ctr(base: Path) -> None:
    from tfrec.cli.main import main
    from tfrec.data.dataset_io import write_dataset
    from tfrec.data.synthetic import SyntheticConfig, generate

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
    (base / "output.txt").write_text(printed.getvalue())


@pytest.fixture(scope="session")
def ctr_run(tmp_path_factory) -> CTRRunDir:
    """One `tfrec train ctr --config configs/ctr.yaml` run on a dense tiny shop written as a dataset directory (with
    the generator's ground truth beside it), shared by tests/models/test_ctr.py and tests/cli/test_cli.py: training
    (mostly tracing the model's graph) is the slowest part of both, and neither changes the run directory."""
    base = built_once(tmp_path_factory, "ctr_shared", _train_shared_ctr)
    return CTRRunDir(base / "run", base / "shop", (base / "output.txt").read_text())


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> DemoRun:
    """One `tfrec demo --preset tiny` run (tests/demo_run.py), shared by tests/cli/test_demo.py and the search tests
    under tests/server/search, which serve its shop's models; none of them changes its files."""
    return demo_run_at(built_once(tmp_path_factory, "demo", run_demo))


# `make test` runs the suite on two pytest-xdist workers with --dist loadfile: the tests of a file run on one
# worker, so a module-scoped fixture is built once; session fixtures shared by several files use `built_once`.
# The slowest files (measured with --durations) start first, so that neither worker is left with a long file at the
# end; make test passes --no-loadscope-reorder, which keeps this order (xdist's default runs files with more tests
# first, which put the one-test demo last). Each worker starts with two files: test_search_service.py follows the demo
# on the same worker, as it waits for the demo run it shares (`demo_run`); the other search files come later.
SLOW_FIRST = ("cli/test_demo.py", "training/test_ranker_job.py", "server/search/test_search_service.py",
              "training/test_intent_job.py", "tuning/test_ctr_search.py", "cli/test_cli.py",
              "training/test_multi_worker.py", "online/test_online_update.py", "tuning/test_retrieval_search.py",
              "tuning/test_ranker_search.py", "tuning/test_intent_search.py", "training/test_retrieval_job.py",
              "training/test_intent_distil.py", "models/test_two_tower.py", "export/test_ranker_regress.py",
              "export/test_ranker_export.py", "training/test_strategy_parity.py")


def pytest_collection_modifyitems(config, items):
    tests_dir = Path(__file__).resolve().parent

    def rank(item):
        relative = Path(str(item.fspath)).resolve().relative_to(tests_dir).as_posix()
        return SLOW_FIRST.index(relative) if relative in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: the order within a file and among the other files is kept
