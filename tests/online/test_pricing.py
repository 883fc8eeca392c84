"""Price sensitivity: monotone by construction, fitted on a simulated price test, checked against the generator's
true elasticities and revenue-maximising prices, exported and queried through `tfrec price`."""

import json
import math

import numpy as np
import pytest

from tfrec.cli.main import main
from tfrec.config import ConfigError
from tfrec.data.schema import EVENTS_SCHEMA, USERS_SCHEMA, Table
from tfrec.data.synthetic import SyntheticConfig, generate
from tfrec.online.pricing import SavedPriceModel, price_examples, revenue_maximising_price
from tfrec.online.pricing_job import (
    PricingModelConfig, export_price_model, fit_price_model, load_pricing_config, segment_elasticity, truth_report,
)
from tfrec.online.pricing_simulation import PriceTestConfig, simulate_price_test

BOUNDS = [0.7, 1.4]


@pytest.fixture(scope="module")
def fitted():
    data = generate(SyntheticConfig.preset("tiny", seed=0))
    test = simulate_price_test(data, PriceTestConfig(items=12, views_per_cell=800, truth_shoppers=150, seed=0))
    examples = price_examples(test.events, test.users)
    model, metrics = fit_price_model(examples, test.catalog,
                                     PricingModelConfig(epochs=6, batch_size=2048, l2=1e-5, verbose=0))
    return test, examples, model, metrics


def test_revenue_maximising_price_on_a_known_curve():
    demand = lambda p: np.exp(-p / 10.0)  # noqa: E731  revenue p exp(-p/10) peaks at p = 10
    best = revenue_maximising_price(demand, [1.0, 12.0, 2.0], [50.0, 30.0, 8.0])
    assert best == pytest.approx([10.0, 12.0, 8.0], rel=1e-4)  # interior, then clipped to each bound
    with pytest.raises(ValueError, match="0 < low <= high"):
        revenue_maximising_price(demand, [5.0], [4.0])


def test_views_are_labelled_by_purchases_in_the_same_request():
    events = Table(EVENTS_SCHEMA, {
        "user_id": ["u1", "u1", "u2", "u3", "u4", "u4"],
        "item_id": ["i1", "i1", "i1", "i2", "i2", "i3"],
        "event_type": ["click", "purchase", "click", "click", "click", "purchase"],
        "timestamp": [1, 2, 3, 4, 5, 6],
        "price": [9.0, 9.0, 11.0, float("nan"), 5.0, 5.0],
        "request_id": ["r1", "r1", "r2", "r3", "", "r4"],
    })
    users = Table(USERS_SCHEMA, {"user_id": ["u1", "u2"]}, {"segment": ["thrifty", "lavish"]})
    ex = price_examples(events, users)
    assert ex.item_id.tolist() == ["i1", "i1"] and ex.purchased.tolist() == [1.0, 0.0]
    assert ex.segment.tolist() == ["thrifty", "lavish"] and ex.price.tolist() == [9.0, 11.0]
    assert ex.skipped == {"view without a shown price": 1, "view without a request_id": 1}
    with pytest.raises(KeyError, match="no attribute 'tier'"):
        price_examples(events, users, segment_attribute="tier")


def test_simulated_purchases_follow_the_true_demand(fitted):
    """The truth the model is judged against is the mechanism that drew the purchases: over a sample of views, the
    true demand at the shown prices predicts the observed purchase rate, overall and at low vs high prices."""
    test, examples, _, _ = fitted
    cells = test.cells()
    item_pos = {item: k for k, item in enumerate(cells["item_id"][: len(test.truth.items)])}
    seg_pos = {name: k for k, name in enumerate(test.truth.segment_names)}
    rows = np.random.default_rng(0).choice(len(examples), 4000, replace=False)
    expected = test.truth.demand(np.array([seg_pos[s] for s in examples.segment[rows]]),
                                 np.array([item_pos[i] for i in examples.item_id[rows]]), examples.price[rows])
    observed = examples.purchased
    # the truth averages 150 shoppers per segment, the simulation draws others: allow 12% (about 3 of its SEs)
    assert observed.mean() == pytest.approx(expected.mean(), rel=0.12)
    reference = np.array([test.truth.list_price(item_pos[i]) for i in examples.item_id])
    cheap, dear = examples.price < 0.8 * reference, examples.price > 1.25 * reference
    ratio_observed = observed[cheap].mean() / observed[dear].mean()
    ratio_true = expected[cheap[rows]].mean() / expected[dear[rows]].mean()
    assert ratio_observed == pytest.approx(ratio_true, rel=0.2) and ratio_true > 1.5


def test_monotone_in_price_by_construction(fitted):
    _, examples, model, _ = fitted
    prices = np.exp(np.linspace(np.log(0.5), np.log(5000.0), 60))
    for segment, item in [(examples.segment[0], examples.item_id[0]), ("bargain_hunter", examples.item_id[-1]),
                          ("no-such-segment", "no-such-item")]:
        p = model.purchase_probability(np.full(60, segment), np.full(60, item), prices)
        assert np.all(np.diff(p) < 0), (segment, item)
        assert np.all(model.elasticity(np.full(60, segment), np.full(60, item), prices) < 0)
    assert math.isnan(model.reference_price(["no-such-item"])[0])


def test_fit_beats_a_constant_rate_and_tracks_true_elasticity(fitted):
    test, _, model, metrics = fitted
    assert metrics["validation_log_loss"] < metrics["baseline_log_loss"] - 0.002
    report = truth_report(model, test, BOUNDS)
    # headline: each segment's demand elasticity (all prices moved together) within 35% of the truth on average
    assert report["segment_elasticity_relative_error"] < 0.35, report
    assert report["cell_elasticity_relative_error"] < 0.45, report
    cells = test.cells()
    true_se = segment_elasticity(lambda p: test.truth.demand(cells["segment_index"], cells["item_index"], p),
                                 cells["list_price"], cells["segment_index"])
    fit_se = segment_elasticity(lambda p: model.purchase_probability(cells["segment"], cells["item_id"], p),
                                cells["list_price"], cells["segment_index"])
    names = np.asarray(test.truth.segment_names)
    # the model orders the extremes as the generator does: bargain hunters most, premium shoppers least elastic
    assert names[np.argmin(true_se)] == names[np.argmin(fit_se)] == "bargain_hunter"
    assert names[np.argmax(true_se)] == names[np.argmax(fit_se)] == "premium"
    # pricing with the model loses little revenue against the true optimum and earns more than the list price
    assert report["cell_revenue_regret"] < 0.08 and report["segment_revenue_regret"] < 0.05, report
    assert report["cell_revenue_gain_vs_list_price"] > 0.05, report


def test_optimal_prices_stay_within_bounds(fitted):
    test, _, model, _ = fitted
    cells = test.cells()
    low, high = 0.8 * cells["list_price"], 1.1 * cells["list_price"]
    best = model.optimal_price(cells["segment"], cells["item_id"], low, high)
    assert np.all(best >= low - 1e-9) and np.all(best <= high + 1e-9)
    true_best = test.truth.optimal_price(cells["segment_index"], cells["item_index"], low, high)
    assert np.mean(np.abs(best / true_best - 1)) < 0.1  # narrow bounds: prices near the truth


def test_export_reload_and_price_cli(fitted, tmp_path, capsys):
    test, examples, model, _ = fitted
    path = export_price_model(model, str(tmp_path / "models"), "pricing", BOUNDS)
    saved = SavedPriceModel(path)
    seg, item = examples.segment[:50], examples.item_id[:50]
    for prices in (examples.price[:50], examples.price[:50] * 1.3):
        np.testing.assert_allclose(saved.purchase_probability(seg, item, prices),
                                   model.purchase_probability(seg, item, prices), rtol=1e-5)
    item = test.cells()["item_id"][0]
    assert main(["price", item, "--segment", "bargain_hunter", "--model", str(tmp_path / "models" / "pricing"),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    reference = out["reference_price"]
    assert out["bounds"] == pytest.approx([0.7 * reference, 1.4 * reference])
    assert out["bounds"][0] <= out["optimal_price"] <= out["bounds"][1] and out["elasticity"] < 0
    assert out["revenue_per_view_at_optimum"] >= out["revenue_per_view_at_reference"]
    curve = [p["purchase_probability"] for p in out["curve"]]
    assert curve == sorted(curve, reverse=True)
    assert main(["price", item, "--segment", "premium", "--model", str(tmp_path / "models" / "pricing"),
                 "--min", "1", "--max", "2"]) == 0
    assert "revenue-maximising price in [1.00, 2.00]" in capsys.readouterr().out
    for argv, words in ([["--segment", "astronaut"], "unknown segment 'astronaut'"],
                        [["--segment", "premium", "--min", "5", "--max", "2"], "need 0 < min <= max"]):
        assert main(["price", item, *argv, "--model", str(tmp_path / "models" / "pricing")]) == 2
        assert words in capsys.readouterr().err
    assert main(["price", "no-such-item", "--segment", "premium", "--model", str(tmp_path / "models")]) == 2
    assert "holds no SavedModel" in capsys.readouterr().err
    assert main(["price", "no-such-item", "--segment", "premium", "--model", path]) == 2
    assert "item 'no-such-item' is not in the pricing model" in capsys.readouterr().err


def test_train_pricing_cli_end_to_end(tmp_path, capsys):
    argv = ["train", "pricing", "--set", "simulation.items=4", "--set", "simulation.views_per_cell=150",
            "--set", "simulation.truth_shoppers=40", "--set", "model.epochs=2", "--set", "model.verbose=0",
            "--set", f"export_dir={tmp_path / 'models'}"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "elasticity" in out and "exported:" in out and (tmp_path / "models" / "pricing" / "1").is_dir()


def test_bad_pricing_config(tmp_path):
    path = tmp_path / "pricing.yaml"
    path.write_text("bounds: [1.4, 0.7]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"pricing.yaml: bounds: must be \[low, high\]"):
        load_pricing_config(str(path))
    path.write_text("simulation: {views_per_cell: 0}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="simulation.views_per_cell: must be >= 1"):
        load_pricing_config(str(path))
