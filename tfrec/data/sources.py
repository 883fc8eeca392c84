"""Where a job's data comes from: the built-in synthetic generator, a dataset directory, or a public format.

`load_source` is the single entry point every training job and the CLI use, so all models read data the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Literal, Optional, Tuple

from tfrec.data.errors import BadRowReport
from tfrec.data.schema import Dataset


@dataclasses.dataclass
class DataConfig:
    """`source`: synthetic (built in, the default), directory (catalog/events/users files), movielens, amazon."""

    source: Literal["synthetic", "directory", "movielens", "amazon"] = "synthetic"
    path: Optional[str] = None
    preset: str = "small"
    seed: int = 0
    synthetic: Dict[str, Any] = dataclasses.field(default_factory=dict)  # SyntheticConfig fields over the preset
    skip_bad_rows: bool = False

    def validate(self) -> None:
        if self.source != "synthetic" and not self.path:
            raise ValueError(f"source {self.source!r} needs `path` (the folder holding its files)")
        if self.source == "synthetic":
            self.synthetic_config()  # unknown presets or fields fail at load time, not mid-job

    def synthetic_config(self):
        from tfrec.data.synthetic import SyntheticConfig

        try:
            return SyntheticConfig.preset(self.preset, seed=self.seed, **self.synthetic)
        except TypeError as exc:
            raise ValueError(f"synthetic: {exc}") from None


@dataclasses.dataclass
class LoadedData:
    """A dataset, the generator's ground truth when synthetic (else None), and the bad-row report."""

    dataset: Dataset
    ground_truth: Optional[Any]
    report: Optional[BadRowReport]


def load_source(config: DataConfig) -> LoadedData:
    """Loads the dataset the config names."""
    if config.source == "synthetic":
        from tfrec.data.synthetic import generate

        data = generate(config.synthetic_config())
        return LoadedData(data.dataset, data.ground_truth, None)
    if config.source == "directory":
        from tfrec.data.dataset_io import load_dataset

        dataset, report = load_dataset(config.path, skip_bad_rows=config.skip_bad_rows)
        return LoadedData(dataset, _load_ground_truth_if_present(config.path), report)
    if config.source == "movielens":
        from tfrec.data.public.movielens import load_movielens

        return LoadedData(load_movielens(config.path), None, None)
    from tfrec.data.public.amazon import load_amazon_sequences

    return LoadedData(load_amazon_sequences(config.path), None, None)


def _load_ground_truth_if_present(path: str):
    """A directory written by `tfrec data generate` carries the generator's ground truth beside the tables."""
    from tfrec.data.synthetic import GroundTruth

    try:
        return GroundTruth.load(path)
    except FileNotFoundError:
        return None


def describe(loaded: LoadedData) -> Tuple[str, ...]:
    """Short human-readable lines about what was loaded (for CLI output)."""
    lines = [repr(loaded.dataset)]
    if loaded.report is not None and loaded.report.total_skipped:
        lines.append(loaded.report.summary())
    if loaded.ground_truth is not None:
        lines.append("ground truth: available (synthetic data)")
    return tuple(lines)
