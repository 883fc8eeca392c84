"""`tfrec train pricing`: fit the price-sensitivity model on views with shown prices, check it, export it.

On synthetic data (the generator, or a directory `tfrec data generate` wrote with its ground truth) the views come
from the price test of `tfrec.online.pricing_simulation`, and the report compares the fitted elasticities and
revenue-maximising prices with the generator's true ones. On other data the events' own click / purchase rows with
shown prices are used (prices must vary for the slope to be identified).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional

import numpy as np
import tensorflow as tf

from tfrec.config import ConfigError, load_config
from tfrec.data.sources import DataConfig, load_source
from tfrec.online.pricing import (
    OUTPUTS, PriceExamples, PriceModel, PriceResponse, item_features, price_examples, revenue_maximising_price,
    segments_of,
)
from tfrec.online.pricing_simulation import PriceTest, PriceTestConfig, simulate_price_test
from tfrec.training.metrics import log_loss

__all__ = ["PricingConfig", "PricingModelConfig", "PricingRun", "export_price_model", "fit_price_model", "format_run",
           "load_pricing_config", "segment_elasticity", "segment_price_multiplier", "train_pricing", "truth_report"]


@dataclasses.dataclass
class PricingModelConfig:
    l2: float = 1e-4
    learning_rate: float = 0.05
    epochs: int = 8
    batch_size: int = 2048
    validation_fraction: float = 0.1
    seed: int = 0
    verbose: int = 1  # Keras progress bars: 0 silent, 1 bar, 2 one line per epoch

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("epochs and batch_size must be >= 1", path="epochs")
        if not 0.0 <= self.validation_fraction < 0.5:
            raise ConfigError(f"must be in [0, 0.5), got {self.validation_fraction}", path="validation_fraction")
        if self.l2 < 0 or self.learning_rate <= 0:
            raise ConfigError("l2 must be >= 0 and learning_rate > 0", path="learning_rate")


@dataclasses.dataclass
class PricingConfig:
    """configs/pricing.yaml."""

    data: DataConfig = dataclasses.field(default_factory=lambda: DataConfig(preset="tiny"))
    simulation: PriceTestConfig = dataclasses.field(default_factory=PriceTestConfig)
    segment_attribute: str = "segment"
    model: PricingModelConfig = dataclasses.field(default_factory=PricingModelConfig)
    bounds: List[float] = dataclasses.field(default_factory=lambda: [0.7, 1.4])  # x reference price
    export_dir: Optional[str] = "models"
    name: str = "pricing"

    def validate(self) -> None:
        if len(self.bounds) != 2 or not 0 < self.bounds[0] <= self.bounds[1]:
            raise ConfigError(f"must be [low, high] with 0 < low <= high (multiples of the reference price), "
                              f"got {self.bounds}", path="bounds")


def load_pricing_config(path: str, overrides: Optional[Dict[str, Any]] = None) -> PricingConfig:
    return load_config(path, PricingConfig, overrides)


def _model_for(examples: PriceExamples, catalog, l2: float) -> PriceResponse:
    feats = item_features(catalog)
    seen = np.isin(feats["item_id"], np.unique(examples.item_id))
    return PriceResponse(segments_of(examples), feats["item_id"][seen], feats["reference_price"][seen],
                         feats["relative_price"][seen], l2=l2)


def fit_price_model(examples: PriceExamples, catalog, config: Optional[PricingModelConfig] = None):
    """Trains a PriceResponse on the views (tf.data, Adam, log loss); returns (PriceModel, metrics) where metrics
    hold the validation log loss beside a per-segment constant rate."""
    if len(examples) == 0:
        raise ValueError("no usable views (click events with a shown price and a request_id): nothing to fit")
    config = config or PricingModelConfig()
    if examples.purchased.sum() == 0:
        raise ValueError(f"none of the {len(examples):,} views led to a purchase: the model cannot be fitted")
    rng = np.random.default_rng(config.seed)
    valid = rng.random(len(examples)) < config.validation_fraction
    layer = _model_for(examples, catalog, config.l2)
    inputs = {"segment": tf.keras.Input([], dtype=tf.string, name="segment"),
              "item_id": tf.keras.Input([], dtype=tf.string, name="item_id"),
              "price": tf.keras.Input([], dtype=tf.float32, name="price")}
    model = tf.keras.Model(inputs, layer(inputs)["purchase_probability"])
    model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate), loss="binary_crossentropy")

    def dataset(rows, shuffle):
        features = {"segment": examples.segment[rows].astype(str), "item_id": examples.item_id[rows].astype(str),
                    "price": examples.price[rows].astype(np.float32)}
        ds = tf.data.Dataset.from_tensor_slices((features, examples.purchased[rows]))
        if shuffle:
            ds = ds.shuffle(min(len(rows), 200_000), seed=config.seed, reshuffle_each_iteration=True)
        return ds.batch(config.batch_size).prefetch(tf.data.AUTOTUNE)

    train_rows, valid_rows = np.flatnonzero(~valid), np.flatnonzero(valid)
    model.fit(dataset(train_rows, True), epochs=config.epochs, verbose=config.verbose,
              validation_data=dataset(valid_rows, False) if len(valid_rows) else None)
    fitted = PriceModel(layer)
    metrics: Dict[str, float] = {"views": float(len(examples)), "purchases": float(examples.purchased.sum())}
    if len(valid_rows):
        y = examples.purchased[valid_rows]
        p = fitted.purchase_probability(examples.segment[valid_rows], examples.item_id[valid_rows],
                                        examples.price[valid_rows])
        seg_rate = {s: examples.purchased[train_rows][examples.segment[train_rows] == s].mean()
                    for s in np.unique(examples.segment[train_rows])}
        overall = examples.purchased[train_rows].mean()
        base = np.asarray([seg_rate.get(s, overall) for s in examples.segment[valid_rows]])
        metrics.update(validation_log_loss=log_loss(y, p), baseline_log_loss=log_loss(y, base))
    return fitted, metrics


def segment_elasticity(demand, list_price: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Per segment, d log D_s / d log m at m = 1, where D_s(m) = sum over the segment's cells of demand at m x list
    price: the segment's response to moving all its prices by the same percentage."""
    from tfrec.online.pricing_simulation import LOG_STEP

    up, down = demand(list_price * np.exp(LOG_STEP)), demand(list_price * np.exp(-LOG_STEP))
    position = np.unique(segment, return_inverse=True)[1]
    return (np.log(np.bincount(position, weights=up)) - np.log(np.bincount(position, weights=down))) / (2 * LOG_STEP)


def segment_price_multiplier(demand, list_price: np.ndarray, segment: np.ndarray, bounds) -> np.ndarray:
    """Per segment, the one multiplier m of all its list prices within bounds maximising its revenue
    sum_i m list_i D_i(m list_i)."""
    groups, position = np.unique(segment, return_inverse=True)

    def revenue_per_multiplier(m):  # one multiplier per segment -> its revenue / m
        per_cell = list_price * demand(m[position] * list_price)
        return np.bincount(position, weights=per_cell, minlength=len(groups))

    low, high = np.full(len(groups), bounds[0]), np.full(len(groups), bounds[1])
    return revenue_maximising_price(revenue_per_multiplier, low, high)


def truth_report(model, test: PriceTest, bounds: List[float]) -> Dict[str, float]:
    """The fitted model against the generator's truth on the price test's (segment, item) cells.

    Segment level (the headline): elasticity of each segment's demand over the tested items (`segment_elasticity`)
    and the best uniform price multiplier per segment within bounds, with the revenue it loses against the true best.
    Cell level: elasticity at the list price and revenue-maximising price within bounds x list price per cell."""
    cells = test.cells()
    list_price, seg = cells["list_price"], cells["segment_index"]

    def true_demand(p):
        return test.truth.demand(seg, cells["item_index"], p)

    def fitted_demand(p):
        return model.purchase_probability(cells["segment"], cells["item_id"], p)

    true_se = segment_elasticity(true_demand, list_price, seg)
    fit_se = segment_elasticity(fitted_demand, list_price, seg)
    true_m = segment_price_multiplier(true_demand, list_price, seg, bounds)
    fit_m = segment_price_multiplier(fitted_demand, list_price, seg, bounds)
    groups, position = np.unique(seg, return_inverse=True)

    def segment_revenue(m):
        price = m[position] * list_price
        return np.bincount(position, weights=price * true_demand(price), minlength=len(groups))

    true_e = test.truth.elasticity(seg, cells["item_index"], list_price)
    fit_e = model.elasticity(cells["segment"], cells["item_id"], list_price)
    low, high = bounds[0] * list_price, bounds[1] * list_price
    true_p = test.truth.optimal_price(seg, cells["item_index"], low, high)
    fit_p = model.optimal_price(cells["segment"], cells["item_id"], low, high)

    def revenue(p):
        return p * true_demand(p)

    cell_err = np.abs(fit_e - true_e)
    return {
        "segments": float(len(groups)),
        "segment_elasticity_true_mean": float(np.mean(true_se)),
        "segment_elasticity_mae": float(np.mean(np.abs(fit_se - true_se))),
        "segment_elasticity_relative_error": float(np.mean(np.abs(fit_se - true_se)) / np.mean(np.abs(true_se))),
        "segment_multiplier_error": float(np.mean(np.abs(fit_m / true_m - 1))),
        "segment_revenue_regret": float(np.mean(1 - segment_revenue(fit_m) / segment_revenue(true_m))),
        "cells": float(len(list_price)),
        "cell_elasticity_true_mean": float(np.mean(true_e)),
        "cell_elasticity_fitted_mean": float(np.mean(fit_e)),
        "cell_elasticity_mae": float(np.mean(cell_err)),
        "cell_elasticity_relative_error": float(np.mean(cell_err) / np.mean(np.abs(true_e))),
        "cell_optimal_price_relative_error": float(np.mean(np.abs(fit_p / true_p - 1))),
        "cell_optimal_price_at_bound_share": float(np.mean(np.isclose(true_p, low) | np.isclose(true_p, high))),
        "cell_revenue_regret": float(np.mean(1 - revenue(fit_p) / revenue(true_p))),
        "cell_revenue_gain_vs_list_price": float(np.mean(revenue(fit_p) / revenue(list_price) - 1)),
    }


def export_price_model(model: PriceModel, base_dir: str, name: str = "pricing", bounds=(0.7, 1.4),
                       info: Optional[Dict[str, Any]] = None) -> str:
    """Exports the model as `<base_dir>/<name>/<version>` (TF Serving layout): inputs segment, item_id, price;
    outputs purchase_probability, elasticity, reference_price."""
    from tfrec.export.saved_model import export_saved_model
    from tfrec.features.spec import FeatureConfig, FeatureSpec

    spec = FeatureSpec([FeatureConfig("segment"), FeatureConfig("item_id"),
                        FeatureConfig("price", dtype="float", kind="numeric", default=1.0)])
    layer = model.layer

    def outputs(features):
        out = layer(features)
        return {k: out[k] for k in OUTPUTS}

    card = {"kind": "pricing", "bounds": list(bounds), "segments": layer.segments, **dict(info or {})}
    return export_saved_model(layer, outputs, spec, base_dir, name, info=card)


@dataclasses.dataclass
class PricingRun:
    model: PriceModel
    metrics: Dict[str, float]
    truth: Optional[Dict[str, float]]
    export_path: Optional[str]
    skipped: Dict[str, int]


def train_pricing(config: PricingConfig) -> PricingRun:
    """Loads data (running the synthetic price test when the generator's truth is there), fits, compares with the
    truth when known, and exports to `export_dir/name` (unless export_dir is null)."""
    loaded = load_source(config.data)
    test = None
    events, users, catalog = loaded.dataset.events, loaded.dataset.users, loaded.dataset.catalog
    if loaded.ground_truth is not None:
        from tfrec.data.synthetic import SyntheticData

        data = SyntheticData(loaded.dataset, loaded.ground_truth, loaded.ground_truth.config)
        test = simulate_price_test(data, config.simulation)
        events = test.events
    examples = price_examples(events, users, config.segment_attribute)
    model, metrics = fit_price_model(examples, catalog, config.model)
    truth = truth_report(model, test, config.bounds) if test is not None else None
    path = None
    if config.export_dir:
        info = {"metrics": metrics, "truth": truth}
        path = export_price_model(model, config.export_dir, config.name, config.bounds, info)
    return PricingRun(model, metrics, truth, path, examples.skipped)


def format_run(run: PricingRun) -> str:
    """What `tfrec train pricing` prints."""
    m = run.metrics
    lines = [f"views {m['views']:,.0f}, purchases {m['purchases']:,.0f}"]
    if "validation_log_loss" in m:
        lines.append(f"validation log loss {m['validation_log_loss']:.4f} (per-segment constant rate "
                     f"{m['baseline_log_loss']:.4f})")
    skipped = {k: v for k, v in run.skipped.items() if v}
    if skipped:
        lines.append("skipped views: " + ", ".join(f"{v:,} {k}" for k, v in skipped.items()))
    if run.truth:
        t = run.truth
        lines.append(f"segment demand elasticity ({t['segments']:.0f} segments, all prices moved together): true mean "
                     f"{t['segment_elasticity_true_mean']:.3f}, MAE {t['segment_elasticity_mae']:.3f} "
                     f"({t['segment_elasticity_relative_error']:.1%} relative); best uniform price change per "
                     f"segment loses {t['segment_revenue_regret']:.2%} revenue vs the true best")
        lines.append(f"per (segment, item) cell ({t['cells']:.0f}): elasticity MAE {t['cell_elasticity_mae']:.3f} "
                     f"({t['cell_elasticity_relative_error']:.1%} of mean |true|); revenue-maximising price off by "
                     f"{t['cell_optimal_price_relative_error']:.1%}, revenue regret {t['cell_revenue_regret']:.2%}, "
                     f"revenue vs list price {t['cell_revenue_gain_vs_list_price']:+.1%}")
    if run.export_path:
        lines.append(f"exported: {run.export_path}")
    return "\n".join(lines)
