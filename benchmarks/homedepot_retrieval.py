"""Home Depot product search: lexical, trained two-tower and fused retrieval on held-out queries, full catalog.

Protocol: the 5,988 judged queries are split by query text, 80% train / 20% test (seed 0). The train queries are
split again (20% validation, seed 1): the towers are first trained on the other 80% and the fusion weights and k
are fitted on the validation queries' judgments (a model's rankings of its own training queries are too good to fit
weights on); then the towers are retrained on every train query and evaluated, alone and fused, on the test queries,
which nothing was tuned on. Every one of the 54,667 titles is a candidate. Relevant = relevance >= 2.5; Recall@10 and
MRR@100 as in `benchmarks/lexical_homedepot.py`. The published figures are on all 5,988 queries; the lexical channels
are also reported on all queries, to tie this run to them.

Usage: python benchmarks/homedepot_retrieval.py [--data DIR] [--epochs N] [--no-write]
The data is research-only and never copied into the repository; without it the script exits cleanly.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from benchmarks.common import Timer, command_line, git_revision, machine, write_section  # noqa: E402

DATA = Path(os.environ.get("TFREC_HOMEDEPOT_DIR", "/work/shared/data/homedepot-search"))
TEST_FRACTION, SPLIT_SEED, VALIDATION_FRACTION, VALIDATION_SEED = 0.2, 0, 0.2, 1
K = 100  # every channel returns its top 100 (MRR@100; fusion of two top-100 lists, as the README's RRF row)
PUBLISHED = {"BM25": (0.416, 0.366), "all-MiniLM-L6-v2 zero-shot": (0.365, 0.348), "RRF of the two (k = 60)": (0.433, 0.391)}
TARGET = 1.10 * PUBLISHED["RRF of the two (k = 60)"][0]
FUSED = "learned score fusion lexical + two-tower"  # the headline fusion, chosen on the validation queries


def config(epochs=None):
    """The towers' settings: `TextPairsConfig`'s defaults, chosen on the validation queries (see docs)."""
    from tfrec.retrieval.text_pairs import TextPairsConfig

    chosen = TextPairsConfig()
    return chosen if epochs is None else dataclasses.replace(chosen, epochs=epochs)


def metrics(ranked, relevant, queries):
    from tfrec.training.metrics import mrr, recall_at_k

    ids = [[c.item_id for c in row] for row in ranked]
    sets = [relevant[q] for q in queries]
    return {"recall@10": recall_at_k(ids, sets, 10), "mrr@100": mrr(ids, sets, K)}


def train_channel(search, queries, cfg, titles):
    """Towers trained on the judgments of `queries`, as a channel over the whole catalog."""
    from tfrec.retrieval.text_pairs import DenseTextChannel, train_text_two_tower, training_pairs

    judged = search.subset(queries)
    pairs = training_pairs(judged.query, judged.item_id, judged.relevance, titles, cfg.min_relevance,
                           cfg.negative_below)
    with tempfile.TemporaryDirectory() as tmp, Timer() as train:
        model = train_text_two_tower(pairs, search.catalog, cfg, directory=tmp)
    with Timer() as index:
        channel = DenseTextChannel(model, search.catalog)
    return channel, {"pairs": len(pairs["query"]), "train_s": train.seconds, "embed_s": index.seconds}


def run(data: Path, epochs=None):
    from tfrec.data.public.homedepot import RELEVANT, load_homedepot, query_split
    from tfrec.retrieval import LexicalConfig, LexicalIndex, fuse_batch
    from tfrec.retrieval.fusion import fit_fusion_weights, fit_score_fusion

    start = time.perf_counter()
    cfg = config(epochs)
    search = load_homedepot(data)
    relevant = search.relevant(RELEVANT)
    titles = dict(zip(search.catalog["item_id"].tolist(), search.catalog["title"].tolist()))
    train_q, test_q = query_split(search.queries, TEST_FRACTION, SPLIT_SEED)
    fit_q, val_q = query_split(train_q, VALIDATION_FRACTION, VALIDATION_SEED)
    lexical = LexicalIndex(search.catalog, LexicalConfig(stemming=True))
    bm25 = LexicalIndex(search.catalog, LexicalConfig(stemming=False))
    out = {"n": {name: (len(qs), sum(1 for q in qs if relevant[q])) for name, qs in
                 (("all", search.queries), ("train", train_q), ("fit", fit_q), ("validation", val_q),
                  ("test", test_q))},
           "products": len(search.catalog), "config": cfg}

    # 1. Towers on the fit queries; fusion weights and the score model on the validation queries.
    channel, out["fit_run"] = train_channel(search, fit_q, cfg, titles)
    val_lists = {"lexical": lexical.search(val_q, K), "dense": channel.search(val_q, K)}
    val_sets = [relevant[q] for q in val_q]
    with Timer() as fitting:
        fusion = fit_fusion_weights(val_lists, val_sets, metric="recall@10", limit=K)
        scorer = fit_score_fusion(val_lists, val_sets, depth=K)
    out["fusion"], out["scorer"], out["fusion_s"] = fusion, scorer, fitting.seconds
    out["validation"] = {name: metrics(lists, relevant, val_q) for name, lists in val_lists.items()}
    out["validation"]["weighted RRF"] = metrics(fusion.fuse(val_lists, limit=K), relevant, val_q)
    out["validation"]["score fusion"] = metrics(scorer.fuse(val_lists, limit=K), relevant, val_q)
    print(f"validation: {out['validation']}", flush=True)

    # 2. Towers retrained on every train query; every channel and fusion on the test queries.
    channel, out["final_run"] = train_channel(search, train_q, cfg, titles)
    with Timer() as searching:
        lists = {"lexical": lexical.search(test_q, K), "dense": channel.search(test_q, K),
                 "bm25": bm25.search(test_q, K)}
    out["search_s"] = searching.seconds
    pair = {n: lists[n] for n in ("lexical", "dense")}
    rows = {
        "BM25 (tfrec LexicalIndex, no stemming)": lists["bm25"],
        "lexical (tfrec LexicalIndex, stemming)": lists["lexical"],
        "trained two-tower (text)": lists["dense"],
        "RRF lexical + two-tower (k = 60, equal weights)": fuse_batch([lists["lexical"], lists["dense"]], k=60,
                                                                       limit=K),
        "learned-weight RRF lexical + two-tower": fusion.fuse(pair, limit=K),
        FUSED: scorer.fuse(pair, limit=K),
        "RRF BM25 (no stemming) + two-tower (k = 60)": fuse_batch([lists["bm25"], lists["dense"]], k=60, limit=K),
    }
    out["test"] = {name: metrics(ranked, relevant, test_q) for name, ranked in rows.items()}
    out["all_queries"] = {name: metrics(index.search(search.queries, K), relevant, search.queries)
                          for name, index in (("BM25 (tfrec LexicalIndex, no stemming)", bm25),
                                              ("lexical (tfrec LexicalIndex, stemming)", lexical))}
    out["total_s"] = time.perf_counter() - start
    return out


def report(r) -> str:
    n, cfg, fusion = r["n"], r["config"], r["fusion"]
    weights = ", ".join(f"{name} {w:g}" for name, w in fusion.weights.items())
    best_name, best = max(((name, m["recall@10"]) for name, m in r["test"].items() if "two-tower" in name
                           and "+" in name), key=lambda kv: kv[1])
    chosen = r["test"][FUSED]["recall@10"]
    val = r["validation"]
    lines = [
        "## Home Depot search: lexical, trained two-tower and fused retrieval (held-out queries, full catalog)",
        "",
        f"Command: `{command_line()}` (git {git_revision()}).  ",
        f"Machine: {machine()}.  ",
        f"Data: `products.csv` ({r['products']:,} titles, every one a candidate for every query) and `judgments.csv` "
        f"of the Home Depot search relevance data; relevant = relevance >= 2.5; Recall@10 and MRR@100 over queries "
        f"with a relevant product, as in the lexical section.  ",
        f"Split by query text (`tfrec.data.public.homedepot.query_split`, seed {SPLIT_SEED}): {n['train'][0]:,} "
        f"train queries, {n['test'][0]:,} test queries ({n['test'][1]:,} with a relevant product). Every choice "
        f"(tower settings, fusion weights, which fusion is the headline) was made on a validation split of the train "
        f"queries ({n['validation'][0]:,} queries, seed {VALIDATION_SEED}, towers trained on the other "
        f"{n['fit'][0]:,}); the test queries were used once, for this table. The final towers are retrained on all "
        f"train queries.",
        "",
        f"**Held-out test queries** - every channel on the same {n['test'][1]:,} queries:",
        "",
        "| channel | Recall@10 | MRR@100 |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {m['recall@10']:.3f} | {m['mrr@100']:.3f} |" for name, m in r["test"].items()]
    lines += [
        "",
        f"**All {n['all'][0]:,} queries** ({n['all'][1]:,} with a relevant product), the setting of the published "
        "baselines (no trained channel here: the towers have seen 80% of these queries):",
        "",
        "| channel | Recall@10 | MRR@100 |",
        "|---|---:|---:|",
    ]
    lines += [f"| published {name} (data set README) | {rec:.3f} | {m:.3f} |" for name, (rec, m) in PUBLISHED.items()]
    lines += [f"| {name} | {m['recall@10']:.3f} | {m['mrr@100']:.3f} |" for name, m in r["all_queries"].items()]
    verdict = "meets" if chosen >= TARGET else "misses"
    lines += [
        "",
        f"Target (issue): the trained, fused channel at >= 1.10 x the best published Recall@10 (RRF, 0.433) = "
        f"{TARGET:.3f}. The fusion chosen on validation ({FUSED}) reaches {chosen:.3f} on the test queries and "
        f"{verdict} it; the best fusion row on test is {best_name} ({best:.3f}). Caveat: the published figures are "
        f"on all queries, ours on the held-out fifth; on these same queries tfrec's BM25 (no stemming) row stands in "
        f"for the published BM25 (it matches it exactly on all queries).",
        "",
        f"Towers (`tfrec.retrieval.text_pairs`, `TextPairsConfig` defaults): query and title as hashed words + "
        f"character trigrams ({cfg.hash_bins:,} bins), one shared {cfg.embedding_dim}-d token table and projection "
        f"(`shared='{cfg.shared}'`), mean pooling, L2-normalised output; in-batch softmax (temperature "
        f"{cfg.temperature:g}, log-Q correction, a query's other positives masked); positives = pairs judged >= "
        f"{cfg.min_relevance:g} ({r['final_run']['pairs']:,} on the train queries); one extra negative per pair from "
        f"its query's pairs judged < {cfg.negative_below:g}; {cfg.pseudo_queries:g} pseudo-query (random title words) "
        f"per product and epoch; Adagrad lr {cfg.learning_rate:g}, batch {cfg.batch_size}, {cfg.epochs} epochs.  ",
        f"Fusion fitted on the validation queries: RRF weights {weights}, k = {fusion.k:g} (grid search on "
        f"Recall@10); score fusion = logistic regression over each candidate's rank and min-max scaled score in each "
        f"channel. Validation Recall@10 / MRR@100: lexical {val['lexical']['recall@10']:.3f} / "
        f"{val['lexical']['mrr@100']:.3f}, two-tower {val['dense']['recall@10']:.3f} / {val['dense']['mrr@100']:.3f}, "
        f"weighted RRF {val['weighted RRF']['recall@10']:.3f} / {val['weighted RRF']['mrr@100']:.3f}, score fusion "
        f"{val['score fusion']['recall@10']:.3f} / {val['score fusion']['mrr@100']:.3f} (in-sample for the fusions).  ",
        f"Time: towers trained in {r['fit_run']['train_s']:.0f} s (validation run) and "
        f"{r['final_run']['train_s']:.0f} s (final run); {r['products']:,} titles embedded in "
        f"{r['final_run']['embed_s']:.0f} s; fusion fitting {r['fusion_s']:.0f} s; test-query search (three channels) "
        f"{r['search_s']:.0f} s; whole benchmark {r['total_s'] / 60:.1f} min.",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder with products.csv and judgments.csv")
    parser.add_argument("--epochs", type=int, default=None, help="override the towers' epochs (quick runs)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    if not ((args.data / "products.csv").is_file() and (args.data / "judgments.csv").is_file()):
        print(f"homedepot_retrieval: skipped, no products.csv/judgments.csv in {args.data}")
        return 0
    body = report(run(args.data, args.epochs))
    print(body)
    if not args.no_write:
        write_section("homedepot_retrieval", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
