"""A SearchResponse as text for people (the CLI and the demo print this)."""

from __future__ import annotations

from typing import List


def _filter_text(f) -> str:
    if f.field == "price":
        parts = ([f">= {f.min:g}"] if f.HasField("min") else []) + ([f"<= {f.max:g}"] if f.HasField("max") else [])
        return "price " + " and ".join(parts)
    if f.field == "in_stock":
        return "in stock"
    return f"{f.field} " + " or ".join(repr(v) for v in f.values)


def format_response(response, show_reasons: bool = True, show_timings: bool = True) -> str:
    """Header (candidates, parsed query, filters, degradations), one line per item with its reasons, timings."""
    lines: List[str] = []
    parsed = response.parsed_query
    lines.append(f"request {response.request_id}: {len(response.items)} items from {response.candidates_retrieved} "
                 f"retrieved candidates ({response.candidates_after_filters} after filters); models "
                 + ", ".join(f"{name} v{v}" for name, v in sorted(response.model_versions.items())))
    if parsed.understood:
        lines.append(f"  understood: intent {parsed.intent} (p={parsed.intent_probability:.2f}), slots "
                     f"{dict(sorted(parsed.slots.items())) or 'none'}")
    elif parsed.slots:
        lines.append(f"  slots from the text: {dict(sorted(parsed.slots.items()))}")
    if parsed.applied_filters:
        lines.append("  filters: " + "; ".join(_filter_text(f) for f in parsed.applied_filters))
    if parsed.relaxed_filters:
        relaxed = "; ".join(_filter_text(f) for f in parsed.relaxed_filters)
        lines.append(f"  relaxed (nothing retrieved matched): {relaxed}")
    for d in response.degradations:
        lines.append(f"  DEGRADED {d.component} [{d.status}]: {d.message}")
    lines.append(f"  {'rank':>4} {'P(click)':>8} {'score':>7}  {'price':>8}  item")
    for item in response.items:
        probability = f"{item.probability:>8.4f}" if item.has_probability else f"{'-':>8}"
        lines.append(f"  {item.rank:>4} {probability} {item.score:>7.3f}  {item.price:>8.2f}  {item.title}  "
                     f"[{item.category}] ({item.item_id}, retrieved #{item.retrieval_rank})")
        if show_reasons and item.explanation.reasons:
            lines.append("       why: " + "; ".join(item.explanation.reasons))
    if show_timings and response.timings_ms:
        lines.append("  timings (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in response.timings_ms.items()))
    if response.calibration:
        lines.append(f"  calibration: {response.calibration}")
    return "\n".join(lines)
