"""What a search reports: one row per trial (id, status, score, values, error) as trials.json, trials.csv and the
CLI's table.

A conditional hyperparameter that was inactive in a trial has no value there (the trial trained the base config's):
trials.json lists it under the trial's `inactive`, trials.csv leaves its cell blank and the table shows `inactive`.
A failed trial keeps its error (the last line of keras-tuner's traceback) in all three.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from typing import Any, Dict, List, Optional

from tfrec.tuning.space import SearchSpace, python_value

INACTIVE = "inactive"


@dataclasses.dataclass
class SearchResult:
    """The outcome of `run_search` in one process (`role`: single, chief, or worker)."""

    role: str
    directory: str
    objective: str
    direction: str
    best_trial_id: Optional[str]
    best_score: Optional[float]
    best_overrides: Dict[str, Any]  # dotted config path → value
    best_config: Any
    trials: List[Dict[str, Any]]  # the chief's (or single process's) every trial; a worker's own trials
    hyperparameters: List[str] = dataclasses.field(default_factory=list)  # names, in the space's order
    best_config_path: Optional[str] = None
    trials_path: Optional[str] = None
    trials_csv_path: Optional[str] = None
    test_metrics: Optional[Dict[str, float]] = None
    export_path: Optional[str] = None


def trial_row(trial, space: SearchSpace) -> Dict[str, Any]:
    """One line of the trial table: id, status, score, active values by name and by config path, inactive names,
    and any error."""
    values = trial.hyperparameters.values  # keras-tuner holds the active values only
    hps = {h.name: python_value(values[h.name]) for h in space.hyperparameters if h.name in values}
    row: Dict[str, Any] = {
        "trial_id": trial.trial_id,
        "status": trial.status,
        "score": None if trial.score is None else float(trial.score),
        "best_epoch": None if trial.score is None else int(trial.best_step or 0),
        "hyperparameters": hps,
        "overrides": space.overrides(hps),
    }
    inactive = [h.name for h in space.hyperparameters if h.name not in values]
    if inactive:
        row["inactive"] = inactive
    if "tuner/epochs" in values:
        row["epochs"] = int(values["tuner/epochs"])
    if trial.message:
        lines = [line for line in str(trial.message).strip().splitlines() if line.strip()]
        row["error"] = lines[-1] if lines else str(trial.message)
    return row


def best_row(trials: List[Dict[str, Any]], direction: str) -> Optional[Dict[str, Any]]:
    scored = [t for t in trials if t["score"] is not None]
    if not scored:
        return None
    pick = max if direction == "max" else min
    return pick(scored, key=lambda t: t["score"])


def write_trials(result: SearchResult, algorithm: str) -> None:
    """trials.json (everything) and trials.csv (one row per trial, one column per hyperparameter)."""
    payload = {
        "algorithm": algorithm,
        "objective": result.objective,
        "direction": result.direction,
        "best_trial_id": result.best_trial_id,
        "best_score": result.best_score,
        "best_overrides": result.best_overrides,
        "trials": result.trials,
    }
    with open(result.trials_path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2)
    with open(result.trials_csv_path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(_table(result, for_csv=True))


def format_trials(result: SearchResult) -> str:
    """The trial table (the best trial starred, errors last) and the best values, as the CLI prints them."""
    rows = _table(result, for_csv=False)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths).rstrip())
    if result.best_trial_id is not None:
        lines.append(f"best ({result.objective} {result.best_score:.4f}, trial {result.best_trial_id}):")
        lines += [f"  {path} = {value!r}" for path, value in result.best_overrides.items()]
    return "\n".join(lines)


def _table(result: SearchResult, for_csv: bool) -> List[List[str]]:
    """Header + one row per trial: id, status, objective, [best epoch: CSV], [hyperband epochs], values, [error].

    The CSV holds full-precision values, list values as JSON and blanks for missing or inactive ones; the table
    rounds, stars the best trial and shows `inactive` (and `-` for a missing value)."""
    names = list(dict.fromkeys(result.hyperparameters + [n for t in result.trials for n in t["hyperparameters"]]))
    hyperband = any("epochs" in t for t in result.trials)
    errors = any(t.get("error") for t in result.trials)

    def cell(value: Any) -> str:
        if value is None:
            return "" if for_csv else "-"
        if for_csv:
            return json.dumps(value) if isinstance(value, list) else str(value)
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    header = ["trial_id" if for_csv else "trial", "status", result.objective] + (["best_epoch"] if for_csv else [])
    header += (["epochs"] if hyperband else []) + names + (["error"] if errors else [])
    rows = [header]
    for t in result.trials:
        score = t["score"]
        row = [t["trial_id"] + (" *" if t["trial_id"] == result.best_trial_id and not for_csv else ""), t["status"],
               cell(score) if for_csv or score is None else f"{score:.4f}"]
        row += [cell(t["best_epoch"])] if for_csv else []
        row += [cell(t.get("epochs"))] if hyperband else []
        for name in names:
            inactive = name in t.get("inactive", ())
            row.append(("" if for_csv else INACTIVE) if inactive else cell(t["hyperparameters"].get(name)))
        rows.append(row + ([t.get("error", "")] if errors else []))
    return rows
