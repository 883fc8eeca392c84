"""Signatures on serialized tf.Examples for TF Serving's Classify and Regress APIs, and their method names.

TF Serving runs Classify only on a signature whose SignatureDef says `method_name: tensorflow/serving/classify`, and
Regress only on `.../regress`; both take one string input named `inputs` ([batch] serialized tf.Examples). Classify
reads `classes` (string [batch, k]) and/or `scores` (float [batch, k]); Regress reads `outputs` (float [batch]).
`tf.saved_model.save` writes every signature as `tensorflow/serving/predict`, so `set_method_names` rewrites the
method names in saved_model.pb after saving (and the fingerprint that hashes it); `tf.saved_model.load` reads the
result as before.

An `ExamplesSignature` derives those outputs from a model's serving outputs:
- `binary_classify("click_probability")`: classes ["0", "1"], scores [1 - p, p] (the canned-estimator layout);
- `top_k_classify("item_ids", "scores")`: the model's own top-k labels and scores (retrieval, intent);
- `regression("rating")`: the value as `outputs`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Dict, Mapping

import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
EXAMPLES_INPUT = "inputs"  # TF Serving's input key of classify and regress signatures
INIT_OP = "__saved_model_init_op"  # a pseudo-signature tf.saved_model.save adds; not servable

Outputs = Dict[str, tf.Tensor]


@dataclasses.dataclass(frozen=True)
class ExamplesSignature:
    """A classify or regress signature: `outputs` maps the model's serving outputs to TF Serving's output keys."""

    method: str
    outputs: Callable[[Outputs], Outputs]
    description: str


def binary_classify(probability: str) -> ExamplesSignature:
    """Classify on a binary head: class "1" scores P(label) = outputs[probability], class "0" scores 1 - P."""

    def outputs(out: Outputs) -> Outputs:
        p = tf.reshape(tf.cast(out[probability], tf.float32), [-1])
        classes = tf.tile(tf.constant([["0", "1"]]), tf.stack([tf.shape(p)[0], 1]))
        return {"classes": classes, "scores": tf.stack([1.0 - p, p], axis=1)}

    return ExamplesSignature(CLASSIFY_METHOD, outputs, f"classes '0'/'1', scores [1 - {probability}, {probability}]")


def top_k_classify(classes: str, scores: str) -> ExamplesSignature:
    """Classify with the model's own ranked labels: `classes` (strings [batch, k]) with their `scores`."""

    def outputs(out: Outputs) -> Outputs:
        return {"classes": tf.strings.as_string(out[classes]) if out[classes].dtype != tf.string else out[classes],
                "scores": tf.cast(out[scores], tf.float32)}

    return ExamplesSignature(CLASSIFY_METHOD, outputs, f"classes = {classes}, scores = {scores} (ranked)")


def regression(value: str) -> ExamplesSignature:
    """Regress on one value per example: outputs = outputs[value] as float32 [batch]."""

    def outputs(out: Outputs) -> Outputs:
        return {"outputs": tf.reshape(tf.cast(out[value], tf.float32), [-1])}

    return ExamplesSignature(REGRESS_METHOD, outputs, f"outputs = {value}")


def examples_function(serve, parse_spec: Mapping[str, tf.io.FixedLenFeature], input_name: str,
                      outputs: Callable[[Outputs], Outputs] = lambda out: out):
    """A concrete function: [batch] serialized tf.Examples (`input_name`) → parsed with `parse_spec` → the traced
    `serve` function → `outputs`. Calling `serve` keeps the model's graph stored once in the SavedModel."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=input_name)])
    def from_examples(examples):
        return outputs(serve(tf.io.parse_example(examples, dict(parse_spec))))

    return from_examples.get_concrete_function()


def set_method_names(export_dir: str, methods: Mapping[str, str]) -> Dict[str, meta_graph_pb2.SignatureDef]:
    """Sets the method_name of signatures (key → method) in `export_dir`/saved_model.pb, rewrites the fingerprint,
    and returns the servable signature defs (key → SignatureDef) as saved."""
    path = os.path.join(export_dir, "saved_model.pb")
    with open(path, "rb") as f:
        model = saved_model_pb2.SavedModel.FromString(f.read())
    graph = model.meta_graphs[0]
    for key, method in methods.items():
        if key not in graph.signature_def:
            raise KeyError(f"{export_dir} has no signature {key!r} to set the method of")
        graph.signature_def[key].method_name = method
    if methods:
        with open(path, "wb") as f:
            f.write(model.SerializeToString())
        _write_fingerprint(export_dir)
    return {k: v for k, v in graph.signature_def.items() if k != INIT_OP}


def _write_fingerprint(export_dir: str) -> None:
    """fingerprint.pb hashes saved_model.pb; recompute it so it describes the rewritten file."""
    try:
        from tensorflow.python.saved_model import fingerprinting_utils
    except ImportError:  # a TF without fingerprints: drop the stale one rather than keep a wrong hash
        stale = os.path.join(export_dir, "fingerprint.pb")
        if os.path.exists(stale):
            os.remove(stale)
        return
    fingerprinting_utils.write_fingerprint(export_dir)


def describe_signatures(signature_defs: Mapping[str, meta_graph_pb2.SignatureDef]) -> Dict[str, dict]:
    """key → {method, inputs, outputs}, each tensor as {dtype, shape} (-1: any size), as TF Serving sees them."""

    def tensors(infos) -> Dict[str, dict]:
        return {name: {"dtype": tf.as_dtype(info.dtype).name,
                       "shape": None if info.tensor_shape.unknown_rank else [d.size for d in info.tensor_shape.dim]}
                for name, info in sorted(infos.items())}

    return {key: {"method": sig.method_name, "inputs": tensors(sig.inputs), "outputs": tensors(sig.outputs)}
            for key, sig in sorted(signature_defs.items())}
