"""Model server load: Predict QPS and latency percentiles for each exported model through `tfrec serve` over gRPC on
loopback (server-side batching off and on) against calling the same SavedModel's signature in-process.

Models: the four jobs (ctr, ranker, retrieval, intent) with their configs in `configs/`, trained for one epoch on
the tiny synthetic shop in $TFREC_BENCH_WORK/serving-load (kept for reruns) and exported with `tfrec export`
(warm-up records, card). Weights do not change the cost of a forward pass; what does is the graph, which is the
deployed one. Each request is a real row set taken from the export's own warm-up records: 16 candidate rows for
ctr and ranker (a list to score), one request row for retrieval (top-100 over the catalog) and intent (one query).

Load: `run_load(call, concurrency, duration)` runs `concurrency` closed-loop client threads for `duration`
seconds (after a short unmeasured ramp) and stops by itself; other benchmarks import it. The server runs in its own
process (two `tfrec serve` processes, without and with `--batching_parameters_file serving/batching_parameters.txt`),
the client threads in this one; in-process calls run the loaded signature with prebuilt tensors, so the ratio is
everything the server adds: gRPC, proto decoding, checks, scheduling. The three modes alternate point by point and
each point keeps the best of `--rounds` runs, because the machine these figures come from is shared.

Usage: python benchmarks/serving_load.py [--duration 5] [--concurrency 1,8,32] [--rounds 2] [--models ctr,...]
       [--no-write]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.common import REPO, command_line, git_revision, machine, speed_probe, write_section  # noqa: E402

WORK = Path(os.environ.get("TFREC_BENCH_WORK", "/tmp/tfrec-bench")) / "serving-load"
BATCHING = REPO / "serving" / "batching_parameters.txt"
MODELS = ("ctr", "ranker", "retrieval", "intent")
ROWS = {"ctr": 16, "ranker": 16, "retrieval": 1, "intent": 1}
TRAIN = {  # one epoch on the tiny shop: a complete run to export, not a good model
    "ctr": ["--config", "configs/ctr.yaml", "--set", "data.preset=tiny"],
    "ranker": ["--config", "configs/ranker.yaml", "--set", "data.preset=tiny", "--set", "baseline=null"],
    "retrieval": ["--config", "configs/retrieval.yaml", "--set", "data.preset=tiny"],
    "intent": ["--config", "configs/intent.yaml", "--set", "data.dataset.preset=tiny", "--set",
               "data.max_queries=500", "--set", "zero_shot_baseline=false"],
}
RAMP_S = 1.0
T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{(time.perf_counter() - T0) / 60:5.1f} min] {msg}", flush=True)


# ------------------------------------------------------------------------------------------------- load generator

@dataclasses.dataclass
class LoadResult:
    """One load point: completed calls, errors, QPS and latency percentiles (ms) over the measured window."""

    concurrency: int
    seconds: float
    calls: int
    errors: int
    qps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    first_error: str = ""
    unfinished: int = 0  # threads still inside a call `stop_grace` seconds after the end (left running, daemon)


def run_load(call: Callable[[], object], concurrency: int, duration: float, ramp: float = RAMP_S,
             stop_grace: float = 30.0) -> LoadResult:
    """Closed-loop load: `concurrency` threads call `call()` back to back for `ramp` + `duration` seconds; calls that
    start in the measured window count (errors are counted, not raised). Returns when every thread has finished
    or `stop_grace` seconds after the end, whichever is first, so a hung call cannot hang the benchmark."""
    start = time.perf_counter() + ramp
    end = start + duration
    latencies: List[List[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    first_error: List[str] = []

    def worker(i: int) -> None:
        while True:
            t = time.perf_counter()
            if t >= end:
                return
            try:
                call()
            except Exception as exc:  # noqa: BLE001 - a failed request is a data point
                if t >= start:
                    errors[i] += 1
                if not first_error:
                    first_error.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                continue
            if t >= start:
                latencies[i].append(time.perf_counter() - t)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, end + stop_grace - time.perf_counter()))
    done = np.array([x for part in latencies for x in part]) * 1000.0
    p50, p95, p99 = np.percentile(done, [50, 95, 99]) if done.size else (float("nan"),) * 3
    return LoadResult(concurrency, duration, int(done.size), int(sum(errors)), done.size / duration,
                      float(p50), float(p95), float(p99), first_error[0] if first_error else "",
                      sum(t.is_alive() for t in threads))


# ------------------------------------------------------------------------------------------------- models & requests

def export_models(models) -> Dict[str, Path]:
    """{model: version dir}: trains (once) and exports each job's run under WORK."""
    from tfrec.cli.main import main

    paths = {}
    for name in models:
        run, base = WORK / "runs" / name, WORK / "models"
        if not (run / "metrics.json").exists():
            log(f"training {name} (one epoch, tiny shop) in {run}")
            argv = ["train", name, *TRAIN[name], "--set", "training.epochs=1", "--set", "training.verbose=0",
                    "--run-dir", str(run)]
            cwd = os.getcwd()
            os.chdir(REPO)
            try:
                assert main(argv) == 0, f"training {name} failed"
            finally:
                os.chdir(cwd)
        path = base / name / "1"
        if not (path / "model_card.json").exists():
            log(f"exporting {name}")
            assert main(["export", "--run", str(run), "--base-dir", str(base), "--version", "1", "--overwrite"]) == 0
        paths[name] = path
    return paths


def predict_request(name: str, path: Path, rows: int):
    """A PredictRequest on serving_default with `rows` real rows from the export's own warm-up records."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    from tfrec.export.warmup import read_warmup_requests

    logs = [log.predict_log.request for log in read_warmup_requests(str(path)) if log.HasField("predict_log")]
    source = max((r for r in logs if r.model_spec.signature_name == "serving_default"),
                 key=lambda r: len(tf.make_ndarray(next(iter(r.inputs.values())))))
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = name, "serving_default"
    for key, proto in source.inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(tf.make_ndarray(proto)[:rows]))
    return request


def in_process_call(path: Path, request) -> Callable[[], object]:
    """Calls the SavedModel's serving_default in this process on the request's inputs as prebuilt tensors."""
    import tensorflow as tf

    import tensorflow_text  # noqa: F401 - the intent graph's tokenizer ops

    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    tensors = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
    fn(**tensors)  # first call: graph optimisation, as the server's warm-up does
    return lambda: fn(**tensors)


# ------------------------------------------------------------------------------------------------- the server

class ServerProcess:
    """`tfrec serve` in a subprocess on a free loopback port; ready once it prints its port (models loaded)."""

    def __init__(self, config_file: Path, batching: Optional[Path], log_file: Path, timeout: float = 1800.0,
                 extra_args: Sequence[str] = ()):
        argv = [sys.executable, "-m", "tfrec.cli.main", "serve", "--model_config_file", str(config_file),
                "--port", "0", "--file_system_poll_wait_seconds", "0", *extra_args]
        if batching is not None:
            argv += ["--batching_parameters_file", str(batching)]
        self.log = open(log_file, "w", encoding="utf-8")
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=REPO)
        lines: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.process.stdout], daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=1.0)
            except queue.Empty:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"tfrec serve did not start; see {log_file}")
                continue
            if "gRPC on" in line:
                self.port = int(line.split("gRPC on ")[1].split(";")[0].rsplit(":", 1)[1].split()[0])
                return

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: the server drains and stops
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def write_models_config(paths: Dict[str, Path]) -> Path:
    lines = ["model_config_list {"]
    for name, path in paths.items():
        lines.append(f'  config {{ name: "{name}" base_path: "{path.parent}" model_platform: "tensorflow" }}')
    config = WORK / "models.config"
    config.write_text("\n".join(lines + ["}"]) + "\n", encoding="utf-8")
    return config


def grpc_call(port: int, request) -> Callable[[], object]:
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    stub.Predict(request, timeout=600)  # the channel is connected before the clock starts
    return lambda: stub.Predict(request, timeout=60)


# ------------------------------------------------------------------------------------------------- run & report

MODES = ("in-process", "server", "server + batching")


def measure(paths, concurrencies, duration, rounds) -> Dict[tuple, LoadResult]:
    """(model, mode, concurrency) → the best of `rounds` LoadResults (highest QPS). Both servers run for the whole
    measurement (an idle one costs no CPU) and the three modes alternate point by point, so background load on a
    shared machine hits them alike."""
    requests = {name: predict_request(name, path, ROWS[name]) for name, path in paths.items()}
    config = write_models_config(paths)
    servers = {}
    try:
        for mode, batching in (("server", None), ("server + batching", BATCHING)):
            log(f"starting tfrec serve ({mode}); loading and warming up {len(paths)} models")
            servers[mode] = ServerProcess(config, batching, WORK / f"serve-{'batching' if batching else 'plain'}.log")
        results: Dict[tuple, LoadResult] = {}
        for name, path in paths.items():
            calls = {"in-process": in_process_call(path, requests[name]),
                     **{mode: grpc_call(server.port, requests[name]) for mode, server in servers.items()}}
            for c in concurrencies:
                for _ in range(rounds):
                    for mode in MODES:
                        result = run_load(calls[mode], c, duration)
                        best = results.get((name, mode, c))
                        if best is None or result.qps > best.qps:
                            results[(name, mode, c)] = result
                for mode in MODES:
                    r = results[(name, mode, c)]
                    log(f"{name} {mode} c={c}: {r.qps:.0f} QPS, p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms, "
                        f"{r.errors} errors")
        return results
    finally:
        for server in servers.values():
            server.stop()


def sample_load(loads: List[float], stop: threading.Event, every_s: float = 10.0) -> None:
    """Appends the 1-minute load average every `every_s` seconds until `stop` is set (run in a thread)."""
    while not stop.wait(every_s):
        loads.append(os.getloadavg()[0])


def report(results, paths, concurrencies, duration, rounds, loads: Sequence[float], probes: Sequence[float]) -> str:
    lines = [
        "## Model server load",
        "",
        f"`{command_line()}` at {git_revision()}, {time.strftime('%Y-%m-%d')}. Machine: {machine()}; 1-minute load "
        f"average {min(loads):.1f} to {max(loads):.1f} while it ran (the load generator, both servers and any other "
        "jobs share the 2 cores); speed probe (`benchmarks/common.py::speed_probe`, CPU ms of a fixed workload, lower "
        f"= faster VM) {probes[0]:.0f} before and {probes[-1]:.0f} after. The modes alternate point by point and each "
        f"figure is the best of {rounds} rounds, so the ratios compare them under the same background load. "
        "In-process calls may use both cores; in server mode the server and the load generator share them.",
        "",
        f"Predict on `serving_default`, closed loop, {duration:g} s per point after a {RAMP_S:g} s ramp. Rows per "
        "request: " + ", ".join(f"{n} {ROWS[n]}" for n in paths) + ". Models: one epoch on the tiny synthetic shop "
        "with the configs in `configs/` (intent: " + _intent_encoder() + "), exported by `tfrec export`. "
        "In-process: the loaded signature called with prebuilt tensors from client threads in one process. "
        "Server: `tfrec serve` in its own process (warm-up on), clients over gRPC on 127.0.0.1 from this process; "
        "batching: `serving/batching_parameters.txt` (max 512 rows, 1 ms timeout, 4 threads). Both processes "
        "share the two cores.",
        "",
        "| model | mode | clients | QPS | p50 ms | p95 ms | p99 ms | errors | QPS vs in-process | p50 vs in-process |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in paths:
        for mode in MODES:
            for c in concurrencies:
                r, base = results[(name, mode, c)], results[(name, "in-process", c)]
                ratio = "1" if mode == "in-process" else f"{r.qps / base.qps:.2f}x" if base.qps else "-"
                lat = "1" if mode == "in-process" else f"{r.p50_ms / base.p50_ms:.1f}x" if base.p50_ms else "-"
                lines.append(f"| {name} | {mode} | {c} | {r.qps:.0f} | {r.p50_ms:.1f} | {r.p95_ms:.1f} | "
                             f"{r.p99_ms:.1f} | {r.errors} | {ratio} | {lat} |")
    lines += ["", "Batching on vs off (QPS ratio at each client count): " + "; ".join(
        f"{name} " + ", ".join(f"{c}: {results[(name, 'server + batching', c)].qps / results[(name, 'server', c)].qps:.2f}x"
                               for c in concurrencies if results[(name, 'server', c)].qps) for name in paths) + "."]
    errors = {k: r.first_error for k, r in results.items() if r.first_error}
    if errors:
        lines += ["", "First errors: " + "; ".join(f"{k[0]} {k[1]} c={k[2]}: {e}" for k, e in errors.items())]
    return "\n".join(lines)


def _intent_encoder() -> str:
    from tfrec.text.bert_checkpoint import packaged_model_dir

    return "all-MiniLM-L6-v2" if packaged_model_dir() is not None else "the small random BERT (MiniLM package absent)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per load point")
    parser.add_argument("--concurrency", default="1,8,32", help="client threads per point, comma-separated")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per point; the best (highest QPS) is kept")
    parser.add_argument("--models", default=",".join(MODELS), help="subset of " + ",".join(MODELS))
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {list(MODELS)}")
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    WORK.mkdir(parents=True, exist_ok=True)
    import tfrec  # noqa: F401 - legacy Keras before TensorFlow

    paths = export_models(models)
    probes, loads, stop = [speed_probe()], [os.getloadavg()[0]], threading.Event()
    sampler = threading.Thread(target=sample_load, args=(loads, stop), daemon=True)
    sampler.start()
    try:
        results = measure(paths, concurrencies, args.duration, args.rounds)
    finally:
        stop.set()
        sampler.join()
    loads.append(os.getloadavg()[0])
    probes.append(speed_probe())
    body = report(results, paths, concurrencies, args.duration, args.rounds, loads, probes)
    print(body)
    if not args.no_write:
        write_section("serving_load", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
