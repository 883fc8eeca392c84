"""A/B report: hand-computed statistics, event aggregation, verdicts, the PNG plot, Prometheus metrics and the CLI."""

import json
import math

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from tfrec.cli.main import main
from tfrec.data.schema import EVENTS_SCHEMA, Table
from tfrec.data.writers import write_table
from tfrec.online.ab_events import arm_sums
from tfrec.online.ab_metrics import ABMetrics
from tfrec.online.ab_plot import metric_series, plot_over_time
from tfrec.online.ab_report import ab_report, compare_arms, summarize
from tfrec.online.ab_stats import (
    RatioEstimate, compare_ratios, data_multiplier, power_two_sided, ratio_estimate, two_proportion_ztest,
    wilson_interval,
)
from tfrec.online.events import Event
from tfrec.online.experiments import Arm, Experiment

DAY = 86_400
T0 = 1_704_067_200  # 2024-01-01


def _experiment(arms=("A", "B"), name="exp", **kwargs):
    exp = Experiment(name, [Arm(a, 1 / len(arms), pipeline={"arm": a}) for a in arms], **kwargs)
    exp.validate()
    return exp


# ------------------------------------------------------------------------------------------------ statistics
def test_wilson_interval_hand_computed():
    # p = .15, n = 200, z = 1.959964: centre .1565958, half-width .0494600 (statsmodels: .1071359, .2060558)
    low, high = wilson_interval(30, 200)
    assert (low, high) == pytest.approx((0.1071359, 0.2060558), abs=1e-6)
    assert wilson_interval(0, 50)[0] == 0.0 and 0 < wilson_interval(0, 50)[1] < 0.08  # never a zero-width interval
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(ValueError, match="successes must be in"):
        wilson_interval(5, 3)


def test_two_proportion_ztest_hand_computed():
    # pooled p = 230/2000 = .115, se = sqrt(.115 * .885 * (2/1000)) = .0142670, z = .03 / se
    z, p = two_proportion_ztest(100, 1000, 130, 1000)
    assert z == pytest.approx(2.10275, abs=1e-4)
    assert p == pytest.approx(0.035487, abs=1e-5)
    assert two_proportion_ztest(10, 100, 10, 100) == (0.0, 1.0)


def test_delta_method_ratio_hand_computed():
    # R = 4/35; d = y - R x = (-.142857, -.571429, .714286); se = sqrt(3/2 * sum d^2) / 35
    est = ratio_estimate([1, 0, 3], [10, 5, 20])
    assert est.value == pytest.approx(4 / 35)
    assert est.se == pytest.approx(math.sqrt(1.5 * 0.857142857) / 35, rel=1e-6)
    # one impression per user: the clustered se is the binomial se with an n / (n - 1) correction
    y = np.r_[np.ones(30), np.zeros(170)]
    est = ratio_estimate(y, np.ones(200))
    assert est.se == pytest.approx(math.sqrt(0.15 * 0.85 / 199), rel=1e-9)
    assert math.isnan(ratio_estimate([0, 0], [0, 0]).value)


def test_compare_ratios_hand_computed():
    d = compare_ratios(RatioEstimate(0.10, 0.01, 100, 10, 100), RatioEstimate(0.12, 0.01, 100, 12, 100))
    assert d.diff == pytest.approx(0.02) and d.se == pytest.approx(0.0141421, abs=1e-6)
    assert d.z == pytest.approx(1.414214, abs=1e-5) and d.p_value == pytest.approx(0.157299, abs=1e-5)
    assert d.lift == pytest.approx(0.2)
    # log-ratio interval: se_log = hypot(.1, .083333) = .1301708; 1.2 exp(+-1.959964 se_log) - 1
    assert (d.lift_low, d.lift_high) == pytest.approx((-0.0702212, 0.5487555), abs=1e-6)
    assert d.prob_better == pytest.approx(0.921350, abs=1e-5)
    assert (d.diff_low, d.diff_high) == pytest.approx((-0.0077181, 0.0477181), abs=1e-6)


def test_power_and_sample_size_agree():
    se, effect = 0.004, 0.01
    k = data_multiplier(effect, se, 0.05, 0.8)
    assert power_two_sided(effect, se / math.sqrt(k), 0.05) == pytest.approx(0.8, abs=2e-3)
    assert power_two_sided(0.0, se, 0.05) == pytest.approx(0.05)


# ------------------------------------------------------------------------------------------------- verdicts
def _users(rng, n, ctr, impressions=50):
    imp = rng.integers(impressions // 2, impressions * 2, n).astype(float)
    clicks = rng.binomial(imp.astype(int), ctr).astype(float)
    zeros = np.zeros(n)
    return {"impressions": imp, "clicks": clicks, "add_to_carts": zeros, "purchases": zeros, "revenue": zeros,
            "requests": np.ceil(imp / 10), "converted_requests": zeros}


def test_verdicts():
    rng = np.random.default_rng(0)
    better = compare_arms(_users(rng, 4000, 0.10), _users(rng, 4000, 0.12), "ctr", 0.05)
    assert better.significant and better.verdict.startswith("B better than A on ctr: +")
    assert "p=" in better.verdict and better.lift_low > 0
    worse = compare_arms(_users(rng, 4000, 0.10), _users(rng, 4000, 0.08), "ctr", 0.05)
    assert worse.verdict.startswith("B worse than A on ctr: -")
    same = compare_arms(_users(rng, 20000, 0.10), _users(rng, 20000, 0.10), "ctr", 0.05, mde=0.05)
    assert not same.significant and same.power_at_mde > 0.8
    assert same.verdict.startswith("no significant difference on ctr") and "power to detect ±5%" in same.verdict
    small = compare_arms(_users(rng, 100, 0.10), _users(rng, 100, 0.105), "ctr", 0.05, mde=0.05)
    assert small.verdict.startswith("not enough data on ctr") and "need ~" in small.verdict
    # the estimate is honest: with the data multiplied as asked, the power is the target
    assert small.power_at_mde < 0.8 and small.data_multiplier > 1
    empty = {f: np.zeros(0) for f in _users(rng, 1, 0.1)}
    none = compare_arms(_users(rng, 100, 0.1), empty, "ctr", 0.05)
    assert none.verdict == "not enough data on ctr: A has 100 user(s) and %g impressions; B has 0 user(s) and 0 " \
                           "impressions" % none.control_units


def test_several_arms_use_bonferroni():
    rng = np.random.default_rng(1)
    exp = _experiment(("A", "B", "C"))
    from tfrec.online.ab_events import ArmSums

    sums = {a: ArmSums(a, np.arange(3000).astype(str), _users(rng, 3000, ctr))
            for a, ctr in (("A", 0.1), ("B", 0.1), ("C", 0.115))}
    report = summarize(exp, sums, metrics=["ctr"])
    assert [c.treatment for c in report.comparisons] == ["B", "C"]
    assert all(c.alpha == pytest.approx(0.025) for c in report.comparisons)
    assert report.verdicts[1].startswith("C better than A on ctr")


# --------------------------------------------------------------------------------------- events -> report
def _events():
    """Hand-made traffic: user u1 (arm A, recorded), u2 (A), u3 (B), one event of another experiment, one before
    the start, and an untagged user u4 who gets the hash assignment."""
    rows = [
        # user, request, type, t, price, arm
        ("u1", "r1", "impression", T0 + 10, 10.0, "exp:A"), ("u1", "r1", "impression", T0 + 10, 20.0, "exp:A"),
        ("u1", "r1", "click", T0 + 20, 10.0, "exp:A"), ("u1", "r1", "add_to_cart", T0 + 30, 10.0, "exp:A"),
        ("u1", "r1", "purchase", T0 + 40, 10.0, "exp:A"), ("u1", "r1", "purchase", T0 + 50, 20.0, "exp:A"),
        ("u1", "r2", "impression", T0 + DAY, 5.0, "exp:A"),
        ("u2", "r3", "impression", T0 + DAY, 5.0, "A"), ("u2", "r3", "click", T0 + DAY + 5, 5.0, "A"),
        ("u3", "r4", "impression", T0 + 2 * DAY, 7.0, "exp:B"), ("u3", "r4", "click", T0 + 2 * DAY, 7.0, "exp:B"),
        ("u3", "r4", "purchase", T0 + 2 * DAY, float("nan"), "exp:B"),
        ("u3", "r5", "impression", T0 + 2 * DAY, 7.0, "other:B"),  # another experiment's traffic
        ("u3", "r6", "impression", T0 - 10, 7.0, "exp:B"),  # before the start
        ("u4", "r7", "impression", T0 + 3 * DAY, 3.0, ""), ("u4", "r7", "click", T0 + 3 * DAY, 3.0, ""),
    ]
    cols = list(zip(*rows))
    return Table(EVENTS_SCHEMA, {"user_id": cols[0], "request_id": cols[1], "event_type": cols[2],
                                 "timestamp": cols[3], "price": cols[4], "item_id": ["i"] * len(rows)},
                 {"arm": cols[5]})


def test_event_sums_follow_the_definitions():
    exp = _experiment(start=T0)
    from tfrec.online.experiments import assign

    u4 = assign(exp, "u4")
    sums = arm_sums(_events(), exp)
    expect = {
        "A": {"impressions": 4, "clicks": 2, "add_to_carts": 1, "purchases": 2, "revenue": 30.0, "requests": 3,
              "converted_requests": 1},  # u1: r1 (2 shown, bought twice) and r2; u2: r3 clicked
        "B": {"impressions": 1, "clicks": 1, "add_to_carts": 0, "purchases": 1, "revenue": 0.0, "requests": 1,
              "converted_requests": 1},  # u3: r4 bought without a price; r5 (other experiment), r6 (early) dropped
    }
    for field in ("impressions", "clicks", "requests"):  # u4's one shown, clicked item lands in its hashed arm
        expect[u4][field] += 1
    for arm in ("A", "B"):
        assert {f: sums[arm].total(f) for f in expect[arm]} == expect[arm], arm
    a, b = sums["A"], sums["B"]
    assert b.unpriced_purchases == 1
    assert sorted(a.user_ids.tolist() + b.user_ids.tolist()) == ["u1", "u2", "u3", "u4"]
    # "recorded" drops the untagged user; "assignment" ignores the tags (u1..u3 then follow the hash)
    recorded = arm_sums(_events(), exp, arm_source="recorded")
    assert "u4" not in set(recorded["A"].user_ids) | set(recorded["B"].user_ids)
    assigned = arm_sums(_events(), exp, arm_source="assignment")
    for arm, s in assigned.items():
        assert all(assign(exp, u) == arm for u in s.user_ids)


def test_report_from_events_iterable_equals_table():
    exp = _experiment(start=T0)
    table = _events()
    events = [Event(event_type=r["event_type"], user_id=r["user_id"], item_id=r["item_id"],
                    timestamp=float(r["timestamp"]), request_id=r["request_id"],
                    price=None if math.isnan(r["price"]) else r["price"], arm=r["arm"]) for r in table.rows()]
    from_table, from_events = ab_report(exp, table).to_dict(), ab_report(exp, events).to_dict()
    assert from_table == from_events
    text = ab_report(exp, table).format_text()
    assert "verdict:" in text and "1 purchase(s) without a shown price" in text
    parsed = json.loads(ab_report(exp, table).to_json())  # NaN (e.g. undefined intervals) becomes null
    assert parsed["experiment"] == "exp" and len(parsed["verdicts"]) == 1


def test_missing_column_is_named():
    table = {"user_id": np.array(["u"]), "timestamp": np.array([1.0])}
    with pytest.raises(ValueError, match=r"missing column\(s\) \['event_type'\]"):
        ab_report(_experiment(), table)


# ---------------------------------------------------------------------------------------------- plot + CLI
def _traffic(days=4, users=400, seed=0):
    """Untagged synthetic traffic where B's CTR is 30% higher: users assigned by the hash."""
    rng = np.random.default_rng(seed)
    exp = _experiment(start=T0)
    from tfrec.online.experiments import assign_many

    ids = np.array([f"user{i}" for i in range(users)])
    arm = assign_many(exp, ids.tolist())
    rows = []
    for u, a in zip(ids, arm):
        for r in range(rng.integers(1, 6)):
            t = T0 + int(rng.integers(0, days * DAY))
            for pos in range(5):
                item = f"i{rng.integers(0, 50)}-{pos}"  # distinct items within a request
                rows.append((u, f"{u}-{r}", "impression", t, 10.0, item))
                if rng.random() < (0.13 if a == "B" else 0.10):
                    rows.append((u, f"{u}-{r}", "click", t + 5, 10.0, item))
                    if rng.random() < 0.2:
                        rows.append((u, f"{u}-{r}", "purchase", t + 60, 10.0, item))
    cols = list(zip(*rows))
    return exp, Table(EVENTS_SCHEMA, {"user_id": cols[0], "request_id": cols[1], "event_type": cols[2],
                                      "timestamp": cols[3], "price": cols[4], "item_id": cols[5]})


def test_metric_series_end_at_the_report(tmp_path):
    exp, events = _traffic()
    series = metric_series(exp, events, metrics=["ctr"], bucket="day")
    report = ab_report(exp, events)
    for s in series:
        assert len(s.value) == 4 and np.all(s.low <= s.value) and np.all(s.value <= s.high)
        assert s.value[-1] == pytest.approx(report.arms[exp.arm_names.index(s.arm)].metrics["ctr"].value)
    path = plot_over_time(exp, events, str(tmp_path / "plots" / "ab.png"))
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_cli_report_json_plot_and_errors(tmp_path, capsys):
    exp, events = _traffic()
    events_file = write_table(events, tmp_path / "events.csv")
    config = tmp_path / "experiments.yaml"
    config.write_text("experiments:\n  - name: exp\n    start: 1704067200\n    arms:\n"
                      "      - {name: A, weight: 0.5, pipeline: {arm: A}}\n"
                      "      - {name: B, weight: 0.5, pipeline: {arm: B}}\n", encoding="utf-8")
    png = tmp_path / "ab.png"
    code = main(["ab", "report", "exp", "--events", str(events_file), "--config", str(config), "--plot", str(png),
                 "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and png.stat().st_size > 10_000
    assert out["verdicts"][0].startswith("B better than A on ctr")
    assert main(["ab", "report", "exp", "--events", str(events_file), "--config", str(config)]) == 0
    text = capsys.readouterr().out
    assert "ctr:" in text and "B better than A on ctr" in text
    assert main(["ab", "report", "nope", "--events", str(events_file), "--config", str(config)]) == 2
    assert "no experiment 'nope'" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,event_type,timestamp\nu1,i1,impression,1704067300\nu1,i1,teleport,1704067301\n",
                   encoding="utf-8")
    assert main(["ab", "report", "exp", "--events", str(bad), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "event_type" in err and "teleport" in err
    assert main(["ab", "assign", "exp", "user1", "user2", "--config", str(config)]) == 0
    assert capsys.readouterr().out.count("\t") == 2


def test_cli_reads_the_sqlite_event_log(tmp_path, capsys):
    from tfrec.online.event_log import EventLog
    from tfrec.online.events import events_from_table

    exp, events = _traffic(users=60)
    with EventLog(tmp_path / "events.db", synchronous="NORMAL") as log:
        acks = log.append(list(events_from_table(events)))
    assert all(a.accepted for a in acks)
    config = tmp_path / "experiments.yaml"
    config.write_text("experiments:\n  - name: exp\n    arms:\n      - {name: A, weight: 0.5, pipeline: {x: 1}}\n"
                      "      - {name: B, weight: 0.5, pipeline: {x: 2}}\n", encoding="utf-8")
    assert main(["ab", "report", "exp", "--events", str(tmp_path / "events.db"), "--config", str(config),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert sum(a["totals"]["impressions"] for a in out["arms"]) == np.sum(events["event_type"] == "impression")


# ------------------------------------------------------------------------------------------------ Prometheus
def test_prometheus_metrics_per_arm_and_version():
    registry = CollectorRegistry()
    m = ABMetrics(registry)
    labels = dict(experiment="exp", arm="B", model="ranker", version="2")
    m.observe_request("exp:B", "ranker", "2", impressions=10)
    m.observe_request("exp:B", "ranker", "2", impressions=10)
    for _ in range(3):
        m.observe_event("click", "exp:B", "ranker", "2")
    m.observe(Event("purchase", "u", "i", T0, price=19.5, arm="exp:B"), "ranker", "2")
    m.observe_event("impression", "exp:A", "ranker", "1", count=4)
    assert m.value("tfrec_ab_impressions_total", **labels) == 20
    assert m.value("tfrec_ab_ctr", **labels) == pytest.approx(3 / 20)
    assert m.value("tfrec_ab_conversion_rate", **labels) == pytest.approx(1 / 2)
    assert m.value("tfrec_ab_revenue_total", **labels) == pytest.approx(19.5)
    assert m.value("tfrec_ab_ctr", experiment="exp", arm="A", model="ranker", version="1") == 0
    assert m.value("tfrec_ab_impressions_total", experiment="exp", arm="A", model="ranker", version="1") == 4
    with pytest.raises(ValueError, match="event_type: expected one of"):
        m.observe_event("rate", "exp:B")
    from prometheus_client import generate_latest

    text = generate_latest(registry).decode()
    assert 'tfrec_ab_ctr{arm="B",experiment="exp",model="ranker",version="2"} 0.15' in text
