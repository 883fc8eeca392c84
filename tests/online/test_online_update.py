"""Online updates end to end on the synthetic shop: a serving version trained on little traffic is warm-started (it
reproduces the served predictions exactly), trained on the events logged since, promoted because it is better on the
newest traffic, and hot-loaded by a running model server; the next update reads only newer events, and a candidate
trained on corrupted clicks is blocked without touching the model base path. The ranker once, tiny.
"""

import contextlib
import dataclasses
import io
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

import tfrec  # noqa: F401
from tfrec.cli.main import main
from tfrec.config import ConfigError
from tfrec.data.synthetic import SyntheticConfig, generate
from tfrec.data.tfrecord import list_shards, read_columns
from tfrec.export.ctr import export_ctr
from tfrec.export.loading import saved_model_predictor
from tfrec.export.ranker import export_ranker
from tfrec.export.saved_model import existing_versions, load_model_info
from tfrec.online.event_log import EventLog
from tfrec.online.events import events_from_table
from tfrec.online.online_examples import NotEnoughEventsError, split_newest
from tfrec.online.online_models import load_update_model
from tfrec.online.online_update import (UpdateTarget, load_online_update_config, resolve_serving_version,
                                        run_online_update)
from tfrec.online.update_report import guardrail_decision
from tfrec.online.warm_start import warm_start_from_saved_model
from tfrec.server import build_server, single_model_config
from tfrec.server.client import PredictionClient
from tfrec.server.manager import State
from tfrec.training.ctr_job import load_ctr_config, train_ctr
from tfrec.training.ranker_job import load_ranker_config, train_ranker

REPO = Path(__file__).resolve().parents[2]
UPDATE_CONFIG = str(REPO / "configs" / "online_update.yaml")
SEED = 5
OLD_TRAFFIC = {"n_sessions": 400}  # what the serving version learned from: too little to learn the shop
NEW_TRAFFIC = 1600  # sessions logged since (about 16k impressions)
# A small feature set keeps the graphs (and so every trace) small; `device` is an event attribute logged events
# lack, so updates fill it with the spec's default.
FEATURES = [
    {"name": "user_id", "encoding": "vocabulary", "min_count": 2}, {"name": "item_id", "encoding": "vocabulary"},
    {"name": "segment"}, {"name": "device"}, {"name": "category", "kind": "path"}, {"name": "brand"},
    {"name": "query", "kind": "text", "max_tokens": 12},
    {"name": "price", "dtype": "float", "kind": "numeric", "transform": "log1p", "buckets": 10},
    {"name": "position", "dtype": "int", "kind": "numeric", "boundaries": [0.5, 1.5, 2.5, 4.5, 9.5]},
]
OFFLINE = {"features": FEATURES, "data.preset": "tiny", "data.seed": SEED, "data.synthetic": OLD_TRAFFIC,
           "split.validation_fraction": 0.0, "training.epochs": 1, "training.verbose": 0}
CTR_MODEL = {"model.crosses": [["user_id", "category"], ["segment", "category"], ["query", "category"]],
             "model.matches": [], "model.price_limit": None}
RANKER_MODEL = {"features": [f for f in FEATURES if f["name"] not in ("segment", "device", "brand")],
                "model.matches": [], "model.price_limit": None, "model.crosses": [], "model.embedding_dim": 8,
                "model.cross_layers": 1,
                "model.deep_units": [16], "baseline": None,
                "model.explain_groups": {"user": ["user_id"], "context": ["price"], "query_match": ["query"]}}


def traffic(start: int, n_sessions: int = NEW_TRAFFIC):
    """Events of the same shop (same seed: same catalog and users) logged from `start` on."""
    data = generate(SyntheticConfig.preset("tiny", seed=SEED, **dict(OLD_TRAFFIC, n_sessions=n_sessions), start=start))
    return list(events_from_table(data.dataset.events)), data.config.end


def corrupted_clicks(events, before: float):
    """Before `before`, every impression that was not clicked is clicked and the real clicks are gone (a logging
    bug); later events as logged."""
    clicked = {(e.request_id, e.item_id) for e in events if e.event_type == "click"}
    out = []
    for e in events:
        if e.timestamp >= before:
            out.append(e)
        elif e.event_type == "impression":
            out.append(e)
            if (e.request_id, e.item_id) not in clicked:
                out.append(dataclasses.replace(e, event_type="click", timestamp=e.timestamp + 1))
    return out


def make_world(tmp: Path, kind: str) -> SimpleNamespace:
    """An offline run on little traffic exported as version 1, and an event log holding the traffic since."""
    run_dir, base = tmp / "run", tmp / "models"
    if kind == "ctr":
        config = load_ctr_config(str(REPO / "configs" / "ctr.yaml"), {**OFFLINE, **CTR_MODEL, "run_dir": str(run_dir)})
        export_ctr(train_ctr(config, log=lambda *_: None).model, str(base), "ctr")
    else:
        config = load_ranker_config(str(REPO / "configs" / "ranker.yaml"),
                                    {**OFFLINE, **RANKER_MODEL, "run_dir": str(run_dir)})
        config.model = dataclasses.replace(config.model, tasks={"click": 1.0})  # overrides merge into mappings
        export_ranker(train_ranker(config, log=lambda *_: None).model, str(base), "ranker")
    events, end = traffic(SyntheticConfig.preset("tiny", seed=SEED, **OLD_TRAFFIC).end)
    log = EventLog(tmp / "events.sqlite", synchronous="NORMAL")
    log.append(events)
    log.close()
    return SimpleNamespace(tmp=tmp, kind=kind, run_dir=str(run_dir), base=str(base / kind), end=end,
                           log=str(tmp / "events.sqlite"))


def settings(world, **overrides) -> dict:
    return {f"{world.kind}.run_dir": world.run_dir, f"{world.kind}.model_base_path": world.base, "model": world.kind,
            "event_log": world.log, "updates_dir": str(world.tmp / "updates"), "training.verbose": 0, **overrides}


def update(world, **overrides):
    return run_online_update(load_online_update_config(UPDATE_CONFIG, settings(world, **overrides)),
                             log=lambda *_: None)


def rows_of(run_dir: str, names, n: int = 64):
    """The first `n` test rows of a run, as feature columns."""
    columns = read_columns(list_shards(os.path.join(run_dir, "data"), "test"),
                           load_update_model("ctr", run_dir).spec.parse_spec())
    return {k: columns[k][:n] for k in names}


@pytest.fixture(scope="module")
def ctr(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("online_ctr"), "ctr")


@pytest.fixture(scope="module")
def version_1(ctr):
    """Test rows of the offline run and version 1's predictions for them (from the SavedModel on disk)."""
    rows = rows_of(ctr.run_dir, load_update_model("ctr", ctr.run_dir).spec.names)
    predictor = saved_model_predictor(os.path.join(ctr.base, "1"), "click_probability")
    return SimpleNamespace(rows=rows, predictions=predictor(rows), loaded=predictor.loaded)


@pytest.fixture(scope="module")
def served(ctr):
    """A model server polling the CTR base path while the first update runs and promotes version 2 (no warm-up
    requests: hot-loading, not warm-up, is under test here)."""
    server, port = build_server(single_model_config("ctr", ctr.base), poll_interval_s=0.2, warmup=False)
    try:
        yield SimpleNamespace(result=update(ctr), server=server, port=port)
    finally:
        server.stop(0)


def test_warm_start_reproduces_the_serving_version_exactly(ctr, version_1):
    model = load_update_model("ctr", ctr.run_dir)
    warm = model.predict(model.build(os.path.join(ctr.base, "1"), version_1.loaded), version_1.rows)
    fresh = model.predict(model.build(), version_1.rows)
    np.testing.assert_allclose(warm, version_1.predictions, rtol=0, atol=1e-6)
    assert np.max(np.abs(fresh - version_1.predictions)) > 1e-3  # without the warm start it is another model


def test_update_promotes_a_candidate_that_learned_the_new_traffic(ctr, served):
    result = served.result
    print(result.format())
    assert result.promoted and result.new_version == 2, result.format()
    assert result.candidate_metrics["auc"] > result.serving_metrics["auc"] + 0.05, result.format()
    assert result.warm_start["max_abs_difference"] <= 1e-5
    assert result.since_offset == 0 and 0 < result.until_offset <= result.last_offset
    assert result.events_held_back == result.last_offset - result.until_offset > 0  # the newest 30 min wait
    assert result.filled_features == ["device"]
    card = load_model_info(result.new_version_path)
    online = card["online_update"]
    assert online["warm_started_from"]["version"] == 1
    assert online["event_log"] == {"path": os.path.abspath(ctr.log), "since_offset": 0,
                                   "until_offset": result.until_offset, "last_offset_read": result.last_offset}
    assert card["metrics"]["eval"]["candidate"]["auc"] == pytest.approx(result.candidate_metrics["auc"])
    splits = card["training_data"]["splits"]
    assert splits["train"]["rows"] == result.train_examples and splits["eval"]["rows"] == result.eval_examples
    with open(os.path.join(result.update_dir, "result.json"), encoding="utf-8") as f:
        assert json.load(f)["decision"] == "promoted"
    assert os.path.isdir(os.path.join(result.update_dir, "logs"))  # TensorBoard


def _status(port: int):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "ctr"
        response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)
    return {s.version: s.state for s in response.model_version_status}


def test_running_server_hot_loads_the_promoted_version(ctr, version_1, served):
    deadline = time.time() + 60
    while _status(served.port).get(2) != State.AVAILABLE:
        assert time.time() < deadline, f"version 2 not loaded: {_status(served.port)}"
        time.sleep(0.2)
    with PredictionClient(f"127.0.0.1:{served.port}") as client:
        served_v2 = client.predict("ctr", version_1.rows, version=2)["click_probability"].reshape(-1)
        newest = client.predict("ctr", version_1.rows)["click_probability"].reshape(-1)
    on_disk = saved_model_predictor(os.path.join(ctr.base, "2"), "click_probability")(version_1.rows)
    np.testing.assert_allclose(served_v2, on_disk, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(newest, served_v2)  # requests without a version get the new one
    assert np.max(np.abs(on_disk - version_1.predictions)) > 1e-3


def test_next_update_reads_only_newer_events_and_blocks_a_worse_candidate(ctr, served):
    first = served.result
    events, _ = traffic(ctr.end, 1200)
    stamps = np.array([e.timestamp for e in events])
    with EventLog(ctr.log, synchronous="NORMAL") as log:
        log.append(corrupted_clicks(events, before=float(np.quantile(stamps, 0.7))))
        last = log.last_offset()
    printed = io.StringIO()
    argv = ["online-update", "--model", "ctr", "--config", UPDATE_CONFIG, "--quiet"]
    argv += [f"--set={k}={v}" for k, v in settings(ctr).items()]
    with contextlib.redirect_stdout(printed):
        code = main(argv)
    print(printed.getvalue())
    assert code == 1 and "BLOCKED: nothing exported" in printed.getvalue()
    assert existing_versions(ctr.base) == [1, 2]
    assert sorted(os.listdir(ctr.base)) == ["1", "2"]  # no staging directory left behind
    updates = sorted(Path(ctr.tmp / "updates").iterdir(), key=lambda p: p.stat().st_mtime)
    with open(updates[-1] / "result.json", encoding="utf-8") as f:
        second = json.load(f)
    assert second["decision"] == "blocked" and second["serving_version"] == 2
    assert second["since_offset"] == first.until_offset
    assert second["events_read"] == last - first.until_offset  # exactly the events after the first update's
    assert second["candidate_metrics"]["log_loss"] > second["serving_metrics"]["log_loss"] + 0.05
    assert "log_loss" in second["reason"].split(";")[0]


def test_clear_errors_before_any_training(ctr, served, tmp_path):
    with EventLog(ctr.log) as log:
        last = log.last_offset()
    with pytest.raises(NotEnoughEventsError, match=f"no events after offset {last}"):
        update(ctr, start_offset=last)
    with pytest.raises(ValueError, match="the eval slice .* fewer than min_eval_positives"):
        update(ctr, **{"guardrail.min_eval_positives": 10**6})
    printed = io.StringIO()
    with contextlib.redirect_stderr(printed):
        code = main(["online-update", "--model", "ranker", "--config", UPDATE_CONFIG,
                     "--set", f"ranker.run_dir={ctr.run_dir}", "--set", f"ranker.model_base_path={ctr.base}"])
    assert code == 2 and "is a ctr run, not a ranker run" in printed.getvalue()
    with pytest.raises(ConfigError, match="ctr.serving_version: serving_version 'stable' is a version label"):
        load_online_update_config(UPDATE_CONFIG, {"ctr.serving_version": "stable"})
    with pytest.raises(ConfigError, match="guardrail.metrics.precision: unknown metric 'precision'"):
        load_online_update_config(UPDATE_CONFIG, {"guardrail.metrics.precision": 0.0})


def test_serving_version_from_a_models_config_label(ctr, served, tmp_path):
    models_config = tmp_path / "models.config"
    models_config.write_text('model_config_list { config { name: "ctr" base_path: "/models/ctr" '
                             'version_labels { key: "stable" value: 1 } version_labels { key: "gone" value: 7 } } }')
    target = UpdateTarget(ctr.run_dir, ctr.base, serving_version="stable")
    assert resolve_serving_version(target, str(models_config)) == (1, os.path.join(ctr.base, "1"))
    assert resolve_serving_version(UpdateTarget(ctr.run_dir, ctr.base), None)[0] == 2
    with pytest.raises(FileNotFoundError, match=r"version 7 \(label 'gone'\) is not under"):
        resolve_serving_version(dataclasses.replace(target, serving_version="gone"), str(models_config))
    with pytest.raises(ValueError, match="has no version label 'canary'; it has"):
        resolve_serving_version(dataclasses.replace(target, serving_version="canary"), str(models_config))


def test_warm_start_pairs_keras_auto_named_layers(tmp_path):
    def three_dense():
        model = tf.keras.Sequential([tf.keras.layers.Dense(4), tf.keras.layers.Dense(4), tf.keras.layers.Dense(4)])
        model(tf.zeros([1, 3]))
        return model

    exported = three_dense()
    root = tf.Module()
    root.state_variables = exported.variables
    tf.saved_model.save(root, str(tmp_path / "1"))
    fresh = three_dense()  # Keras numbers this one's layers on (dense_3, ...), as another process may differently
    assert [v.name for v in fresh.variables] != [v.name for v in exported.variables]
    report = warm_start_from_saved_model(fresh, str(tmp_path / "1"))
    assert len(report.copied) == 6 and not report.not_in_export
    for mine, theirs in zip(fresh.variables, exported.variables):  # two (4, 4) kernels: paired in creation order
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def test_eval_slice_is_the_newest_requests_kept_whole():
    columns = {"timestamp": np.array([0, 3600, 6000, 7300, 9000, 10000]),
               "request_id": np.array(["a", "b", "c", "c", "d", "d"], dtype=object)}
    train, evaluate = split_newest(columns, 0.5, hours=1.0)  # newest hour: requests starting after 6400
    assert train.tolist() == [0, 1, 2, 3] and evaluate.tolist() == [4, 5]  # c started before the cut
    train, evaluate = split_newest(columns, 0.3)  # the newest 30 % of rows, whole requests
    assert evaluate.tolist() == [4, 5]


def test_guardrail_needs_every_metric_within_its_tolerance():
    serving, candidate = {"auc": 0.70, "log_loss": 0.30}, {"auc": 0.71, "log_loss": 0.31}
    promoted, reason = guardrail_decision({"auc": 0.0, "log_loss": 0.0}, serving, candidate)
    assert not promoted and reason.startswith("candidate log_loss 0.3100 vs serving 0.3000 (+0.0100): worse by")
    assert guardrail_decision({"auc": 0.0, "log_loss": 0.02}, serving, candidate)[0]
    assert not guardrail_decision({"auc": -0.02}, serving, candidate)[0]  # an improvement of 0.02 is demanded
    assert not guardrail_decision({"auc": 0.0}, serving, dict(candidate, auc=float("nan")))[0]


def test_ranker_update_warm_starts_and_promotes(tmp_path_factory):
    world = make_world(tmp_path_factory.mktemp("online_ranker"), "ranker")
    result = update(world, **{"training.epochs": 4})  # the ranker learns more slowly than the CTR model
    print(result.format())
    assert result.head == "click" and result.warm_start["max_abs_difference"] <= 1e-5
    assert "position_logit/kernel:0" in result.warm_start["not_in_export"]  # training-only tower starts neutral
    assert result.promoted and result.new_version == 2, result.format()
    assert result.candidate_metrics["auc"] > result.serving_metrics["auc"] + 0.03, result.format()
    card = load_model_info(result.new_version_path)
    assert card["model"] == "dcn_ranker" and "position" not in card["inputs"]
    assert card["online_update"]["event_log"]["until_offset"] == result.until_offset
