"""Retrieval speed: two-tower training throughput, and top-100 retrieval latency of exact and approximate indexes.

(a) Training examples/s of the full two-tower of `configs/retrieval.yaml` (user, context, recent items with attention
pooling, search text, item content) on synthetic data, against the id-only matrix-factorisation two-tower (user-id
embedding vs item-id embedding, no MLP) on the same TFRecords, batch size and optimizer, measured in the same run.
Each model runs the job's own input pipeline (TFRecord shards, cached) and Keras train function: `--warmup` steps
(tracing, cache fill), then `--steps` timed steps; the models alternate for `--rounds` rounds and the fastest round
of each is kept (the machine is shared, so the slowest rounds measure other work).

(b) Top-100 latency over synthetic clustered item vectors (d=64, 1000 Gaussian clusters, queries from the same
clusters) for each catalog size, one query (fastest of the single-query calls, BLAS/OpenMP on one thread) and a
batch of 256 queries (fastest of the repetitions), the built indexes taking turns round by round: numpy brute force
(`tfrec.retrieval.dense.BruteForceIndex`, exact), the in-graph TF brute force the retrieval export serves
(`tfrs.layers.factorized_top_k.BruteForce`, matmul + top_k in a tf.function), and faiss HNSW and IVF-Flat
(`tfrec.retrieval.dense_ann.FaissIndex`). Ratios are numpy brute force time / index time in the same run; recall@10
is against numpy brute force's exact top 10 over 1000 queries.

Usage: python benchmarks/retrieval_speed.py [--only training|latency] [--preset small] [--steps N] [--warmup N]
                                            [--sizes 100000 1000000] [--single N] [--repeats N] [--no-write]
Section `retrieval_speed` of docs/benchmarks.md holds both parts, so it is rewritten only by a full run (without
--only or --no-write); partial runs print their tables.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPO, Timer, command_line, git_revision, machine, write_section  # noqa: E402

DIM, CLUSTERS, K, BATCH, RECALL_QUERIES = 64, 1000, 100, 256, 1000


# ------------------------------------------------------------------------------------------------ (a) training
def _mf_model(model):
    """The id-only matrix-factorisation two-tower with the full model's embedding size, output size and task."""
    from tfrec.models.two_tower import TowerConfig

    def tower(config, feature):
        return TowerConfig(features=[feature], embedding_dim=config.embedding_dim, hidden=[], output_dim=config.output_dim)

    return dataclasses.replace(model, query=tower(model.query, "user_id"), candidate=tower(model.candidate, model.candidate_id))


def training_throughput(preset: str, batch_size: int, warmup: int, steps: int, rounds: int, work: str) -> dict:
    """Examples/s of the full two-tower and of MF on the same synthetic training positives (module docstring)."""
    import numpy as np
    import tensorflow as tf

    from tfrec.data.retrieval_examples import positive_examples, sampling_probability, split_positives
    from tfrec.data.sources import load_source
    from tfrec.data.tfrecord import write_tfrecords
    from tfrec.features.stats import fit_features
    from tfrec.models.two_tower import SAMPLING_PROBABILITY, build_two_tower_model
    from tfrec.training.retrieval_job import load_retrieval_config, make_datasets
    from tfrec.training.trainer import configure_mixed_precision, make_optimizer

    config = load_retrieval_config(REPO / "configs" / "retrieval.yaml",
                                   {"data.preset": preset, "training.batch_size": batch_size})
    with Timer() as prep:
        loaded = load_source(config.data)
        columns = positive_examples(loaded.dataset, config.examples.event_types, config.examples.history_length)
        rows = split_positives(config.split, columns)["train"]
        spec = config.feature_spec
        fitted = fit_features(spec, {n: columns[n][rows] for n in spec.names}, os.path.join(work, "features"))
        part = {n: columns[n][rows] for n in spec.names}
        part[SAMPLING_PROBABILITY] = sampling_probability(columns["item_id"][rows], columns["item_id"][rows])
        data_dir = os.path.join(work, "data")
        write_tfrecords(part, data_dir, "train", config.training.num_shards)
    configure_mixed_precision(config.training.mixed_precision)
    models = {"full two-tower": config.model, "MF (id-only two-tower)": _mf_model(config.model)}
    runs = {}
    for label, model_config in models.items():
        tf.keras.utils.set_random_seed(config.training.seed)
        model = build_two_tower_model(model_config, fitted)
        model.compile(optimizer=make_optimizer(config.training.optimizer))
        train, _ = make_datasets(dataclasses.replace(config, model=model_config), data_dir, False)
        iterator = iter(train.repeat())
        step = model.make_train_function()
        for _ in range(warmup):
            step(iterator)
        runs[label] = {"model": model, "iterator": iterator, "step": step, "seconds": [],
                       "params": int(sum(np.prod(v.shape) for v in model.trainable_variables))}
    for _ in range(rounds):
        for label, run in runs.items():
            start = time.perf_counter()
            for _ in range(steps):
                logs = run["step"](run["iterator"])
            float(logs["loss"])  # wait for the last step
            run["seconds"].append(time.perf_counter() - start)
            print(f"{label}: {steps * batch_size / run['seconds'][-1]:,.0f} examples/s", flush=True)
    return {
        "preset": preset, "batch_size": batch_size, "warmup": warmup, "steps": steps, "rounds": rounds,
        "train_rows": len(rows), "prep_s": prep.seconds, "optimizer": config.training.optimizer,
        "query_features": config.model.query.features, "candidate_features": config.model.candidate.features,
        "pooling": config.model.query.sequence_pooling,
        "rows": [{"model": label, "params": run["params"],
                  "examples_s": steps * batch_size / min(run["seconds"]),
                  "step_ms": 1e3 * min(run["seconds"]) / steps} for label, run in runs.items()],
    }


def training_table(result: dict) -> str:
    base = result["rows"][-1]["examples_s"]
    lines = ["| model | trainable parameters | training examples/s | ms/step | ratio vs MF |", "|---|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['model']} | {r['params']:,} | {r['examples_s']:,.0f} | {r['step_ms']:.1f} | "
                     f"{r['examples_s'] / base:.2f} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- (b) latency
class TFBruteForce:
    """The retrieval export's in-graph index (`tfrs.layers.factorized_top_k.BruteForce`: one matmul against every
    item vector and `tf.math.top_k`) behind the dense indexes' build/search calls, run as a tf.function like the
    exported serving signature (query embeddings in; the export puts the query tower in front)."""

    def build(self, item_ids, vectors) -> "TFBruteForce":
        import numpy as np
        import tensorflow as tf

        from tfrec._tfrs import tfrs

        self.layer = tfrs.layers.factorized_top_k.BruteForce(k=K)
        self.layer.index(tf.constant(vectors, tf.float32), tf.constant(np.asarray(item_ids).astype(str)))
        self.functions = {}
        return self

    def search(self, queries, k: int):
        import tensorflow as tf

        if k not in self.functions:
            self.functions[k] = tf.function(lambda q: self.layer(q, k=k),
                                            input_signature=[tf.TensorSpec([None, DIM], tf.float32)])
        scores, ids = self.functions[k](tf.constant(queries))
        return ids.numpy(), scores.numpy()


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="utf-8") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def vector_data(n: int, seed: int = 0):
    """n item ids and clustered vectors, and queries drawn from the same clusters."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(CLUSTERS, DIM)).astype(np.float32)

    def draw(m):
        return centers[rng.integers(0, CLUSTERS, m)] + 0.5 * rng.normal(size=(m, DIM)).astype(np.float32)

    return [f"item{i}" for i in range(n)], draw(n), draw(RECALL_QUERIES + BATCH + 200)


def one_thread():
    """BLAS and OpenMP limited to one thread (single queries, as a server answering concurrent requests runs them).
    On a shared machine a multi-threaded BLAS call for one query otherwise waits for a free core for each of its
    threads, which measures the other work rather than the index."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn (keras-tuner[bayesian]) brings it; without it, threads stay as they are
        return contextlib.nullcontext()
    return threadpool_limits(1)


def measure(built, queries, single: int, repeats: int):
    """Seconds of the fastest single-query top-K call and of the fastest 256-query batch call of each built index.
    The indexes take turns: `repeats` rounds, each giving every index `single // repeats` single queries and one
    batch, so load from other work on the shared machine falls on all of them alike rather than on whichever ran at a
    busy time; the fastest call is the one that other work disturbed least (as for the training rounds)."""
    import numpy as np

    for index in built.values():  # warm-up: page in the vectors, start thread pools, trace tf.functions
        index.search(queries[:BATCH], K)
        index.search(queries[BATCH:BATCH + 1], K)
    per_round = max(1, single // repeats)
    singles = {label: [] for label in built}
    batches = {label: [] for label in built}
    for r in range(repeats):
        for label, index in built.items():
            with one_thread():
                for q in queries[BATCH + r * per_round:BATCH + (r + 1) * per_round]:
                    start = time.perf_counter()
                    index.search(q[None, :], K)
                    singles[label].append(time.perf_counter() - start)
            start = time.perf_counter()
            index.search(queries[:BATCH], K)
            batches[label].append(time.perf_counter() - start)
    return {label: (float(np.min(singles[label])), float(np.min(batches[label]))) for label in built}


def _as_text(ids):
    return [[i.decode() if isinstance(i, bytes) else i for i in row] for row in ids]


def _numpy_brute_force():
    from tfrec.retrieval.dense import BruteForceIndex

    return BruteForceIndex()


def _faiss(kind: str):
    from tfrec.retrieval.dense_ann import FaissIndex

    return FaissIndex(kind=kind)


INDEXES = (  # the first is the exact reference for ratios and recall; labels are "short name (details)"
    ("numpy brute force (exact)", _numpy_brute_force),
    ("TF brute force (in-graph as exported, exact)", TFBruteForce),
    ("faiss HNSW (M=32, ef_search=256)", lambda: _faiss("hnsw")),
    ("faiss IVF-Flat (nlist=4*sqrt(n), nprobe=32)", lambda: _faiss("ivf_flat")),
)


def _short(label: str) -> str:
    return label.split(" (")[0]


def run_size(n: int, single: int, repeats: int, indexes=INDEXES):
    """One catalog size: build each index (time, memory), then latency with the indexes taking turns, and recall@10
    against the first (exact) index."""
    import numpy as np

    ids, vectors, queries = vector_data(n)
    built, rows = {}, []
    for label, make in indexes:
        gc.collect()
        before = rss_bytes()
        with Timer() as build:
            built[label] = make().build(ids, vectors)
        rows.append({"index": label, "build_s": build.seconds, "mem_mb": (rss_bytes() - before) / 2**20})
    latency = measure(built, queries, single, repeats)
    exact = None
    for row in rows:
        found = _as_text(built[row["index"]].search(queries[-RECALL_QUERIES:], 10)[0])
        exact = exact or found
        row.update(one_ms=latency[row["index"]][0] * 1e3, batch_ms=latency[row["index"]][1] * 1e3,
                   recall=float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact)])))
        print(n, row, flush=True)
    del built
    gc.collect()
    return rows


def latency_table(n: int, rows) -> str:
    base = rows[0]
    lines = [f"**{n:,} items**", "",
             "| index | top-100, 1 query | vs numpy brute force | top-100, 256 queries | vs numpy brute force | "
             "recall@10 | build | memory |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        one, batch = (_ratio(base[key], r[key]) for key in ("one_ms", "batch_ms"))
        if r is base:
            one = batch = "baseline"
        lines.append(f"| {r['index']} | {r['one_ms']:.2f} ms | {one} | {r['batch_ms']:.1f} ms | {batch} | "
                     f"{r['recall']:.3f} | {r['build_s']:.1f} s | {r['mem_mb']:.0f} MB |")
    return "\n".join(lines)


def _ratio(base: float, value: float) -> str:
    return f"{base / value:.1f}x faster" if base >= value else f"{value / base:.1f}x slower"


def training_reading(result: dict) -> str:
    full, mf = result["rows"][0], result["rows"][-1]
    return (f"Reading the figures: MF trains {mf['examples_s'] / full['examples_s']:.0f}x more examples per second "
            f"than the full two-tower ({mf['examples_s']:,.0f} vs {full['examples_s']:,.0f}). Per example MF looks "
            f"up two ids; the full model also hashes and tokenises its text features (words and character "
            f"trigrams), pools a recent-item sequence with attention, runs two MLPs and updates "
            f"{full['params'] / mf['params']:.0f}x as many parameters (mostly 100,000-row hashed embedding tables; "
            f"Keras' Adam updates its moments and the weights of a whole table every step, even for sparse "
            f"gradients). It is a training-time cost: serving searches candidate vectors computed once (latency "
            f"below), and per request only the query tower runs.")


def latency_reading(results: dict) -> str:
    """What beats what at each catalog size, from the measured rows (first row = numpy brute force)."""
    lines = ["Reading the figures:"]
    for n, rows in results.items():
        base, tf_row, approx = rows[0], rows[1], rows[2:]
        best_one = min(approx, key=lambda r: r["one_ms"])
        best_batch = min(approx, key=lambda r: r["batch_ms"])
        lines.append(
            f"- {n:,} items: the fastest approximate index for one query is {_short(best_one['index'])} "
            f"({best_one['one_ms']:.2f} ms, {_ratio(base['one_ms'], best_one['one_ms'])} than numpy brute force's "
            f"{base['one_ms']:.2f} ms, recall@10 {best_one['recall']:.3f}); for a 256-query batch it is "
            f"{_short(best_batch['index'])} ({best_batch['batch_ms']:.0f} ms, "
            f"{_ratio(base['batch_ms'], best_batch['batch_ms'])}, recall@10 {best_batch['recall']:.3f}). The TF "
            f"in-graph brute force the export serves is {_ratio(base['one_ms'], tf_row['one_ms'])} than numpy for "
            f"one query and {_ratio(base['batch_ms'], tf_row['batch_ms'])} for a batch.")
    if len(results) > 1:
        (small, rows_s), (large, rows_l) = min(results.items()), max(results.items())
        growth = lambda i: rows_l[i]["one_ms"] / rows_s[i]["one_ms"]  # noqa: E731
        parts = [f"{growth(i):.1f} for {_short(rows_s[i]['index'])}" for i in range(len(rows_s))]
        lines.append(f"- From {small:,} to {large:,} items ({large / small:.0f}x), single-query latency is multiplied "
                     f"by {', '.join(parts[:-1])} and {parts[-1]}: exact search scores every item, the approximate "
                     f"indexes visit a small part of the catalog and pay for it with their build time (build column).")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["training", "latency"])
    parser.add_argument("--preset", default="small", help="synthetic preset for the training throughput")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--warmup", type=int, default=30, help="untimed training steps per model")
    parser.add_argument("--steps", type=int, default=150, help="timed training steps per model and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--single", type=int, default=50, help="single-query calls per index")
    parser.add_argument("--repeats", type=int, default=5, help="256-query batch calls per index")
    parser.add_argument("--work-dir", help="where the training benchmark writes features and TFRecords (default: a temp dir)")
    parser.add_argument("--no-write", action="store_true", help="print, do not update docs/benchmarks.md")
    args = parser.parse_args()
    write = not args.no_write and args.only is None  # the section holds both parts; a partial run only prints

    import tfrec  # noqa: F401 - environment set-up (legacy Keras) before TensorFlow, numpy and faiss work

    loads = [os.getloadavg()[0]]
    parts = ["## Retrieval speed: two-tower training throughput and top-100 latency"]
    with Timer() as total:
        if args.only in (None, "training"):
            work = args.work_dir or tempfile.mkdtemp(prefix="tfrec-retrieval-speed-")
            with Timer() as t_train:
                result = training_throughput(args.preset, args.batch_size, args.warmup, args.steps, args.rounds, work)
            parts += [
                "### Training throughput",
                f"Synthetic preset `{result['preset']}`: {result['train_rows']:,} training positives (time split of "
                f"`configs/retrieval.yaml`), written as TFRecord shards and read by the job's input pipeline (cached). "
                f"Full two-tower = `configs/retrieval.yaml`: query tower {', '.join(result['query_features'])} "
                f"({result['pooling']} pooling of recent items), candidate tower "
                f"{', '.join(result['candidate_features'])}, "
                f"MLPs, feature dropout, log-Q correction. MF = the same task (in-batch softmax, temperature, log-Q, "
                f"accidental-hit removal) over a user-id embedding and an item-id embedding only (`hidden: []`, same "
                f"embedding and output sizes). Batch {result['batch_size']}, Adam; {result['warmup']} warm-up steps, "
                f"then {result['steps']} timed steps per round, {result['rounds']} alternating rounds, fastest round "
                f"kept.",
                training_table(result),
                f"Data preparation (generate, examples, fit features, write TFRecords) {result['prep_s']:.0f} s; "
                f"this part {t_train.seconds:.0f} s.",
                training_reading(result),
            ]
        if args.only in (None, "latency"):
            loads.append(os.getloadavg()[0])
            results = {}
            for n in args.sizes:
                results[n] = run_size(n, args.single, args.repeats)
                loads.append(os.getloadavg()[0])
            parts += [
                "### Top-100 retrieval latency",
                f"Synthetic clustered vectors, d={DIM}, {CLUSTERS} clusters, inner product, top-{K}. Latency is the "
                f"fastest of {args.single} single-query calls and of {args.repeats} calls with a {BATCH}-query batch "
                f"(the machine is shared, and the fastest call is the one other work disturbed least, as for the "
                f"training rounds), the built indexes taking turns over {args.repeats} rounds so that load from "
                f"other work falls on all of them alike. Single queries run with BLAS and OpenMP limited to one thread "
                f"(threadpoolctl), as a server answering concurrent requests would run them: on this shared machine "
                f"a two-thread BLAS call for one query otherwise waits for a free core and measures the other work; "
                f"batches use all cores; TF uses its own thread pool throughout. Ratios are numpy brute force time / "
                f"index time in the same run. The TF brute force is the exported "
                f"retrieval model's index without its query tower (a tf.function over query embeddings), timed "
                f"including the copy of its outputs to numpy. Recall@10 is against numpy brute force's exact top 10 "
                f"over {RECALL_QUERIES} queries. Memory is resident-set growth while building (context only; faiss "
                f"indexes keep their own float32 copy of the vectors for rebuilds and saving).",
                *[latency_table(n, rows) for n, rows in results.items()],
                latency_reading(results),
            ]
    loads.append(os.getloadavg()[0])
    parts.append(f"Machine: {machine()}; shared with other work (1-minute load average {min(loads):.1f} to "
                 f"{max(loads):.1f} on {os.cpu_count()} cores, sampled between parts). Revision {git_revision()}; "
                 f"`{command_line()}`; total run {total.seconds:.0f} s.")
    body = "\n\n".join(parts)
    print(body)
    if write:
        write_section("retrieval_speed", body)


if __name__ == "__main__":
    main()
