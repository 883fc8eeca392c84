"""Full-catalog lexical retrieval on real Home Depot queries, against the data set's published BM25 baseline.

Every one of the 54,667 product titles is a candidate for every judged query, as in the data set's README, so the
figures are comparable with its BM25 row. Relevant = relevance >= 2.5. Recall@10 is the mean, over queries with at
least one relevant product, of |top 10 ∩ relevant| / |relevant|; MRR@100 is the mean reciprocal rank of the first
relevant product in the top 100 (0 when none is) over the same queries (`tfrec.training.metrics`).

Usage: python benchmarks/lexical_homedepot.py [--data DIR] [--no-write]
The data is research-only and never copied into the repository; without it the script exits cleanly.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import Timer, command_line, git_revision, machine, write_section  # noqa: E402
from tfrec.data.public.homedepot import RELEVANT, load_homedepot  # noqa: E402  (RELEVANT = 2.5)

DATA = Path(os.environ.get("TFREC_HOMEDEPOT_DIR", "/work/shared/data/homedepot-search"))
PUBLISHED_BM25 = {"recall@10": 0.416, "mrr@100": 0.366}  # README: k1 1.2, b 0.75, lower-cased alphanumeric tokens


def load(data: Path):
    """Catalog table of every product title, and query -> set of relevant product ids for every judged query."""
    search = load_homedepot(data)
    return search.catalog, search.relevant(RELEVANT)


def run(data: Path, stemming: bool):
    from tfrec.retrieval import LexicalConfig, LexicalIndex
    from tfrec.training.metrics import mrr, recall_at_k

    catalog, relevant = load(data)
    queries = list(relevant)
    with Timer() as build:
        index = LexicalIndex(catalog, LexicalConfig(stemming=stemming))
    with Timer() as search:
        results = index.search(queries, k=100)
    ranked = [[c.item_id for c in r] for r in results]
    sets = [relevant[q] for q in queries]
    return {
        "stemming": stemming, "products": len(index), "queries": len(queries),
        "scored_queries": sum(1 for s in sets if s),
        "recall@10": recall_at_k(ranked, sets, 10), "mrr@100": mrr(ranked, sets, 100),
        "build_s": build.seconds, "search_s": search.seconds,
    }


def report(rows) -> str:
    first = rows[0]
    lines = [
        "## Lexical retrieval on Home Depot search (full catalog)",
        "",
        f"{first['queries']:,} judged queries of `judgments.csv` ({first['scored_queries']:,} with a relevant "
        f"product) against all {first['products']:,} titles of `products.csv`; relevant = relevance >= {RELEVANT}. "
        "Recall@10 = mean over queries with a relevant product of |top 10 ∩ relevant| / |relevant|; MRR@100 = mean "
        "reciprocal rank of the first relevant product in the top 100. Index: tantivy, title field only (the data "
        "has no brand/category columns), simple tokenizer + lower-case + ASCII folding (+ English stemming).",
        "",
        "| method | Recall@10 | MRR@100 | index build (s) | search all queries (s) |",
        "|---|---:|---:|---:|---:|",
        f"| published BM25 (data set README) | {PUBLISHED_BM25['recall@10']:.3f} | "
        f"{PUBLISHED_BM25['mrr@100']:.3f} | - | - |",
    ]
    for r in rows:
        name = "tfrec LexicalIndex" + (" (stemming)" if r["stemming"] else " (no stemming)")
        lines.append(f"| {name} | {r['recall@10']:.3f} | {r['mrr@100']:.3f} | {r['build_s']:.1f} | "
                     f"{r['search_s']:.1f} |")
    lines += ["", f"Machine: {machine()}. Revision {git_revision()}; `{command_line()}`."]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder with products.csv and judgments.csv")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    if not ((args.data / "products.csv").is_file() and (args.data / "judgments.csv").is_file()):
        print(f"lexical_homedepot: skipped, no products.csv/judgments.csv in {args.data}")
        return 0
    rows = [run(args.data, stemming=True), run(args.data, stemming=False)]
    body = report(rows)
    print(body)
    if not args.no_write:
        write_section("lexical_homedepot", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
