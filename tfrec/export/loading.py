"""Calling an exported SavedModel from Python with numpy columns (what evaluation and the demo use)."""

from __future__ import annotations

from typing import Callable, Dict, Mapping

import numpy as np
import tensorflow as tf


def saved_model_predictor(path: str, output: str, signature: str = "serving_default", batch_size: int = 8192) -> Callable:
    """A function: dict of numpy columns → numpy array of `output`, calling the reloaded signature in batches."""
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
            parts.append(result[output].numpy().reshape(-1))
        return np.concatenate(parts) if parts else np.zeros(0)

    predict.loaded = loaded  # keep the SavedModel alive as long as the function
    return predict
