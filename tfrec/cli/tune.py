"""`tfrec tune MODEL --config FILE --space FILE`: a Keras Tuner search over a model's job config."""

from __future__ import annotations

import sys


def register(commands) -> None:
    tune = commands.add_parser(
        "tune",
        help="search hyperparameters with Keras Tuner",
        description="Runs a Keras Tuner search (random, bayesian or hyperband) over a model's job config. Set "
        "KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT to distribute it (docs/tuning.md).",
    )
    models = tune.add_subparsers(dest="model", metavar="MODEL", required=True)
    for model, (help_text, job) in MODELS.items():
        parser = models.add_parser(
            model,
            help=help_text,
            description=f"Prepares the {job} data once, trains one model per trial, and writes best_config.yaml "
            f"(loadable by `tfrec train {model} --config`), trials.json and trials.csv into "
            "<tuner.directory>/<tuner.project_name>.",
        )
        parser.add_argument("--config", default=f"configs/{model}.yaml", help=f"job config (default: configs/{model}.yaml)")
        parser.add_argument(
            "--space", default=f"configs/tuning/{model}.yaml", help=f"search space (default: configs/tuning/{model}.yaml)"
        )
        parser.add_argument(
            "--set", action="append", default=[], metavar="KEY=VALUE",
            help="override a job config value, e.g. --set training.epochs=2 (repeatable; VALUE is YAML)",
        )
        parser.add_argument(
            "--space-set", action="append", default=[], metavar="KEY=VALUE",
            help="override a search space value, e.g. --space-set tuner.algorithm=random (repeatable)",
        )
        parser.add_argument("--max-trials", type=int, help="overrides tuner.max_trials")
        parser.add_argument("--directory", help="overrides tuner.directory (the tuning directory's parent)")
        parser.add_argument("--overwrite", action="store_true", help="discard an earlier search of the same project")
        parser.add_argument("--export-dir", help=f"export the best model as <export-dir>/{model}/<version>/")
        parser.set_defaults(handler=run_tune)


MODELS = {
    "ctr": ("the logistic CTR model", "CTR"),
    "retrieval": ("the two-tower retrieval model", "retrieval"),
    "intent": ("the BERT query-understanding model", "intent"),
    "ranker": ("the DCN-V2 multi-task ranker", "ranker"),
}


def space_overrides(args) -> dict:
    from tfrec.config import parse_overrides

    overrides = parse_overrides(args.space_set)
    if args.max_trials is not None:
        overrides["tuner.max_trials"] = args.max_trials
    if args.directory:
        overrides["tuner.directory"] = args.directory
    if args.overwrite:
        overrides["tuner.overwrite"] = True
    return overrides


def run_tune(args) -> int:
    from tfrec.config import parse_overrides
    from tfrec.tuning import SearchFailedError, format_trials, load_space, run_search
    from tfrec.tuning.jobs import tuning_job

    job = tuning_job(args.model, args.config, parse_overrides(args.set))
    space = load_space(args.space, space_overrides(args))
    try:
        result = run_search(job, space, export_dir=args.export_dir)
    except SearchFailedError as exc:
        print(f"tfrec: error: {exc}", file=sys.stderr)
        return 1
    print(format_trials(result))
    if result.best_config_path:
        print(f"best config: {result.best_config_path}  (train it: tfrec train {args.model} --config {result.best_config_path})")
        print(f"trials: {result.trials_path}, {result.trials_csv_path}")
    if result.test_metrics:
        print("best model on the test split: " + ", ".join(
            f"{k} {v:.4f}" for k, v in result.test_metrics.items() if isinstance(v, float)
        ))
    if result.export_path:
        print(f"exported {result.export_path}")
    return 0
