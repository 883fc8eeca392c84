"""TF Serving warm-up records written at export: `assets.extra/tf_serving_warmup_requests`, a TFRecord file of
PredictionLog protos that TF Serving (and `tfrec serve`) replays against a freshly loaded version before it serves,
so the first real requests do not pay for graph optimisation and kernel set-up.

The records are real requests on real rows: the caller's sample rows (e.g. a few rows of the training data) and
the spec's default row, for every servable signature of the export at each of `batch_sizes` rows (rows repeat to
fill a batch): a PredictRequest of feature vectors for a signature on raw features, of serialized tf.Examples for
one on examples, a ClassificationRequest / RegressionRequest for classify / regress signatures.
"""

from __future__ import annotations

import os
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import prediction_log_pb2

from tfrec.data.tfrecord import serialize_rows
from tfrec.export.signatures import CLASSIFY_METHOD, REGRESS_METHOD
from tfrec.features.spec import FeatureSpec

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
WARMUP_BATCH_SIZES = (1, 16)
# The signatures warmed by default: the one clients call. Each warmed signature costs a version load one graph
# optimisation (seconds of CPU on the larger models, whatever the batch size), so a server with every signature of
# every model warmed starts minutes later; export with warmup_signatures=None to warm every signature.
WARMUP_SIGNATURES = ("serving_default",)
MAX_WARMUP_RECORDS = 1000  # TF Serving reads at most this many

Columns = Dict[str, np.ndarray]


def warmup_path(version_dir: str) -> str:
    """Where TF Serving looks for a version's warm-up records."""
    return os.path.join(version_dir, WARMUP_FILE)


def write_warmup_requests(version_dir: str, logs: Iterable[prediction_log_pb2.PredictionLog]) -> str:
    """Writes PredictionLog protos as a version's warm-up file; returns its path."""
    path = warmup_path(version_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(version_dir: str) -> List[prediction_log_pb2.PredictionLog]:
    """The PredictionLog records of a version's warm-up file (none when it has no file)."""
    path = warmup_path(version_dir)
    if not os.path.exists(path):
        return []
    return [prediction_log_pb2.PredictionLog.FromString(r) for r in tf.data.TFRecordDataset(path).as_numpy_iterator()]


def typed_rows(spec: FeatureSpec, rows: Optional[Mapping[str, Sequence]], limit: int) -> Columns:
    """Up to `limit - 1` of the caller's rows followed by the spec's default row, one column per feature in the
    spec's dtype (str, int64, float32). Extra columns are ignored; a missing or mistyped feature is a ValueError
    naming it."""
    columns: Dict[str, List] = {f.name: [] for f in spec.features}
    if rows:
        missing = [f.name for f in spec.features if f.name not in rows]
        if missing:
            raise ValueError(f"warm-up rows have no column for features {missing}")
        lengths = {f.name: len(rows[f.name]) for f in spec.features}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"warm-up row columns differ in length: {lengths}")
        n = min(next(iter(lengths.values())), max(limit - 1, 0))
        for f in spec.features:
            for i, value in enumerate(list(rows[f.name])[:n]):
                columns[f.name].append(_typed(value, f.dtype, f"warm-up row {i}, feature {f.name!r}"))
    for f in spec.features:
        columns[f.name].append(f.tf_default)
    return {f.name: np.array(columns[f.name], dtype=object if f.dtype == "string" else f.tf_dtype.as_numpy_dtype)
            for f in spec.features}


def _typed(value, dtype: str, where: str):
    try:
        if dtype == "string":
            if isinstance(value, bytes):
                return value.decode("utf-8")
            if not isinstance(value, (str, np.str_)):
                raise TypeError(f"{type(value).__name__}")
            return str(value)
        if isinstance(value, (str, bytes, bool, np.bool_)):
            raise TypeError(f"{type(value).__name__}")
        return int(value) if dtype == "int" else float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: expected a {dtype}, got {value!r} ({exc})") from None


def _batch(columns: Columns, size: int) -> Columns:
    n = len(next(iter(columns.values())))
    index = np.arange(size) % n
    return {k: v[index] for k, v in columns.items()}


def _examples(columns: Columns) -> List[tf.train.Example]:
    return [tf.train.Example.FromString(s) for s in serialize_rows(columns)]


def _tensor(values: np.ndarray, dtype: tf.DType):
    if dtype == tf.string:
        values = np.array([v if isinstance(v, bytes) else str(v).encode("utf-8") for v in values], dtype=object)
    return tf.make_tensor_proto(values, dtype=dtype)


def request_log(name: str, key: str, signature: meta_graph_pb2.SignatureDef, columns: Columns
                ) -> prediction_log_pb2.PredictionLog:
    """One PredictionLog running signature `key` of model `name` on the rows of `columns` (spec-typed)."""
    log = prediction_log_pb2.PredictionLog()
    inputs = {k: tf.as_dtype(v.dtype) for k, v in signature.inputs.items()}
    if signature.method_name in (CLASSIFY_METHOD, REGRESS_METHOD):
        request = (log.classify_log.request if signature.method_name == CLASSIFY_METHOD else log.regress_log.request)
        request.input.example_list.examples.extend(_examples(columns))
    else:
        request = log.predict_log.request
        if set(inputs) <= set(columns):
            for input_name, dtype in inputs.items():
                request.inputs[input_name].CopyFrom(_tensor(columns[input_name], dtype))
        elif len(inputs) == 1 and next(iter(inputs.values())) == tf.string:
            serialized = np.array(list(serialize_rows(columns)), dtype=object)
            request.inputs[next(iter(inputs))].CopyFrom(_tensor(serialized, tf.string))
        else:
            raise ValueError(f"signature {key!r} takes {sorted(inputs)}: neither the spec's features nor one "
                             "input of serialized tf.Examples, so no warm-up request can be built for it")
    request.model_spec.name = name
    request.model_spec.signature_name = key
    return log


def warmup_logs(name: str, spec: FeatureSpec, signature_defs: Mapping[str, meta_graph_pb2.SignatureDef],
                rows: Optional[Mapping[str, Sequence]] = None,
                batch_sizes: Sequence[int] = WARMUP_BATCH_SIZES,
                signatures: Optional[Sequence[str]] = None) -> List[prediction_log_pb2.PredictionLog]:
    """Warm-up records for the `signatures` (None: every signature) of `signature_defs` at each batch size."""
    if signatures is not None:
        unknown = sorted(set(signatures) - set(signature_defs))
        if unknown:
            raise ValueError(f"no signature {unknown} to warm up; the export has {sorted(signature_defs)}")
        signature_defs = {k: v for k, v in signature_defs.items() if k in set(signatures)}
    sizes = sorted({int(b) for b in batch_sizes})
    if not sizes or sizes[0] < 1:
        raise ValueError(f"warm-up batch sizes must be positive integers, got {list(batch_sizes)}")
    if len(sizes) * len(signature_defs) > MAX_WARMUP_RECORDS:
        raise ValueError(f"{len(sizes)} batch sizes x {len(signature_defs)} signatures is over TF Serving's "
                         f"{MAX_WARMUP_RECORDS} warm-up records")
    columns = typed_rows(spec, rows, sizes[-1])
    return [request_log(name, key, signature_defs[key], _batch(columns, size))
            for key in sorted(signature_defs) for size in sizes]
