"""`tfrec price ITEM --segment S`: purchase probability, elasticity and the revenue-maximising price of an item for a
shopper segment, from the exported price-sensitivity model; `tfrec train pricing` fits and exports that model."""

from __future__ import annotations

import json
import os

from tfrec.cli.common import add_config_arguments

DEFAULT_MODEL = "models/pricing"
CURVE_POINTS = 7


def register(commands) -> None:
    price = commands.add_parser(
        "price",
        help="price sensitivity and revenue-maximising price of an item for a segment",
        description="Queries the exported price-sensitivity model (through its serving signature): P(purchase | "
        "product-page view) at the reference price, the elasticity d log P / d log price, and the price within "
        "[--min, --max] maximising price x P(purchase). Bounds default to the model's configured multiples of the "
        "item's reference (list) price.",
    )
    price.add_argument("item", metavar="ITEM", help="item_id")
    price.add_argument("--segment", required=True, help="shopper segment (the users' segment attribute)")
    price.add_argument("--model", default=DEFAULT_MODEL,
                       help=f"exported pricing model: <base>/<name> (newest version) or a version directory "
                       f"(default: {DEFAULT_MODEL})")
    price.add_argument("--min", type=float, dest="low", help="lowest allowed price")
    price.add_argument("--max", type=float, dest="high", help="highest allowed price")
    price.add_argument("--json", action="store_true", help="print JSON")
    price.set_defaults(handler=run_price)


def register_train(models) -> None:
    """`tfrec train pricing` (called by tfrec.cli.train)."""
    train = models.add_parser(
        "pricing",
        help="the price-sensitivity model (purchase probability vs price)",
        description="Fits P(purchase | view, segment, item, price), monotone in price, on views with shown prices "
        "(on synthetic data: a simulated price test with the generator's own purchase mechanism, and a report of "
        "the elasticity and optimal-price error against the generator's truth), and exports it as a SavedModel.",
    )
    add_config_arguments(train, default="configs/pricing.yaml")
    train.set_defaults(handler=run_train)


def _version_dir(path: str) -> str:
    from tfrec.export.saved_model import existing_versions

    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    versions = existing_versions(path)
    if not versions:
        raise FileNotFoundError(f"{path} holds no SavedModel version: train one with `tfrec train pricing`")
    return os.path.join(path, str(versions[-1]))


def price_summary(model_dir: str, item: str, segment: str, low=None, high=None) -> dict:
    """What `tfrec price` prints, as a dict (the CLI's logic, usable from Python)."""
    import numpy as np

    from tfrec.export.saved_model import load_model_info
    from tfrec.online.pricing import SavedPriceModel

    path = _version_dir(model_dir)
    card = load_model_info(path)
    if card.get("kind") != "pricing":
        raise ValueError(f"{path} is not a pricing model (kind {card.get('kind')!r})")
    model = SavedPriceModel(path)
    segments = card.get("segments", [])
    if segments and segment not in segments:
        raise ValueError(f"--segment: unknown segment {segment!r}; the model knows {segments}")
    reference = float(model.reference_price(item)[0])
    if np.isnan(reference):
        raise KeyError(f"item {item!r} is not in the pricing model (it was trained on the items of its price test)")
    bounds = card.get("bounds", [0.7, 1.4])
    low = bounds[0] * reference if low is None else low
    high = bounds[1] * reference if high is None else high
    if not 0 < low <= high:
        raise ValueError(f"--min/--max: need 0 < min <= max, got {low:g} and {high:g}")
    best = float(model.optimal_price(segment, item, low, high)[0])
    curve = np.exp(np.linspace(np.log(low), np.log(high), CURVE_POINTS))
    outputs = model.predict(np.full(CURVE_POINTS, segment), np.full(CURVE_POINTS, item), curve)
    at_ref = model.predict([segment], [item], [reference])
    at_best = model.predict([segment], [item], [best])
    return {
        "model": path, "item_id": item, "segment": segment, "reference_price": reference,
        "purchase_probability": float(at_ref["purchase_probability"][0]),
        "elasticity": float(at_ref["elasticity"][0]),
        "bounds": [float(low), float(high)],
        "optimal_price": best,
        "optimal_purchase_probability": float(at_best["purchase_probability"][0]),
        "revenue_per_view_at_reference": reference * float(at_ref["purchase_probability"][0]),
        "revenue_per_view_at_optimum": best * float(at_best["purchase_probability"][0]),
        "curve": [{"price": float(p), "purchase_probability": float(q), "elasticity": float(e)}
                  for p, q, e in zip(curve, outputs["purchase_probability"], outputs["elasticity"])],
    }


def run_price(args) -> int:
    s = price_summary(args.model, args.item, args.segment, args.low, args.high)
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"item {s['item_id']}, segment {s['segment']} (model {s['model']})")
    print(f"  reference price {s['reference_price']:.2f}: P(purchase | view) {s['purchase_probability']:.4f}, "
          f"elasticity {s['elasticity']:.3f}")
    print(f"  revenue-maximising price in [{s['bounds'][0]:.2f}, {s['bounds'][1]:.2f}]: {s['optimal_price']:.2f} "
          f"(P {s['optimal_purchase_probability']:.4f}; revenue per view {s['revenue_per_view_at_optimum']:.3f} vs "
          f"{s['revenue_per_view_at_reference']:.3f} at the reference price)")
    print("  price     P(purchase)  elasticity")
    for point in s["curve"]:
        print(f"  {point['price']:>8.2f}  {point['purchase_probability']:>11.4f}  {point['elasticity']:>10.3f}")
    return 0


def run_train(args) -> int:
    from tfrec.cli.common import config_overrides
    from tfrec.online.pricing_job import format_run, load_pricing_config, train_pricing

    overrides = config_overrides(args)
    run_dir = overrides.pop("run_dir", None)
    if run_dir:
        overrides["export_dir"] = run_dir
    run = train_pricing(load_pricing_config(args.config, overrides))
    print(format_run(run))
    return 0
