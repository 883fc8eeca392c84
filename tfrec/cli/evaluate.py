"""`tfrec evaluate --run DIR`: the test report of a trained run, from its checkpoint or an exported SavedModel."""

from __future__ import annotations

import json


def register(commands) -> None:
    ev = commands.add_parser(
        "evaluate",
        help="evaluate a trained run",
        description="Reports AUC, log loss, calibration by decile, the popularity baseline and (synthetic data) "
        "the ground-truth AUC on a split of a training run; for ranker runs, per head, the pointwise and per-request "
        "(or per-user) metrics of the DCN ranker beside the run's logistic CTR, popularity and the ground truth; for "
        "retrieval runs, full-catalog recall, NDCG and MRR.",
    )
    ev.add_argument("--run", required=True, help="run directory written by `tfrec train`")
    ev.add_argument("--saved-model", help="evaluate this exported version instead of the run's checkpoint")
    ev.add_argument("--split", choices=("validation", "test"), default="test")
    ev.add_argument("--json", action="store_true", help="print the report as JSON")
    ev.set_defaults(handler=run_evaluate)


def run_evaluate(args) -> int:
    from tfrec.cli.export import run_job

    job = run_job(args.run)
    if job == "retrieval":
        return _evaluate_retrieval(args)
    if job == "ranker":
        return _evaluate_ranker(args)
    if job == "intent":
        return _evaluate_intent(args)
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


def _evaluate_intent(args) -> int:
    """The intent report (intent top-k, slot F1, title retrieval) of the run's checkpoint on a split."""
    if args.saved_model:
        raise ValueError("--saved-model is not supported for intent runs: the report needs the model's logits, "
                         "which the export does not serve; evaluate the run's checkpoint")
    from tfrec.training.intent_evaluation import evaluate_intent_model
    from tfrec.training.intent_job import read_split, restore_intent_run

    config, intents, model = restore_intent_run(args.run)
    report = evaluate_intent_model(model, read_split(config, args.run, args.split), intents)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format(f"{args.run}, {args.split} split"))
    return 0


def _evaluate_retrieval(args) -> int:
    """Full-catalog reports from the run's checkpoint, or from an exported retrieval model's top-k lists."""
    from tfrec.training.rank_metrics import format_reports

    if args.saved_model:
        from tfrec.export.loading import saved_model_predictor
        from tfrec.training.retrieval_evaluation import list_report
        from tfrec.training.retrieval_job import load_retrieval_config, read_catalog, read_split

        config = load_retrieval_config(f"{args.run}/config.yaml")
        test = read_split(config, args.run, args.split)
        top = saved_model_predictor(args.saved_model, output="item_ids", flatten=False)
        ranked = top({n: test[n] for n in config.query_features}).astype(str)
        n_items = len(read_catalog(config, args.run)["item_id"])
        reports = [list_report(ranked, test["item_id"], name="saved model", protocol=f"{config.split.protocol} split, "
                               f"{args.split}", users=test["user_id"], n_items=n_items, recall_ks=config.evaluation.recall_ks)]
    else:
        from tfrec.training.retrieval_job import evaluate_retrieval_run, restore_retrieval_run

        config, _, model = restore_retrieval_run(args.run)
        reports, _ = evaluate_retrieval_run(config, args.run, model, split=args.split)
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=2))
    else:
        print(reports[0].protocol)
        print(format_reports(reports))
    return 0


def _evaluate_ranker(args) -> int:
    """The ranker report from the run's checkpoints (ranker and logistic CTR baseline), or with the ranker's scores
    from an exported SavedModel: that has no position tower, so its AUC and log loss judge the position-free serving
    scores, not the logged click model the checkpoint report shows."""
    from tfrec.training.ranker_job import evaluate_ranker_run, restore_ranker_run

    config, _, model, baseline = restore_ranker_run(args.run, with_baseline=True)
    predict = _saved_ranker_predictions(args.saved_model, list(config.model.tasks)) if args.saved_model else None
    report = evaluate_ranker_run(config, args.run, model, baseline, split=args.split, predict=predict)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        source = f"ranker scores from {args.saved_model} (position-free)" if args.saved_model else "ranker checkpoint"
        print(f"{args.run}: {source}")
        print(report.format())
    return 0


def _saved_ranker_predictions(path: str, tasks):
    """feature columns → per head {"logged", "serving"} of an exported ranker (the same position-free scores)."""
    from tfrec.export.loading import saved_model_predictor
    from tfrec.models.ranker import output_name

    predictors = {t: saved_model_predictor(path, output=output_name(t)) for t in tasks}

    def predict(features):
        out = {}
        for task, predictor in predictors.items():
            scores = predictor(features).astype("float64")
            out[task] = {"logged": scores, "serving": scores}
        return out

    return predict
