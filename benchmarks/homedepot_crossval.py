"""Home Depot product search, K-fold cross-validation over every judged query: each query is scored once, by an
encoder fine-tuned on the other folds' queries, so the figures compare like for like with those published on all
queries (BM25 0.416, zero-shot MiniLM 0.365, their RRF 0.433 Recall@10).

Protocol: the distinct judged queries are shuffled as `query_split` does (`np.random.default_rng(seed)` permutation
of the sorted texts) and cut into K consecutive folds (K = 5: fold 0 is exactly `homedepot_semantic.py`'s test
fifth). For each fold the encoder is fine-tuned exactly as `homedepot_semantic.py`'s retrain step (loss weights
embedding only, its default epochs / batch / learning rate, last epoch kept) on the pairs judged >= 2.5 of the other
folds' queries, the full catalog is embedded and the fold's queries are ranked. Fusion with stemmed BM25 is plain
RRF, k = 60: nothing is fitted on any evaluated query.

Usage: python benchmarks/homedepot_crossval.py [--data DIR] [--folds K] [--only F ...] [--no-write]
Each finished fold's rankings are cached under $TFREC_BENCH_WORK (default /tmp/tfrec-bench)/homedepot-crossval, so
`--only 0` times one fold and a later full run reuses it. Without the data the script exits cleanly.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import homedepot_semantic as semantic  # noqa: E402  (sets TF_USE_LEGACY_KERAS)
from benchmarks.common import command_line, git_revision, machine, write_section  # noqa: E402

SEED, RRF_K = semantic.SPLIT_SEED, 60
CACHE = semantic.WORK / "homedepot-crossval"
HEADLINE = "RRF BM25 (stemming) + fine-tuned (CV), k = 60"
SEMANTIC_FOLD0 = (0.436, 0.471)  # homedepot_semantic.py's test rows "fine-tuned on all train queries", "RRF ... k = 60"
log = semantic.log


def cv_folds(queries, folds: int, seed: int = SEED):
    """K disjoint sorted lists covering every distinct query once, shuffled as `query_split` shuffles."""
    import numpy as np

    if folds < 2:
        raise ValueError(f"--folds must be at least 2, got {folds}")
    distinct = sorted(set(queries))
    order = np.random.default_rng(seed).permutation(len(distinct))
    return [[distinct[i] for i in sorted(chunk.tolist())] for chunk in np.array_split(order, folds)]


def fold_cache(fold: int, folds: int, epochs: int, batch_size: int) -> Path:
    from tfrec.text.bert_checkpoint import PACKAGED_SHA256

    key = (f"k{folds}_s{SEED}_e{epochs}_b{batch_size}_lr{semantic.LEARNING_RATE:g}_len{semantic.MAX_LENGTH}_"
           f"{PACKAGED_SHA256[:12]}")
    return CACHE / f"fold{fold}_{key}.json"


def run_fold(search, fold, test_q, train_q, item_ids, titles, epochs, batch_size, folds):
    """Fine-tunes on `train_q`, ranks `test_q` over the full catalog; the rankings and timings are cached as JSON."""
    import tensorflow as tf

    path = fold_cache(fold, folds, epochs, batch_size)
    if path.is_file():
        log(f"fold {fold}: loaded from {path}")
        return json.loads(path.read_text())
    t0 = time.perf_counter()
    log(f"fold {fold}: fine-tuning on {len(train_q):,} queries, then ranking {len(test_q):,}")
    model, info = semantic.fine_tune(search, train_q, None, epochs, batch_size, f"cv{fold}of{folds}")
    t1 = time.perf_counter()
    title_vectors = semantic.embed(model, titles)
    t2 = time.perf_counter()
    ranked = semantic.dense_search(title_vectors, item_ids, semantic.embed(model, test_q, batch=256, sort=False))
    result = {"fold": fold, "queries": list(test_q), "pairs": info["pairs"]["train"], "epochs_run": info["epochs_run"],
              "train_s": t1 - t0, "titles_s": t2 - t1, "total_s": time.perf_counter() - t0,
              "ranked": [[[c.item_id, float(c.score)] for c in row] for row in ranked]}
    del model, title_vectors
    tf.keras.backend.clear_session()
    gc.collect()
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))
    log(f"fold {fold}: done in {result['total_s'] / 60:.1f} min (training {result['train_s'] / 60:.1f}, titles "
        f"{result['titles_s']:.0f} s)")
    return result


def run(data: Path, folds: int, only, epochs: int, batch_size: int):
    from tfrec.data.public.homedepot import RELEVANT, load_homedepot, query_split
    from tfrec.retrieval import LexicalConfig, LexicalIndex, fuse_batch
    from tfrec.retrieval.base import Candidate
    from tfrec.training.intent_job import build_intent_model

    search = load_homedepot(data)
    relevant = search.relevant(RELEVANT)
    item_ids = search.catalog["item_id"].tolist()
    titles = [str(t) for t in search.catalog["title"].tolist()]
    split = cv_folds(search.queries, folds)
    assert sorted(q for f in split for q in f) == sorted(search.queries), "folds must cover every query once"
    out = {"products": len(item_ids), "folds": folds, "epochs": epochs, "batch_size": batch_size,
           "fold0_is_semantic_test": split[0] == query_split(search.queries, semantic.TEST_FRACTION, SEED)[1]}

    zero = build_intent_model(semantic.job_config(epochs, batch_size, semantic.WORK).model, ["product"],
                              init_prototypes=False)
    vectors, out["zero_titles_s"], out["zero_titles_cached"] = semantic.zero_shot_titles(zero, titles)
    log(f"zero-shot title embeddings {'loaded from the cache' if out['zero_titles_cached'] else 'computed'}; "
        f"embedding every query zero-shot")
    every = list(search.queries)
    zero_all = semantic.dense_search(vectors, item_ids, semantic.embed(zero, every, batch=256, sort=False))
    del zero, vectors
    position = {q: i for i, q in enumerate(every)}

    done = {}
    for fold in (only if only is not None else range(folds)):
        train_q = [q for f, qs in enumerate(split) if f != fold for q in qs]
        done[fold] = run_fold(search, fold, split[fold], train_q, item_ids, titles, epochs, batch_size, folds)
        left = [f for f in (only if only is not None else range(folds)) if f > fold]
        if left and done[fold]["total_s"] > 0:
            log(f"estimate for the {len(left)} remaining fold(s): {len(left) * done[fold]['total_s'] / 60:.0f} min")
    for fold in range(folds):  # folds finished by earlier runs count too
        path = fold_cache(fold, folds, epochs, batch_size)
        if fold not in done and path.is_file():
            done[fold] = json.loads(path.read_text())
    finished = sorted(done)
    scored = [q for f in finished for q in split[f]]
    for f in finished:
        if done[f]["queries"] != split[f]:
            raise RuntimeError(f"cached fold {f} ranked other queries than this split's fold {f}")
    tuned = {q: [Candidate(i, s, "tuned") for i, s in row] for f in finished
             for q, row in zip(split[f], done[f]["ranked"])}

    log(f"BM25 with and without stemming over {len(scored):,} queries")
    stemmed = LexicalIndex(search.catalog, LexicalConfig(stemming=True)).search(scored, semantic.K)
    plain = LexicalIndex(search.catalog, LexicalConfig(stemming=False)).search(scored, semantic.K)
    zero_lists = [zero_all[position[q]] for q in scored]
    tuned_lists = [tuned[q] for q in scored]
    rows = {
        "BM25, no stemming (the published BM25 setting)": plain,
        "BM25 + English stemming (tfrec lexical channel)": stemmed,
        "all-MiniLM-L6-v2 zero-shot": zero_lists,
        "RRF BM25 (no stemming) + zero-shot, k = 60 (the published RRF)": fuse_batch([plain, zero_lists], k=RRF_K,
                                                                                      limit=semantic.K),
        "all-MiniLM-L6-v2 fine-tuned (CV)": tuned_lists,
        HEADLINE: fuse_batch([stemmed, tuned_lists], k=RRF_K, limit=semantic.K),
    }
    out["overall"] = {name: semantic.metrics(ranked, relevant, scored) for name, ranked in rows.items()}
    out["per_fold"] = {}
    start = 0
    for f in finished:
        n = len(split[f])
        out["per_fold"][f] = {"queries": n, "with_relevant": sum(1 for q in split[f] if relevant[q]),
                              "pairs": done[f]["pairs"], "train_s": done[f]["train_s"],
                              "total_s": done[f]["total_s"], "epochs_run": done[f]["epochs_run"],
                              **{name: semantic.metrics(ranked[start:start + n], relevant, split[f])
                                 for name, ranked in rows.items()}}
        start += n
    out["n"] = (len(scored), sum(1 for q in scored if relevant[q]), len(every))
    out["finished"] = finished
    out["total_s"] = time.perf_counter() - semantic.T0
    for name, m in out["overall"].items():
        log(f"  {name}: R@10 {m['recall@10']:.4f} MRR@100 {m['mrr@100']:.4f}")
    return out


def report(r) -> str:
    import numpy as np

    folds, finished, (scored, with_rel, every) = r["folds"], r["finished"], r["n"]
    complete = len(finished) == folds
    head = r["overall"][HEADLINE]["recall@10"]
    published = list(semantic.PUBLISHED.values())
    checks = dict(zip(list(r["overall"])[:4:], [published[0], None, published[1], published[2]]))
    lines = [
        "## Home Depot search, cross-validated over all judged queries (full catalog)" if complete else
        f"## Home Depot search, cross-validated: PARTIAL, folds {finished} of {folds} only", "",
        f"Command: `{command_line()}` (git {git_revision()}).  ", f"Machine: {machine()}.  ",
        f"Data: `products.csv` ({r['products']:,} titles, every one a candidate) and `judgments.csv` of the Home Depot "
        f"search relevance data, read in place; relevant = relevance >= 2.5; Recall@10 and MRR@100 over queries with a "
        f"relevant product.  ",
        f"Protocol: the {every:,} distinct judged queries are shuffled as `query_split` does (seed {SEED}) and cut into "
        f"{folds} folds" + (" (fold 0 is exactly the held-out test fifth of the section below)"
                            if r["fold0_is_semantic_test"] else "") +
        f". For each fold the encoder is fine-tuned exactly as `homedepot_semantic.py`'s retrain step (loss weights "
        f"intent 0 / slots 0 / embedding 1, Adam lr {semantic.LEARNING_RATE:g}, batch {r['batch_size']}, "
        f"{r['epochs']} epoch{'s' if r['epochs'] != 1 else ''}, max_length {semantic.MAX_LENGTH}; settings chosen on validation queries earlier) on "
        f"the pairs judged >= 2.5 of the other folds' queries, the whole catalog is embedded and the fold's queries "
        f"ranked. The fine-tuned channel is fused with stemmed BM25 by plain RRF, k = {RRF_K}: no weight, k or epoch "
        f"was chosen on any evaluated query. Each query is scored once, by a model that never saw it.", "",
        f"**{'All' if complete else 'PARTIAL:'} {scored:,} queries** ({with_rel:,} with a relevant product scored):", "",
        "| channel | Recall@10 | MRR@100 | published R@10 / MRR@100 (all queries) |", "|---|---:|---:|---:|"]
    for name, m in r["overall"].items():
        pub = checks.get(name)
        lines.append(f"| {name} | {m['recall@10']:.4f} | {m['mrr@100']:.4f} | "
                     + (f"{pub[0]:.3f} / {pub[1]:.3f} |" if pub else "|"))
    short = {"BM25, no stemming (the published BM25 setting)": "BM25", "BM25 + English stemming (tfrec lexical "
             "channel)": "BM25 stemmed", "all-MiniLM-L6-v2 zero-shot": "zero-shot",
             "all-MiniLM-L6-v2 fine-tuned (CV)": "fine-tuned", HEADLINE: "**RRF stemmed + fine-tuned**"}
    lines += ["", f"Per fold, Recall@10 (the noise between folds of ~{with_rel // len(finished):,} scored queries):", "",
              "| fold | queries (with relevant) | training pairs | " + " | ".join(short.values()) + " |",
              "|---|---:|---:|" + "---:|" * len(short)]
    for f, p in r["per_fold"].items():
        lines.append(f"| {f} | {p['queries']:,} ({p['with_relevant']:,}) | {p['pairs']:,} | "
                     + " | ".join(f"{p[name]['recall@10']:.3f}" for name in short) + " |")
    heads = np.array([p[HEADLINE]["recall@10"] for p in r["per_fold"].values()])
    gap = max(abs(r["overall"][name][i] - pub[j]) for name, pub in checks.items() if pub
              for j, i in enumerate(("recall@10", "mrr@100")))
    scope = "all" if complete else "the finished folds'"
    per_fold_min = ", ".join(f"{p['total_s'] / 60:.1f}" for p in r["per_fold"].values())
    spread = (f"per-fold mean {heads.mean():.4f}, standard deviation {heads.std(ddof=1):.4f}, range "
              f"{heads.min():.3f}-{heads.max():.3f}" if len(heads) > 1 else f"one fold: {heads[0]:.3f}")
    data_note = ("the same share as the held-out-split section below" if folds == 5 else
                 "less training data than the 80% of the held-out-split section below" if folds < 5 else
                 "more training data than the 80% of the held-out-split section below")
    lines += [
        "",
        f"Target (retrieval issue): the trained, fused channel at Recall@10 >= 1.10 x 0.433 = {semantic.TARGET:.4f}. "
        f"RRF of stemmed BM25 and the cross-validated fine-tuned encoder reaches {head:.4f} over "
        f"{scope} queries ({spread}): it "
        f"**{'meets' if head >= semantic.TARGET else 'misses'}** the target"
        + (f". The rows with published figures match them to within {gap:.3f} (Recall@10 and MRR@100), so the "
           "comparison is like for like. " if complete else ", on partial folds only: not a verdict. ") +
        f"Each model trains on {(folds - 1) / folds:.0%} of the queries, {data_note}.  ",
        f"Run-to-run noise: fold 0 holds the same test queries, training queries and settings as the held-out-split "
        f"section below, whose run (git 67ae6c6) gave fine-tuned {SEMANTIC_FOLD0[0]:.3f} and plain RRF k = 60 "
        f"{SEMANTIC_FOLD0[1]:.3f} Recall@10; this fold 0 gave "
        + (f"{r['per_fold'][0]['all-MiniLM-L6-v2 fine-tuned (CV)']['recall@10']:.3f} and "
           f"{r['per_fold'][0][HEADLINE]['recall@10']:.3f} (two trainings of the same setting)"
           if 0 in r["per_fold"] else "-") + ".  ",
        f"Time: {sum(p['train_s'] for p in r['per_fold'].values()) / 60:.1f} min of fine-tuning over "
        f"{len(finished)} fold(s) ({per_fold_min} min per "
        f"fold including the {r['products']:,}-title embedding); zero-shot title embeddings "
        + ("loaded from the /tmp cache (computed once, shared by every fold)" if r["zero_titles_cached"]
           else f"computed once in {r['zero_titles_s']:.0f} s and shared by every fold")
        + f"; this run {r['total_s'] / 60:.1f} min (folds cached by earlier runs are reused, not retrained).",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=semantic.DATA, help="folder with products.csv and judgments.csv")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only", type=int, nargs="+", help="run only these folds (others are read from the cache)")
    parser.add_argument("--epochs", type=int, default=1, help="as homedepot_semantic.py's default")
    parser.add_argument("--batch-size", type=int, default=64, help="as homedepot_semantic.py's default")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    if not ((args.data / "products.csv").is_file() and (args.data / "judgments.csv").is_file()):
        print(f"homedepot_crossval: skipped, no products.csv/judgments.csv in {args.data}")
        return 0
    if args.folds < 2 or any(not 0 <= f < args.folds for f in args.only or []):
        parser.error(f"--folds must be >= 2 and every --only fold in [0, {args.folds})")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    result = run(args.data, args.folds, args.only, args.epochs, args.batch_size)
    (semantic.WORK / "homedepot_crossval.json").write_text(json.dumps(result, indent=1, default=str))
    body = report(result)
    print(body)
    if not args.no_write:
        write_section("homedepot_crossval", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
