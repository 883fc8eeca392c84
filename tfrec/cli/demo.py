"""`tfrec demo`: the end-to-end main job on built-in data (what `make demo` runs).

generate a synthetic shop → validate it → train the CTR model (TFRecords, TensorBoard, checkpoints) → evaluate →
export a SavedModel version → reload it from disk → score sample requests and print the ranked products →
train the two-tower retrieval model → export it with the catalog in the graph (plus both towers) → fine-tune the BERT
query-understanding model → export it → train and export the DCN ranker → start the model server (tfrec serve) and
calibrate the ranker through it → start the search service (tfrec serve-search) and replay the newest logged
requests as Search and Recommend calls over gRPC: the query model parses a search into intent and filters,
retrieval finds candidates in the whole catalog, filters, the DCN ranker, calibration and MMR diversity give the
top products, printed with the reasons they are there and their true click probability.
"""

from __future__ import annotations

import os

import numpy as np

# The search service's per-model timeouts in the demo (configs/search.yaml's 300 ms are for serving): on a machine
# busy with other work a slow call would otherwise degrade, and the demo would not show the stage it skipped.
DEMO_MODEL_TIMEOUT_MS = 10_000.0


def register(commands) -> None:
    demo = commands.add_parser(
        "demo",
        help="run the end-to-end demo on synthetic data",
        description="Generates a synthetic shop; trains, evaluates and exports the CTR, retrieval, query-understanding "
        "and DCN ranker models; serves them with the model server and the search service and sends them Search "
        "and Recommend requests over gRPC.",
    )
    demo.add_argument("--out", default="demo_out", help="working directory for data, runs and models")
    demo.add_argument("--config", default="configs/ctr.yaml", help="CTR config (data source is replaced)")
    demo.add_argument("--retrieval-config", default="configs/retrieval.yaml", help="two-tower config (data source is replaced)")
    demo.add_argument("--intent-config", default="configs/intent.yaml", help="query-understanding config")
    demo.add_argument("--intent-queries", type=int, default=4000,
                      help="labelled searches the query model is fine-tuned on (bounds CPU time)")
    demo.add_argument("--ranker-config", default="configs/ranker.yaml",
                      help="DCN ranker config (data source is replaced)")
    demo.add_argument("--ranker-epochs", type=int, default=3, help="ranker epochs when --epochs is not given")
    demo.add_argument("--search-config", default="configs/search.yaml",
                      help="search service config (catalog, model server and ports are replaced)")
    demo.add_argument("--preset", default="small", help="synthetic data size (tiny for a quick look)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--epochs", type=int, help="override training.epochs")
    demo.add_argument("--requests", type=int, default=2, help="sample requests of each kind to print")
    demo.set_defaults(handler=run_demo)


def _banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 70 - len(text)), flush=True)


def run_demo(args) -> int:
    from tfrec.data.dataset_io import load_dataset, validate_dataset, write_dataset
    from tfrec.data.synthetic import SyntheticConfig, generate
    from tfrec.export.ctr import export_ctr
    from tfrec.export.loading import saved_model_predictor
    from tfrec.training.ctr_job import load_ctr_config, train_ctr

    data_dir, run_dir, models_dir = (os.path.join(args.out, d) for d in ("data", "runs/ctr", "models"))

    _banner(f"1. generate a synthetic shop (preset {args.preset}, seed {args.seed})")
    synthetic = generate(SyntheticConfig.preset(args.preset, seed=args.seed))
    write_dataset(synthetic.dataset, data_dir, format="csv")
    synthetic.ground_truth.save(data_dir)
    print(f"wrote {data_dir}: {synthetic.dataset!r}")

    _banner("2. validate it against the schema")
    report, stats = validate_dataset(data_dir, skip_bad_rows=False)
    print(f"rows {stats['rows']}, events by type {({k: v for k, v in stats['event_types'].items() if v})}")
    print(f"time range {stats['time_range']['first']} .. {stats['time_range']['last']}; bad rows: {report.total_skipped}")

    _banner("3. train the logistic CTR model")
    config = load_ctr_config(args.config, _job_overrides(args, data_dir, run_dir))
    run = train_ctr(config)

    _banner("4. export a SavedModel version (TF Serving layout)")
    info = {"metrics": {k: v for k, v in run.report.to_dict().items() if k != "calibration"}}
    path = export_ctr(run.model, models_dir, "ctr", info=info)
    print(f"exported {path}: {sorted(os.listdir(path))}")

    _banner("5. reload it from disk and score sample requests")
    predict = saved_model_predictor(path, output="click_probability")
    dataset, _ = load_dataset(data_dir)
    _score_samples(dataset, synthetic.ground_truth, predict, config, args.requests)

    _banner("6. train the two-tower retrieval model")
    from tfrec.export.retrieval import export_two_tower
    from tfrec.server.search.config import load_search_config
    from tfrec.training.retrieval_job import load_retrieval_config, read_catalog, train_retrieval

    retrieval_dir = os.path.join(args.out, "runs/retrieval")
    retrieval_config = load_retrieval_config(args.retrieval_config, _job_overrides(args, data_dir, retrieval_dir))
    retrieval = train_retrieval(retrieval_config)

    _banner("7. export the retrieval model (catalog in the graph) and both towers")
    info = {"metrics": {r.name: r.metrics() for r in retrieval.reports}}
    k = max(retrieval_config.export_k, load_search_config(args.search_config).candidates)  # the search service's N
    paths = export_two_tower(retrieval.model, read_catalog(retrieval_config, retrieval_dir), models_dir, "retrieval",
                             k, info=info)
    for exported in paths.values():
        print(f"exported {exported}")

    _banner("8. fine-tune the BERT query-understanding model (intent, slots, embedding)")
    from tfrec.export.intent import export_intent
    from tfrec.training.intent_job import load_intent_config, train_intent

    intent_dir = os.path.join(args.out, "runs/intent")
    intent_overrides = {"data.dataset.source": "directory", "data.dataset.path": data_dir, "run_dir": intent_dir,
                        "data.max_queries": args.intent_queries}
    if args.epochs:
        intent_overrides["training.epochs"] = args.epochs
    intent = train_intent(load_intent_config(args.intent_config, intent_overrides))

    _banner("9. export the query-understanding model (raw strings in)")
    intent_path = export_intent(intent.model, models_dir, "intent", info={"metrics": intent.report.to_dict()})
    print(f"exported {intent_path}")

    _banner("10. train the DCN ranker (click and purchase heads) and export it")
    from tfrec.export.ranker import export_ranker
    from tfrec.training.ranker_job import load_ranker_config, train_ranker

    ranker_overrides = {**_job_overrides(args, data_dir, os.path.join(args.out, "runs/ranker")), "baseline": None}
    ranker_overrides.setdefault("training.epochs", args.ranker_epochs)
    ranker = train_ranker(load_ranker_config(args.ranker_config, ranker_overrides))
    ranker_path = export_ranker(ranker.model, models_dir, "ranker", info={"metrics": ranker.report.to_dict()})
    print(f"exported {ranker_path}")

    _banner("11. start the model server (gRPC PredictionService on 127.0.0.1) and calibrate the ranker through it")
    from tfrec.cli.demo_pipeline import models_config, serve_samples, show_click_effect
    from tfrec.data.examples import impression_examples
    from tfrec.server import build_server
    from tfrec.server.search.calibration import calibrate_served_ranker

    config_path = models_config(models_dir, ["ranker", "retrieval", "intent"])
    server, port = build_server(config_path, host="127.0.0.1", port=0)
    print(f"tfrec serve --model_config_file {config_path}: listening on 127.0.0.1:{port}")
    search = None
    try:
        calibration_path = os.path.join(models_dir, "ranker_calibration.json")
        calibration = calibrate_served_ranker(f"127.0.0.1:{port}", impression_examples(dataset))
        calibration.save(calibration_path)
        report = calibration.report
        print(f"tfrec search-calibrate: wrote {calibration_path}: {calibration.describe()}; held-out log loss "
              f"{report['holdout_log_loss_ranker']:.4f} -> {report['holdout_log_loss_calibrated']:.4f}")

        _banner("12. start the search service and send it Search and Recommend requests over gRPC")
        from tfrec.server.search import SearchClient, build_search_server, load_search_config

        search_config = load_search_config(args.search_config, {
            "catalog": data_dir, "model_server": f"127.0.0.1:{port}", "server.port": 0,
            "calibration": calibration_path, "deadline_ms": 30000.0, "online.enabled": True,  # the live user state
            "online.overrides": {"event_log": {"path": os.path.join(args.out, "online", "events.sqlite")}}})
        for endpoint in (search_config.models.retrieval, search_config.models.ranker, search_config.models.intent):
            if endpoint is not None:  # the demo shows every stage: a busy machine's slow call must not skip one
                endpoint.timeout_ms = max(endpoint.timeout_ms, DEMO_MODEL_TIMEOUT_MS)
        search, search_port = build_search_server(search_config)
        print(f"tfrec serve-search: listening on 127.0.0.1:{search_port} (model server 127.0.0.1:{port}, "
              f"{len(search.pipeline.catalog)} catalog items)")
        with SearchClient(f"127.0.0.1:{search_port}", timeout=60.0) as client:
            serve_samples(dataset, synthetic.ground_truth, client, args.requests,
                          history_length=search_config.personalisation.history_length)
            show_click_effect(client, str(dataset.events["user_id"][-1]))
    finally:
        if search is not None:
            search.stop(5)
        server.stop(5)
    print(f"\nTensorBoard: tensorboard --logdir {args.out}/runs   Models: {models_dir}")
    return 0


def _job_overrides(args, data_dir: str, run_dir: str) -> dict:
    """A job config pointed at the demo's generated data and its own run directory."""
    overrides = {"data.source": "directory", "data.path": data_dir, "run_dir": run_dir}
    if args.epochs:
        overrides["training.epochs"] = args.epochs
    return overrides


def _score_samples(dataset, ground_truth, predict, config, per_kind: int) -> None:
    """Re-ranks the newest logged requests with the reloaded model and prints them beside the truth."""
    from tfrec.cli.demo_pipeline import newest_requests

    examples, rows = newest_requests(dataset, per_kind)
    picked = [examples["request_id"][i] for i in rows]
    titles = dict(zip(dataset.catalog["item_id"], dataset.catalog["title"]))
    spec_names = config.feature_spec.names
    for rid in picked:
        rows = np.flatnonzero(examples["request_id"] == rid)
        features = {k: examples[k][rows] for k in spec_names}
        features["position"] = np.zeros(len(rows), dtype=np.int64)  # score every item as if shown first
        probs = predict(features)
        truth = ground_truth.click_probability(  # the true P(click) at the same neutral position
            examples["request_id"][rows], examples["item_id"][rows], positions=features["position"]
        )
        query = examples["query"][rows[0]]
        kind = f'search "{query}"' if query else "recommendation"
        print(f"\nrequest {rid} by user {examples['user_id'][rows[0]]} ({kind}, {examples['device'][rows[0]]}):")
        print(f"  {'rank':>4} {'P(click)':>8} {'true':>6} {'clicked':>7}  {'price':>8}  item   (P at position 0)")
        for rank, j in enumerate(np.argsort(-probs, kind="stable"), 1):
            r = rows[j]
            print(
                f"  {rank:>4} {probs[j]:>8.4f} {truth[j]:>6.3f} {'yes' if examples['click'][r] else '':>7}  "
                f"{examples['price'][r]:>8.2f}  {titles[examples['item_id'][r]]}  [{examples['category'][r]}]"
            )
