"""Model inputs for a request, by the names the models' signatures declare (the feature spec's names): item columns
from the catalog (one row per candidate), and request-level values repeated on every row — user_id, query,
recent_items (oldest first, as the `sequence` feature reads it), timestamp, context values (device, ...) and the
user's attributes (segment, age_band, ...). An input nobody provides gets its missing value ('' or 0), which the
models' encoders map to out-of-vocabulary, as for an anonymous shopper."""

from __future__ import annotations

import time
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfrec.server.errors import invalid
from tfrec.server.search.catalog import Catalog

Inputs = Dict[str, Sequence]


def request_values(user_id: str, query: str, context: Mapping[str, str], recent_items: Sequence[str],
                   history_length: int, user_attributes: Mapping[str, str]) -> Dict[str, object]:
    """Request-level values by input name; `recent_items` are most recent first (the proto's order)."""
    values: Dict[str, object] = dict(user_attributes)
    values.update(context)
    values["user_id"] = user_id
    values["query"] = query
    history = list(recent_items)[:history_length] if history_length else []
    values["recent_items"] = " ".join(reversed(history))
    values["timestamp"] = timestamp_of(context)
    return values


def timestamp_of(context: Mapping[str, str]) -> int:
    """The request's time: context["timestamp"] (epoch seconds) or now; INVALID_ARGUMENT when not a number."""
    text = context.get("timestamp", "")
    if not str(text).strip():
        return int(time.time())
    try:
        value = float(text)
    except ValueError:
        raise invalid(f"context.timestamp: expected epoch seconds, got {text!r}") from None
    if not np.isfinite(value) or value < 0:
        raise invalid(f"context.timestamp: expected epoch seconds >= 0, got {text!r}")
    return int(value)


def _scalar(name: str, value: object, dtype: tf.DType):
    if dtype == tf.string:
        return value if isinstance(value, bytes) else str(value).encode("utf-8")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise invalid(f"context.{name}: the models read {name} as a number, got {value!r}") from None
    return int(number) if dtype.is_integer else number


def model_inputs(dtypes: Mapping[str, tf.DType], values: Mapping[str, object], catalog: Optional[Catalog] = None,
                 rows: Optional[np.ndarray] = None) -> Tuple[Inputs, List[str]]:
    """(inputs, names given their missing value): one row, or one per catalog row in `rows`."""
    n = 1 if rows is None else len(rows)
    inputs: Inputs = {}
    missing = []
    for name, dtype in dtypes.items():
        if rows is not None and catalog is not None and catalog.has_column(name):
            inputs[name] = (catalog.encoded(name, rows) if dtype == tf.string  # an unknown price reads as 0
                            else np.nan_to_num(catalog.column(name, rows).astype(dtype.as_numpy_dtype)))
            continue
        if name in values:
            value = _scalar(name, values[name], dtype)
        else:
            missing.append(name)
            value = b"" if dtype == tf.string else 0
        inputs[name] = [value] * n if dtype == tf.string else np.full(n, value, dtype=dtype.as_numpy_dtype)
    return inputs, missing


def blank_inputs(inputs: Inputs, dtypes: Mapping[str, tf.DType], names: Sequence[str]) -> Inputs:
    """`inputs` with the named inputs set to their missing value on every row (an explanation's ablation)."""
    out = dict(inputs)
    for name in names:
        if name in out:
            n = len(out[name])
            out[name] = [b""] * n if dtypes[name] == tf.string else np.zeros(n, dtypes[name].as_numpy_dtype)
    return out


def repeat_rows(inputs: Inputs, times: int) -> Inputs:
    """Every row of `inputs` repeated `times` times in a block (rows 0..n-1, then 0..n-1 again, ...)."""
    return {name: (list(values) * times if isinstance(values, list) else np.tile(values, times))
            for name, values in inputs.items()}


def example_inputs(dtypes: Mapping[str, tf.DType], examples: Mapping[str, np.ndarray], rows: np.ndarray) -> Inputs:
    """Inputs from logged example columns (what `impression_examples` builds), missing ones at their defaults."""
    inputs: Inputs = {}
    for name, dtype in dtypes.items():
        if name in examples:
            column = np.asarray(examples[name])[rows]
            inputs[name] = ([str(v).encode("utf-8") for v in column.tolist()] if dtype == tf.string
                            else column.astype(dtype.as_numpy_dtype))
        else:
            inputs[name] = [b""] * len(rows) if dtype == tf.string else np.zeros(len(rows), dtype.as_numpy_dtype)
    return inputs
