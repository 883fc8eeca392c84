"""Online ingestion: events/s through validate -> SQLite event log -> user state (in-process or Redis), at batch
sizes 1 and 100, beside applying the same events to the in-process state alone (the baseline, no durability);
and the latency a user-state lookup adds to a Search / Recommend request (p50 / p99 of `get`).

    python benchmarks/online_ingest.py [--events 20000] [--single-events 1000] [--lookups 5000]

Events are the synthetic shop's (`small` preset), replayed in time order. Redis runs are skipped (and say so)
when redis-server is not installed; the script starts its own on a loopback port.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import tfrec  # noqa: E402,F401
from benchmarks.common import Timer, command_line, git_revision, machine, write_section  # noqa: E402


def batches(events, size):
    return [events[i:i + size] for i in range(0, len(events), size)]


def ingest_rate(make_ingest, events, size, repeats) -> tuple:
    """(events/s, CPU µs per event in this process) of feeding `events` in batches of `size` to a fresh ingest
    function: the fastest of `repeats` runs, as the machine is shared and slow runs measure the neighbours."""
    parts = batches(events, size)
    best = (0.0, 0.0)
    for _ in range(repeats):
        ingest = make_ingest()
        cpu = time.process_time()
        with Timer() as t:
            for part in parts:
                ingest(part)
        cpu = time.process_time() - cpu
        best = max(best, (len(events) / t.seconds, cpu / len(events) * 1e6))
    return best


def lookup_latencies(store, users, n, rng) -> np.ndarray:
    """Seconds per `get` of a random known user, one call at a time (as a request would)."""
    picks = rng.choice(users, size=n)
    out = np.empty(n)
    for i, user in enumerate(picks):
        start = time.perf_counter()
        store.get(user)
        out[i] = time.perf_counter() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--events", type=int, default=20_000, help="events replayed at batch size 100")
    parser.add_argument("--single-events", type=int, default=1_000, help="events replayed one per call")
    parser.add_argument("--lookups", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure; the fastest is reported")
    parser.add_argument("--no-write", action="store_true", help="print, do not update docs/benchmarks.md")
    args = parser.parse_args()

    from tfrec.data.synthetic import SyntheticConfig, generate
    from tfrec.online.event_log import EventLog
    from tfrec.online.events import events_from_table
    from tfrec.online.ingest import EventIngestor
    from tfrec.online.redis_local import LocalRedisServer, RedisServerUnavailable
    from tfrec.online.user_state import InMemoryUserStateStore, item_metadata_from_catalog

    data = generate(SyntheticConfig.preset(args.preset, seed=0))
    items = item_metadata_from_catalog(data.dataset.catalog)
    all_events = list(events_from_table(data.dataset.events))
    events = all_events[:args.events]
    work = tempfile.mkdtemp(prefix="tfrec-online-bench-")
    counter = iter(range(10_000))

    def logged(store_factory, synchronous="FULL"):
        def make():
            log = EventLog(os.path.join(work, f"events{next(counter)}.sqlite"), synchronous=synchronous,
                           clock=lambda: 2e9)
            return EventIngestor(log, store_factory()).ingest
        return make

    def memory():
        return InMemoryUserStateStore(items)

    def state_only():
        return memory().apply

    rows = []  # (path, batch size, events, (events/s, CPU µs/event))
    for size, n in ((1, args.single_events), (100, args.events)):
        sample = events[:n]
        rows.append(("in-process state only (baseline, not durable)", size, n,
                     ingest_rate(state_only, sample, size, args.repeats)))
        rows.append(("SQLite log (synchronous=FULL) + in-process state", size, n,
                     ingest_rate(logged(memory), sample, size, args.repeats)))
        rows.append(("SQLite log (synchronous=NORMAL) + in-process state", size, n,
                     ingest_rate(logged(memory, "NORMAL"), sample, size, args.repeats)))
        print(rows[-3:], flush=True)

    rng = np.random.default_rng(0)
    store = memory()
    store.apply(events)
    users = sorted(store.user_ids())
    latencies = {"in-process": lookup_latencies(store, users, args.lookups, rng)}
    redis_note = ""
    try:
        with LocalRedisServer() as url:
            from tfrec.online.redis_state import RedisUserStateStore

            def redis_store():
                return RedisUserStateStore(url, items, key_prefix=f"bench{next(counter)}:")

            for size, n in ((1, args.single_events), (100, args.events)):
                rows.append(("SQLite log (synchronous=FULL) + Redis state", size, n,
                             ingest_rate(logged(redis_store), events[:n], size, args.repeats)))
                print(rows[-1], flush=True)
            shared = redis_store()
            shared.apply(events)
            latencies["Redis (loopback)"] = lookup_latencies(shared, users, args.lookups, rng)
            shared.close()
    except RedisServerUnavailable as exc:
        redis_note = f"\nRedis runs skipped: {exc}\n"

    baseline = {size: rate for path, size, _, (rate, _) in rows if path.startswith("in-process state only")}
    lines = [
        "## Online ingestion: event log + user state throughput, state lookup latency",
        "",
        f"Command: `{command_line()}` (git {git_revision()}). Machine: {machine()}. Shared with other jobs while "
        f"measured (2 cores), so the runs are modest-size and each figure is the fastest of {args.repeats}.",
        "",
        f"Data: the synthetic shop (`{args.preset}` preset, seed 0), its first events in time order (impressions, "
        "clicks, add-to-cart, purchases). Each path validates every event; the logged paths commit each batch in "
        "one SQLite WAL transaction before acknowledging it (`EventIngestor.ingest`). The baseline folds the same "
        "events into the in-process user state with no log (nothing durable).",
        "",
        "| path | batch size | events | events/s | vs baseline | CPU µs/event (this process) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for path, size, n, (rate, cpu) in rows:
        lines.append(f"| {path} | {size} | {n:,} | {rate:,.0f} | {rate / baseline[size]:.3f}x | {cpu:,.1f} |")
    lines += [
        redis_note,
        f"State lookup (`UserStateStore.get`, {args.lookups:,} single calls over {len(users):,} users with "
        "state): the latency a personalised Search / Recommend request pays before ranking.",
        "",
        "| store | p50 | p99 | mean |",
        "|---|---:|---:|---:|",
    ]
    for name, lat in latencies.items():
        p50, p99 = np.percentile(lat, [50, 99]) * 1e6
        lines.append(f"| {name} | {p50:,.0f} µs | {p99:,.0f} µs | {lat.mean() * 1e6:,.0f} µs |")
    lines += [
        "",
        "Batching matters most: at batch size 1 every event pays a commit (and with FULL an fsync of the WAL); at "
        "100 the commit is shared. NORMAL skips the per-commit fsync (safe against process crashes, not power "
        "loss; see docs/online.md). Wall-clock rates on this shared machine swing by 2x between runs (the disk and "
        "the cores are busy with other jobs); the CPU column is steadier. The Redis rows exclude redis-server's own "
        "CPU.",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("online_ingest", body)


if __name__ == "__main__":
    main()
