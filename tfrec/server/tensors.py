"""TensorProto ↔ numpy for Predict, checking each input against the signature so that a bad request gets
INVALID_ARGUMENT naming the input (TF itself would only say 'input #5 expected int64')."""

from __future__ import annotations

from typing import Dict, Iterable, Mapping

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2

from tfrec.server.errors import invalid

# A TensorProto may declare a shape far larger than its values (one value is broadcast to the whole shape), so a
# small request could ask for terabytes; inputs that would decode to more than this are refused.
MAX_DECODED_BYTES = 1 << 30


def _shape(shape: tf.TensorShape) -> str:
    return "unknown" if shape.rank is None else str([-1 if d is None else d for d in shape.as_list()])


def request_arrays(specs: Mapping[str, tf.TensorSpec], inputs: Mapping[str, tensor_pb2.TensorProto],
                   signature_name: str) -> Dict[str, np.ndarray]:
    """Numpy arrays for a Predict request's inputs, or INVALID_ARGUMENT naming the missing, unknown, mistyped or
    misshapen input. Dtypes must match exactly (TF Serving does not cast)."""
    missing = sorted(set(specs) - set(inputs))
    if missing:
        raise invalid(f"input {missing[0]!r} is missing (signature {signature_name!r} takes {sorted(specs)}; "
                      f"missing {missing})")
    unknown = sorted(set(inputs) - set(specs))
    if unknown:
        raise invalid(f"input {unknown[0]!r} is not an input of signature {signature_name!r} (it takes "
                      f"{sorted(specs)}; unknown {unknown})")
    arrays = {}
    for name, spec in specs.items():
        proto = inputs[name]
        try:
            dtype = tf.as_dtype(proto.dtype)
        except TypeError:
            raise invalid(f"input {name!r} has dtype enum {proto.dtype}, which is not a TensorFlow dtype") from None
        if dtype != spec.dtype:
            raise invalid(f"input {name!r} must be {spec.dtype.name}, got {dtype.name}")
        dims = [d.size for d in proto.tensor_shape.dim]
        if any(d < 0 for d in dims) or proto.tensor_shape.unknown_rank:
            raise invalid(f"input {name!r} has an unknown or negative dimension in its shape {dims}")
        if int(np.prod(dims, dtype=np.float64)) * (dtype.size if dtype != tf.string else 8) > MAX_DECODED_BYTES:
            raise invalid(f"input {name!r} declares shape {dims}, over {MAX_DECODED_BYTES} bytes once decoded")
        try:
            array = tf.make_ndarray(proto)
        except Exception as exc:  # malformed proto: content length vs shape, etc.
            raise invalid(f"input {name!r} is not a valid TensorProto: {exc}") from None
        if not spec.shape.is_compatible_with(array.shape):
            raise invalid(f"input {name!r} must have shape {_shape(spec.shape)}, got {list(array.shape)}")
        arrays[name] = array
    return arrays


def response_protos(outputs: Mapping[str, np.ndarray], output_filter: Iterable[str],
                    signature_name: str) -> Dict[str, tensor_pb2.TensorProto]:
    """TensorProtos of the outputs, restricted to `output_filter` when it is not empty (an unknown name is
    INVALID_ARGUMENT, as in TF Serving)."""
    wanted = list(output_filter)
    for name in wanted:
        if name not in outputs:
            raise invalid(f"output tensor alias not found in signature: {name!r} (signature {signature_name!r} "
                          f"outputs {sorted(outputs)})")
    return {name: tf.make_tensor_proto(np.asarray(outputs[name])) for name in (wanted or outputs)}
