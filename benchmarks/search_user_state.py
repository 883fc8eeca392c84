"""`python benchmarks/search_load.py --user-state`: what the live user-state store adds to a Search.

Two `tfrec serve-search` processes on the same model server and the same 100k-item shop as the search-load benchmark:
one without a store (baseline) and one with `online.enabled` (in-memory store, restored at start from an event log
holding every logged event of the requesting shoppers). They take turns request by request (concurrency 1), so
background load falls on both alike. The store changes a request twice: the lookup itself (the `prepare` stage:
`get(user, now)` with decay, plus building the view) and, downstream, the shopper's history as the models'
`recent_items` input and the affinity / price-band boosts; the total ratio includes both.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, Timer, command_line, git_revision, machine, write_section
from benchmarks.search_load import (build, interleaved, log, logged_searches, model_server_for, search_paths,
                                    stop_all)


def event_log_of(shop: Path, users, path: Path) -> int:
    """An event log with every logged event of `users` (written once, reused); returns its event count."""
    from tfrec.data.dataset_io import load_dataset
    from tfrec.online.event_log import EventLog
    from tfrec.online.events import events_from_table

    log_ = EventLog(path, synchronous="NORMAL")
    try:
        if log_.last_offset() == 0:
            events = load_dataset(str(shop))[0].events
            wanted = set(users)
            mine = [e for e in events_from_table(events) if e.user_id in wanted]
            acks = log_.append(mine)
            log(f"event log {path}: {sum(a.accepted for a in acks):,} of {len(mine):,} events accepted")
        return log_.last_offset()
    finally:
        log_.close()


def run_user_state(args) -> None:
    loads = [os.getloadavg()[0]]
    with Timer() as total:
        base = build(args.items, args.users, args.sessions)
        shop = base / "shop"
        requests = logged_searches(shop)
        events = event_log_of(shop, {user for user, _, _ in requests}, base / "online" / "events.sqlite")
        model_server = model_server_for(base / "models")
        processes = []
        try:
            online = ["online.enabled=true", f"online.config={REPO / 'configs' / 'online.yaml'}",
                      f"online.overrides.event_log.path={base / 'online' / 'events.sqlite'}"]
            paths = search_paths(shop, model_server, requests, [("store off (baseline)", []),
                                                                ("user-state store on", online)], processes)
            rows = interleaved(paths, args.duration)
            loads.append(os.getloadavg()[0])
            prepare = {p.name: float(np.mean([t.get("prepare", 0.0) for t in p.timings])) for p in paths}
            stages = {p.name: float(np.mean([t.get("total", 0.0) for t in p.timings])) for p in paths}
        finally:
            stop_all(processes, model_server)
    off, on = rows
    lines = [
        "## Search with the live user-state store: what the state lookup adds",
        f"Command: `{command_line()}` (git {git_revision()}). Machine: {machine()}; the model server, both search "
        f"services and the client share the 2 cores with other jobs (1-minute load average {min(loads):.1f} to "
        f"{max(loads):.1f}); a brief run ({args.duration:g} s per path) on a loaded machine: read the ratio, not the "
        "absolute times.",
        f"Data: the search-load benchmark's shop ({args.items:,} items) and models; {len(requests)} logged searches "
        f"(user, query, device), k=10, {len(on.latencies) + len(off.latencies)} requests taking turns. The store is "
        f"in-memory, restored at start from an event log of the requesting shoppers' {events:,} logged events.",
        "",
        "| path | requests | p50 (ms) | p95 (ms) | p99 (ms) | p50 vs baseline | mean `prepare` stage (ms) | mean "
        "`total` as reported (ms) | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row.name} | {len(row.latencies):,} | {row.percentile(50):.1f} | {row.percentile(95):.1f} | "
                     f"{row.percentile(99):.1f} | {row.percentile(50) / off.percentile(50):.2f}x | "
                     f"{prepare[row.name]:.3f} | {stages[row.name]:.1f} | {row.errors} |")
    reading = (
        f"Reading: the lookup itself (the `prepare` stage: store read, decay to now, view) costs "
        f"{prepare[on.name] - prepare[off.name]:.3f} ms per request; the whole Search with the store on takes "
        f"{on.percentile(50) / off.percentile(50):.2f}x the p50 of the service without it, the difference beyond the "
        f"lookup coming from what the state changes downstream (the shopper's history as model input, boosts, "
        f"reasons). Whole run {total.seconds / 60:.1f} min.")
    body = "\n".join(lines + ["", reading])
    print(body)
    if not args.no_write:
        write_section("search_user_state", body)
