"""The docs/benchmarks.md section that benchmarks/search_load.py writes: the table of paths, the target, and the
reading (what contributions and the service add, where a request's time goes)."""

from __future__ import annotations

from typing import List

from benchmarks.common import command_line, git_revision, machine

CANDIDATES, K, TARGET_P99_MS = 500, 10, 50.0
INTENT_STUDENT_LAYERS = [0, 2, 4]
WITH_CONTRIBUTIONS = "search service, contributions asked for (explain=true)"


def report(args, rows: List, stages, loads, build_s, total_s, probes=()) -> str:
    base = rows[0].percentile(50)
    intent = (f"a {len(INTENT_STUDENT_LAYERS)}-layer distilled MiniLM student (`tfrec distil intent`, layers "
              f"{INTENT_STUDENT_LAYERS})" if args.intent_student else "MiniLM-L6")
    lines = [
        "## Search service load: end-to-end Search latency and throughput"
        + (", distilled query-understanding student" if args.intent_student else ""),
        f"Command: `{command_line()}` (git {git_revision()}). Machine: {machine()}; the model server, the search "
        f"services and the load generator share the 2 cores with other jobs (1-minute load average "
        f"{min(loads):.1f} to {max(loads):.1f} during the run)"
        + (f"; speed probe (`benchmarks/common.py::speed_probe`, CPU ms of a fixed workload, lower = faster VM) "
           f"{probes[0]:.0f} before and {probes[-1]:.0f} after the run." if probes else "."),
        f"Data: synthetic shop with {args.items:,} items ({args.users:,} users, {args.sessions:,} sessions); "
        f"retrieval over the whole catalog in the graph (top {CANDIDATES}), DCN ranker, {intent} query "
        f"understanding, each a SavedModel on one `tfrec serve` process (TensorFlow thread pools "
        f"{'intra,inter = ' + args.tf_threads if args.tf_threads else 'at their defaults'}); a `tfrec serve-search` "
        f"process with configs/search.yaml (candidates {CANDIDATES}, k={K}, MMR, reasons; model timeouts and the "
        f"request deadline raised to 20 s so that every request is measured whole instead of degrading); the "
        f"shop's newest logged searches (user, query, device) over gRPC. Concurrency 1: the paths take turns "
        f"request by request for {args.duration * 3:g} s (background load falls on all alike). Concurrency 8: "
        f"{args.duration:g} s of closed-loop load (`run_load` of benchmarks/serving_load.py). Baseline: the same "
        f"requests' three model calls alone (intent, retrieval, ranker over the retrieved items) from the client, "
        f"one after the other. Server CPU = CPU time of the model server and the search service per request (the "
        f"baseline's: model server and the client building the ranker's request), less sensitive to other load "
        f"than latency.",
        "",
        "| path | concurrency | requests | QPS | p50 (ms) | p95 (ms) | p99 (ms) | p50 vs baseline | server CPU per "
        "request (ms) | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        qps = r.qps if r.qps is not None else len(r.latencies) / r.seconds
        cpu = 1000.0 * r.cpu_s / max(len(r.latencies) + r.errors, 1)
        lines.append(f"| {r.name} | {r.concurrency} | {len(r.latencies):,} | {qps:.1f} | {r.percentile(50):.1f} | "
                     f"{r.percentile(95):.1f} | {r.percentile(99):.1f} | {r.percentile(50) / base:.2f}x | "
                     f"{cpu:.1f} | {r.errors} |")
    single = next(r for r in rows if r.name == "search service" and r.concurrency == 1)
    met = "met" if single.percentile(99) < TARGET_P99_MS else "missed"
    lines += ["", f"Target p99 < {TARGET_P99_MS:g} ms at concurrency 1: **{met}** ({single.percentile(99):.1f} ms)."]
    notes = [f"{r.name}, concurrency {r.concurrency}: {r.degraded}" for r in rows if r.degraded]
    if notes:
        lines.append("Degraded answers (a model missed even the 20 s timeout): " + "; ".join(notes) + ".")
    by_name = {r.name: r for r in rows if r.concurrency == 1}
    lean, full, bare = (by_name[n] for n in ("search service", WITH_CONTRIBUTIONS, "model calls alone (baseline)"))
    cpu = lambda r: 1000.0 * r.cpu_s / max(len(r.latencies) + r.errors, 1)  # noqa: E731
    lines.append(
        f"Reading: at concurrency 1 a Search (reasons on every item, configs/search.yaml's `explain.contributions: "
        f"on_request`) answers in {lean.percentile(50) / bare.percentile(50):.2f}x the time of its three model calls "
        f"made one after the other: running query understanding beside retrieval pays for the service's own work "
        f"(checks, filters, MMR, reasons, protos). A request that asks for the ranker's feature-group contributions "
        f"(`explain=true`) adds a fourth model call, the ranker over the top k with each group blanked: "
        f"{full.percentile(50) - lean.percentile(50):.1f} ms at p50 and {cpu(full) - cpu(lean):.1f} ms of CPU. "
        f"A Search takes {cpu(lean):.0f} ms of CPU across both processes ({cpu(full):.0f} ms with contributions), "
        f"so 2 cores saturate near {2000.0 / cpu(lean):.0f} QPS, which is why concurrency 8 queues. The model calls "
        f"alone ({intent}, the 100k-item top-k, the ranker over up to {CANDIDATES} candidates) take "
        f"{bare.percentile(99):.0f} ms at p99 against the {TARGET_P99_MS:g} ms budget.")
    if stages:
        lines.append("Where a request's time goes (mean per stage as the service reports it in `timings_ms`, "
                     "concurrency 1): " + ", ".join(f"{k} {v:.1f} ms" for k, v in stages.items()) +
                     ". Query understanding (its own call) runs in parallel with retrieval.")
    lines.append(f"Building the shop and models {build_s / 60:.1f} min (cached for reruns); whole run "
                 f"{total_s / 60:.1f} min.")
    return "\n".join(lines)
