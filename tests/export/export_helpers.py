"""Helpers of the export tests: real training jobs made cheap, and requests built from feature columns.

`quick_job(module, train, config)` runs a job's whole pipeline (data, split, fitted features, TFRecords, trainer
with its checkpoint and history callbacks, evaluation, metrics.json) with the trainer's Keras fit limited to two
eager steps: the export under test needs a complete run directory and a restorable model, not a good one, and
tracing the training step would take most of each module's time budget.
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

REPO = Path(__file__).resolve().parents[2]
# The smallest synthetic shop the generator accepts (every leaf category needs an item).
SMALL_SHOP = {"n_items": 120, "n_users": 40, "n_sessions": 300, "days": 3}
# configs/ranker.yaml with one match token, one cross layer, a small deep tower and no CTR baseline: the same graph
# pieces at a fraction of the tracing and warm-up cost.
SLIM_RANKER = {"model.matches": [["query", "title"]], "model.price_limit": None, "model.explain_groups.query_match": ["query__title"],
               "model.cross_layers": 1, "model.deep_units": [16], "baseline": None}


def eager_fit(build_model, train_data, validation_data, config, run_dir, callbacks=()):
    """tfrec.training.trainer.fit for one epoch of two eager steps (no traced training step)."""
    from tfrec.training import trainer

    def build():
        model = build_model()
        compile_ = model.compile
        model.compile = lambda *args, **kwargs: compile_(*args, run_eagerly=True, **kwargs)
        return model

    config = dataclasses.replace(config, epochs=1, steps_per_epoch=2, verbose=0)
    validation = validation_data.take(2) if validation_data is not None else None
    return trainer.fit(build, train_data, validation, config, run_dir, callbacks)


def quick_job(job_module, train, config):
    """`train(config)` of a job module with `eager_fit` as its trainer; returns the job's run result."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(job_module, "fit", eager_fit)
        return train(config, log=lambda *_: None)


def train_and_export(tmp_path_factory, job_module, train, load_config, config_file, overrides, *export_args):
    """(config, run, models dir): `quick_job` on configs/`config_file` with `overrides`, then `tfrec export`."""
    from tfrec.cli.main import main

    base = tmp_path_factory.mktemp(job_module.__name__.rsplit(".", 1)[-1])
    config = load_config(str(REPO / "configs" / config_file), {**overrides, "run_dir": str(base / "run")})
    run = quick_job(job_module, train, config)
    assert main(["export", "--run", run.run_dir, "--base-dir", str(base / "models"), *export_args]) == 0
    return config, run, base / "models"


def example_protos(columns, rows=None):
    """tf.train.Example protos of rows of feature columns (all rows by default)."""
    from tfrec.data.tfrecord import serialize_rows

    picked = {k: np.asarray(v)[rows] if rows is not None else np.asarray(v) for k, v in columns.items()}
    return [tf.train.Example.FromString(s) for s in serialize_rows(picked)]


def predict_request(name, signature, columns, spec):
    """A PredictRequest of spec-typed feature columns."""
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    for f in spec.features:
        values = np.asarray(columns[f.name])
        if f.dtype == "string":
            values = np.array([str(v).encode("utf-8") for v in values], dtype=object)
        request.inputs[f.name].CopyFrom(tf.make_tensor_proto(values, dtype=f.tf_dtype))
    return request


def classify_request(name, signature, examples):
    """A ClassificationRequest on tf.Example protos."""
    from tensorflow_serving.apis import classification_pb2

    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    request.input.example_list.examples.extend(examples)
    return request


def classification_arrays(response):
    """(labels [n, k] str, scores [n, k] float) of a ClassificationResponse."""
    rows = response.result.classifications
    labels = np.array([[c.label for c in row.classes] for row in rows], dtype=object)
    scores = np.array([[c.score for c in row.classes] for row in rows], dtype=np.float32)
    return labels, scores


def count_records(files):
    return sum(1 for _ in tf.data.TFRecordDataset(list(files)))


def check_card(version_dir, run_dir):
    """The card describes the SavedModel's real signatures (as the model server reads them from saved_model.pb),
    carries the run's metrics.json unchanged, and its row counts and time range are those of the run's TFRecords."""
    import glob
    import json
    import os
    import time

    from tfrec.data.tfrecord import read_columns
    from tfrec.export.model_card import load_model_info
    from tfrec.export.signatures import describe_signatures
    from tfrec.server.servable import read_signature_defs

    card = load_model_info(str(version_dir))
    saved = read_signature_defs(str(version_dir))
    saved.pop("__saved_model_init_op", None)
    described = describe_signatures(saved)
    assert {k: {p: v[p] for p in ("method", "inputs", "outputs")} for k, v in card["signatures"].items()} == described
    assert card["inputs"] == described["serving_default"]["inputs"]
    assert card["outputs"] == described["serving_default"]["outputs"]
    assert card["version"] == int(os.path.basename(str(version_dir)))
    assert card["versions"]["tensorflow"] == tf.__version__
    with open(os.path.join(run_dir, "metrics.json"), encoding="utf-8") as f:  # as text: NaN != NaN
        assert json.dumps(card["metrics"], sort_keys=True) == json.dumps(json.load(f), sort_keys=True)
    splits = card["training_data"]["splits"]
    for split, facts in splits.items():
        files = sorted(glob.glob(os.path.join(run_dir, "data", f"{split}-*-of-*.tfrecord")))
        assert facts["rows"] == count_records(files) > 0, split
        if "time_range" in facts:
            stamps = read_columns(files, {"timestamp": tf.io.FixedLenFeature([], tf.int64)})["timestamp"]
            iso = [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(t))) for t in (stamps.min(), stamps.max())]
            assert facts["time_range"] == iso, split
    markdown = open(os.path.join(str(version_dir), "model_card.md"), encoding="utf-8").read()
    for key in card["signatures"]:
        assert f"| {key} |" in markdown
    return card


def check_warmup(version_dir, name, replayed, first_row=None, warmed="default"):
    """The warmed signatures (WARMUP_SIGNATURES, all the export has of them) have warm-up requests of 1 and 16 rows, the single-row one on `first_row` (a dict of the
    first training row's features) when given, and the server replayed every record when it loaded the version."""
    import os

    from tfrec.export.warmup import WARMUP_SIGNATURES, read_warmup_requests
    from tfrec.server.servable import read_signature_defs

    logs = read_warmup_requests(str(version_dir))
    signatures = set(read_signature_defs(str(version_dir))) - {"__saved_model_init_op"}
    seen = {}
    for log in logs:
        kind = log.WhichOneof("log_type")
        request = getattr(log, kind).request
        assert request.model_spec.name == name
        if kind == "predict_log":
            rows = {len(tf.make_ndarray(t)) for t in request.inputs.values()}
            assert len(rows) == 1
            rows = rows.pop()
        else:
            rows = len(request.input.example_list.examples)
        seen.setdefault(request.model_spec.signature_name, set()).add(rows)
        if first_row is not None and kind == "predict_log" and rows == 1 and set(first_row) <= set(request.inputs):
            for feature, value in first_row.items():
                got = tf.make_ndarray(request.inputs[feature])[0]
                want = value if isinstance(got, bytes) else np.asarray(value).astype(got.dtype)
                assert (got.decode() if isinstance(got, bytes) else got) == want, feature
    warmed = WARMUP_SIGNATURES if warmed == "default" else (warmed or signatures)
    assert seen == {key: {1, 16} for key in signatures if key in warmed}
    assert replayed[(name, int(os.path.basename(str(version_dir))))] == len(logs)
    return logs
