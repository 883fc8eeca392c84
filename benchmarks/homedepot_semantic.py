"""Home Depot product search with the query-understanding encoder: BM25, zero-shot and fine-tuned all-MiniLM-L6-v2,
and their fusions, on held-out queries against the full catalog.

Protocol: the judged queries are split by text as in `benchmarks/homedepot_retrieval.py` (`query_split`, 20% test,
seed 0); the train queries are split again (20% validation, seed 1). The model's query/title embedding (loss weights
intent 0, slots 0, embedding 1: in-batch softmax over (query, title) pairs) is fine-tuned on the pairs judged >= 2.5
of the other 80% of the train queries ("fit" queries); the weighted-RRF weights and k are fitted on that model's
rankings of the validation queries; then the encoder is retrained with the same settings on every train query and
scored, alone and fused with those weights, on the test queries. Every one of the 54,667 titles is a candidate;
Recall@10 and MRR@100 as in `benchmarks/lexical_homedepot.py`.
`benchmarks/homedepot_crossval.py` reuses these functions for K-fold cross-validation over every judged query.

Usage: python benchmarks/homedepot_semantic.py [--data DIR] [--epochs N] [--batch-size N] [--no-write]
The data is research-only and read in place; without it the script exits cleanly. Title embeddings of the zero-shot
encoder are cached under $TFREC_BENCH_WORK (default /tmp/tfrec-bench), never in the repository.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from benchmarks.common import Timer, command_line, git_revision, machine, write_section  # noqa: E402

DATA = Path(os.environ.get("TFREC_HOMEDEPOT_DIR", "/work/shared/data/homedepot-search"))
WORK = Path(os.environ.get("TFREC_BENCH_WORK", "/tmp/tfrec-bench"))
TEST_FRACTION, SPLIT_SEED, VALIDATION_FRACTION, VALIDATION_SEED = 0.2, 0, 0.2, 1  # as homedepot_retrieval.py
K, MAX_LENGTH, LEARNING_RATE = 100, 32, 5e-5
PUBLISHED = {"BM25": (0.416, 0.366), "all-MiniLM-L6-v2 zero-shot": (0.365, 0.348),
             "RRF of the two (k = 60)": (0.433, 0.391)}
TARGET = 1.10 * PUBLISHED["RRF of the two (k = 60)"][0]
HEADLINE = "weighted RRF BM25 (stemming) + fine-tuned on all train queries (weights fitted on validation)"
T0 = time.perf_counter()


def log(msg):
    print(f"[{(time.perf_counter() - T0) / 60:5.1f} min] {msg}", flush=True)


def metrics(ranked, relevant, queries):
    from tfrec.training.metrics import mrr, recall_at_k

    ids = [[c.item_id for c in row] for row in ranked]
    sets = [relevant[q] for q in queries]
    return {"recall@10": recall_at_k(ids, sets, 10), "mrr@100": mrr(ids, sets, K)}


def embed(model, texts, batch=64, sort=True):
    """Unit embeddings of `texts` in input order; sorted by wordpiece length so each batch pads little."""
    import numpy as np
    import tensorflow as tf

    texts = np.asarray(texts, dtype=object).astype(str)
    fn = tf.function(lambda t: model.embed(t, training=False), input_signature=[tf.TensorSpec([None], tf.string)])
    order = np.arange(len(texts))
    if sort:
        tokenizer = model.encoder.tokenizer
        lengths = np.concatenate([tokenizer(tf.constant(texts[i:i + 4096]))["attention_mask"].numpy().sum(1)
                                  for i in range(0, len(texts), 4096)])
        order = np.argsort(lengths, kind="stable")
    out = np.zeros((len(texts), model.encoder.hidden_size), dtype=np.float32)
    for i in range(0, len(texts), batch):
        rows = order[i:i + batch]
        out[rows] = fn(tf.constant(texts[rows])).numpy()
        if i and i % (batch * 200) == 0:
            log(f"    embedded {i:,} / {len(texts):,}")
    return out


def dense_search(title_vectors, item_ids, query_vectors):
    from tfrec.retrieval.dense import BruteForceIndex

    index = BruteForceIndex().build(item_ids, title_vectors)
    return index.search_candidates(query_vectors, K)


def pairs_of(search, queries):
    """LabelledQueries of every (query, title) pair judged >= 2.5 among `queries` (no intents, no slots)."""
    import numpy as np

    from tfrec.data.public.homedepot import RELEVANT
    from tfrec.training.intent_data import LabelledQueries

    judged = search.subset(queries)
    keep = judged.relevance >= RELEVANT
    title = dict(zip(search.catalog["item_id"].tolist(), search.catalog["title"].tolist()))
    q = judged.query[keep].astype(object)
    titles = np.array([title[i] for i in judged.item_id[keep]], dtype=object)
    return LabelledQueries(q, np.full(len(q), "", dtype=object), [[] for _ in q], titles)


def job_config(epochs, batch_size, run_dir):
    from tfrec.models.intent import IntentModelConfig, LossWeights
    from tfrec.training.intent_job import IntentJobConfig
    from tfrec.training.trainer import OptimizerConfig, TrainingConfig

    model = IntentModelConfig(max_length=MAX_LENGTH, loss_weights=LossWeights(intent=0.0, slots=0.0, embedding=1.0))
    training = TrainingConfig(batch_size=batch_size, epochs=epochs, monitor="val_objective", monitor_mode="min",
                              early_stopping_patience=1, num_shards=2, shuffle_buffer=20_000, verbose=1,
                              optimizer=OptimizerConfig(name="adam", learning_rate=LEARNING_RATE, clipnorm=1.0))
    return IntentJobConfig(model=model, training=training, zero_shot_baseline=False, run_dir=str(run_dir))


def fine_tune(search, train_q, val_q, epochs, batch_size, name):
    """The job's pieces: LabelledQueries → encode_examples → TFRecords → make_datasets → fit → best weights.
    Without validation queries the last epoch is kept."""
    from tfrec.data.tfrecord import write_tfrecords
    from tfrec.text.bert_checkpoint import resolve_checkpoint
    from tfrec.text.tokenizer import BertTokenizer
    from tfrec.training.intent_data import encode_examples
    from tfrec.training.intent_job import build_intent_model, make_datasets
    from tfrec.training.trainer import fit, restore_best_weights

    run_dir = WORK / f"homedepot-semantic-{name}"
    config = job_config(epochs, batch_size, run_dir)
    tokenizer = BertTokenizer.from_checkpoint(resolve_checkpoint(None), max_length=MAX_LENGTH)
    intents = ["product"]  # the intent head is unused (weight 0) but the model needs one class
    sizes = {}
    for split, queries in (("train", train_q), ("validation", val_q)):
        if queries is None:
            continue
        data = pairs_of(search, queries)
        sizes[split] = len(data)
        columns = encode_examples(data, intents, tokenizer, MAX_LENGTH)
        write_tfrecords(columns, str(run_dir / "data"), split, num_shards=config.training.num_shards)
    log(f"  pairs judged >= 2.5: {sizes}")
    train_ds, val_ds = make_datasets(config, str(run_dir / "data"), has_validation=val_q is not None)
    with Timer() as t:
        model, history = fit(lambda: build_intent_model(config.model, intents, init_prototypes=False), train_ds,
                             val_ds, config.training, str(run_dir))
    restore_best_weights(model, str(run_dir), "homedepot_semantic")
    val_objective = [round(float(v), 4) for v in history.history.get("val_objective", [])]
    return model, {"pairs": sizes, "train_s": t.seconds, "val_objective": val_objective,
                   "epochs_run": len(history.history.get("objective", [])), "config": config}


def zero_shot_titles(model, titles):
    """Zero-shot title embeddings, cached in WORK by checkpoint hash, max_length and the titles' digest."""
    import numpy as np

    from tfrec.text.bert_checkpoint import PACKAGED_SHA256

    digest = hashlib.sha256("\n".join(titles).encode("utf-8")).hexdigest()[:12]
    path = WORK / f"homedepot_titles_minilm_{PACKAGED_SHA256[:12]}_{MAX_LENGTH}_{digest}.npy"
    if path.is_file():
        return np.load(path), 0.0, True
    with Timer() as t:
        vectors = embed(model, titles)
    WORK.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors, t.seconds, False


def run(data: Path, epochs: int, batch_size: int):
    from tfrec.data.public.homedepot import RELEVANT, load_homedepot, query_split
    from tfrec.retrieval import LexicalConfig, LexicalIndex, fuse_batch
    from tfrec.retrieval.fusion import fit_fusion_weights
    from tfrec.training.intent_job import build_intent_model

    search = load_homedepot(data)
    relevant = search.relevant(RELEVANT)
    item_ids = search.catalog["item_id"].tolist()
    titles = [str(t) for t in search.catalog["title"].tolist()]
    train_q, test_q = query_split(search.queries, TEST_FRACTION, SPLIT_SEED)
    fit_q, val_q = query_split(train_q, VALIDATION_FRACTION, VALIDATION_SEED)
    all_q = search.queries
    out = {"n": {name: (len(qs), sum(1 for q in qs if relevant[q])) for name, qs in
                 (("all", all_q), ("train", train_q), ("fit", fit_q), ("validation", val_q), ("test", test_q))},
           "products": len(item_ids), "epochs": epochs, "batch_size": batch_size}
    log(f"{len(item_ids):,} products; queries {out['n']}")

    lexical = LexicalIndex(search.catalog, LexicalConfig(stemming=True))
    bm25 = LexicalIndex(search.catalog, LexicalConfig(stemming=False))
    lists = {"test": {"lexical": lexical.search(test_q, K), "bm25": bm25.search(test_q, K)},
             "validation": {"lexical": lexical.search(val_q, K), "bm25": bm25.search(val_q, K)},
             "all": {"bm25": bm25.search(all_q, K)}}

    zero = build_intent_model(job_config(epochs, batch_size, WORK).model, ["product"], init_prototypes=False)
    vectors, out["zero_titles_s"], out["zero_titles_cached"] = zero_shot_titles(zero, titles)
    log(f"zero-shot title embeddings ready ({'cached' if out['zero_titles_cached'] else 'computed'}, "
        f"{out['zero_titles_s']:.0f} s)")
    with Timer() as t:
        queries_zero = embed(zero, all_q, batch=256, sort=False)
    out["zero_queries_s"] = t.seconds
    position = {q: i for i, q in enumerate(all_q)}
    zero_all = dense_search(vectors, item_ids, queries_zero)
    lists["all"]["zero"] = zero_all
    lists["test"]["zero"] = [zero_all[position[q]] for q in test_q]
    del zero

    # 1. Fine-tuned on the fit queries: its validation rankings fit the fusion weights.
    log("fine-tuning the query/title embedding on the fit queries' pairs")
    model, out["fine_tune"] = fine_tune(search, fit_q, val_q, epochs, batch_size, "fit")
    log(f"fine-tuned in {out['fine_tune']['train_s']:.0f} s; val objective {out['fine_tune']['val_objective']}")
    with Timer() as t:
        tuned_titles = embed(model, titles)
    out["tuned_titles_s"] = t.seconds
    log(f"fine-tuned title embeddings in {t.seconds:.0f} s")
    tuned_q = embed(model, list(val_q) + list(test_q), batch=256, sort=False)
    tuned = dense_search(tuned_titles, item_ids, tuned_q)
    lists["validation"]["tuned"], lists["test"]["fit"] = tuned[:len(val_q)], tuned[len(val_q):]
    del model, tuned_titles

    # 2. Retrained on every train query (fit + validation), the same settings: the final channel.
    log("retraining on every train query's pairs")
    model, out["retrain"] = fine_tune(search, train_q, None, epochs, batch_size, "train")
    log(f"retrained in {out['retrain']['train_s']:.0f} s")
    tuned_titles = embed(model, titles)
    lists["test"]["tuned"] = dense_search(tuned_titles, item_ids, embed(model, test_q, batch=256, sort=False))

    val_sets = [relevant[q] for q in val_q]
    with Timer() as t:
        fusion = fit_fusion_weights({"lexical": lists["validation"]["lexical"], "tuned": lists["validation"]["tuned"]},
                                    val_sets, metric="recall@10", limit=K)
    out["fusion"], out["fusion_s"] = fusion, t.seconds
    out["validation"] = {name: metrics(lists["validation"][name], relevant, val_q) for name in ("lexical", "tuned")}
    test = lists["test"]
    rows = {
        "BM25, no stemming (the published BM25 setting)": test["bm25"],
        "BM25 + English stemming (tfrec lexical channel)": test["lexical"],
        "all-MiniLM-L6-v2 zero-shot": test["zero"],
        "all-MiniLM-L6-v2 fine-tuned on the fit queries (for the fusion weights)": test["fit"],
        "all-MiniLM-L6-v2 fine-tuned on all train queries": test["tuned"],
        "RRF BM25 (stemming) + zero-shot, k = 60": fuse_batch([test["lexical"], test["zero"]], k=60, limit=K),
        "RRF BM25 (stemming) + fine-tuned, k = 60": fuse_batch([test["lexical"], test["tuned"]], k=60, limit=K),
        "weighted RRF BM25 (stemming) + fine-tuned on fit queries":
            fusion.fuse({"lexical": test["lexical"], "tuned": test["fit"]}, limit=K),
        HEADLINE: fusion.fuse({"lexical": test["lexical"], "tuned": test["tuned"]}, limit=K),
        "RRF BM25 (no stemming) + zero-shot, k = 60": fuse_batch([test["bm25"], test["zero"]], k=60, limit=K),
        "RRF BM25 (no stemming) + fine-tuned, k = 60": fuse_batch([test["bm25"], test["tuned"]], k=60, limit=K),
    }
    out["test"] = {name: metrics(ranked, relevant, test_q) for name, ranked in rows.items()}
    every = lists["all"]
    out["all_queries"] = {
        "BM25, no stemming": metrics(every["bm25"], relevant, all_q),
        "all-MiniLM-L6-v2 zero-shot": metrics(every["zero"], relevant, all_q),
        "RRF of the two (k = 60)": metrics(fuse_batch([every["bm25"], every["zero"]], k=60, limit=K), relevant, all_q),
    }
    for name, m in out["test"].items():
        log(f"  test {name}: R@10 {m['recall@10']:.3f} MRR@100 {m['mrr@100']:.3f}")
    out["total_s"] = time.perf_counter() - T0
    return out


def report(r) -> str:
    n, fusion, ft = r["n"], r["fusion"], r["fine_tune"]
    test, val = r["test"], r["validation"]
    weights = ", ".join(f"{name} {w:g}" for name, w in fusion.weights.items())
    headline = HEADLINE
    zero, tuned = test["all-MiniLM-L6-v2 zero-shot"], test["all-MiniLM-L6-v2 fine-tuned on all train queries"]
    cfg = ft["config"]
    lines = [
        "## Home Depot search with the query-understanding encoder (held-out queries, full catalog)", "",
        f"Command: `{command_line()}` (git {git_revision()}).  ", f"Machine: {machine()}.  ",
        f"Data: `products.csv` ({r['products']:,} titles, every one a candidate) and `judgments.csv` of the Home Depot "
        f"search relevance data, read in place; relevant = relevance >= 2.5; Recall@10 and MRR@100 over queries with a "
        f"relevant product.  ",
        f"Split by query text as in `homedepot_retrieval.py` (`query_split`, test 20%, seed {SPLIT_SEED}): "
        f"{n['test'][0]:,} test queries ({n['test'][1]:,} with a relevant product). The {n['train'][0]:,} train "
        f"queries split again (validation 20%, seed {VALIDATION_SEED}): the encoder is first fine-tuned on the "
        f"{n['fit'][0]:,} fit queries' pairs and the fusion weights and k are fitted on its rankings of the "
        f"{n['validation'][0]:,} validation queries; then the encoder is retrained with the same settings on every "
        f"train query and fused with those weights (as `homedepot_retrieval.py` does). Nothing was fitted on the "
        f"test queries.", "",
        f"**Held-out test queries** ({n['test'][1]:,} scored):", "",
        "| channel | Recall@10 | MRR@100 |", "|---|---:|---:|"]
    lines += [f"| {name} | {m['recall@10']:.3f} | {m['mrr@100']:.3f} |" for name, m in test.items()]
    lines += ["", f"**All {n['all'][0]:,} queries** (untrained channels only), against the data set's published "
              "figures - checks that our BM25, MiniLM embedding and RRF reproduce them:", "",
              "| channel | ours R@10 | ours MRR@100 | published R@10 | published MRR@100 |", "|---|---:|---:|---:|---:|"]
    for (name, m), (pub, (pr, pm)) in zip(r["all_queries"].items(), PUBLISHED.items()):
        lines.append(f"| {name} | {m['recall@10']:.3f} | {m['mrr@100']:.3f} | {pr:.3f} | {pm:.3f} |")
    chosen = test[headline]["recall@10"]
    gain = tuned["recall@10"] - zero["recall@10"]
    lines += [
        "",
        f"Targets: (retrieval issue) the trained, fused channel at Recall@10 >= 1.10 x 0.433 (the README's RRF on all "
        f"queries) = {TARGET:.4f}: weighted RRF BM25 + fine-tuned (all train queries) reaches {chosen:.4f} on the "
        f"test queries and {'meets' if chosen >= TARGET else 'misses'} it. (intent issue) fine-tuned vs zero-shot MiniLM: Recall@10 "
        f"{tuned['recall@10']:.3f} vs {zero['recall@10']:.3f} ({gain:+.3f}), MRR@100 {tuned['mrr@100']:.3f} vs "
        f"{zero['mrr@100']:.3f}. Caveat: the published figures are on all queries, ours on the held-out fifth (harder: "
        f"BM25 {test['BM25, no stemming (the published BM25 setting)']['recall@10']:.3f} here vs "
        f"{PUBLISHED['BM25'][0]:.3f} on all queries); the like-for-like comparison is the cross-validated section above.",
        "",
        f"Fine-tuning: `QueryUnderstandingModel` with loss weights intent 0 / slots 0 / embedding 1 (in-batch softmax, "
        f"temperature {cfg.model.contrastive_temperature:g}, accidental hits removed), every encoder layer trained, "
        f"max_length {MAX_LENGTH} wordpieces for queries and titles; {ft['pairs']['train']:,} (query, title) pairs "
        f"judged >= 2.5 from the fit queries ({r['retrain']['pairs']['train']:,} from all train queries); Adam lr "
        f"{LEARNING_RATE:g}, clipnorm 1, batch {r['batch_size']}, {r['epochs']} epoch(s) (validation objective "
        f"{ft['val_objective']} on {ft['pairs']['validation']:,} validation pairs); the other settings are the job's "
        f"defaults. Earlier runs of this script without the retraining step, on the same test queries (disclosed "
        f"because the protocol changed after them): 1 epoch on the fit queries (git 038be8c) gave Recall@10 / "
        f"MRR@100 0.438 / 0.404 fine-tuned and 0.474 / 0.419 weighted RRF; 2 epochs gave 0.443 / 0.395 and 0.476 "
        f"/ 0.426 (just under {TARGET:.4f}), with validation Recall@10 0.431 after 1 epoch vs 0.430 after 2, hence "
        f"1 epoch here.  ",
        f"Weighted RRF fitted on the validation queries (grid search of channel weights and k on Recall@10): "
        f"{weights}, k = {fusion.k:g}. Validation Recall@10 / MRR@100: BM25 (stemming) "
        f"{val['lexical']['recall@10']:.3f} / {val['lexical']['mrr@100']:.3f}, fine-tuned "
        f"{val['tuned']['recall@10']:.3f} / {val['tuned']['mrr@100']:.3f}, fused (in-sample) {fusion.score:.3f} "
        f"Recall@10.  ",
        f"Time: fine-tuning {ft['train_s'] / 60:.1f} min (fit queries) + {r['retrain']['train_s'] / 60:.1f} min "
        f"(all train queries); {r['products']:,} titles embedded in "
        f"{r['tuned_titles_s']:.0f} s (fine-tuned; zero-shot "
        + ("loaded from the /tmp cache" if r["zero_titles_cached"] else f"{r['zero_titles_s']:.0f} s")
        + f"; batches of 64 sorted by length); fusion fit {r['fusion_s']:.0f} s; whole benchmark "
        f"{r['total_s'] / 60:.1f} min.",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder with products.csv and judgments.csv")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    if not ((args.data / "products.csv").is_file() and (args.data / "judgments.csv").is_file()):
        print(f"homedepot_semantic: skipped, no products.csv/judgments.csv in {args.data}")
        return 0
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    result = run(args.data, args.epochs, args.batch_size)
    (WORK / "homedepot_semantic.json").write_text(json.dumps(result, indent=1, default=str))
    body = report(result)
    print(body)
    if not args.no_write:
        write_section("homedepot_semantic", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
