"""End-to-end Search latency and throughput of the search service (tfrec serve-search) on a 100k-item synthetic
catalog, against the target: p99 under 50 ms at concurrency 1 with k=10 and 500 candidates, on 2 CPU cores.

Set-up: a synthetic shop with 100,000 items (fewer users and sessions than the `large` preset: the catalog size is
what retrieval and ranking latency depend on); the two-tower retrieval model (1 epoch, exported with the whole
catalog in the graph, top 500), the DCN ranker (1 epoch, click and purchase heads) and the query-understanding model
(all-MiniLM-L6-v2 fine-tuned briefly) exported as SavedModels — cached under $TFREC_BENCH_WORK/search-load. The model
server (`tfrec serve`) and the search service (`tfrec serve-search`, configs/search.yaml) each run in their own
process, as deployed; clients send logged searches of the shop (user, query, device) with k=10 over gRPC, one at a
time (the paths interleaved) and from 8 closed-loop threads (`run_load` of benchmarks/serving_load.py). Every item
carries reasons; the ranker's feature-group contributions (one more ranker call) are measured on a second path whose
requests ask for them (`explain=true`; configs/search.yaml computes them on request).

Baseline, measured in the same run: the same requests' three model calls alone (intent, retrieval, ranker over the
500 retrieved items) sent one after the other from the client — what the service adds on top of the model hops is
the ratio.

With --user-state it measures instead what the live user-state store (`online.enabled`) adds to a Search: two
search services, one reading an in-memory store restored from an event log of the requesting shoppers' logged events
and one without, take turns request by request (section `search_user_state`).

With --intent-student the model server serves a 3-layer student of the intent model (`tfrec distil intent`, layers
[0, 2, 4], distilled and exported once, cached beside the other models) instead of MiniLM-L6 (section
`search_load_intent_student`).

Usage: python benchmarks/search_load.py [--duration 30] [--items 100000] [--user-state] [--no-write]
                                       [--tf-threads INTRA,INTER] [--intent-student]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import itertools
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from benchmarks.common import REPO, Timer, speed_probe, write_section  # noqa: E402
from benchmarks.search_load_report import (CANDIDATES, INTENT_STUDENT_LAYERS, K, WITH_CONTRIBUTIONS,  # noqa: E402
                                           report)
from benchmarks.serving_load import ServerProcess, run_load  # noqa: E402

WORK = Path(os.environ.get("TFREC_BENCH_WORK", "/tmp/tfrec-bench")) / "search-load"
T0 = time.perf_counter()


def log(msg):
    print(f"[{(time.perf_counter() - T0) / 60:5.1f} min] {msg}", flush=True)


def build(items: int, users: int, sessions: int) -> Path:
    """The shop and the three exported models under WORK/<items> (reused when already there)."""
    from tfrec.data.dataset_io import write_dataset
    from tfrec.data.synthetic import SyntheticConfig, generate

    base = WORK / str(items)
    shop, models, runs = base / "shop", base / "models", base / "runs"
    common = {"data.source": "directory", "data.path": str(shop), "training.verbose": 2}
    if not (shop / "ground_truth.json").exists():  # the intent job learns from the generator's labelled searches
        log(f"generating a shop with {items:,} items, {users:,} users, {sessions:,} sessions")
        data = generate(SyntheticConfig.preset("large", seed=0, n_items=items, n_users=users, n_sessions=sessions,
                                               days=30))
        write_dataset(data.dataset, str(shop), format="csv")
        data.ground_truth.save(str(shop))
    if not (models / "retrieval" / "1").exists():
        from tfrec.export.retrieval import export_retrieval
        from tfrec.training.retrieval_job import load_retrieval_config, read_catalog, train_retrieval

        log("training the two-tower retrieval model (1 epoch)")
        config = load_retrieval_config(str(REPO / "configs" / "retrieval.yaml"), {
            **common, "training.epochs": 1, "evaluation.validation_queries": 500, "run_dir": str(runs / "retrieval")})
        run = train_retrieval(config, log=log)
        export_retrieval(run.model, read_catalog(config, config.run_dir), str(models), "retrieval", k=CANDIDATES)
    if not (models / "ranker" / "1").exists():
        from tfrec.export.ranker import export_ranker
        from tfrec.training.ranker_job import load_ranker_config, train_ranker

        log("training the DCN ranker (1 epoch)")
        config = load_ranker_config(str(REPO / "configs" / "ranker.yaml"), {
            **common, "training.epochs": 1, "baseline": None, "run_dir": str(runs / "ranker")})
        export_ranker(train_ranker(config, log=log).model, str(models), "ranker")
    if not (models / "intent" / "1").exists():
        from tfrec.export.intent import export_intent
        from tfrec.training.intent_job import load_intent_config, train_intent

        log("fine-tuning the query-understanding model (MiniLM-L6, 1 epoch on 1,000 searches)")
        config = load_intent_config(str(REPO / "configs" / "intent.yaml"), {
            "data.dataset.source": "directory", "data.dataset.path": str(shop), "data.max_queries": 1000,
            "training.epochs": 1, "training.verbose": 2, "zero_shot_baseline": False, "run_dir": str(runs / "intent")})
        export_intent(train_intent(config, log=log).model, str(models), "intent")
    return base




def intent_student(base: Path) -> Path:
    """A models directory holding a 3-layer student of base's intent run (`tfrec distil intent`, 2 epochs), distilled
    and exported once under base/models-student (cached like the other models)."""
    models = base / "models-student"
    if not (models / "intent" / "1").exists():
        from tfrec.export.intent import export_intent
        from tfrec.training.intent_distil import DistilConfig, distil_intent

        log(f"distilling the query-understanding model into layers {INTENT_STUDENT_LAYERS} (2 epochs)")
        run = distil_intent(str(base / "runs" / "intent"), str(base / "runs" / "intent_student"),
                            DistilConfig(layers=INTENT_STUDENT_LAYERS, epochs=2, verbose=2), log=log)
        log("\n" + run.format())
        export_intent(run.model, str(models), "intent")
    return models


def start_search(argv, what: str):
    """`tfrec serve-search` in a subprocess, and the port it prints once its models are warmed up."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_USE_LEGACY_KERAS="1")
    process = subprocess.Popen([sys.executable, "-m", "tfrec.cli.main", "serve-search", *argv],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO, env=env)
    line = process.stdout.readline()
    match = re.search(r"gRPC on 127\.0\.0\.1:(\d+)", line)
    if not match:
        process.kill()
        raise RuntimeError(f"{what} did not start: {line!r}")
    log(f"{what}: {line.strip()}")
    return process, int(match.group(1))


def logged_searches(shop: Path, n: int = 400):
    """(user, query, device) of `n` logged search requests, newest first."""
    import numpy as np

    from tfrec.data.dataset_io import load_dataset

    events = load_dataset(str(shop))[0].events
    rows = np.flatnonzero((events["event_type"] == "impression") & (events["query"] != ""))
    rows = rows[np.argsort(-events["timestamp"][rows], kind="stable")]
    seen, out = set(), []
    for i in rows:
        if events["request_id"][i] not in seen:
            seen.add(events["request_id"][i])
            out.append((events["user_id"][i], events["query"][i], events.attributes["device"][i]))
        if len(out) == n:
            break
    return out


def model_hops(shop: Path, model_port: int, requests):
    """The baseline's call: intent, retrieval, then the ranker over the retrieved items, one after the other."""
    from tfrec.server.client import PredictionClient
    from tfrec.server.search.catalog import load_catalog
    from tfrec.server.search.config import ModelEndpoint
    from tfrec.server.search.inputs import model_inputs, request_values
    from tfrec.server.search.models import ModelCaller

    catalog = load_catalog(str(shop))
    client = PredictionClient(f"127.0.0.1:{model_port}")
    callers = {name: ModelCaller(ModelEndpoint(name, timeout_ms=30_000), client, 0.0)
               for name in ("intent", "retrieval", "ranker")}
    dtypes = {name: caller.input_dtypes() for name, caller in callers.items()}

    def call(i):  # a plain function: interleaved() gives it a name and the processes whose CPU it uses
        user, query, device = requests[i % len(requests)]
        values = request_values(user, query, {"device": device}, [], 20, catalog.user_attributes.get(user, {}))
        callers["intent"].predict({"query": [query.encode()]})
        outputs, _ = callers["retrieval"].predict(model_inputs(dtypes["retrieval"], values)[0])
        rows, known = catalog.rows([v.decode() for v in outputs["item_ids"].reshape(-1).tolist()])
        callers["ranker"].predict(model_inputs(dtypes["ranker"], values, catalog, rows[known])[0])

    return call, client


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass
class Measured:
    """One row: latencies (ms) of the calls, and the CPU the serving processes spent on them."""

    name: str
    concurrency: int
    seconds: float
    latencies: List[float]
    cpu_s: float = 0.0
    errors: int = 0
    degraded: Dict[str, int] = dataclasses.field(default_factory=dict)
    qps: Optional[float] = None  # None: calls / seconds

    def percentile(self, q: float) -> float:
        import numpy as np

        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")


class SearchPath:
    """Search calls to one search service, counting its degraded answers and keeping its stage timings."""

    def __init__(self, name: str, port: int, requests, pids, explain: Optional[bool] = None):
        from tfrec.server.search import SearchClient

        self.name, self.port, self.requests, self.pids, self.explain = name, port, requests, pids, explain
        self.client = SearchClient(f"127.0.0.1:{port}", timeout=30.0)
        self.degraded, self.timings = collections.Counter(), []

    def __call__(self, i: int) -> None:
        user, query, device = self.requests[i % len(self.requests)]
        response = self.client.search(query, user_id=user, k=K, context={"device": device}, explain=self.explain)
        if not response.items:
            raise RuntimeError(f"no items for {query!r}")
        if self.explain and not all(item.explanation.contributions for item in response.items):
            raise RuntimeError(f"no contributions for {query!r} although asked for")
        self.timings.append(dict(response.timings_ms))
        self.degraded.update(f"{d.component} {d.status}" for d in response.degradations)


def interleaved(paths, seconds: float, warmup: int = 20) -> List[Measured]:
    """Concurrency 1, the paths taking turns request by request for `seconds` each (so background load falls on all
    of them alike); each call's CPU is the growth of its processes' CPU time over the call."""
    for path in paths:
        for i in range(warmup):
            path(i)
        if isinstance(path, SearchPath):
            path.timings.clear()
            path.degraded.clear()
    rows = {path.name: Measured(path.name, 1, seconds, []) for path in paths}
    stop, i = time.perf_counter() + seconds * len(paths), 0
    while time.perf_counter() < stop:
        for path in paths:
            row = rows[path.name]
            cpu = sum(cpu_seconds(p) for p in path.pids)
            start = time.perf_counter()
            try:
                path(i)
                row.latencies.append((time.perf_counter() - start) * 1000.0)
            except Exception:  # noqa: BLE001 - a failed request is a data point
                row.errors += 1
            row.cpu_s += sum(cpu_seconds(p) for p in path.pids) - cpu
        i += 1
    for path in paths:
        rows[path.name].degraded = dict(getattr(path, "degraded", {}))
    return list(rows.values())


def concurrent(path: SearchPath, concurrency: int, seconds: float) -> Measured:
    """`run_load` of benchmarks/serving_load.py on one search path, with the CPU its processes spent."""
    counter = itertools.count()
    path.degraded.clear()
    latencies: List[float] = []

    def call():
        start = time.perf_counter()
        path(next(counter))
        latencies.append((time.perf_counter() - start) * 1000.0)

    cpu = sum(cpu_seconds(p) for p in path.pids)
    result = run_load(call, concurrency, seconds)
    return Measured(path.name, concurrency, seconds, latencies, sum(cpu_seconds(p) for p in path.pids) - cpu,
                    result.errors, dict(path.degraded), result.qps)


def model_server_for(models: Path, tf_threads: Optional[str] = None, intent_models: Optional[Path] = None
                     ) -> ServerProcess:
    """`tfrec serve` of the three models under `models` (the intent model under `intent_models` when given);
    `tf_threads` "INTRA,INTER" sizes its TensorFlow pools."""
    config = models / "models.config"
    bases = {"retrieval": models, "ranker": models, "intent": intent_models or models}
    config.write_text("model_config_list {\n" + "".join(
        f'  config {{ name: "{n}" base_path: "{base / n}" model_platform: "tensorflow" }}\n'
        for n, base in bases.items()) + "}\n")
    extra = []
    if tf_threads:
        intra, inter = (int(v) for v in tf_threads.split(","))
        extra = ["--tensorflow_intra_op_parallelism", str(intra), "--tensorflow_inter_op_parallelism", str(inter)]
    server = ServerProcess(config, None, models.parent / "model_server.log", extra_args=extra)
    log(f"model server on 127.0.0.1:{server.port}")
    return server


def search_paths(shop: Path, model_server: ServerProcess, requests, variants, processes) -> List[SearchPath]:
    """One `tfrec serve-search` process per (name, extra --set settings), each measured whole (20 s budgets)."""
    slow = [f"models.{m}.timeout_ms=20000" for m in ("retrieval", "ranker", "intent")] + ["deadline_ms=20000"]
    paths = []
    for name, extra in variants:
        settings = [f"candidates={CANDIDATES}", *slow, *extra]
        process, port = start_search(
            ["--port", "0", "--catalog", str(shop), "--model-server", f"127.0.0.1:{model_server.port}",
             *[arg for setting in settings for arg in ("--set", setting)]], name)
        processes.append(process)
        paths.append(SearchPath(name, port, requests, [model_server.process.pid, process.pid]))
    return paths


def stop_all(processes, model_server: ServerProcess) -> None:
    for process in processes:
        process.terminate()
        process.wait(30)
    model_server.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--sessions", type=int, default=30_000)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load per measured row")
    parser.add_argument("--user-state", action="store_true",
                        help="measure the live user-state store on vs off instead (section search_user_state)")
    parser.add_argument("--no-write", action="store_true", help="print, do not update docs/benchmarks.md")
    parser.add_argument("--tf-threads", metavar="INTRA,INTER",
                        help="the model server's TensorFlow thread pools (default: TensorFlow's, one per core)")
    parser.add_argument("--compare-set", action="append", default=[], metavar="KEY=VALUE",
                        help="also measure a second search service with these configs/search.yaml settings "
                        "(interleaved with the default one at concurrency 1)")
    parser.add_argument("--intent-student", action="store_true",
                        help=f"serve a distilled student of the intent model (layers {INTENT_STUDENT_LAYERS}) "
                        "instead of MiniLM-L6 (section search_load_intent_student)")
    args = parser.parse_args()

    import numpy as np

    import tfrec  # noqa: F401 - legacy Keras before TensorFlow

    if args.user_state:
        from benchmarks.search_user_state import run_user_state

        return run_user_state(args)
    loads = [os.getloadavg()[0]]
    probes = [speed_probe()]
    with Timer() as total:
        with Timer() as t_build:
            base = build(args.items, args.users, args.sessions)
        shop, models = base / "shop", base / "models"
        requests = logged_searches(shop)
        intent_models = intent_student(base) if args.intent_student else None
        model_server = model_server_for(models, args.tf_threads, intent_models)
        processes = []
        try:
            variants = [("search service", [])]
            if args.compare_set:
                variants.append((f"search service, {', '.join(args.compare_set)}", args.compare_set))
            paths = search_paths(shop, model_server, requests, variants, processes)
            paths.append(SearchPath(WITH_CONTRIBUTIONS, paths[0].port, requests, paths[0].pids, explain=True))
            hops, hop_client = model_hops(shop, model_server.port, requests)
            hops.name, hops.pids = "model calls alone (baseline)", [model_server.process.pid, os.getpid()]
            rows = interleaved([hops] + paths, args.duration)
            timings = paths[0].timings
            stage_means = {k: float(np.mean([t.get(k, 0.0) for t in timings])) for k in timings[-1]}
            loads.append(os.getloadavg()[0])
            for row in rows:
                log(f"{row.name}: p50 {row.percentile(50):.1f} ms, p99 {row.percentile(99):.1f} ms, "
                    f"{len(row.latencies)} calls, {row.errors} errors, degraded {row.degraded}")
            rows.append(concurrent(paths[0], 8, args.duration))
            loads.append(os.getloadavg()[0])
            log(f"concurrency 8: p50 {rows[-1].percentile(50):.1f} ms, {rows[-1].qps:.1f} QPS")
            hop_client.close()
        finally:
            stop_all(processes, model_server)
    probes.append(speed_probe())
    body = report(args, rows, stage_means, loads, t_build.seconds, total.seconds, probes)
    print(body)
    if not args.no_write:
        write_section("search_load_intent_student" if args.intent_student else "search_load", body)


if __name__ == "__main__":
    main()
