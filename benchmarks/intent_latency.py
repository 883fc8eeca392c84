"""CPU latency of the exported query-understanding SavedModel: dynamic padding vs padding to 512, and the 6-layer
all-MiniLM-L6-v2 vs a distilled 3-layer student (with the student's accuracy cost on the synthetic test split).

Models: the teacher is the synthetic-shop run of `benchmarks/intent_quality.py` ($TFREC_BENCH_WORK/intent-synthetic,
fine-tuned on every head), or, when that run is absent, a shorter run trained here. The student keeps the teacher's
embeddings, transformer layers 0, 2 and 4 and its heads, then is distilled (tfrec.training.intent_distil, as
`tfrec distil intent` does) on the teacher's train-split queries and their chosen titles: cosine distance to the
teacher's embedding (queries and titles) + KL divergence to the teacher's intent and slot-tag distributions.
Latency is measured in a fresh process limited to 2 threads (intra-op 2, inter-op 1) on `serving_default` with raw
query strings (tokenisation, slot decoding and every output included), the models interleaved round-robin so
background load hits them alike.

Usage: python benchmarks/intent_latency.py [--teacher-run DIR] [--distil-epochs N] [--no-write]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from benchmarks.common import Timer, command_line, git_revision, machine, write_section  # noqa: E402

WORK = Path(os.environ.get("TFREC_BENCH_WORK", "/tmp/tfrec-bench"))
TEACHER_RUN = WORK / "intent-synthetic"
STUDENT_LAYERS = (0, 2, 4)
DISTIL_BATCH, DISTIL_LEARNING_RATE = 64, 1e-4
PAD_TO = 512
THREADS = 2
# (model, batch) -> calls measured; padding to 512 is ~50x slower, so it gets fewer calls.
CALLS = {1: 400, 32: 60}
PADDED_CALLS = {1: 80, 32: 12}
T0 = time.perf_counter()


def log(msg):
    print(f"[{(time.perf_counter() - T0) / 60:5.1f} min] {msg}", flush=True)


# ------------------------------------------------------------------------------------------------------- models

def teacher_run(path: Path):
    """(config, intents, model) of the fine-tuned teacher; trains a short synthetic run first if there is none."""
    from tfrec.training.intent_job import load_intent_config, restore_intent_run, train_intent

    if not (path / "checkpoints" / "best.index").is_file():
        path = WORK / "intent-latency-teacher"
        if not (path / "checkpoints" / "best.index").is_file():
            log(f"no teacher run found; training one in {path} (8,000 queries, 1 epoch)")
            repo = Path(__file__).resolve().parents[1]
            config = load_intent_config(str(repo / "configs" / "intent.yaml"), {
                "data.max_queries": 8000, "training.epochs": 1, "training.verbose": 2, "run_dir": str(path)})
            train_intent(config, log)
    return (path,) + tuple(restore_intent_run(str(path)))


class PaddedTokenizer:
    """Wraps the in-graph tokenizer so every batch is padded to `PAD_TO` positions (the naive fixed-shape export)."""

    def __new__(cls, tokenizer):
        import tensorflow as tf

        from tfrec.text.tokenizer import BertTokenizer

        class Padded(BertTokenizer):
            def _tokenize(self, texts):
                out = super()._tokenize(texts)
                defaults = {"input_ids": self.pad_id, "attention_mask": 0, "token_type_ids": 0, "token_starts": -1,
                            "token_ends": -1}
                width = PAD_TO - tf.shape(out["input_ids"])[1]
                return {k: tf.pad(v, [[0, 0], [0, width]], constant_values=defaults[k]) for k, v in out.items()}

        return Padded(tokenizer.vocab, max_length=tokenizer.max_length, do_lower_case=tokenizer.do_lower_case,
                      strip_accents=tokenizer.strip_accents, name="tokenizer")


# ------------------------------------------------------------------------------------------------------ latency

def measure(models: dict, queries, out_path: Path, scale: float = 1.0) -> None:
    """Child process: loads each SavedModel with 2 threads and times serving_default, models interleaved."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer's ops before loading)

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    served = {name: tf.saved_model.load(path).signatures["serving_default"] for name, path in models.items()}
    queries = np.asarray(queries).astype(str)
    results = {}
    for batch in (1, 32):
        calls = {name: max(2, int(scale * (PADDED_CALLS if "512" in name else CALLS)[batch])) for name in served}
        inputs = [tf.constant(queries[(i * batch) % len(queries):][:batch]) for i in range(max(calls.values()))]
        for name, fn in served.items():  # warm-up: first calls build kernels and caches
            for x in inputs[:1 if "512" in name else 3]:
                fn(query=x)
        times = {name: [] for name in served}
        cpu = {name: [] for name in served}
        for i in range(max(calls.values())):
            for name, fn in served.items():
                if i < calls[name]:
                    start, start_cpu = time.perf_counter(), time.process_time()
                    fn(query=inputs[i])["embedding"].numpy()
                    times[name].append(time.perf_counter() - start)
                    cpu[name].append(time.process_time() - start_cpu)
        for name, ts in times.items():
            ts = np.asarray(ts) * 1000.0
            results[f"{name}|{batch}"] = {"p50_ms": float(np.percentile(ts, 50)), "p99_ms": float(np.percentile(ts, 99)),
                                          "mean_ms": float(ts.mean()), "calls": len(ts),
                                          "cpu_ms": float(np.mean(cpu[name]) * 1000.0)}
    out_path.write_text(json.dumps(results, indent=1))


def run(teacher_path: Path, distil_epochs: int, scale: float = 1.0):
    import numpy as np
    import tensorflow as tf

    from tfrec.export.intent import export_intent
    from tfrec.training.intent_distil import DistilConfig, distil, make_student
    from tfrec.training.intent_evaluation import evaluate_intent_model
    from tfrec.training.intent_job import read_split

    tf.get_logger().setLevel("ERROR")
    run_dir, config, intents, teacher = teacher_run(teacher_path)
    log(f"teacher: {run_dir}")
    test, train = read_split(config, str(run_dir), "test"), read_split(config, str(run_dir), "train")
    titles = sorted({t for t in train["title"] if t})
    out = {"teacher_run": str(run_dir), "n_test": len(test["query"]), "n_train_queries": len(train["query"]),
           "n_titles": len(titles), "distil_epochs": distil_epochs}
    student = make_student(teacher, intents, STUDENT_LAYERS)  # `tfrec distil intent`'s student and distillation
    out["student_before"] = evaluate_intent_model(student, test, intents).to_dict()
    settings = DistilConfig(layers=list(STUDENT_LAYERS), epochs=distil_epochs, batch_size=DISTIL_BATCH,
                            learning_rate=DISTIL_LEARNING_RATE, verbose=2)
    # every train-split query and title, no validation split: the last epoch is kept
    stats = distil(teacher, student, train["query"], titles, settings, log=lambda m: log(f"  {m}"))
    out["distil"] = dataclasses.asdict(stats)
    out["teacher"] = evaluate_intent_model(teacher, test, intents).to_dict()
    out["student"] = evaluate_intent_model(student, test, intents).to_dict()
    log(f"teacher {out['teacher']['intent_top1']:.4f} / {out['teacher']['title_recall_at_10']:.4f}; student "
        f"{out['student']['intent_top1']:.4f} / {out['student']['title_recall_at_10']:.4f} (intent top-1 / R@10)")

    exports = WORK / "intent-latency-exports"
    paths = {"MiniLM-L6, dynamic padding": export_intent(teacher, str(exports), "teacher", 1, overwrite=True),
             "MiniLM student 3 layers, dynamic padding": export_intent(student, str(exports), "student", 1,
                                                                       overwrite=True)}
    teacher.encoder.tokenizer = PaddedTokenizer(teacher.encoder.tokenizer)
    paths["MiniLM-L6, padded to 512"] = export_intent(teacher, str(exports), "teacher_pad512", 1, overwrite=True)
    log("exported the three SavedModels; measuring latency in a 2-thread process")
    queries_path, result_path = WORK / "intent_latency_queries.json", WORK / "intent_latency_times.json"
    queries = [str(q) for q in np.asarray(test["query"])[:2000]]
    queries_path.write_text(json.dumps({"models": paths, "queries": queries, "scale": scale}))
    with Timer() as t:
        subprocess.run([sys.executable, __file__, "--measure", str(queries_path), str(result_path)], check=True)
    out["latency"], out["measure_s"] = json.loads(result_path.read_text()), t.seconds
    out["query_words"] = float(np.mean([len(q.split()) for q in queries]))
    out["total_s"] = time.perf_counter() - T0
    return out


def report(r) -> str:
    lat = r["latency"]
    base, pad, small = "MiniLM-L6, dynamic padding", "MiniLM-L6, padded to 512", "MiniLM student 3 layers, dynamic padding"
    lines = [
        "## Query understanding: CPU latency of the exported SavedModel", "",
        f"Command: `{command_line()}` (git {git_revision()}).  ", f"Machine: {machine()}; measured with "
        f"{THREADS} threads (intra-op {THREADS}, inter-op 1), other jobs sharing the machine.  ",
        f"Input: the synthetic test split's queries (mean {r['query_words']:.1f} words), raw strings into "
        f"`serving_default` (tokenisation, BERT, intent top-k, slot decoding to filters, embedding). p50/p99 of one "
        f"call; per query = call / batch; CPU time = process CPU seconds per call (both threads; less sensitive "
        f"to other load than wall time). Ratios are against the dynamically padded MiniLM-L6 export, measured in the "
        f"same process, the models interleaved.", "",
        "| model | batch | calls | p50 (ms) | p99 (ms) | per query p50 (ms) | CPU time per call (ms) | "
        "p50 vs dynamic MiniLM-L6 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for batch in (1, 32):
        ref = lat[f"{base}|{batch}"]["p50_ms"]
        for name in (base, pad, small):
            m = lat[f"{name}|{batch}"]
            lines.append(f"| {name} | {batch} | {m['calls']} | {m['p50_ms']:.1f} | {m['p99_ms']:.1f} | "
                         f"{m['p50_ms'] / batch:.2f} | {m['cpu_ms']:.0f} | {m['p50_ms'] / ref:.2f}x |")
    t, s, b = r["teacher"], r["student"], r["student_before"]
    speed = {batch: lat[f"{base}|{batch}"]["p50_ms"] / lat[f"{small}|{batch}"]["p50_ms"] for batch in (1, 32)}
    lines += [
        "", f"**Accuracy cost of the 3-layer student** (synthetic test split, {r['n_test']:,} queries):", "",
        "| model | intent top-1 | intent top-3 | slot F1 | title R@10 | title MRR | p50 speed-up b1 / b32 |",
        "|---|---:|---:|---:|---:|---:|---|"]
    for name, m, sp in (("MiniLM-L6 teacher (fine-tuned)", t, "1.00x / 1.00x"),
                        (f"student, layers {list(STUDENT_LAYERS)} before distillation", b, "-"),
                        ("student, distilled", s, f"{speed[1]:.2f}x / {speed[32]:.2f}x")):
        lines.append(f"| {name} | {m['intent_top1']:.3f} | {m['intent_top3']:.3f} | {m['slot_f1']:.3f} | "
                     f"{m['title_recall_at_10']:.3f} | {m['title_mrr']:.3f} | {sp} |")
    d = r["distil"]
    lines += [
        "", f"Teacher: `{r['teacher_run']}` ("
        + ("the synthetic run of `intent_quality.py`" if r["teacher_run"] == str(TEACHER_RUN)
           else "a short synthetic run trained by this script") + "). Student: the teacher's "
        f"embeddings, layers {list(STUDENT_LAYERS)} and heads, distilled for {r['distil_epochs']} epochs on "
        f"{r['n_train_queries']:,} train-split queries and their {r['n_titles']:,} distinct chosen titles (cosine to "
        f"the teacher's embedding; KL to its intent and slot distributions on queries), Adam lr "
        f"{DISTIL_LEARNING_RATE:g}, batch {DISTIL_BATCH} (`tfrec distil intent`, tfrec.training.intent_distil); "
        f"teacher targets {d['targets_s']:.0f} s, distillation {d['train_s'] / 60:.1f} min. Whole benchmark "
        f"{r['total_s'] / 60:.1f} min.", "",
        "What the export does to keep latency low: batches are padded only to their longest query (at most "
        "`max_length` = 32 wordpieces), not to BERT's 512 positions, which is the table's first ratio; tokenisation "
        "is in the graph (tensorflow-text FastWordpiece), so there is no Python round trip; the SavedModel saves "
        "only the variables the signatures capture, not the Keras layers' call functions; BERT's code runs without "
        "AutoGraph conversion; the pooler is unused (mean pooling) and slot decoding is vectorised tensor code."]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher-run", type=Path, default=TEACHER_RUN)
    parser.add_argument("--distil-epochs", type=int, default=2)
    parser.add_argument("--calls-scale", type=float, default=1.0, help="fewer timed calls (<1) for a quick check")
    parser.add_argument("--measure", nargs=2, type=Path, help=argparse.SUPPRESS)  # child process: inputs, output
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    if args.measure:
        spec = json.loads(args.measure[0].read_text())
        measure(spec["models"], spec["queries"], args.measure[1], spec["scale"])
        return 0
    from tfrec.text.bert_checkpoint import packaged_model_dir

    if packaged_model_dir() is None:
        print("intent_latency: skipped, the packaged all-MiniLM-L6-v2 is not installed")
        return 0
    WORK.mkdir(parents=True, exist_ok=True)
    result = run(args.teacher_run, args.distil_epochs, args.calls_scale)
    (WORK / "intent_latency.json").write_text(json.dumps(result, indent=1, default=str))
    body = report(result)
    print(body)
    if not args.no_write:
        write_section("intent_latency", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
