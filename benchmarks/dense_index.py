"""Dense index latency and recall: exact brute force against the faiss HNSW and IVF-Flat indexes, same run, same data.

Synthetic clustered embeddings (d=64, 1000 Gaussian clusters, queries drawn from the same clusters) stand in for
two-tower item vectors. For each catalog size: top-100 latency for one query (median over single-query calls) and
for a batch of 256 queries (median over repetitions), each ANN latency as a ratio of brute force's; ANN recall@10
against brute force's exact top 10 over 1000 queries; build time and resident-memory growth as context.

Usage: python benchmarks/dense_index.py [--sizes 100000 1000000] [--single N] [--repeats N] [--no-write]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import Timer, command_line, git_revision, machine, write_section  # noqa: E402

DIM, CLUSTERS, K, BATCH, RECALL_QUERIES = 64, 1000, 100, 256, 1000


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="utf-8") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def data(n: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(CLUSTERS, DIM)).astype(np.float32)

    def draw(m):
        return centers[rng.integers(0, CLUSTERS, m)] + 0.5 * rng.normal(size=(m, DIM)).astype(np.float32)

    return [f"item{i}" for i in range(n)], draw(n), draw(RECALL_QUERIES + BATCH + 200)


def measure(index, queries, single: int, repeats: int):
    """Median seconds of a single-query top-K call and of a 256-query batch call."""
    import numpy as np

    index.search(queries[:BATCH], K)  # warm-up: page in the vectors, start thread pools
    singles = []
    for q in queries[BATCH:BATCH + single]:
        start = time.perf_counter()
        index.search(q[None, :], K)
        singles.append(time.perf_counter() - start)
    batches = []
    for _ in range(repeats):
        start = time.perf_counter()
        index.search(queries[:BATCH], K)
        batches.append(time.perf_counter() - start)
    return float(np.median(singles)), float(np.median(batches))


def run_size(n: int, single: int, repeats: int):
    import numpy as np

    from tfrec.retrieval.dense import BruteForceIndex
    from tfrec.retrieval.dense_ann import FaissIndex

    ids, vectors, queries = data(n)
    recall_queries = queries[-RECALL_QUERIES:]
    rows = []
    exact = None
    for label, make in (("brute force (exact)", BruteForceIndex),
                        ("faiss HNSW (M=32, ef_search=256)", lambda: FaissIndex(kind="hnsw")),
                        ("faiss IVF-Flat (nlist=4*sqrt(n), nprobe=32)", lambda: FaissIndex(kind="ivf_flat"))):
        gc.collect()
        before = rss_bytes()
        with Timer() as build:
            index = make().build(ids, vectors)
        grown = rss_bytes() - before
        one, batch = measure(index, queries, single, repeats)
        found, _ = index.search(recall_queries, 10)
        if exact is None:
            exact, recall = found, 1.0
        else:
            recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact)]))
        rows.append({"index": label, "build_s": build.seconds, "mem_mb": grown / 2**20, "one_ms": one * 1e3,
                     "batch_ms": batch * 1e3, "recall": recall})
        print(n, rows[-1], flush=True)
        del index
    return rows


def table(n: int, rows) -> str:
    base = rows[0]
    lines = [f"**{n:,} items**", "",
             "| index | top-100, 1 query | vs brute force | top-100, 256 queries | vs brute force | recall@10 | "
             "build | memory |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        one, batch = (f"{base[key] / r[key]:.1f}x faster" if r is not base else "baseline"
                      for key in ("one_ms", "batch_ms"))
        lines.append(f"| {r['index']} | {r['one_ms']:.2f} ms | {one} | "
                     f"{r['batch_ms']:.1f} ms | {batch} | {r['recall']:.3f} | "
                     f"{r['build_s']:.1f} s | {r['mem_mb']:.0f} MB |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--single", type=int, default=50, help="single-query calls per index")
    parser.add_argument("--repeats", type=int, default=5, help="256-query batch calls per index")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    import tfrec  # noqa: F401 - environment set-up before numpy/faiss work

    with Timer() as total:
        results = {n: run_size(n, args.single, args.repeats) for n in args.sizes}
    body = "\n\n".join([
        "## Dense indexes: brute force vs faiss HNSW / IVF-Flat",
        f"Synthetic clustered vectors, d={DIM}, {CLUSTERS} clusters, inner product, top-{K}. Latency is the median "
        f"of {args.single} single-query calls and of {args.repeats} calls with a {BATCH}-query batch; ratios are "
        f"brute force time / index time in the same run. Recall@10 is against brute force's exact top 10 over "
        f"{RECALL_QUERIES} queries. Memory is resident-set growth while building (context only; it includes the "
        f"index's own float32 copy of the vectors, kept for rebuilds and saving).",
        *[table(n, rows) for n, rows in results.items()],
        f"Machine: {machine()}. Revision {git_revision()}; `{command_line()}`; total run {total.seconds:.0f} s.",
    ])
    print(body)
    if not args.no_write:
        write_section("dense_index", body)


if __name__ == "__main__":
    main()
