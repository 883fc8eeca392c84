"""`tfrec query-understand TEXT...`: what the query-understanding model makes of shopper queries."""

from __future__ import annotations

import json
import math
import os


def register(commands) -> None:
    q = commands.add_parser(
        "query-understand",
        help="parse queries with the intent model",
        description="Prints each query's intent (top-k with probabilities), slot filters (brand, colour, size, "
        "gender, material, price limits) and, with --embedding, its embedding, from an exported model (a version "
        "directory, or a model directory whose newest version is used) or a training run's checkpoint.",
    )
    q.add_argument("queries", nargs="+", metavar="TEXT", help="query text (quote it)")
    where = q.add_mutually_exclusive_group(required=True)
    where.add_argument("--model", help="exported intent model: <base>/<name> or <base>/<name>/<version>")
    where.add_argument("--run", help="run directory written by `tfrec train intent`")
    q.add_argument("--embedding", action="store_true", help="also print the embedding")
    q.set_defaults(handler=run_query_understand)


def _version_dir(path: str) -> str:
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    versions = sorted(int(d) for d in os.listdir(path) if d.isdigit()) if os.path.isdir(path) else []
    if not versions:
        raise FileNotFoundError(f"{path} holds no SavedModel version: export one with `tfrec export`")
    return os.path.join(path, str(versions[-1]))


def _plain(value):
    if hasattr(value, "item"):  # numpy scalars (bytes come back as plain bytes)
        value = value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def run_query_understand(args) -> int:
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the in-graph tokenizer's ops before the SavedModel loads)

    queries = tf.constant(args.queries)
    if args.model:
        outputs = tf.saved_model.load(_version_dir(args.model)).signatures["serving_default"](query=queries)
    else:
        from tfrec.export.intent import understand
        from tfrec.training.intent_job import restore_intent_run

        outputs = understand(restore_intent_run(args.run)[2], queries)
    outputs = {k: v.numpy() for k, v in outputs.items()}
    for i, text in enumerate(args.queries):
        parsed = {
            "query": text,
            "intent": _plain(outputs["intent"][i]),
            "intent_probability": round(float(outputs["intent_probability"][i]), 4),
            "top_intents": [[_plain(n), round(float(p), 4)]
                            for n, p in zip(outputs["top_intents"][i], outputs["top_probabilities"][i])],
            "filters": {k: _plain(outputs[k][i]) for k in
                        ("category", "brand", "color", "size", "gender", "material", "price_min", "price_max")
                        if _plain(outputs[k][i]) not in ("", None)},
        }
        if args.embedding:
            parsed["embedding"] = [round(float(x), 5) for x in outputs["embedding"][i]]
        print(json.dumps(parsed, ensure_ascii=False))
    return 0
