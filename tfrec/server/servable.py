"""One loaded model version: its SavedModel's signatures (callable on numpy inputs) and SignatureDefs (for
GetModelMetadata). The server reaches models only through this, never through training code."""

from __future__ import annotations

import os
import threading
from typing import Dict, List, Mapping, Optional

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from google.protobuf import text_format

from tfrec.export.signatures import CLASSIFY_METHOD, PREDICT_METHOD, REGRESS_METHOD  # noqa: F401 - re-exported
from tfrec.server.errors import ServingError

DEFAULT_SIGNATURE = "serving_default"

_ops_lock = threading.Lock()
_ops_loaded = False


def _load_custom_ops() -> None:
    """Registers tensorflow-text's ops (our exports tokenize in the graph) before the first SavedModel load."""
    global _ops_loaded
    with _ops_lock:
        if not _ops_loaded:
            try:
                import tensorflow_text  # noqa: F401
            except ImportError:  # models without text ops still load
                pass
            _ops_loaded = True


def read_signature_defs(path: str) -> Dict[str, meta_graph_pb2.SignatureDef]:
    """The SignatureDef map of the SavedModel's `serve` MetaGraph, read from saved_model.pb (or .pbtxt)."""
    model = saved_model_pb2.SavedModel()
    binary, text = os.path.join(path, "saved_model.pb"), os.path.join(path, "saved_model.pbtxt")
    if os.path.exists(binary):
        with open(binary, "rb") as f:
            model.ParseFromString(f.read())
    elif os.path.exists(text):
        with open(text, encoding="utf-8") as f:
            text_format.Parse(f.read(), model)
    else:
        raise FileNotFoundError(f"{path} holds no saved_model.pb or saved_model.pbtxt")
    graphs = [g for g in model.meta_graphs if "serve" in g.meta_info_def.tags] or list(model.meta_graphs)
    if not graphs:
        raise ValueError(f"{path}/saved_model.pb holds no MetaGraph")
    return dict(graphs[0].signature_def)


class Servable:
    """A loaded version of a model: `run(signature, inputs)` maps numpy inputs to numpy outputs."""

    def __init__(self, name: str, version: int, path: str):
        _load_custom_ops()
        self.name, self.version, self.path = name, int(version), path
        self.signature_defs = read_signature_defs(path)
        self._loaded = tf.saved_model.load(path, tags=["serve"])
        self.signatures = dict(self._loaded.signatures)
        self._flat_order = {key: _flat_order(fn) for key, fn in self.signatures.items()}

    def __repr__(self) -> str:
        return f"Servable({self.name!r}, version={self.version}, path={self.path!r})"

    def signature(self, signature_name: str):
        """The concrete function of a signature; FAILED_PRECONDITION naming the signatures when absent (TF Serving's
        code for an unknown signature key)."""
        key = signature_name or DEFAULT_SIGNATURE
        if key not in self.signatures:
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                               f"Serving signature key {key!r} not found in {self.name} version {self.version}; "
                               f"it has {sorted(self.signatures)}")
        return self.signatures[key]

    def input_specs(self, signature_name: str) -> Dict[str, tf.TensorSpec]:
        """Input name → TensorSpec of a signature."""
        return dict(self.signature(signature_name).structured_input_signature[1])

    def output_specs(self, signature_name: str) -> Dict[str, tf.TensorSpec]:
        """Output name → TensorSpec of a signature."""
        return dict(self.signature(signature_name).structured_outputs)

    def method_name(self, signature_name: str) -> str:
        """The SignatureDef's method name (tensorflow/serving/predict for every TF2 export)."""
        key = signature_name or DEFAULT_SIGNATURE
        sig = self.signature_defs.get(key)
        return sig.method_name if sig is not None else PREDICT_METHOD

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Calls a signature on numpy inputs (already checked against its input specs) and returns numpy outputs."""
        key = signature_name or DEFAULT_SIGNATURE
        fn = self.signature(key)
        specs = fn.structured_input_signature[1]
        tensors = {k: tf.constant(v, dtype=specs[k].dtype) for k, v in inputs.items()}
        order = self._flat_order.get(key)
        if order is not None:
            outputs = fn._call_flat([tensors[name] for name in order], fn.captured_inputs)  # noqa: SLF001
            if isinstance(outputs, Mapping) and set(outputs) == set(fn.structured_outputs):
                return {k: v.numpy() for k, v in outputs.items()}
            self._flat_order[key] = None  # not what the structured call returns: never take this path again
        return {k: v.numpy() for k, v in fn(**tensors).items()}


def _flat_order(fn) -> Optional[List[str]]:
    """The input names in the order the signature's graph takes them, when the signature can be called with that
    flat list (ConcreteFunction._call_flat): what `fn(**tensors)` does after binding the keyword arguments to the
    function type, which costs 0.3-0.6 ms of Python per call (a tenth of a small model's call). None when this
    TensorFlow's function type does not name exactly the signature's inputs: then the structured call is used."""
    function_type = getattr(fn, "function_type", None)
    parameters = list(getattr(function_type, "parameters", None) or [])
    if not hasattr(fn, "_call_flat") or sorted(parameters) != sorted(fn.structured_input_signature[1]):
        return None
    placeholders = [t.name.split(":")[0] for t in fn.inputs[:len(parameters)]]
    return parameters if placeholders == parameters else None  # the graph's inputs, in that order
