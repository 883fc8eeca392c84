"""`tfrec evaluate --run DIR`: the test report of a trained run, from its checkpoint or an exported SavedModel."""

from __future__ import annotations

import json


def register(commands) -> None:
    ev = commands.add_parser(
        "evaluate",
        help="evaluate a trained run",
        description="Reports AUC, log loss, calibration by decile, the popularity baseline and (synthetic data) "
        "the ground-truth AUC on a split of a training run.",
    )
    ev.add_argument("--run", required=True, help="run directory written by `tfrec train`")
    ev.add_argument("--saved-model", help="evaluate this exported version instead of the run's checkpoint")
    ev.add_argument("--split", choices=("validation", "test"), default="test")
    ev.add_argument("--json", action="store_true", help="print the report as JSON")
    ev.set_defaults(handler=run_evaluate)


def run_evaluate(args) -> int:
    from tfrec.export.loading import saved_model_predictor
    from tfrec.training.ctr_job import evaluate_run, load_run_config, predict, restore_ctr_run

    if args.saved_model:
        config = load_run_config(args.run)
        predict_fn = saved_model_predictor(args.saved_model, output="click_probability")
    else:
        config, _, model = restore_ctr_run(args.run)
        predict_fn = lambda features: predict(model, features)  # noqa: E731
    report = evaluate_run(config, args.run, predict_fn, split=args.split)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format(f"{args.split} split"))
    return 0
