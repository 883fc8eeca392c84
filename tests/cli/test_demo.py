"""`tfrec demo` (what `make demo` runs) end to end on the tiny preset: every stage runs, every model is exported and
the sample requests are served over gRPC by the model server from the exported query-understanding, retrieval and
CTR SavedModels."""

import re
from pathlib import Path

from tfrec.cli.main import main

REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_every_stage_and_serves_requests(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)  # the demo's default configs are repository-relative, as in `make demo`
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--preset", "tiny", "--epochs", "2", "--requests", "1", "--intent-queries", "400"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    for stage in range(1, 11):
        assert f"=== {stage}. " in printed
    for model in ("ctr", "retrieval", "retrieval_query_tower", "retrieval_candidate_tower", "intent"):
        assert (out / "models" / model / "1" / "saved_model.pb").exists(), model
    assert re.search(r"tfrec serve --model_config_file \S+models\.config: listening on 127\.0\.0\.1:\d+", printed)
    assert (out / "models" / "models.config").exists()
    served = re.findall(r"request \S+ by \S+ \((search \"[^\"]+\"|recommendation)\): 100 candidates from 500 items", printed)
    assert len(served) == 2 and served[0].startswith("search")
    assert re.search(r"  understood: intent .+ \(p=\d\.\d\d\), filters .+; \d+ candidates within the price limits", printed)
    assert re.search(r"mean true P\(click\) of the top 5 at position 0: retrieve-then-rank 0\.\d{3} vs the shop's own top 5 0\.\d{3}", printed)
