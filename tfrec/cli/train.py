"""`tfrec train MODEL --config FILE`: runs a model's training job into its run directory."""

from __future__ import annotations

from tfrec.cli.common import add_config_arguments, config_overrides


def register(commands) -> None:
    train = commands.add_parser("train", help="train a model", description="Train a model from a YAML config.")
    models = train.add_subparsers(dest="model", metavar="MODEL", required=True)
    ctr = models.add_parser(
        "ctr",
        help="the logistic CTR model",
        description="Loads data, builds labelled impressions, splits by time, fits features, writes TFRecords, "
        "trains with TensorBoard logs and checkpoints, and reports test AUC, log loss and calibration.",
    )
    add_config_arguments(ctr, default="configs/ctr.yaml")
    ctr.add_argument(
        "--skip-bad-rows",
        action="store_true",
        help="skip bad input rows, counting and reporting them, instead of stopping at the first",
    )
    ctr.set_defaults(handler=run_ctr)
    retrieval = models.add_parser(
        "retrieval",
        help="the two-tower retrieval model",
        description="Loads data, builds positive examples with each shopper's recent items, splits them (time, "
        "random or leave-last-out), fits features, writes TFRecords, trains the towers with full-catalog validation "
        "recall driving checkpoints, and reports test Recall@k, NDCG@10 and MRR beside a popularity baseline.",
    )
    add_config_arguments(retrieval, default="configs/retrieval.yaml")
    retrieval.add_argument("--skip-bad-rows", action="store_true", help="skip and report bad input rows")
    retrieval.set_defaults(handler=run_retrieval)
    intent = models.add_parser(
        "intent",
        help="the BERT query-understanding model (intent, slots, embedding)",
        description="Loads labelled queries (the synthetic generator's searches, your own labelled file, or WANDS), "
        "splits them by query text, tags slots on the encoder's wordpieces, writes TFRecords, fine-tunes the BERT "
        "encoder with intent, slot and query-title contrastive heads, and reports test intent accuracy, slot F1 and "
        "title retrieval beside the zero-shot encoder.",
    )
    add_config_arguments(intent, default="configs/intent.yaml")
    intent.set_defaults(handler=run_intent)
    ranker = models.add_parser(
        "ranker",
        help="the multi-task DCN-V2 ranker",
        description="Loads data, builds labelled impressions (or ratings), splits them, fits features, writes "
        "TFRecords, trains the DCN ranker (click/purchase or rating heads, position tower in training only) and, on "
        "the same split, the logistic CTR baseline, and reports per head AUC and log loss (or RMSE) and NDCG@10 per "
        "request beside the baseline, popularity and (synthetic data) the ground truth.",
    )
    add_config_arguments(ranker, default="configs/ranker.yaml")
    ranker.add_argument("--skip-bad-rows", action="store_true", help="skip and report bad input rows")
    ranker.set_defaults(handler=run_ranker)
    from tfrec.cli import price

    price.register_train(models)


def _train(args, job: str) -> int:
    """Loads `tfrec.training.<job>_job`'s config with the command's overrides and trains it."""
    import importlib

    module = importlib.import_module(f"tfrec.training.{job}_job")
    overrides = config_overrides(args)
    if getattr(args, "skip_bad_rows", False):
        overrides["data.skip_bad_rows"] = True
    config = getattr(module, f"load_{job}_config")(args.config, overrides)
    return _finished(getattr(module, f"train_{job}")(config))


def run_ctr(args) -> int:
    return _train(args, "ctr")


def run_retrieval(args) -> int:
    return _train(args, "retrieval")


def run_intent(args) -> int:
    return _train(args, "intent")


def run_ranker(args) -> int:
    return _train(args, "ranker")


def _finished(run) -> int:
    """Prints where the run is; a non-chief multi_worker worker (no run) says the chief has it."""
    if run is None:
        print("worker finished: the chief (task 0 of TF_CONFIG) writes the run directory")
    else:
        print(f"run directory: {run.run_dir}  (TensorBoard: tensorboard --logdir {run.run_dir}/logs)")
    return 0
