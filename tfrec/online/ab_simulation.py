"""Simulated A/B tests on the synthetic shop: shoppers replay their requests against arms that rank differently.

The pool is a generated shop's users, each with the requests the logging policy served them. An arm is a ranking
policy over the same shown items: "logged" keeps the logged order (a decent noisy ranker), "oracle" sorts by the
true relevance (a better model), "reversed" and "shuffled" are worse. Every impression is clicked with the
generator's own P(click | request, item, position) (`ClickModel.click_probability`), clicks become add-to-carts and
purchases with its own cart / purchase probabilities, so the true CTR of each arm is known exactly.

A simulated experiment draws `users` shoppers from the pool (with replacement, each a fresh id), assigns them to
arms with the experiment's real stable hash (`assign_many`, a fresh salt per experiment) and plays all their
requests. `expected_power` gives the analytic power of the report's test for the same design:

    per shopper j of the pool: n_j impressions, m_j = sum p (expected clicks), v_j = sum p (1 - p) under an arm;
    R = mean(m) / mean(n),   Var(clicks_j - R n_j) = mean(v + (m - R n)^2)   (clicks independent given p)
    se_arm^2 = Var(...) / (users_arm * mean(n)^2),   power = Phi(d/se - z) + Phi(-d/se - z), se^2 = se_A^2 + se_B^2
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from tfrec.data.schema import EVENTS_SCHEMA, Table
from tfrec.online.ab_events import FIELDS
from tfrec.online.ab_stats import normal_quantile, power_two_sided
from tfrec.online.experiments import Arm, Experiment, arm_tag, assign_many

POLICIES = ("logged", "oracle", "reversed", "shuffled")
_STAGE_DELAY = (20, 90, 240)  # seconds after the request of the click, add-to-cart and purchase events

__all__ = ["POLICIES", "PowerPrediction", "ShopperPool", "expected_power", "shopper_pool", "simulate_events",
           "simulate_experiments", "two_arm_experiment", "users_for_power"]


@dataclasses.dataclass
class ShopperPool:
    """Shoppers of a synthetic shop with their impressions laid out shopper by shopper.

    `p_click[policy][i]` is impression i's click probability when `policy` ranks its request; the item, its cart and
    purchase probabilities and its price stay with impression i whatever the position.
    """

    user_ids: np.ndarray  # (shoppers,)
    start: np.ndarray  # (shoppers,) first impression of each shopper
    impressions: np.ndarray  # (shoppers,) impressions per shopper
    request: np.ndarray  # (impressions,) global request index
    request_id: np.ndarray
    item_id: np.ndarray
    timestamp: np.ndarray
    p_click: Dict[str, np.ndarray]
    p_cart: np.ndarray  # P(add_to_cart | click)
    p_buy: np.ndarray  # P(purchase | add_to_cart)
    price: np.ndarray
    n_requests: np.ndarray  # (shoppers,)

    @property
    def size(self) -> int:
        return len(self.user_ids)

    def true_ratio(self, policy: str) -> float:
        """The arm's true CTR over the pool (shoppers equally likely): mean expected clicks / mean impressions."""
        return float(self.p_click[policy].sum() / self.impressions.sum())

    def shopper_moments(self, policy: str) -> Tuple[np.ndarray, np.ndarray]:
        """(expected clicks m_j, click variance v_j) of each shopper under `policy`."""
        p = self.p_click[policy]
        return (np.add.reduceat(p, self.start), np.add.reduceat(p * (1 - p), self.start))


def _positions(policy: str, relevance: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(requests, k) position each logged item gets under `policy`."""
    n, k = relevance.shape
    logged = np.broadcast_to(np.arange(k), (n, k))
    if policy == "logged":
        return logged
    if policy == "reversed":
        return k - 1 - logged
    if policy == "oracle":
        order = np.argsort(-relevance, axis=1, kind="stable")
    elif policy == "shuffled":
        order = np.argsort(rng.random((n, k)), axis=1)
    else:
        raise ValueError(f"unknown ranking policy {policy!r}; choose one of {POLICIES}")
    return np.argsort(order, axis=1)  # rank of each item = its position


def shopper_pool(data, policies: Sequence[str] = POLICIES, seed: int = 0) -> ShopperPool:
    """The pool of a `tfrec.data.synthetic.SyntheticData`, with click probabilities under each policy."""
    gt = data.ground_truth
    model, req, imp = gt.model, gt.request_features, gt.impressions
    k = data.config.list_size
    n_req = len(imp) // k
    if not np.array_equal(imp.request, np.repeat(np.arange(n_req), k)):
        raise ValueError("the generator's impressions are expected request by request, list_size each")
    items = imp.item.reshape(n_req, k)
    rows = np.repeat(np.arange(n_req), k).reshape(n_req, k)
    relevance = model.relevance(req, rows, items)
    rng = np.random.default_rng(seed)
    p_click = {}
    for policy in policies:
        position = _positions(policy, relevance, rng)
        p_click[policy] = model.click_probability(req, rows, items, position).reshape(-1)
    user = req.user[imp.request]
    order = np.lexsort((imp.position, imp.request, user))  # shopper by shopper, request by request
    users, start, counts = np.unique(user[order], return_index=True, return_counts=True)
    flat_req, flat_item = imp.request[order], imp.item[order]
    return ShopperPool(
        user_ids=model.users.user_ids[users],
        start=start,
        impressions=counts,
        request=flat_req,
        request_id=req.request_ids[flat_req],
        item_id=model.items.item_ids[flat_item],
        timestamp=req.timestamp[flat_req],
        p_click={p: v[order] for p, v in p_click.items()},
        p_cart=model.cart_probability(req, flat_req, flat_item),
        p_buy=model.purchase_given_cart(req, flat_req, flat_item),
        price=model.items.price[flat_item],
        n_requests=np.bincount(req.user, minlength=len(model.users.user_ids))[users],
    )


@dataclasses.dataclass
class _Played:
    """Outcomes of one simulated experiment's impressions (indices into the pool's impression arrays)."""

    shopper: np.ndarray  # (drawn shoppers,) pool index of each drawn shopper
    arm: np.ndarray  # (drawn shoppers,) arm name
    owner: np.ndarray  # (impressions,) which drawn shopper
    impression: np.ndarray  # (impressions,) pool impression index
    clicked: np.ndarray
    carted: np.ndarray
    purchased: np.ndarray


def _play(pool: ShopperPool, experiment: Experiment, policies: Dict[str, str], users: int, rng: np.random.Generator,
          id_prefix: str) -> Tuple[_Played, np.ndarray]:
    """Draws `users` shoppers, assigns them by the experiment's hash, and plays every impression under its arm's
    policy: click, then add-to-cart and purchase among clicks. Returns the outcomes and the drawn user ids."""
    shopper = rng.integers(0, pool.size, users)
    ids = np.char.add(id_prefix, np.arange(users).astype(str))
    arm = assign_many(experiment, ids.tolist())
    counts = pool.impressions[shopper]
    owner = np.repeat(np.arange(users), counts)
    offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    impression = pool.start[shopper][owner] + offset
    index_of = {name: i for i, name in enumerate(experiment.arm_names)}
    arm_index = np.fromiter((index_of[a] for a in arm), dtype=np.int64, count=len(arm))
    p = np.empty(len(impression))
    owner_arm = arm_index[owner]
    for i, name in enumerate(experiment.arm_names):
        mine = owner_arm == i
        p[mine] = pool.p_click[policies[name]][impression[mine]]
    clicked = rng.random(len(p)) < p
    clicks = np.flatnonzero(clicked)
    carts = clicks[rng.random(len(clicks)) < pool.p_cart[impression[clicks]]]
    buys = carts[rng.random(len(carts)) < pool.p_buy[impression[carts]]]
    carted, purchased = np.zeros(len(p), bool), np.zeros(len(p), bool)
    carted[carts], purchased[buys] = True, True
    return _Played(shopper, arm, owner, impression, clicked, carted, purchased), ids


def _user_sums(pool: ShopperPool, played: _Played) -> Dict[str, np.ndarray]:
    n = len(played.shopper)

    def per_user(weights):
        return np.bincount(played.owner, weights=weights, minlength=n)

    bought = played.purchased
    stride = int(pool.request.max()) + 1  # (drawn shopper, request) pairs with a purchase, as one integer each
    converted = np.unique(played.owner[bought] * stride + pool.request[played.impression[bought]]) // stride
    return {
        "impressions": pool.impressions[played.shopper].astype(np.float64),
        "clicks": per_user(played.clicked.astype(np.float64)),
        "add_to_carts": per_user(played.carted.astype(np.float64)),
        "purchases": per_user(bought.astype(np.float64)),
        "revenue": per_user(np.where(bought, pool.price[played.impression], 0.0)),
        "requests": pool.n_requests[played.shopper].astype(np.float64),
        "converted_requests": np.bincount(converted, minlength=n).astype(np.float64),
    }


def two_arm_experiment(name: str = "sim", control_weight: float = 0.5, salt: str = "") -> Experiment:
    """A two-arm experiment A (control) / B, e.g. to map onto policies."""
    exp = Experiment(name, [Arm("A", control_weight, pipeline={"arm": "A"}),
                            Arm("B", 1 - control_weight, pipeline={"arm": "B"})], salt=salt)
    exp.validate()
    return exp


ArmUserSums = Dict[str, Dict[str, np.ndarray]]  # arm -> field -> per-user sums


def simulate_experiments(pool: ShopperPool, policies: Dict[str, str], n_experiments: int, users: int,
                         seed: int = 0, experiment: Optional[Experiment] = None) -> List[ArmUserSums]:
    """`n_experiments` independent experiments of `users` shoppers each; per experiment, arm -> per-user sums (the
    input of `tfrec.online.ab_report.summarize` / `compare_arms`). Each experiment hashes with its own salt."""
    experiment = experiment or two_arm_experiment()
    rng = np.random.default_rng(seed)
    out = []
    for e in range(n_experiments):
        salted = dataclasses.replace(experiment, salt=f"{experiment.salt}/{seed}/{e}")
        played, _ = _play(pool, salted, policies, users, rng, f"e{e}u")
        sums = _user_sums(pool, played)
        out.append({arm: {f: sums[f][played.arm == arm] for f in FIELDS} for arm in experiment.arm_names})
    return out


def simulate_events(pool: ShopperPool, experiment: Experiment, policies: Dict[str, str], users: int,
                    seed: int = 0) -> Table:
    """One simulated experiment as a canonical events table (impressions, clicks, add-to-carts, purchases at the
    logged request times, each with `arm` = '<experiment>:<arm>'), ready for `ab_report` or the CLI."""
    rng = np.random.default_rng(seed)
    played, ids = _play(pool, experiment, policies, users, rng, "sim")
    imp = played.impression
    kinds = (("impression", np.ones(len(imp), bool), 0), ("click", played.clicked, _STAGE_DELAY[0]),
             ("add_to_cart", played.carted, _STAGE_DELAY[1]), ("purchase", played.purchased, _STAGE_DELAY[2]))
    parts = [(name, np.flatnonzero(mask), delay) for name, mask, delay in kinds]
    rows = np.concatenate([p[1] for p in parts])
    owner = played.owner[rows]
    draw_tag = np.char.add("-", played.owner.astype(str))  # requests of different draws of a shopper stay apart
    columns = {
        "user_id": ids[owner].astype(object),
        "item_id": pool.item_id[imp[rows]],
        "event_type": np.concatenate([np.full(len(p[1]), p[0], dtype=object) for p in parts]),
        "timestamp": pool.timestamp[imp[rows]] + np.concatenate([np.full(len(p[1]), p[2]) for p in parts]),
        "price": pool.price[imp[rows]],
        "request_id": np.char.add(pool.request_id[imp[rows]].astype(str), draw_tag[rows]).astype(object),
    }
    arm = np.asarray([arm_tag(experiment, a) for a in played.arm], dtype=object)[owner]
    order = np.argsort(columns["timestamp"], kind="stable")
    return Table(EVENTS_SCHEMA, {k: v[order] for k, v in columns.items()}, {"arm": arm[order]})


@dataclasses.dataclass
class PowerPrediction:
    """The analytic design of an A/B on the pool (module docstring formulas)."""

    control_ctr: float
    treatment_ctr: float
    se: float
    power: float

    @property
    def lift(self) -> float:
        return self.treatment_ctr / self.control_ctr - 1


def _arm_variance(pool: ShopperPool, policy: str, users_in_arm: float) -> Tuple[float, float]:
    m, v = pool.shopper_moments(policy)
    n = pool.impressions.astype(np.float64)
    r = m.sum() / n.sum()
    var = float(np.mean(v + (m - r * n) ** 2))
    return r, var / (users_in_arm * float(np.mean(n)) ** 2)


def expected_power(pool: ShopperPool, control: str, treatment: str, users: int, alpha: float = 0.05,
                   control_weight: float = 0.5) -> PowerPrediction:
    """Analytic power of the report's CTR test for `users` shoppers split control_weight / rest."""
    rc, var_c = _arm_variance(pool, control, users * control_weight)
    rt, var_t = _arm_variance(pool, treatment, users * (1 - control_weight))
    se = math.sqrt(var_c + var_t)
    return PowerPrediction(rc, rt, se, power_two_sided(rt - rc, se, alpha))


def users_for_power(pool: ShopperPool, control: str, treatment: str, power: float, alpha: float = 0.05,
                    control_weight: float = 0.5) -> int:
    """Shoppers per experiment for which `expected_power` reaches `power` (se scales as 1/sqrt(users))."""
    one = expected_power(pool, control, treatment, 1, alpha, control_weight)
    effect = abs(one.treatment_ctr - one.control_ctr)
    if effect == 0:
        raise ValueError(f"{control} and {treatment} have the same true CTR: no sample size gives power > alpha")
    z = normal_quantile(1 - alpha / 2) + normal_quantile(power)
    return int(math.ceil((one.se * z / effect) ** 2))
