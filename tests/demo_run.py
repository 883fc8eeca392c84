"""One `tfrec demo --preset tiny` run per test session, shared by tests/cli/test_demo.py (what it printed and wrote)
and the search tests (its shop and its exported retrieval, ranker and query models, served again by their own model
server): the demo already trains the three models the search service calls, and training them twice was the
slowest part of both. The query model is fine-tuned from the small random BERT stand-in (TFREC_BERT_PACKAGE=none),
not MiniLM (tests/training/test_intent_job.py covers that), with the larger step a random encoder needs."""

import contextlib
import io
import os
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]
# --epochs 2 and 600 labelled searches: enough for the search tests' click-probability and slot assertions
DEMO_ARGS = ["--preset", "tiny", "--seed", "5", "--epochs", "2", "--requests", "1", "--intent-queries", "600"]


class DemoRun(NamedTuple):
    out: Path  # the demo's --out: data/ (the shop), models/, runs/, online/
    printed: str  # what `tfrec demo` printed

    @property
    def shop(self) -> Path:
        return self.out / "data"

    @property
    def models(self) -> Path:
        return self.out / "models"


@contextlib.contextmanager
def random_bert():
    """The query model on the random 2-layer BERT stand-in (tfrec.text.bert_checkpoint), not MiniLM."""
    from tfrec.text.bert_checkpoint import PACKAGE_ENV

    old = os.environ.get(PACKAGE_ENV)
    os.environ[PACKAGE_ENV] = "none"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(PACKAGE_ENV, None)
        else:
            os.environ[PACKAGE_ENV] = old


def _random_bert_intent_config(path: Path) -> Path:
    """configs/intent.yaml with the step a random encoder needs (5e-5 is for a pretrained one) and no zero-shot
    evaluation (the random encoder's zero-shot numbers mean nothing)."""
    text = (REPO / "configs" / "intent.yaml").read_text()
    for old, new in (("learning_rate: 5.0e-5", "learning_rate: 2.0e-3"),
                     ("zero_shot_baseline: true", "zero_shot_baseline: false")):
        assert old in text, f"configs/intent.yaml no longer has {old!r}"
        text = text.replace(old, new)
    path.write_text(text)
    return path


def run_demo(base: Path) -> None:
    """`tfrec demo --out <base>/demo` from the repository root (its default configs are repository-relative, as in
    `make demo`); what it printed goes to <base>/printed.txt."""
    from tfrec.cli.main import main

    argv = ["demo", "--out", str(base / "demo"), *DEMO_ARGS,
            "--intent-config", str(_random_bert_intent_config(base / "intent.yaml"))]
    printed = io.StringIO()
    with contextlib.chdir(REPO), random_bert(), contextlib.redirect_stdout(printed):
        code = main(argv)
    (base / "printed.txt").write_text(printed.getvalue())
    assert code == 0, printed.getvalue()[-4000:]


def demo_run_at(base: Path) -> DemoRun:
    return DemoRun(base / "demo", (base / "printed.txt").read_text())
