"""Calling an exported SavedModel from Python with numpy columns (what evaluation and the demo use)."""

from __future__ import annotations

from typing import Callable, Dict, Mapping

import numpy as np
import tensorflow as tf


class RequestError(ValueError):
    """A request that does not fit a signature: names the input and what was wrong with it."""


def check_request(fn, features: Mapping[str, object]) -> Dict[str, tf.Tensor]:
    """Converts a request (dict of lists/arrays/tensors) to the tensors signature `fn` takes, or raises RequestError
    naming the offending input: missing or unknown inputs, a dtype that does not convert, a shape other than one
    value per row, or inputs of different batch sizes. TF itself only reports 'input #5 expected int64'."""
    inputs = fn.structured_input_signature[1]
    missing = sorted(set(inputs) - set(features))
    if missing:
        raise RequestError(f"missing inputs {missing}; the signature takes {sorted(inputs)}")
    unknown = sorted(set(features) - set(inputs))
    if unknown:
        raise RequestError(f"unknown inputs {unknown}; the signature takes {sorted(inputs)}")
    out, rows = {}, {}
    for name, spec in inputs.items():
        value = features[name]
        try:
            if isinstance(value, tf.Tensor):
                if value.dtype != spec.dtype:
                    raise TypeError(f"dtype {value.dtype.name}")
                tensor = value
            else:
                array = np.asarray(value)
                if spec.dtype == tf.string:
                    if array.dtype.kind not in "OUS":
                        raise TypeError(f"dtype {array.dtype}")
                    array = array.astype(str)
                elif array.dtype.kind not in ("iu" if spec.dtype.is_integer else "iuf"):
                    raise TypeError(f"dtype {array.dtype}")
                tensor = tf.constant(array, dtype=spec.dtype)
        except (TypeError, ValueError) as exc:
            raise RequestError(f"input {name!r} must be {spec.dtype.name}, got {exc}") from None
        if not spec.shape.is_compatible_with(tensor.shape):
            raise RequestError(f"input {name!r} must have shape {spec.shape.as_list()} (one value per row), got {tensor.shape.as_list()}")
        out[name], rows[name] = tensor, int(tensor.shape[0]) if tensor.shape.rank else 0
    if len(set(rows.values())) > 1:
        raise RequestError(f"inputs have different batch sizes: {rows}")
    return out


def saved_model_predictor(path: str, output: str, signature: str = "serving_default", batch_size: int = 8192,
                          flatten: bool = True) -> Callable:
    """A function: dict of numpy columns → numpy array of `output`, calling the reloaded signature in batches
    (flattened to one value per row, or with `flatten=False` kept as [rows, ...], e.g. top-k ids)."""
    loaded = tf.saved_model.load(path)
    if signature not in loaded.signatures:
        raise KeyError(f"{path} has no signature {signature!r}; it has {sorted(loaded.signatures)}")
    fn = loaded.signatures[signature]
    inputs = fn.structured_input_signature[1]

    def predict(features: Mapping[str, np.ndarray]) -> np.ndarray:
        missing = sorted(set(inputs) - set(features))
        if missing:
            raise KeyError(f"the signature needs inputs {missing}")
        n = len(next(iter(features.values())))
        parts = []
        for start in range(0, n, batch_size):
            batch: Dict[str, tf.Tensor] = {
                k: tf.constant(np.asarray(features[k][start : start + batch_size]), dtype=spec.dtype)
                if spec.dtype != tf.string else tf.constant(np.asarray(features[k][start : start + batch_size]).astype(str))
                for k, spec in inputs.items()
            }
            result = fn(**batch)
            if output not in result:
                raise KeyError(f"the signature has no output {output!r}; it has {sorted(result)}")
            value = result[output].numpy()
            parts.append(value.reshape(-1) if flatten else value)
        return np.concatenate(parts) if parts else np.zeros(0)

    predict.loaded = loaded  # keep the SavedModel alive as long as the function
    return predict
