"""SavedModels in TF Serving's layout: `<base>/<name>/<version>/` with signatures on raw features.

Every export has
- `serving_default` (and `predict`, the same function under TF Serving's conventional name): one batch vector per
  feature of the spec, named as the feature (strings, int64, float32);
- `serving_examples`: a batch of serialized tf.train.Example protos (`examples`), parsed with the same spec, so a
  feature a client leaves out takes the spec's default;
- the model's `classify` / `regress` signatures (serialized tf.Examples as `inputs`, with TF Serving's method names;
  see tfrec.export.signatures) where its outputs fit those APIs;
- `assets.extra/tf_serving_warmup_requests`: real requests for every signature (tfrec.export.warmup);
- `model_card.json` and `model_card.md`: what the model is (tfrec.export.model_card).

A SavedModel holds just what serving needs, which makes export and every load (tf.saved_model.load, TF Serving)
several times faster with the same signature outputs: the model's graph is traced once and stored once
(`serving_examples` parses, then calls `serving_default`'s function), and the root is a plain `tf.Module` tracking
only the variables and lookup tables (with their vocabulary assets) the signatures capture, not the Keras model,
whose saving would also trace and store every built layer's call functions.

A version is written to a hidden temporary directory and renamed into place when complete, so a model server
polling the base path never loads a half-written version.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Callable, Dict, Mapping, Optional, Sequence

import tensorflow as tf

from tfrec.export.model_card import build_card, load_model_info, write_card  # noqa: F401 - load_model_info: API
from tfrec.export.signatures import (EXAMPLES_INPUT, ExamplesSignature, describe_signatures, examples_function,
                                     set_method_names)
from tfrec.export.warmup import (WARMUP_BATCH_SIZES, WARMUP_FILE, WARMUP_SIGNATURES, warmup_logs,
                                 write_warmup_requests)
from tfrec.features.spec import FeatureSpec

OutputsFn = Callable[[Dict[str, tf.Tensor]], Dict[str, tf.Tensor]]
DEFAULT_SIGNATURE, PREDICT_SIGNATURE, EXAMPLES_SIGNATURE = "serving_default", "predict", "serving_examples"


def existing_versions(model_dir: str):
    """Integer version directories already under `<base>/<name>`, ascending."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(d) for d in os.listdir(model_dir) if d.isdigit() and os.path.isdir(os.path.join(model_dir, d)))


def default_row(spec: FeatureSpec) -> Dict[str, tf.Tensor]:
    """A batch of one row of the spec's defaults. Exports call the model on it eagerly before tracing: a model
    restored from a checkpoint creates its variables on its first call, and a first call inside tf.function is traced
    twice (once creating the variables, once using them)."""
    return {f.name: tf.constant([f.tf_default], f.tf_dtype) for f in spec.features}


def _captured_state(module: tf.Module, functions) -> Optional[tf.Module]:
    """A tf.Module tracking exactly the variables and resources (lookup tables and, through their initializers,
    vocabulary assets) of `module` that the concrete `functions` capture, or None when some captured resource
    handle is not one `module` tracks (then the caller saves `module` itself)."""
    state: Dict[int, object] = {}
    for obj in tf.train.TrackableView(module).descendants():
        if isinstance(obj, tf.Variable):
            handle = obj.handle
        elif isinstance(obj, tf.saved_model.experimental.TrackableResource):
            handle = obj.resource_handle
        else:
            continue
        state.setdefault(id(handle), obj)
    needed = {}
    for fn in functions:
        for tensor in fn.captured_inputs:
            if tensor.dtype != tf.resource:
                continue  # captured constants are saved inside the graph
            if id(tensor) not in state:
                return None
            needed.setdefault(id(tensor), state[id(tensor)])
    root = tf.Module()
    objects = list(needed.values())
    root.state_variables = [o for o in objects if isinstance(o, tf.Variable)]
    root.resources = [o for o in objects if not isinstance(o, tf.Variable)]
    return root


def export_saved_model(
    module: tf.Module,
    outputs_fn: OutputsFn,
    spec: FeatureSpec,
    base_dir: str,
    name: str,
    version: Optional[int] = None,
    info: Optional[Mapping] = None,
    overwrite: bool = False,
    examples_signatures: Optional[Mapping[str, ExamplesSignature]] = None,
    warmup_rows: Optional[Mapping[str, Sequence]] = None,
    warmup_batch_sizes: Sequence[int] = WARMUP_BATCH_SIZES,
    warmup_signatures: Optional[Sequence[str]] = WARMUP_SIGNATURES,
) -> str:
    """Exports `outputs_fn(features)` (a dict of batch tensors) under `<base_dir>/<name>/<version>` and returns the path.

    `module` is the tf.Module (usually the Keras model) whose variables and assets the signatures use (only those
    are saved, see the module docstring); the version defaults to one more than the newest existing version.
    `examples_signatures` adds classify/regress signatures (key → ExamplesSignature); `warmup_rows` (columns of a
    few real rows, e.g. from the training data) feed the warm-up records beside the spec's default row, for the
    `warmup_signatures` (None: all; see tfrec.export.warmup.WARMUP_SIGNATURES); `info`
    goes into the model card (kind, training data, config, metrics, ...).
    """
    model_dir = os.path.join(base_dir, name)
    versions = existing_versions(model_dir)
    version = (versions[-1] + 1 if versions else 1) if version is None else int(version)
    if version < 1:
        raise ValueError(f"version must be a positive integer, got {version}")
    final = os.path.join(model_dir, str(version))
    if os.path.exists(final) and not overwrite:
        raise FileExistsError(f"{final} already exists; choose another version or pass overwrite=True")

    parse_spec = spec.parse_spec()
    try:
        outputs_fn(default_row(spec))  # creates a restored model's variables eagerly (see default_row)
    except Exception:  # noqa: BLE001 - only a speed-up: an error that is real fails the trace below as well
        pass
    # Traced once, outside tf.saved_model.save: handed tf.functions, save would trace them again (its save context
    # is part of the trace cache key). The examples signatures parse, then call the same concrete function, so the
    # model's graph is in the SavedModel once.
    serve = tf.function(outputs_fn, input_signature=[spec.signature()]).get_concrete_function()
    signatures = {DEFAULT_SIGNATURE: serve, PREDICT_SIGNATURE: serve,
                  EXAMPLES_SIGNATURE: examples_function(serve, parse_spec, "examples")}
    methods = {}
    for key, head in (examples_signatures or {}).items():
        if key in signatures:
            raise ValueError(f"signature {key!r} is already defined by every export")
        signatures[key] = examples_function(serve, parse_spec, EXAMPLES_INPUT, head.outputs)
        methods[key] = head.method

    os.makedirs(model_dir, exist_ok=True)
    staging = os.path.join(model_dir, f".tmp-{version}-{os.getpid()}-{int(time.time() * 1000)}")
    try:
        root = _captured_state(module, list(signatures.values()))
        root = module if root is None else root
        tf.saved_model.save(root, staging, signatures=signatures)
        signature_defs = set_method_names(staging, methods)
        logs = warmup_logs(name, spec, signature_defs, warmup_rows, warmup_batch_sizes, warmup_signatures)
        write_warmup_requests(staging, logs)
        warmup = {"file": WARMUP_FILE, "records": len(logs), "batch_sizes": sorted(set(warmup_batch_sizes)),
                  "signatures": sorted(signature_defs if warmup_signatures is None else set(warmup_signatures))}
        described = describe_signatures(signature_defs)
        for key, head in (examples_signatures or {}).items():
            described[key]["description"] = head.description
        write_card(staging, build_card(name, version, described, spec.to_dict(), info, warmup))
        if os.path.exists(final):
            shutil.rmtree(final)
        os.rename(staging, final)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging, ignore_errors=True)
    return final
