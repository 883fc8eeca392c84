"""Training speed on CPU: examples/s of each model with one worker and with two MultiWorkerMirroredStrategy workers.

For each model (logistic CTR, two-tower retrieval, DCN ranker, BERT query understanding with the small fallback BERT)
the job's data is prepared once, by the model's tuning adapter (`tfrec.tuning`), on the tiny synthetic shop. Then
the job's own training pipeline and `tfrec.training.trainer.fit` run in fresh processes:

- one worker: `training.strategy: default`, one process;
- two workers: `training.strategy: multi_worker`, two processes on 127.0.0.1 with TF_CONFIG (free ports), each
  creating the strategy before any TensorFlow op, the global batch split between them.

Each run trains `--warmup` steps (tracing, cache fill) and then the timed steps; throughput is global batch × timed
steps / time of the timed steps (every step of the two workers processes one global batch together), and the
scaling ratio is two-worker examples/s / one-worker examples/s, measured in the same run.

Usage: python benchmarks/training_speed.py [--models ctr retrieval ranker intent] [--scale 1.0] [--warmup 5]
                                           [--work DIR] [--no-write]
       (internal) python benchmarks/training_speed.py --worker MODEL --work DIR --steps N --warmup N --out FILE
Writes section `training_speed` of docs/benchmarks.md (unless --no-write, or only some models ran).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPO, command_line, git_revision, machine, write_section  # noqa: E402


@dataclasses.dataclass
class Model:
    """A model of the benchmark: its job config, the overrides that make it modest, and how many steps to time."""

    config: str
    overrides: dict
    steps: int


MODELS = {
    "ctr": Model("configs/ctr.yaml", {"data.preset": "tiny"}, 200),
    "retrieval": Model("configs/retrieval.yaml", {"data.preset": "tiny"}, 60),
    "ranker": Model("configs/ranker.yaml", {"data.preset": "tiny", "baseline": None}, 60),
    "intent": Model("configs/intent.yaml", {"data.dataset.preset": "tiny", "data.max_queries": 2000,
                                            "model.max_length": 16, "training.batch_size": 16}, 20),
}
ENV = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
       "TFREC_BERT_PACKAGE": "none"}  # the 2-layer fallback BERT: a modest intent model on a shared CPU
SECTION = "training_speed"
WINDOWS = 5  # the timed steps are cut into this many windows; the fastest counts (the slower ones measure other jobs)
ATTEMPTS = 2  # a failed two-worker run is retried once (and the report says so)


def make_job(name: str, overrides: dict):
    """The model's tuning adapter over its job config: it prepares the data once and builds models and datasets."""
    from tfrec.tuning.jobs import tuning_job

    return tuning_job(name, str(REPO / MODELS[name].config), {**MODELS[name].overrides, **overrides})


# ------------------------------------------------------------------------------------------------------ worker side
def run_worker(name: str, work: str, steps: int, warmup: int, out: str) -> None:
    """One training process: the strategy first (multi_worker under TF_CONFIG), then `fit` with a step timer."""
    import tfrec  # noqa: F401
    from tfrec.training.trainer import make_strategy

    strategy_name = "multi_worker" if "TF_CONFIG" in os.environ else "default"
    strategy = make_strategy(strategy_name)
    import tensorflow as tf

    from tfrec.training.trainer import fit, is_chief

    class StepTimer(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ends = []  # the time each step ended

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    overrides = {"training.strategy": strategy_name, "training.verbose": 0}
    job = make_job(name, overrides)
    job.prepare(os.path.join(work, name), log=lambda *_: None)  # prepared by the driver: reused
    config = job.base_config
    training = dataclasses.replace(config.training, epochs=1, steps_per_epoch=warmup + steps,
                                   early_stopping_patience=0)
    train, _ = job.datasets(config)
    timer = StepTimer()
    index = json.loads(os.environ.get("TF_CONFIG", '{"task": {"index": 0}}'))["task"]["index"]
    run_dir = os.path.join(work, name, f"run-{strategy_name}-{index}")
    fit(lambda: job.build_model(config), train.repeat(), None, training, run_dir, callbacks=[timer])
    ends = timer.ends[warmup - 1:]  # from the end of the last warm-up step
    timed, window = len(ends) - 1, max(1, (len(ends) - 1) // WINDOWS)
    windows = [window * training.batch_size / (ends[i + window] - ends[i]) for i in range(0, timed - window + 1, window)]
    result = {"examples_per_s": max(windows), "run_examples_per_s": timed * training.batch_size / (ends[-1] - ends[0]),
              "steps": timed, "batch_size": training.batch_size, "replicas": strategy.num_replicas_in_sync,
              "chief": is_chief(strategy)}
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f)


# ------------------------------------------------------------------------------------------------------ driver side
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(name: str, work: str, workers: int, warmup: int, steps: int, timeout: float = 1800) -> dict:
    """Runs `workers` training processes of `name` together; returns the chief's timing."""
    cluster = {"worker": [f"127.0.0.1:{_free_port()}" for _ in range(workers)]}
    processes = []
    for index in range(workers):
        env = {**os.environ, **ENV}
        if workers > 1:
            env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        else:
            env.pop("TF_CONFIG", None)
        out = os.path.join(work, f"{name}-{workers}-{index}.json")
        argv = [sys.executable, __file__, "--worker", name, "--work", work, "--steps", str(steps), "--warmup",
                str(warmup), "--out", out]
        log = open(os.path.join(work, f"{name}-{workers}-{index}.log"), "w", encoding="utf-8")
        processes.append((subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO), out, log))
    deadline = time.monotonic() + timeout
    try:  # a worker that fails leaves the other waiting for it in a collective: stop at the first failure
        while any(p.poll() is None for p, _, _ in processes) and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p, _, _ in processes):
                break
            time.sleep(1)
        codes = [process.poll() for process, _, _ in processes]
        if codes != [0] * workers:
            tails = []
            for (process, _, log), code in zip(processes, codes):
                log.flush()
                text = open(log.name, encoding="utf-8").read()
                tails.append(f"--- worker {len(tails)} (exit code {code}), {log.name} ends:\n{text[-3000:]}")
            raise RuntimeError(f"{name} with {workers} worker(s): exit codes {codes} (None: still running, stopped)\n"
                               + "\n".join(tails))
    finally:
        for process, _, log in processes:
            if process.poll() is None:
                process.kill()
            log.close()
    results = [json.load(open(out, encoding="utf-8")) for _, out, _ in processes]
    chief = next(r for r in results if r["chief"])
    assert all(r["replicas"] == workers for r in results), results
    return chief


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every model's timed steps")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--worker", choices=list(MODELS), help=argparse.SUPPRESS)
    parser.add_argument("--work", help="keep the data, runs and worker logs here (default: a temporary directory)")
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args.worker, args.work, args.steps, args.warmup, args.out)
        return

    os.environ.update(ENV)
    load_before = os.getloadavg()
    rows, failures = [], {}
    with contextlib.ExitStack() as stack:
        work = args.work or stack.enter_context(tempfile.TemporaryDirectory(prefix="tfrec-training-speed-"))
        for name in args.models:
            steps = max(5, int(MODELS[name].steps * args.scale))
            print(f"== {name}: preparing the data", flush=True)
            make_job(name, {}).prepare(os.path.join(work, name), log=lambda *_: None)
            one = measure(name, work, 1, args.warmup, steps)
            print(f"   1 worker: {one['examples_per_s']:.0f} examples/s (whole run {one['run_examples_per_s']:.0f})",
                  flush=True)
            two = None
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    two = measure(name, work, 2, args.warmup, steps)
                    break
                except RuntimeError as exc:  # reported, not hidden: the other models still run
                    failures.setdefault(name, []).append(root_cause(str(exc)))
                    print(f"   2 workers, attempt {attempt}: failed:\n{exc}", flush=True)
            if two is not None:
                print(f"   2 workers: {two['examples_per_s']:.0f} examples/s "
                      f"(x{two['examples_per_s'] / one['examples_per_s']:.2f})", flush=True)
            rows.append((name, one["batch_size"], steps, one, two))
    load_after = os.getloadavg()
    body = report(rows, failures, args, load_before, load_after)
    print(body)
    if not args.no_write and set(args.models) == set(MODELS):
        write_section(SECTION, body)


def root_cause(message: str) -> str:
    """The innermost exception (or fatal) line of the failed workers' logs, shortened; else the exit codes."""
    lines = re.findall(r"^\s*(\w+(?:Error|Exception): .+|Fatal Python error: .+|F\d{4} .+)$", message, re.MULTILINE)
    cause = (lines[-1] if lines else message.strip().splitlines()[0]).replace("`", "'")
    return cause if len(cause) <= 240 else cause[:237] + "..."


def report(rows, failures, args, load_before, load_after) -> str:
    labels = {"ctr": "logistic CTR", "retrieval": "two-tower retrieval", "ranker": "DCN ranker",
              "intent": "BERT intent (2-layer fallback BERT, max length 16)"}
    table = ["| model | global batch | timed steps | 1 worker: examples/s (whole run) | "
             "2 workers: examples/s, total (whole run) | scaling 2 / 1 (whole run) |", "|---|---:|---:|---:|---:|---:|"]
    for name, batch, steps, one, two in rows:
        first = f"{one['examples_per_s']:,.0f} ({one['run_examples_per_s']:,.0f})"
        if two is None:
            table.append(f"| {labels[name]} | {batch} | {steps} | {first} | fails (below) | - |")
            continue
        ratio = two["examples_per_s"] / one["examples_per_s"]
        run_ratio = two["run_examples_per_s"] / one["run_examples_per_s"]
        table.append(f"| {labels[name]} | {batch} | {steps} | {first} | {two['examples_per_s']:,.0f} "
                     f"({two['run_examples_per_s']:,.0f}) | {ratio:.2f} ({run_ratio:.2f}) |")
    failed = ""
    for name, causes in failures.items():
        outcome = "then succeeded" if any(r[0] == name and r[4] is not None for r in rows) else "both attempts failed"
        failed += f"\n- {labels[name]}: a two-worker run failed ({outcome}): " + "; ".join(
            f"`{c}`" + (f" (x{causes.count(c)})" if causes.count(c) > 1 else "") for c in dict.fromkeys(causes))
    if failed:
        failed = (f"\nTwo-worker failures (the error is the worker's; a model that trains under the default strategy "
                  f"but not under a distribution strategy needs the change the error names):{failed}\n")
    return f"""## Training speed: one worker vs two MultiWorkerMirroredStrategy workers (CPU)

Command: `{command_line()}` (revision {git_revision()}). Machine: {machine()}.
**Shared machine**: 2 cores, with other jobs running (load average {load_before[0]:.1f} at the start, {load_after[0]:.1f}
at the end), so absolute figures are low and noisy; both workers of a two-worker run share the same 2 cores.

Each model trains on the tiny synthetic shop with its job's own input pipeline and `tfrec.training.trainer.fit`
(data prepared once by the model's tuning adapter): {args.warmup} warm-up steps (tracing, cache fill), then the timed
steps. One worker is `training.strategy: default` in one process; two workers are `multi_worker`, two processes on
127.0.0.1 (TF_CONFIG) that split each global batch and all-reduce the gradients over gRPC. Throughput = global batch ×
steps / their time, over the fastest of {WINDOWS} equal windows of the timed steps (the slower windows mostly measure
the other jobs), the whole timed run in parentheses; scaling = two-worker / one-worker examples/s in the same run. A
failed two-worker run is retried once, and reported.

{chr(10).join(table)}
{failed}
Two workers on the same two shared cores cannot scale: they split the same CPU time and add a gRPC all-reduce of
every gradient per step (and the data sharding makes each worker read every record), so a ratio below 1 is the
expected result here. The figure that would show scaling needs one machine (or at least dedicated cores) per worker,
which this project does not have; the two-worker runs that complete show multi-worker training running end to end
through the same trainer and input pipelines.
"""


if __name__ == "__main__":
    main()
