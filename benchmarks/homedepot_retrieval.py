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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from benchmarks.common import Timer, command_line, git_revision, machine, write_section  # noqa: E402

DATA = Path(os.environ.get("TFREC_HOMEDEPOT_DIR", "/work/shared/data/homedepot-search"))
TEST_FRACTION, SPLIT_SEED, VALIDATION_FRACTION, VALIDATION_SEED = 0.2, 0, 0.2, 1
K = 100  # every channel returns its top 100 (MRR@100; fusion of two top-100 lists, as the README's RRF row)
MINED = 20  # unjudged top lexical hits of a train query that may serve as its extra negatives
PUBLISHED = {"BM25": (0.416, 0.366), "all-MiniLM-L6-v2 zero-shot": (0.365, 0.348), "RRF of the two (k = 60)": (0.433, 0.391)}
TARGET = 1.10 * PUBLISHED["RRF of the two (k = 60)"][0]


def config(epochs=None):
    from tfrec.retrieval.text_pairs import TextPairsConfig

    chosen = TextPairsConfig(
        embedding_dim=256, output_dim=256, shared_tower=True, temperature=0.05, pseudo_queries=1,
        negative_below=2.0, optimizer="adagrad", learning_rate=0.1, epochs=5, batch_size=256, seed=0,
    )
    return chosen if epochs is None else dataclasses.replace(chosen, epochs=epochs)


def metrics(ranked, relevant, queries):
    from tfrec.training.metrics import mrr, recall_at_k

    ids = [[c.item_id for c in row] for row in ranked]
    sets = [relevant[q] for q in queries]
    return {"recall@10": recall_at_k(ids, sets, 10), "mrr@100": mrr(ids, sets, K)}


def train_channel(search, queries, lexical, cfg, titles):
    """Towers trained on the judgments of `queries`, as a channel over the whole catalog."""
    from tfrec.retrieval.text_pairs import DenseTextChannel, train_text_two_tower, training_pairs

    judged = search.subset(queries)
    mined = {q: [c.item_id for c in row] for q, row in zip(judged.queries, lexical.search(judged.queries, MINED))}
    pairs = training_pairs(judged.query, judged.item_id, judged.relevance, titles, cfg.min_relevance,
                           cfg.negative_below, mined)
    with tempfile.TemporaryDirectory() as tmp, Timer() as train:
        model = train_text_two_tower(pairs, search.catalog, cfg, directory=tmp)
    with Timer() as index:
        channel = DenseTextChannel(model, search.catalog)
    return channel, {"pairs": len(pairs["query"]), "train_s": train.seconds, "embed_s": index.seconds}


def run(data: Path, epochs=None):
    from tfrec.data.public.homedepot import RELEVANT, load_homedepot, query_split
    from tfrec.retrieval import LexicalConfig, LexicalIndex, fuse_batch
    from tfrec.retrieval.fusion import fit_fusion_weights

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

    with Timer() as total:
        # 1. Towers on the fit queries; fusion weights and k on the validation queries.
        channel, out["fit_run"] = train_channel(search, fit_q, lexical, cfg, titles)
        val_lists = {"lexical": lexical.search(val_q, K), "dense": channel.search(val_q, K)}
        with Timer() as fitting:
            fusion = fit_fusion_weights(val_lists, [relevant[q] for q in val_q], metric="recall@10", limit=K)
        out["fusion"], out["fusion_s"] = fusion, fitting.seconds
        out["validation"] = {name: metrics(lists, relevant, val_q) for name, lists in val_lists.items()}
        out["validation"]["fused"] = metrics(fusion.fuse(val_lists, limit=K), relevant, val_q)
        # 2. Towers on every train query, evaluated on the test queries.
        channel, out["final_run"] = train_channel(search, train_q, lexical, cfg, titles)
        with Timer() as searching:
            lists = {"lexical": lexical.search(test_q, K), "dense": channel.search(test_q, K),
                     "bm25": bm25.search(test_q, K)}
        out["search_s"] = searching.seconds
    rows = {
        "BM25 (tfrec LexicalIndex, no stemming)": lists["bm25"],
        "lexical (tfrec LexicalIndex, stemming)": lists["lexical"],
        "trained two-tower (text)": lists["dense"],
        "RRF lexical + two-tower (k = 60, equal weights)": fuse_batch([lists["lexical"], lists["dense"]], k=60,
                                                                       limit=K),
        "learned-weight RRF lexical + two-tower": fusion.fuse({n: lists[n] for n in ("lexical", "dense")}, limit=K),
        "RRF BM25 (no stemming) + two-tower (k = 60)": fuse_batch([lists["bm25"], lists["dense"]], k=60, limit=K),
    }
    out["test"] = {name: metrics(ranked, relevant, test_q) for name, ranked in rows.items()}
    out["all_queries"] = {name: metrics(index.search(search.queries, K), relevant, search.queries)
                          for name, index in (("BM25 (tfrec LexicalIndex, no stemming)", bm25),
                                              ("lexical (tfrec LexicalIndex, stemming)", lexical))}
    out["total_s"] = total.seconds
    return out


def report(r) -> str:
    n, cfg, fusion = r["n"], r["config"], r["fusion"]
    weights = ", ".join(f"{name} {w:g}" for name, w in fusion.weights.items())
    fused = r["test"]["learned-weight RRF lexical + two-tower"]["recall@10"]
    lines = [
        "## Home Depot search: lexical, trained two-tower and fused retrieval (held-out queries, full catalog)",
        "",
        f"Command: `{command_line()}` (git {git_revision()}). Machine: {machine()}.  ",
        f"Data: `products.csv` ({r['products']:,} titles, every one a candidate) and `judgments.csv` of the Home Depot "
        f"search relevance data (relevant = relevance >= 2.5; Recall@10 and MRR@100 over queries with a relevant "
        f"product, as in the lexical section).  ",
        f"Split by query text (`tfrec.data.public.homedepot.query_split`): {n['train'][0]:,} train queries / "
        f"{n['test'][0]:,} test queries ({n['test'][1]:,} with a relevant product), seed {SPLIT_SEED}. Choices were "
        f"made on a validation split of the train queries only ({n['validation'][0]:,} queries, seed "
        f"{VALIDATION_SEED}; towers trained on the other {n['fit'][0]:,}); the test queries were used once, here.",
        "",
        f"**Held-out test queries ({n['test'][1]:,} scored)**: every channel on the same queries.",
        "",
        "| channel | Recall@10 | MRR@100 |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {m['recall@10']:.3f} | {m['mrr@100']:.3f} |" for name, m in r["test"].items()]
    lines += [
        "",
        f"**All {n['all'][0]:,} queries ({n['all'][1]:,} scored)**, the published baselines' setting (no trained "
        "channel here: the towers have seen 80% of these queries).",
        "",
        "| channel | Recall@10 | MRR@100 |",
        "|---|---:|---:|",
    ]
    lines += [f"| published {name} (data set README) | {rec:.3f} | {m:.3f} |" for name, (rec, m) in PUBLISHED.items()]
    lines += [f"| {name} | {m['recall@10']:.3f} | {m['mrr@100']:.3f} |" for name, m in r["all_queries"].items()]
    verdict = "meets" if fused >= TARGET else "misses"
    lines += [
        "",
        f"Target: the trained, fused channel at >= 1.10 x the best published Recall@10 (RRF, 0.433) = {TARGET:.3f}. "
        f"Learned-weight fusion on the test queries: {fused:.3f}, which {verdict} it. (The published figures are on "
        f"all queries, ours on the {n['test'][0]:,} held-out ones; on the same test queries the tfrec BM25 row is "
        "the comparable stand-in for the published BM25.)",
        "",
        f"Towers (`tfrec.retrieval.text_pairs`): query and title as hashed words + character trigrams "
        f"({cfg.hash_bins:,} bins), one shared {cfg.embedding_dim}-d token table and projection "
        f"(shared tower), mean pooling, L2-normalised {cfg.output_dim}-d output; in-batch softmax, temperature "
        f"{cfg.temperature:g}, log-Q correction, a query's other positives masked; positives = pairs judged >= "
        f"{cfg.min_relevance}; one extra negative per pair drawn from its query's pairs judged < "
        f"{cfg.negative_below} and its unjudged top-{MINED} lexical hits; {cfg.pseudo_queries} pseudo-query (random "
        f"title words) per product and epoch; Adagrad lr {cfg.learning_rate:g}, batch {cfg.batch_size}, "
        f"{cfg.epochs} epochs.",
        f"Fusion weights fitted on the validation queries (grid search, Recall@10): {weights}, k = {fusion.k:g} "
        f"(validation Recall@10: lexical {r['validation']['lexical']['recall@10']:.3f}, two-tower "
        f"{r['validation']['dense']['recall@10']:.3f}, fused {r['validation']['fused']['recall@10']:.3f}).",
        f"Time: towers trained in {r['fit_run']['train_s']:.0f} s ({r['fit_run']['pairs']:,} pairs, validation "
        f"run) and {r['final_run']['train_s']:.0f} s ({r['final_run']['pairs']:,} pairs, final run); catalog "
        f"embedded in {r['final_run']['embed_s']:.0f} s; fusion fit {r['fusion_s']:.0f} s; whole benchmark "
        f"{r['total_s'] / 60:.1f} min.",
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
