"""`tfrec export --run DIR --base-dir DIR`: writes a trained run as TF Serving SavedModel versions.

A CTR, ranker or intent run gives one model; a retrieval run gives three: `<name>` (raw request in, top-k item ids
and scores out, the catalog in the graph), `<name>_query_tower` and `<name>_candidate_tower`. `--catalog DIR` re-indexes a
retrieval run against a changed catalog (a dataset directory) without retraining, as a new version.
"""

from __future__ import annotations

import json
import os


def register(commands) -> None:
    ex = commands.add_parser(
        "export",
        help="export a trained run as SavedModels",
        description="Rebuilds the model of a run from its config, fitted features and best checkpoint and writes "
        "<base-dir>/<name>/<version>/ with serving_default (raw features) and serving_examples (tf.Example) "
        "signatures. Retrieval runs also export their query and candidate towers.",
    )
    ex.add_argument("--run", required=True, help="run directory written by `tfrec train`")
    ex.add_argument("--base-dir", required=True, help="model base path (TF Serving's model_base_path parent)")
    ex.add_argument("--name", help="model name (directory under base-dir; default: the job, e.g. ctr, ranker, retrieval)")
    ex.add_argument("--version", type=int, help="version number (default: newest existing + 1)")
    ex.add_argument("--overwrite", action="store_true", help="replace the version if it exists")
    ex.add_argument("--catalog", help="retrieval only: index this dataset directory's catalog instead of the run's")
    ex.add_argument("--k", type=int, help="retrieval only: items returned per request (default: export_k of the run)")
    ex.set_defaults(handler=run_export)


def run_job(run_dir: str) -> str:
    """The job that wrote a run directory ('ctr' for runs that predate job.json)."""
    path = os.path.join(run_dir, "job.json")
    if not os.path.exists(path):
        return "ctr"
    with open(path, encoding="utf-8") as f:
        return json.load(f)["job"]


def _metrics(run_dir: str):
    path = os.path.join(run_dir, "metrics.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)["test"]


def run_export(args) -> int:
    if not os.path.isdir(args.run):
        raise FileNotFoundError(f"run directory {args.run} not found")
    info = {"run_dir": os.path.abspath(args.run)}
    job = run_job(args.run)
    if job == "retrieval":
        return _export_retrieval(args, info)
    if args.catalog or args.k:
        raise ValueError("--catalog and --k apply to retrieval runs only")
    if job == "intent":
        return _export_intent(args, info)
    if job == "ranker":
        return _export_ranker(args, info)
    from tfrec.export.ctr import export_ctr
    from tfrec.training.ctr_job import restore_ctr_run

    _, _, model = restore_ctr_run(args.run)
    metrics = _metrics(args.run)
    if metrics:
        info["metrics"] = {k: v for k, v in metrics.items() if k != "calibration"}
    path = export_ctr(model, args.base_dir, args.name or "ctr", args.version, info, args.overwrite)
    print(f"exported {path}")
    return 0


def _export_retrieval(args, info) -> int:
    from tfrec.export.retrieval import export_two_tower
    from tfrec.training.retrieval_job import read_catalog, restore_retrieval_run

    config, _, model = restore_retrieval_run(args.run)
    if args.catalog:
        from tfrec.data.dataset_io import load_dataset
        from tfrec.data.retrieval_examples import catalog_columns

        dataset, _ = load_dataset(args.catalog)
        catalog = catalog_columns(dataset, config.candidate_features)
        info["catalog"] = os.path.abspath(args.catalog)
    else:
        catalog = read_catalog(config, args.run)
    metrics = _metrics(args.run)
    if metrics:
        info["metrics"] = {r["name"]: r["metrics"] for r in metrics}
    paths = export_two_tower(model, catalog, args.base_dir, args.name or "retrieval", args.k or config.export_k,
                             args.version, info, args.overwrite)
    for path in paths.values():
        print(f"exported {path}")
    return 0


def _export_intent(args, info) -> int:
    from tfrec.export.intent import export_intent
    from tfrec.training.intent_job import restore_intent_run

    _, _, model = restore_intent_run(args.run)
    metrics = _metrics(args.run)
    if metrics:
        info["metrics"] = {k: v for k, v in metrics.items() if v is not None}
    path = export_intent(model, args.base_dir, args.name or "intent", args.version, info, args.overwrite)
    print(f"exported {path}")
    return 0


def _export_ranker(args, info) -> int:
    from tfrec.export.ranker import export_ranker
    from tfrec.training.ranker_job import restore_ranker_run

    _, _, model = restore_ranker_run(args.run)
    metrics = _metrics(args.run)
    if metrics:
        info["metrics"] = {head: rows for head, rows in metrics["heads"].items()}
    path = export_ranker(model, args.base_dir, args.name or "ranker", args.version, info, args.overwrite)
    print(f"exported {path}")
    return 0
