"""`tfrec export --run DIR --base-dir DIR`: writes a trained run as TF Serving SavedModel versions.

A CTR, ranker or intent run gives one model; a retrieval run gives three: `<name>` (raw request in, top-k item ids
and scores out, the catalog in the graph), `<name>_query_tower` and `<name>_candidate_tower`. `--catalog DIR` re-indexes a
retrieval run against a changed catalog (a dataset directory) without retraining, as a new version.

Each version gets warm-up records built from the first rows of the run's training split and a model card with the
run's data facts, settings and metrics.json (tfrec.export.run_info).
"""

from __future__ import annotations

import json
import os


def register(commands) -> None:
    ex = commands.add_parser(
        "export",
        help="export a trained run as SavedModels",
        description="Rebuilds the model of a run from its config, fitted features and best checkpoint and writes "
        "<base-dir>/<name>/<version>/ with serving_default and predict (raw features), serving_examples "
        "(tf.Example) and, where the model fits them, classify/regress signatures, TF Serving warm-up records and "
        "a model card (model_card.json, model_card.md). Retrieval runs also export their query and candidate towers.",
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


WARMUP_SPLIT, WARMUP_ROWS = "train", 8  # training rows in each export's warm-up records


def run_export(args) -> int:
    if not os.path.isdir(args.run):
        raise FileNotFoundError(f"run directory {args.run} not found")
    job = run_job(args.run)
    if job == "retrieval":
        return _export_retrieval(args, job)
    if args.catalog or args.k:
        raise ValueError("--catalog and --k apply to retrieval runs only")
    if job == "intent":
        from tfrec.export.intent import export_intent, query_spec
        from tfrec.training.intent_job import restore_intent_run

        return _export_one(args, job, restore_intent_run, export_intent, lambda model: query_spec())
    if job == "ranker":
        from tfrec.export.ranker import export_ranker
        from tfrec.training.ranker_job import restore_ranker_run

        return _export_one(args, job, restore_ranker_run, export_ranker, lambda model: model.encoder.spec)
    from tfrec.export.ctr import export_ctr
    from tfrec.training.ctr_job import restore_ctr_run

    return _export_one(args, "ctr", restore_ctr_run, export_ctr, lambda model: model.encoder.spec)


def _export_one(args, job: str, restore, export, spec_of) -> int:
    """A one-model run: restore, take warm-up rows of its training split, export with the run's card facts."""
    from tfrec.export.run_info import run_card_info, sample_rows

    config, _, model = restore(args.run)
    rows = sample_rows(args.run, WARMUP_SPLIT, spec_of(model), WARMUP_ROWS)
    path = export(model, args.base_dir, args.name or job, args.version, run_card_info(args.run, job, config),
                  args.overwrite, rows)
    print(f"exported {path}")
    return 0


def _export_retrieval(args, job) -> int:
    from tfrec.export.retrieval import export_two_tower
    from tfrec.export.run_info import run_card_info, sample_rows
    from tfrec.training.retrieval_job import read_catalog, restore_retrieval_run

    config, _, model = restore_retrieval_run(args.run)
    info = run_card_info(args.run, job, config)
    if args.catalog:
        from tfrec.data.dataset_io import load_dataset
        from tfrec.data.retrieval_examples import catalog_columns

        dataset, _ = load_dataset(args.catalog)
        catalog = catalog_columns(dataset, config.candidate_features)
        info["catalog"] = os.path.abspath(args.catalog)
    else:
        catalog = read_catalog(config, args.run)
    rows = sample_rows(args.run, WARMUP_SPLIT, model.query_tower.encoder.spec, WARMUP_ROWS)
    paths = export_two_tower(model, catalog, args.base_dir, args.name or "retrieval", args.k or config.export_k,
                             args.version, info, args.overwrite, rows)
    for path in paths.values():
        print(f"exported {path}")
    return 0
