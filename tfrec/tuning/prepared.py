"""Data prepared once per tuning directory and shared by every trial (and every worker of a distributed search).

A job's data half (examples, split, fitted features, TFRecords) runs under a file lock the first time; later runs
find `prepared.json` and reuse the data, after checking it was prepared from the same data/split/feature config
(a fingerprint of the job's `fixed_paths`), so a changed config never trains on stale data silently.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import hashlib
import json
import os
from typing import Any, Dict, Optional

from tfrec.config import to_dict
from tfrec.features.stats import FittedFeatures
from tfrec.tuning.hypermodel import TuningJob

PREPARED_FILE = "prepared.json"


class PreparedDataJob(TuningJob):
    """A TuningJob whose `prepare` writes a run-directory-like data folder once; subclasses supply `write_data`."""

    def __init__(self, base_config: Any):
        self._base_config = base_config
        self.work_dir: Optional[str] = None
        self.fitted: Optional[FittedFeatures] = None
        self.split_sizes: Dict[str, int] = {}

    @property
    def base_config(self) -> Any:
        return self._base_config

    @abc.abstractmethod
    def write_data(self, work_dir: str, log) -> Dict[str, int]:
        """Writes `features/` and `data/` under `work_dir` (the job's data half); returns rows per split."""

    def prepare(self, work_dir: str, log=print) -> None:
        """Writes the data under `work_dir`, or reuses it if a run with the same fingerprint already did."""
        os.makedirs(work_dir, exist_ok=True)
        marker = os.path.join(work_dir, PREPARED_FILE)
        fingerprint = self._fingerprint()
        with _locked(os.path.join(work_dir, ".prepare.lock")):
            if os.path.exists(marker):
                with open(marker, encoding="utf-8") as f:
                    prepared = json.load(f)
                if prepared["fingerprint"] != fingerprint:
                    raise ValueError(
                        f"{work_dir} holds data prepared from another data/split/features config; set "
                        "tuner.overwrite: true (or --overwrite) to start afresh, or choose another tuner.directory"
                    )
                log(f"data: reusing the prepared data in {work_dir}")
            else:
                prepared = {"fingerprint": fingerprint, "examples": self.write_data(work_dir, log)}
                with open(marker, "w", encoding="utf-8") as f:
                    json.dump(prepared, f, indent=2)
        self.work_dir = work_dir
        self.split_sizes = dict(prepared["examples"])
        features = os.path.join(work_dir, "features")
        self.fitted = FittedFeatures.load(features) if os.path.isdir(features) else None  # the intent job has none
        if not self.split_sizes.get("validation"):
            raise ValueError("tuning needs validation examples for its objective: set split.validation_fraction > 0")

    def _fingerprint(self) -> str:
        data = to_dict(self.base_config)
        fixed = {path: _lookup(data, path) for path in self.fixed_paths}
        return hashlib.sha256(json.dumps(fixed, sort_keys=True, default=str).encode()).hexdigest()

    def require_prepared(self) -> str:
        if self.work_dir is None:
            raise RuntimeError("call prepare(work_dir) before building models or datasets")
        return self.work_dir


def _lookup(data: dict, path: str):
    node = data
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


@contextlib.contextmanager
def _locked(path: str):
    """An exclusive lock, so processes sharing a tuning directory prepare its data once."""
    with open(path, "w", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
