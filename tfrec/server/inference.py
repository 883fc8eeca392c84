"""Predict, Classify, Regress and MultiInference on one loaded version (a Servable), independent of gRPC: the
PredictionService and warm-up both call these. `runner(servable, signature, arrays)` runs a signature: directly,
or through the batch scheduler.

What Classify and Regress accept (the request's `model_spec.signature_name`, or when it is empty
`serving_default`, then `serving_examples`):
- a `tensorflow/serving/classify` / `.../regress` signature, as TF Serving does;
- a `tensorflow/serving/predict` signature (every TF2 export, e.g. tfrec's `serving_examples`) that takes one
  string input of shape [batch] (serialized tf.Examples) and has the outputs TF Serving's classify/regress
  signatures have: Classify uses `scores` ([batch] or [batch, k] float) and/or `classes` ([batch, k] strings or
  integers); Regress uses `outputs` ([batch] or [batch, 1] float).
`example_list_with_context` is merged as TF Serving does: each example is serialized after its context, so an
example's features override the context's.
"""

from __future__ import annotations

from typing import Callable, Dict, Mapping, Tuple

import numpy as np
from tensorflow_serving.apis import (classification_pb2, inference_pb2, input_pb2, model_pb2, predict_pb2,
                                     regression_pb2)

from tfrec.server.errors import invalid
from tfrec.server.servable import (CLASSIFY_METHOD, DEFAULT_SIGNATURE, PREDICT_METHOD, REGRESS_METHOD, Servable)
from tfrec.server.tensors import request_arrays, response_protos

Runner = Callable[[Servable, str, Dict[str, np.ndarray]], Dict[str, np.ndarray]]
EXAMPLES_SIGNATURE = "serving_examples"
_OUTPUTS = {CLASSIFY_METHOD: ("scores", "classes"), REGRESS_METHOD: ("outputs",)}


def direct_runner(servable: Servable, signature: str, arrays: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Runs the signature in the calling thread (no batching)."""
    return servable.run(signature, arrays)


def fill_model_spec(spec: model_pb2.ModelSpec, servable: Servable, signature_name: str) -> None:
    """The response's model_spec, as TF Serving fills it: name, the version that served, the signature."""
    spec.name = servable.name
    spec.version.value = servable.version
    spec.signature_name = signature_name


def predict(servable: Servable, request: predict_pb2.PredictRequest, runner: Runner = direct_runner):
    """PredictResponse for a PredictRequest (inputs checked against the signature; output_filter applied)."""
    signature = request.model_spec.signature_name or DEFAULT_SIGNATURE
    arrays = request_arrays(servable.input_specs(signature), request.inputs, signature)
    outputs = runner(servable, signature, arrays)
    response = predict_pb2.PredictResponse()
    fill_model_spec(response.model_spec, servable, signature)
    for name, proto in response_protos(outputs, request.output_filter, signature).items():
        response.outputs[name].CopyFrom(proto)
    return response


def serialized_examples(request_input: input_pb2.Input) -> np.ndarray:
    """The request's tf.Examples as a [batch] array of serialized protos (INVALID_ARGUMENT when there are none)."""
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        rows = [e.SerializeToString() for e in request_input.example_list.examples]
    elif kind == "example_list_with_context":
        context = request_input.example_list_with_context.context.SerializeToString()
        rows = [context + e.SerializeToString() for e in request_input.example_list_with_context.examples]
    else:
        rows = []
    if not rows:
        raise invalid("Input is empty: give example_list or example_list_with_context with at least one example")
    return np.array(rows, dtype=object)


def examples_signature(servable: Servable, signature_name: str, method: str) -> Tuple[str, str]:
    """(signature, input name) of the signature Classify/Regress runs (see the module docstring), or
    INVALID_ARGUMENT saying why none fits."""
    candidates = [signature_name] if signature_name else [DEFAULT_SIGNATURE, EXAMPLES_SIGNATURE]
    reasons = []
    for name in candidates:
        if signature_name:
            servable.signature(name)  # FAILED_PRECONDITION when absent
        elif name not in servable.signatures:
            continue
        kind = servable.method_name(name)
        inputs, outputs = servable.input_specs(name), servable.output_specs(name)
        wanted = [o for o in _OUTPUTS[method] if o in outputs]
        if kind not in (method, PREDICT_METHOD):
            reasons.append(f"{name!r} is a {kind} signature")
        elif len(inputs) != 1 or next(iter(inputs.values())).dtype.name != "string":
            reasons.append(f"{name!r} does not take one string input of serialized tf.Examples "
                           f"(takes {sorted(inputs)})")
        elif not next(iter(inputs.values())).shape.is_compatible_with([None]):
            reasons.append(f"{name!r} takes examples of shape {next(iter(inputs.values())).shape}, not [batch]")
        elif not wanted:
            reasons.append(f"{name!r} has none of the outputs {list(_OUTPUTS[method])} (has {sorted(outputs)})")
        else:
            return name, next(iter(inputs))
    api = "Classify" if method == CLASSIFY_METHOD else "Regress"
    fitting = sorted(k for k in servable.signatures if k != signature_name and servable.method_name(k) == method)
    hint = f" (its {method} signatures: {fitting}; name one in model_spec.signature_name)" if fitting else ""
    raise invalid(f"no signature of {servable.name} version {servable.version} fits {api}: " + "; ".join(
        reasons or [f"it has neither {DEFAULT_SIGNATURE!r} nor {EXAMPLES_SIGNATURE!r}"]) + hint)


def _rows(value: np.ndarray, n: int, name: str) -> np.ndarray:
    """An output as [n, k] (a [n] output is one column), or INVALID_ARGUMENT when it is not one row per example."""
    value = np.asarray(value)
    if value.ndim == 1:
        value = value.reshape(-1, 1)
    if value.ndim != 2 or value.shape[0] != n:
        raise invalid(f"output {name!r} has shape {list(np.shape(value))}; expected [{n}] or [{n}, k] "
                      "(one row per example)")
    return value


def _run_examples(servable: Servable, request, method: str, runner: Runner):
    signature, key = examples_signature(servable, request.model_spec.signature_name, method)
    examples = serialized_examples(request.input)
    return signature, len(examples), runner(servable, signature, {key: examples})


def _label(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def classification_result(outputs: Mapping[str, np.ndarray], n: int) -> classification_pb2.ClassificationResult:
    """Per example, its (label, score) classes from the `classes` and/or `scores` outputs."""
    scores = _rows(outputs["scores"], n, "scores").astype(np.float32) if "scores" in outputs else None
    classes = _rows(outputs["classes"], n, "classes") if "classes" in outputs else None
    if scores is not None and classes is not None and scores.shape != classes.shape:
        raise invalid(f"outputs 'classes' {list(classes.shape)} and 'scores' {list(scores.shape)} differ in shape")
    result = classification_pb2.ClassificationResult()
    k = (scores if scores is not None else classes).shape[1]
    for i in range(n):
        row = result.classifications.add()
        for j in range(k):
            item = row.classes.add()
            if classes is not None:
                item.label = _label(classes[i, j])
            if scores is not None:
                item.score = float(scores[i, j])
    return result


def regression_result(outputs: Mapping[str, np.ndarray], n: int) -> regression_pb2.RegressionResult:
    """Per example, its value from the `outputs` output ([batch] or [batch, 1])."""
    values = _rows(outputs["outputs"], n, "outputs")
    if values.shape[1] != 1:
        raise invalid(f"output 'outputs' has shape {list(values.shape)}; Regress needs one value per example")
    result = regression_pb2.RegressionResult()
    for value in values[:, 0].astype(np.float32):
        result.regressions.add(value=float(value))
    return result


def classify(servable: Servable, request: classification_pb2.ClassificationRequest, runner: Runner = direct_runner):
    """ClassificationResponse for a ClassificationRequest."""
    signature, n, outputs = _run_examples(servable, request, CLASSIFY_METHOD, runner)
    response = classification_pb2.ClassificationResponse(result=classification_result(outputs, n))
    fill_model_spec(response.model_spec, servable, signature)
    return response


def regress(servable: Servable, request: regression_pb2.RegressionRequest, runner: Runner = direct_runner):
    """RegressionResponse for a RegressionRequest."""
    signature, n, outputs = _run_examples(servable, request, REGRESS_METHOD, runner)
    response = regression_pb2.RegressionResponse(result=regression_result(outputs, n))
    fill_model_spec(response.model_spec, servable, signature)
    return response


def check_multi_inference(request: inference_pb2.MultiInferenceRequest) -> None:
    """INVALID_ARGUMENT unless the tasks (at least one) share a model and evaluate distinct signatures with
    classify/regress methods (TF Serving's rules)."""
    if not request.tasks:
        raise invalid("MultiInferenceRequest must contain at least one task")
    names = {t.model_spec.name for t in request.tasks}
    if len(names) > 1:
        raise invalid(f"All ModelSpecs in a MultiInferenceRequest must access the same model name; got {sorted(names)}")
    seen = set()
    for task in request.tasks:
        if task.method_name not in (CLASSIFY_METHOD, REGRESS_METHOD):
            raise invalid(f"Unsupported signature method_name: {task.method_name!r}")
        if task.model_spec.signature_name in seen:
            raise invalid(f"Duplicate evaluation of signature: {task.model_spec.signature_name!r}")
        seen.add(task.model_spec.signature_name)


def multi_inference(servable: Servable, request: inference_pb2.MultiInferenceRequest, runner: Runner = direct_runner):
    """MultiInferenceResponse: each task (classify or regress) run on the shared input, in order."""
    check_multi_inference(request)
    response = inference_pb2.MultiInferenceResponse()
    for task in request.tasks:
        sub = (classification_pb2.ClassificationRequest if task.method_name == CLASSIFY_METHOD
               else regression_pb2.RegressionRequest)(model_spec=task.model_spec, input=request.input)
        result = response.results.add()
        if task.method_name == CLASSIFY_METHOD:
            out = classify(servable, sub, runner)
            result.classification_result.CopyFrom(out.result)
        else:
            out = regress(servable, sub, runner)
            result.regression_result.CopyFrom(out.result)
        result.model_spec.CopyFrom(out.model_spec)
    return response
