"""Two-tower retrieval quality on public data, against popularity, matrix factorisation and published figures.

(a) MovieLens-100K, TensorFlow Recommenders basic-retrieval protocol (`configs/retrieval_movielens.yaml`): every
    rating an implicit positive, a seeded random 20% of ratings as test, each test rating's movie ranked against all
    1,682 movies (seen movies not excluded, as in TFRS); rows for the published TFRS tutorial figures.
(b) MovieLens-100K, time split (`split.protocol=time`): the newest 20% of ratings as test, same model.
(c) Amazon Beauty, leave-last-out per user (`configs/retrieval_amazon.yaml`, user id + attention-pooled recent items)
    against the id-only matrix-factorisation two-tower with the same budget (`configs/retrieval_amazon_mf.yaml`),
    each user's earlier items excluded from the ranking.
Every run also reports the most-popular scorer ranked the same way. Metrics are full-catalog (no sampled negatives):
with one target per test query, Recall@k equals top-k accuracy.

Usage: python benchmarks/retrieval_quality.py [--only movielens|amazon] [--epochs N] [--work-dir DIR]
                                              [--data-root DIR] [--no-write]
Data is read in place from ../shared/data (research licences: never copied); a missing data set is skipped with a
message. Section `retrieval_quality` of docs/benchmarks.md has one part per data set; --only rewrites just its part.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import DOC, REPO, Timer, command_line, git_revision, machine, write_section  # noqa: E402

SECTION = "retrieval_quality"
DATA_ROOT = Path(os.environ.get("TFREC_SHARED_DATA", REPO.parent / "shared" / "data"))
COLUMNS = [("Recall@10", "recall@10"), ("Recall@50", "recall@50"), ("Recall@100", "recall@100"),
           ("NDCG@10", "ndcg@10"), ("top-100 accuracy", "top_100_accuracy")]
# TensorFlow Recommenders tutorials on MovieLens-100K (random 80/20 split drawn by tf.data shuffle, seed 42).
PUBLISHED = [
    ("TFRS basic retrieval tutorial (published)", "~0.23"),
    ("TFRS deep retrieval tutorial, 1-3 layer towers (published)", "~0.27-0.29"),
]


@dataclasses.dataclass
class Run:
    """One training run of the benchmark: which config, which overrides, which rows of the table it gives."""

    key: str
    config: str
    overrides: dict
    model_label: str
    with_popularity: bool = True


DATASETS = {
    "movielens": {
        "folder": "movielens-100k",
        "title": "MovieLens-100K",
        "runs": [
            Run("movielens_random", "retrieval_movielens.yaml", {}, "tfrec two-tower (ours)"),
            Run("movielens_time", "retrieval_movielens.yaml", {"split.protocol": "time"}, "tfrec two-tower (ours)"),
        ],
    },
    "amazon": {
        "folder": "amazon-beauty",
        "title": "Amazon Beauty",
        "runs": [
            Run("amazon_ours", "retrieval_amazon.yaml", {}, "tfrec two-tower, user + recent items (ours)"),
            Run("amazon_mf", "retrieval_amazon_mf.yaml", {}, "MF two-tower, ids only", with_popularity=False),
        ],
    },
}


def run_one(run: Run, data_path: Path, work: Path, epochs) -> dict:
    """Trains one config (full job: split, features, fit, test report) and returns its reports and wall time."""
    from tfrec.training.retrieval_job import load_retrieval_config, train_retrieval

    overrides = {"data.path": str(data_path), "run_dir": str(work / run.key), "training.verbose": 2, **run.overrides}
    if epochs:
        overrides["training.epochs"] = epochs
    config = load_retrieval_config(REPO / "configs" / run.config, overrides)
    with Timer() as timer:
        result = train_retrieval(config)
    with open(work / run.key / "history.csv", encoding="utf-8") as f:
        history = list(csv.DictReader(f))
    monitor = [float(h[config.training.monitor]) for h in history]
    best = (max if config.training.monitor_mode == "max" else min)(range(len(monitor)), key=monitor.__getitem__)
    t, m = config.training, config.model
    reports = {r.name: r for r in result.reports}
    out = {
        "key": run.key, "config": run.config, "overrides": run.overrides, "seconds": timer.seconds,
        "epochs_run": len(history), "epochs_max": t.epochs, "best_epoch": best + 1,
        "budget": {"epochs": t.epochs, "patience": t.early_stopping_patience, "monitor": t.monitor,
                   "batch_size": t.batch_size, "optimizer": t.optimizer.name, "learning_rate": t.optimizer.learning_rate,
                   "temperature": m.temperature, "embedding_dim": m.query.embedding_dim},
        "protocol": config.split.protocol, "model": reports["two-tower"].metrics(),
        "popularity": reports["popularity"].metrics(),
        "setup": {f: getattr(reports["two-tower"], f) for f in ("n_queries", "n_users", "n_items", "exclude_seen")},
    }
    (work / f"{run.key}.json").write_text(json.dumps(out, indent=2), encoding="utf-8")
    return out


def _row(label: str, metrics: dict) -> str:
    return f"| {label} | " + " | ".join(f"{metrics[key]:.4f}" for _, key in COLUMNS) + " |"


def _header() -> list:
    return ["| model | " + " | ".join(name for name, _ in COLUMNS) + " |", "|---" + "|---:" * len(COLUMNS) + "|"]


def _setup(result: dict) -> str:
    s = result["setup"]
    seen = "earlier items excluded" if s["exclude_seen"] else "seen items not excluded"
    return (f"{s['n_queries']:,} test queries from {s['n_users']:,} users, {s['n_items']:,} candidates, {seen}; "
            + (f"stopped early after {result['epochs_run']} of at most {result['epochs_max']} epochs"
               if result["epochs_run"] < result["epochs_max"] else f"all {result['epochs_max']} epochs run")
            + f", weights of epoch {result['best_epoch']} kept; wall time {result['seconds'] / 60:.1f} min")


def movielens_part(results: dict) -> str:
    random_, time_ = results["movielens_random"], results["movielens_time"]
    blank = " | ".join("-" for _ in COLUMNS[:-1])
    lines = [
        "### MovieLens-100K",
        "",
        "Data: `movielens-100k/u.data` (100,000 ratings, 943 users, 1,682 movies), every rating an implicit positive. "
        "Config `configs/retrieval_movielens.yaml`: query tower user id, age, gender, occupation, rating time and the "
        "user's 50 previous ratings (attention pooling); candidate tower movie id, title, genres, year; temperature "
        "0.1, no log-Q correction. 5% of ratings held out of training for early stopping on full-catalog "
        "validation recall@100.",
        "",
        f"**Random 80/20 split, seed 42 (TFRS basic-retrieval protocol)**: {_setup(random_)}.",
        "",
        *_header(),
        _row(DATASETS["movielens"]["runs"][0].model_label, random_["model"]),
        _row("popularity (training counts)", random_["popularity"]),
        *[f"| {label} | {blank} | {value} |" for label, value in PUBLISHED],
        "",
        f"**Time split (newest 20% of ratings as test)**: {_setup(time_)}.",
        "",
        *_header(),
        _row(DATASETS["movielens"]["runs"][1].model_label, time_["model"]),
        _row("popularity (training counts)", time_["popularity"]),
        "",
        "Notes: the published rows are the TensorFlow Recommenders tutorials' test top-100 accuracy (factorized "
        "top-k categorical accuracy) on their own random draw of the 80/20 split (`tf.data` shuffle with seed 42), "
        "not ours (a numpy permutation with seed 42), and without our 5% early-stopping hold-out; the basic tutorial "
        "trains an id-only model for 3 epochs, the deep tutorial adds title text and timestamp features and MLP "
        "layers. Our query tower also reads each rating's recent-item history (the user's ratings before it), which "
        "the tutorial models do not. Under a random split every model also trains on ratings made after its test "
        "ratings (for ours, including later ratings whose history holds the test movie); the time split, where all "
        "test ratings are newer than all training ratings, is the deployment-like protocol. Recall@100 equals "
        "top-100 accuracy for the two-tower (one target per query, no tied scores); popularity gives many movies the same "
        "score, and top-100 accuracy counts a target tied at the cut-off as a hit (as the TFRS metric does) while "
        "recall takes the expected value under a random tie-break, so its two columns differ slightly.",
        "",
        movielens_reading(random_, time_),
    ]
    return "\n".join(lines)


def _gain(a: float, b: float) -> str:
    return f"{(a / b - 1) * 100:+.0f}%" if b else "n/a"


def movielens_reading(random_: dict, time_: dict) -> str:
    acc = "top_100_accuracy"
    ours, pop = random_["model"][acc], random_["popularity"][acc]
    t_ours, t_pop = time_["model"][acc], time_["popularity"][acc]
    published = "above" if ours > 0.29 else "not above"
    return (
        f"Reading the figures: under the TFRS protocol our two-tower reaches top-100 accuracy {ours:.3f}, "
        f"{_gain(ours, pop)} over popularity ({pop:.3f}) and {published} the published TFRS tutorials (~0.23 basic, "
        f"~0.27-0.29 deep; another random draw, see notes); it {'meets' if ours >= 0.30 else 'misses'} the target "
        f"of 0.30." + (" Popularity alone already scores above the published figures on this metric." if pop > 0.29
                       else "") +
        f" On the time split ours gives {t_ours:.3f} vs popularity {t_pop:.3f} ({_gain(t_ours, t_pop)}), Recall@10 "
        f"{time_['model']['recall@10']:.4f} vs {time_['popularity']['recall@10']:.4f} "
        f"({_gain(time_['model']['recall@10'], time_['popularity']['recall@10'])})."
    )


def amazon_reading(ours: dict, mf: dict) -> str:
    o, f, p = ours["model"], mf["model"], ours["popularity"]
    return (
        f"Reading the figures: with the same budget our two-tower (user id + recent items) gets Recall@10 "
        f"{o['recall@10']:.4f} and NDCG@10 {o['ndcg@10']:.4f}, {_gain(o['recall@10'], f['recall@10'])} and "
        f"{_gain(o['ndcg@10'], f['ndcg@10'])} against id-only MF ({f['recall@10']:.4f} / {f['ndcg@10']:.4f}); at "
        f"Recall@100 the two are {o['recall@100']:.4f} vs {f['recall@100']:.4f}. Popularity gets "
        f"{p['recall@10']:.4f} / {p['ndcg@10']:.4f}; ours has {o['recall@10'] / p['recall@10']:.1f}x and MF "
        f"{f['recall@10'] / p['recall@10']:.1f}x its Recall@10."
    )


def _budget(result: dict) -> str:
    b = result["budget"]
    return (f"at most {b['epochs']} epochs with early stopping (patience {b['patience']}) on {b['monitor']}, batch "
            f"{b['batch_size']}, {b['optimizer']} learning rate {b['learning_rate']}, temperature {b['temperature']}, "
            f"embedding size {b['embedding_dim']}")


def amazon_part(results: dict) -> str:
    ours, mf = results["amazon_ours"], results["amazon_mf"]
    lines = [
        "### Amazon Beauty",
        "",
        "Data: `amazon-beauty/beauty.txt` (BERT4Rec preprocessing: 353,962 interactions, 40,226 users, 54,542 items, "
        "ids only), every line a positive. Leave-last-out per user: each user's last item is the test target; 10% "
        "of users also give their second-to-last item to validation (early stopping). Each target is ranked "
        "against the whole catalog with the user's training items excluded.",
        "",
        f"**Leave-last-out**: ours {_setup(ours)}; MF {_setup(mf)}.",
        "",
        *_header(),
        _row(DATASETS["amazon"]["runs"][0].model_label, ours["model"]),
        _row(DATASETS["amazon"]["runs"][1].model_label, mf["model"]),
        _row("popularity (training counts)", ours["popularity"]),
        "",
        "Notes: ours = `configs/retrieval_amazon.yaml` (query tower: user id + the user's recent items, attention "
        "pooling; candidate tower: item id); MF = `configs/retrieval_amazon_mf.yaml` (user-id embedding vs item-id "
        "embedding, linear output, no history). Same budget: "
        + (f"both {_budget(ours)}" if ours["budget"] == mf["budget"] else f"ours {_budget(ours)}; MF {_budget(mf)}")
        + ". The file has no real timestamps (they are synthesised from line order, per user), so a time "
        "split is meaningless for this data and is not reported. Published Beauty figures (BERT4Rec, SASRec) rank "
        "the target against 100 sampled negatives and use another preprocessing, so they are not comparable with "
        "these full-catalog figures.",
        "",
        amazon_reading(ours, mf),
    ]
    return "\n".join(lines)


PARTS = {"movielens": movielens_part, "amazon": amazon_part}


def write_part(name: str, body: str, footer: str) -> None:
    """Rewrites this data set's part of the section, creating the section (parts in DATASETS order) when needed."""
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    part = f"{SECTION}_{name}"
    block = f"{body}\n\n{footer}"
    if f"<!-- bench:{part} -->" in text:
        write_section(part, block)
        return
    start, end = f"<!-- bench:{SECTION} -->", f"<!-- /bench:{SECTION} -->"
    existing = text[text.index(start) + len(start): text.index(end)] if start in text and end in text else ""
    pieces = ["## Two-tower retrieval quality on public data\n\nEvery metric ranks each test target against the whole "
              "catalog (no sampled negatives), for our model and the baselines alike. Each data set's part is written "
              "by its own run of `benchmarks/retrieval_quality.py` (`--only NAME` rewrites just that part)."]
    for other in DATASETS:
        tag = f"{SECTION}_{other}"
        if other == name:
            pieces.append(f"<!-- bench:{tag} -->\n{block}\n<!-- /bench:{tag} -->")
        elif f"<!-- bench:{tag} -->" in existing:
            s, e = existing.index(f"<!-- bench:{tag} -->"), existing.index(f"<!-- /bench:{tag} -->") + len(f"<!-- /bench:{tag} -->")
            pieces.append(existing[s:e])
    write_section(SECTION, "\n\n".join(pieces))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=list(DATASETS))
    parser.add_argument("--epochs", type=int, help="training.epochs for every run (default: each config's)")
    parser.add_argument("--work-dir", type=Path, help="run directories (default: a new temp dir)")
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT, help="folder holding movielens-100k/, amazon-beauty/")
    parser.add_argument("--no-write", action="store_true", help="print, do not update docs/benchmarks.md")
    args = parser.parse_args()

    import tfrec  # noqa: F401 - legacy Keras before TensorFlow

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="tfrec-retrieval-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"run directories under {work}", flush=True)
    done = 0
    for name in [args.only] if args.only else list(DATASETS):
        dataset = DATASETS[name]
        data_path = args.data_root / dataset["folder"]
        if not data_path.is_dir():
            print(f"skipping {dataset['title']}: {data_path} not found (the data is research-only and read in place, "
                  f"never copied; pass --data-root or set TFREC_SHARED_DATA)", flush=True)
            continue
        load = os.getloadavg()[0]
        with Timer() as timer:
            results = {}
            for run in dataset["runs"]:
                print(f"== {run.key}: {run.config} {run.overrides or ''}", flush=True)
                results[run.key] = run_one(run, data_path, work, args.epochs)
        body = PARTS[name](results)
        footer = (f"Command: `{command_line()}` (revision {git_revision()}); data read from `{data_path}`; wall time "
                  f"{timer.seconds / 60:.1f} min for this data set's runs. Machine: {machine()}; shared with other work "
                  f"(load average {load:.1f} at the start on {os.cpu_count()} cores).")
        print(body + "\n\n" + footer, flush=True)
        if not args.no_write:
            write_part(name, body, footer)
        done += 1
    if not done:
        print("no data set found; nothing measured", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
