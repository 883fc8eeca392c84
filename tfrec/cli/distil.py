"""`tfrec distil intent --teacher RUN --run-dir OUT`: a shallower, faster student of a trained intent run."""

from __future__ import annotations

from tfrec.cli.common import add_config_arguments


def register(commands) -> None:
    distil = commands.add_parser("distil", help="distil a trained model into a smaller, faster one",
                                 description="Distil a trained model into a smaller, faster student.")
    models = distil.add_subparsers(dest="model", metavar="MODEL", required=True)
    intent = models.add_parser(
        "intent",
        help="a query-understanding student with fewer transformer layers",
        description="Builds a student from a `tfrec train intent` run (its embeddings, the transformer layers in "
        "`layers`, its heads), trains it on the teacher's outputs for the run's train-split queries and chosen "
        "titles, keeps the epoch with the lowest validation loss, and writes an intent run directory that `tfrec "
        "evaluate`, `tfrec export` and `tfrec query-understand --run` read like any other. Prints the teacher's and "
        "the student's test reports side by side.",
    )
    intent.add_argument("--teacher", required=True, help="run directory written by `tfrec train intent`")
    add_config_arguments(intent, default="configs/intent_distil.yaml",
                         run_dir_help="where to write the student's run directory", example="layers=[0,2,4]")
    intent.set_defaults(handler=run_distil_intent)


def run_distil_intent(args) -> int:
    from tfrec.config import parse_overrides
    from tfrec.training.intent_distil import distil_intent, load_distil_config

    config = load_distil_config(args.config, parse_overrides(args.set))
    run = distil_intent(args.teacher, args.run_dir, config)
    print(run.format())
    print(f"run directory: {run.run_dir}  (TensorBoard: tensorboard --logdir {run.run_dir}/logs; export: tfrec export "
          f"--run {run.run_dir} --base-dir models --name intent)")
    return 0
