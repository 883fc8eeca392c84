"""A/B testing and pricing quality on the synthetic shop (section `ab_pricing` of docs/benchmarks.md).

(a) A/B: shoppers of a generated shop replay their requests against two ranking policies (`tfrec.online.ab_simulation`);
    many simulated experiments per design. Reported: the A/A false-positive rate of the report's user-clustered
    z-test and of the textbook two-proportion z-test (impressions treated as independent), and the A/B power at
    several sample sizes beside the analytically expected power. Speed context: the vectorised per-user-sums path
    against the full events -> report path on the same experiments (same sums, ratio of experiments per second).
(b) Pricing: a simulated price test (`tfrec.online.pricing_simulation`), the monotone price-response model fitted on
    it, and its elasticities / revenue-maximising prices against the generator's truth, beside a one-elasticity-for-
    everyone baseline.

Usage: python benchmarks/ab_pricing.py [--preset small] [--runs 400] [--views 2000] [--no-write]
Sizes are modest on purpose (a shared 2-core machine); raise --runs / --views for tighter figures.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from benchmarks.common import Timer, command_line, git_revision, machine, write_section  # noqa: E402

SECTION = "ab_pricing"
ALPHA = 0.05
DESIGNS = (("shuffled", "logged", "ranker vs chance order"), ("logged", "oracle", "true-relevance order vs ranker"))


def _rejections(pool, policies, runs, users, seed, desc):
    from tfrec.online.ab_report import compare_arms
    from tfrec.online.ab_simulation import simulate_experiments

    clustered, naive, better, lifts = [], [], [], []
    chunk = 25
    for start in tqdm(range(0, runs, chunk), desc=desc, unit="x25 runs", leave=False):
        for run in simulate_experiments(pool, policies, min(chunk, runs - start), users, seed=seed * 100_000 + start):
            c = compare_arms(run["A"], run["B"], "ctr", ALPHA)
            clustered.append(c.significant)
            better.append(c.significant and c.diff > 0)
            naive.append(c.p_value_independent < ALPHA)
            lifts.append(c.lift)
    return np.mean(clustered), np.mean(naive), np.mean(better), float(np.median(lifts))


def _binomial_ci(p, n):
    half = 1.96 * math.sqrt(max(p * (1 - p), 1e-12) / n)
    return f"[{max(0.0, p - half):.3f}, {min(1.0, p + half):.3f}]"


def ab_part(args) -> str:
    from tfrec.data.synthetic import SyntheticConfig, generate
    from tfrec.online.ab_report import ab_report
    from tfrec.online.ab_simulation import (
        expected_power, shopper_pool, simulate_events, simulate_experiments, two_arm_experiment, users_for_power,
    )

    data = generate(SyntheticConfig.preset(args.preset, seed=0))
    pool = shopper_pool(data)
    lines = [f"Pool: synthetic preset `{args.preset}` (seed 0): {pool.size:,} shoppers, "
             f"{int(pool.n_requests.sum()):,} requests, {int(pool.impressions.sum()):,} impressions; a shopper has "
             f"{pool.impressions.mean():.0f} impressions on average (max {pool.impressions.max():,}). True CTR by "
             "ranking of the same shown items: " + ", ".join(f"{p} {pool.true_ratio(p):.4f}"
                                                            for p in ("oracle", "logged", "shuffled", "reversed")),
             f"{args.runs} simulated experiments per row, users split 50/50 by the stable hash (fresh salt per "
             f"experiment), alpha {ALPHA}; 95% intervals of the rates are binomial over runs.", ""]
    lines += ["| design | users per experiment | true lift | rejection rate (clustered z-test) | expected power | "
              "two-proportion z-test (independent impressions) | median estimated lift |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for control, treatment, label in DESIGNS:
        n80 = users_for_power(pool, control, treatment, 0.8, ALPHA)
        for factor in (0.5, 1.0):
            users = max(20, int(n80 * factor))
            aa = _rejections(pool, {"A": control, "B": control}, args.runs, users, 1, f"A/A {control} x{factor}")
            lines.append(f"| A/A: {control} vs {control} | {users:,} | 0 | {aa[0]:.3f} "
                         f"{_binomial_ci(aa[0], args.runs)} | {ALPHA:.3f} (alpha) | {aa[1]:.3f} | {aa[3]:+.2%} |")
            pred = expected_power(pool, control, treatment, users, ALPHA)
            ab = _rejections(pool, {"A": control, "B": treatment}, args.runs, users, 2, f"A/B {label} x{factor}")
            lines.append(f"| A/B: {treatment} vs {control} ({label}) | {users:,} | {pred.lift:+.2%} | "
                         f"{ab[2]:.3f} {_binomial_ci(ab[2], args.runs)} | {pred.power:.3f} | {ab[1]:.3f} | "
                         f"{ab[3]:+.2%} |")
    # speed: same experiments through both paths
    control, treatment, _ = DESIGNS[0]
    users, k_fast, k_full = users_for_power(pool, control, treatment, 0.8, ALPHA), 20, 3
    exp = two_arm_experiment("bench")
    with Timer() as fast:
        simulate_experiments(pool, {"A": control, "B": treatment}, k_fast, users, seed=7)
    with Timer() as full:
        events = 0
        for i in range(k_full):
            table = simulate_events(pool, exp, {"A": control, "B": treatment}, users, seed=i)
            events += len(table)
            ab_report(exp, table, arm_source="recorded")
    fast_rate, full_rate = k_fast / fast.seconds, k_full / full.seconds
    lines += ["", f"Speed (experiments of {users:,} users): per-user sums directly {fast_rate:.2f} experiments/s "
              f"({k_fast} timed); the same experiments as events -> `ab_report` ({events / k_full:,.0f} events each, "
              f"{k_full} timed) {full_rate:.3f} experiments/s; the vectorised path is {fast_rate / full_rate:.0f}x "
              "faster, which is what makes hundreds of simulated experiments per design affordable."]
    return "\n".join(lines)


def pricing_part(args) -> str:
    from tfrec.data.synthetic import SyntheticConfig, generate
    from tfrec.online.pricing import price_examples
    from tfrec.online.pricing_job import PricingModelConfig, fit_price_model, segment_elasticity, truth_report
    from tfrec.online.pricing_simulation import PriceTestConfig, simulate_price_test

    data = generate(SyntheticConfig.preset("tiny", seed=0))
    config = PriceTestConfig(items=30, views_per_cell=args.views, truth_shoppers=300, seed=0)
    with Timer() as sim:
        test = simulate_price_test(data, config)
        examples = price_examples(test.events, test.users)
    model_config = PricingModelConfig(epochs=6, batch_size=8192, l2=1e-5, verbose=2)
    with Timer() as fit:
        model, metrics = fit_price_model(examples, test.catalog, model_config)
    bounds = [0.7, 1.4]
    with Timer() as check:
        report = truth_report(model, test, bounds)
    cells = test.cells()
    seg = cells["segment_index"]
    true_se = segment_elasticity(lambda p: test.truth.demand(seg, cells["item_index"], p), cells["list_price"], seg)
    fit_se = segment_elasticity(lambda p: model.purchase_probability(cells["segment"], cells["item_id"], p),
                                cells["list_price"], seg)
    pooled = segment_elasticity(lambda p: model.purchase_probability(cells["segment"], cells["item_id"], p),
                                cells["list_price"], np.zeros(len(seg), dtype=np.int64))[0]
    baseline_mae = float(np.mean(np.abs(pooled - true_se)))
    lines = [f"Price test: synthetic preset `tiny` (seed 0), its {config.items} most clicked items shown to every one "
             f"of {len(test.truth.segments)} segments (the users' `segment` attribute), {config.views_per_cell:,} "
             f"product-page views per (segment, item) at list price x exp(U(-{config.log_price_range}, "
             f"{config.log_price_range})): {len(examples):,} views, {int(examples.purchased.sum()):,} purchases "
             f"(simulated in {sim.seconds:.1f} s). Truth: the generator's own add-to-cart x purchase probabilities "
             f"at the shown price, averaged over {config.truth_shoppers} shoppers per segment. Model: "
             f"`configs/pricing.yaml` form, {model_config.epochs} epochs, batch {model_config.batch_size} "
             f"(fitted in {fit.seconds:.0f} s; truth comparison {check.seconds:.0f} s). Validation log loss "
             f"{metrics['validation_log_loss']:.4f} vs {metrics['baseline_log_loss']:.4f} for a per-segment "
             "constant rate.", "",
             "Segment demand elasticity (d log D / d log p when all tested prices of the segment move together):", "",
             "| segment | true | fitted | error |", "|---|---:|---:|---:|"]
    for name, t, f in zip(test.truth.segment_names, true_se, fit_se):
        lines.append(f"| {name} | {t:.3f} | {f:.3f} | {f - t:+.3f} |")
    lines += ["", "| figure | tfrec model | baseline: one elasticity for all segments |", "|---|---:|---:|",
              f"| segment elasticity MAE | {report['segment_elasticity_mae']:.3f} "
              f"({report['segment_elasticity_relative_error']:.1%} of mean abs true) | {baseline_mae:.3f} "
              f"({baseline_mae / np.mean(np.abs(true_se)):.1%}) |",
              f"| best uniform price change per segment (bounds x{bounds[0]}-x{bounds[1]}): revenue lost vs true "
              f"best | {report['segment_revenue_regret']:.2%} | - |",
              f"| cell ({report['cells']:.0f} segment x item) elasticity at list price: MAE | "
              f"{report['cell_elasticity_mae']:.3f} ({report['cell_elasticity_relative_error']:.1%}; true mean "
              f"{report['cell_elasticity_true_mean']:.3f}, fitted mean {report['cell_elasticity_fitted_mean']:.3f}) "
              "| - |",
              "| cell revenue-maximising price: mean relative error | "
              f"{report['cell_optimal_price_relative_error']:.1%} ({report['cell_optimal_price_at_bound_share']:.0%} "
              "of true optima at a bound) | - |",
              f"| cell revenue at the model's price: regret vs true optimum / gain vs list price | "
              f"{report['cell_revenue_regret']:.2%} / {report['cell_revenue_gain_vs_list_price']:+.1%} | - |"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="small", help="synthetic preset of the A/B shopper pool")
    parser.add_argument("--runs", type=int, default=400, help="simulated experiments per design row")
    parser.add_argument("--views", type=int, default=2000, help="price-test views per (segment, item)")
    parser.add_argument("--no-write", action="store_true", help="print, do not rewrite docs/benchmarks.md")
    args = parser.parse_args()
    with Timer() as total:
        ab = ab_part(args)
        pricing = pricing_part(args)
    body = "\n".join([
        "## A/B testing and pricing (synthetic shop)", "",
        f"Command: `{command_line()}` (git {git_revision()}, {total.seconds / 60:.1f} min).  ",
        f"Machine: {machine()}.", "",
        "### A/B report: false positives and power", "", ab, "",
        "### Price sensitivity against the generator's truth", "", pricing,
    ])
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
