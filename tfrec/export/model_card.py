"""The model card written beside every exported version: `model_card.json` (for programs: the model server's
operators, the A/B tooling, tests) and `model_card.md` (the same facts, short, for people browsing the model store).

Both sit in the version directory next to saved_model.pb, so a version copied or synced elsewhere keeps its card;
TF Serving and tf.saved_model.load ignore them. The signatures in the card are read back from the saved
saved_model.pb, so they are what TF Serving will see, not what the exporter meant to write.

Card keys: `name`, `version`, `model` (the kind, e.g. logistic_ctr), `created` (UTC), `versions` (tfrec,
TensorFlow), `signatures` (key → method, inputs and outputs with dtype and shape), `inputs` / `outputs`
(serving_default's), `features` (the feature spec), `warmup` (records written), and whatever the exporter adds:
`training_data` (source, rows per split, time range), `config` (the run's model and training settings), `metrics`
(the run's evaluation report), `run_dir`, model-specific facts.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, List, Mapping, Optional

import tensorflow as tf

CARD_JSON = "model_card.json"
CARD_MARKDOWN = "model_card.md"
LEGACY_INFO = os.path.join("assets.extra", "tfrec_model.json")  # where exports before model_card.json kept it
MAX_METRIC_LINES = 40


def build_card(name: str, version: int, signatures: Mapping[str, dict], features: List[dict],
               info: Optional[Mapping[str, Any]] = None, warmup: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The card of one exported version (keys in the module docstring); `signatures` as describe_signatures gives."""
    import tfrec

    default = signatures.get("serving_default", {"inputs": {}, "outputs": {}})
    card: Dict[str, Any] = {
        "name": name,
        "version": int(version),
        "model": None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": {"tfrec": tfrec.__version__, "tensorflow": tf.__version__},
        "signatures": dict(signatures),
        "inputs": default["inputs"],
        "outputs": default["outputs"],
        "features": features,
    }
    if warmup is not None:
        card["warmup"] = dict(warmup)
    card.update(dict(info or {}))
    return card


def write_card(version_dir: str, card: Mapping[str, Any]) -> None:
    """Writes model_card.json and model_card.md into `version_dir`."""
    with open(os.path.join(version_dir, CARD_JSON), "w", encoding="utf-8") as f:
        json.dump(card, f, indent=2, default=str)
    with open(os.path.join(version_dir, CARD_MARKDOWN), "w", encoding="utf-8") as f:
        f.write(card_markdown(card))


def load_model_info(path: str) -> dict:
    """The model card of an exported version directory (model_card.json, or an older export's tfrec_model.json)."""
    for name in (CARD_JSON, LEGACY_INFO):
        if os.path.exists(os.path.join(path, name)):
            with open(os.path.join(path, name), encoding="utf-8") as f:
                return json.load(f)
    raise FileNotFoundError(f"{path} has no {CARD_JSON}: is it a version directory written by tfrec export?")


def _tensor(spec: Mapping[str, Any]) -> str:
    shape = "?" if spec.get("shape") is None else "[" + ", ".join("?" if d < 0 else str(d) for d in spec["shape"]) + "]"
    return f"{spec['dtype']}{shape}"


def _label(row: Mapping[str, Any]) -> Optional[str]:
    for key in ("model", "name"):
        if isinstance(row.get(key), str):
            return row[key]
    return None


def flat_metrics(metrics: Any, prefix: str = "") -> List[str]:
    """`path: value` lines of the numbers in a (nested) metrics report; list rows are named by their `model` or
    `name` field, and lists of unnamed rows (calibration bins) are left out."""
    if isinstance(metrics, bool) or metrics is None:
        return []
    if isinstance(metrics, (int, float)):
        return [f"{prefix}: {metrics:.4g}" if isinstance(metrics, float) else f"{prefix}: {metrics}"]
    lines: List[str] = []
    if isinstance(metrics, Mapping):
        for key, value in metrics.items():
            lines += flat_metrics(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(metrics, list):
        for row in metrics:
            if isinstance(row, Mapping) and _label(row) is not None:
                rest = {k: v for k, v in row.items() if k not in ("model", "name")}
                lines += flat_metrics(rest, f"{prefix}[{_label(row)}]")
    return lines


def card_markdown(card: Mapping[str, Any]) -> str:
    """A short human-readable rendering of the card."""
    out = [f"# {card['name']} version {card['version']}", ""]
    out.append(f"- model: {card.get('model') or 'unknown'}")
    out.append(f"- created: {card.get('created')} with tfrec {card['versions']['tfrec']}, "
               f"TensorFlow {card['versions']['tensorflow']}")
    if card.get("run_dir"):
        out.append(f"- run: `{card['run_dir']}`")
    if card.get("warmup"):
        out.append(f"- warm-up: {card['warmup']['records']} records in `{card['warmup']['file']}`")
    out += ["", "## Signatures", "", "| signature | method | inputs | outputs |", "|---|---|---|---|"]
    signatures = card["signatures"]
    default = signatures.get("serving_default")
    for key in sorted(signatures, key=lambda k: (k != "serving_default", k)):
        sig = signatures[key]

        def tensors(part: str) -> str:
            if default is not None and key != "serving_default" and sig[part] == default[part]:
                return "as serving_default"
            return ", ".join(f"{n} {_tensor(t)}" for n, t in sig[part].items())

        out.append(f"| {key} | {sig['method'].rsplit('/', 1)[-1]} | {tensors('inputs')} | {tensors('outputs')} |")
    data = card.get("training_data")
    if data:
        out += ["", "## Training data", ""]
        source = data.get("source") or {}
        out.append("- source: " + (", ".join(f"{k}={v}" for k, v in source.items() if v not in (None, {}, []))
                                   or "unknown"))
        for split, facts in (data.get("splits") or {}).items():
            span = f", {facts['time_range'][0]} to {facts['time_range'][1]}" if facts.get("time_range") else ""
            out.append(f"- {split}: {facts['rows']} rows{span}")
    lines = flat_metrics(card.get("metrics"))
    if lines:
        out += ["", "## Metrics", ""]
        out += [f"- {line}" for line in lines[:MAX_METRIC_LINES]]
        if len(lines) > MAX_METRIC_LINES:
            out.append(f"- ... {len(lines) - MAX_METRIC_LINES} more in {CARD_JSON}")
    out += ["", f"Everything else (feature spec, config, full report): `{CARD_JSON}`.", ""]
    return "\n".join(out)
