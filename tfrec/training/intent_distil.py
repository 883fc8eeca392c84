"""Distils a fine-tuned query-understanding run into a shallower, faster student (`tfrec distil intent`).

Why: the intent model is the largest call on a Search request's critical path. A student that keeps the teacher's
embeddings, some of its transformer layers (e.g. [0, 2, 4] of MiniLM's 6) and its heads, trained on the teacher's
outputs, keeps most of the quality at about half the latency (docs/benchmarks.md, "Query understanding").

Targets are the teacher's outputs on its run's train-split queries and their distinct chosen titles; the loss is
w_embedding * (1 - cosine to the teacher's embedding) on queries and titles, plus, on queries,
w_intent * KL(teacher || student intent distribution) + w_slots * mean KL over wordpieces of the slot-tag
distributions. The validation split's distillation loss picks the epoch kept (the undistilled student if no epoch
beats it; the last epoch when there is no validation split).

The student's run directory is an intent run like `tfrec train intent` writes (its config names the kept checkpoint
layers in `model.encoder_layers`), so `restore_intent_run`, `tfrec evaluate` and `tfrec export` treat it alike;
metrics.json adds the teacher's test report and the student's agreement with the teacher before and after.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from tfrec.config import ConfigError, dump_config, load_config
from tfrec.models.intent import LossWeights, QueryUnderstandingModel
from tfrec.text.bert_checkpoint import check_layer_selection
from tfrec.training.intent_evaluation import IntentReport, evaluate_intent_model, predict_batches
from tfrec.training.intent_job import (
    INTENTS_FILE, JOB, build_intent_model, read_split, restore_intent_run,
)

DISTIL_CONFIG_FILE = "distil.yaml"
_REPORT_KEYS = (("intent top-1", "intent_top1"), ("intent top-3", "intent_top3"), ("slot F1", "slot_f1"),
                ("title R@10", "title_recall_at_10"), ("title MRR", "title_mrr"))


@dataclasses.dataclass
class DistilConfig:
    """Settings of `tfrec distil intent`; loaded from configs/intent_distil.yaml."""

    layers: List[int] = dataclasses.field(default_factory=lambda: [0, 2, 4])  # teacher layers the student keeps
    epochs: int = 2
    batch_size: int = 64
    learning_rate: float = 1e-4
    clipnorm: float = 1.0  # 0 turns clipping off
    loss_weights: LossWeights = dataclasses.field(default_factory=LossWeights)  # of the three distillation terms
    seed: int = 0
    verbose: int = 1  # 0 silent, 1 a progress bar per epoch, 2 one line per epoch

    def validate(self) -> None:
        try:  # the upper bound is the teacher's layer count, checked when the teacher is loaded
            check_layer_selection(self.layers, max(self.layers, default=0) + 1)
        except ValueError as exc:
            raise ConfigError(str(exc), path="layers") from None
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}", path=name)
        if self.learning_rate <= 0:
            raise ConfigError(f"must be > 0, got {self.learning_rate}", path="learning_rate")
        if self.clipnorm < 0:
            raise ConfigError(f"must be >= 0, got {self.clipnorm}", path="clipnorm")
        w = self.loss_weights
        if w.intent + w.slots + w.embedding <= 0:
            raise ConfigError("at least one weight must be > 0", path="loss_weights")
        if self.verbose not in (0, 1, 2):
            raise ConfigError(f"must be 0, 1 or 2, got {self.verbose}", path="verbose")


def load_distil_config(path: str, overrides: Optional[Dict] = None) -> DistilConfig:
    return load_config(path, DistilConfig, overrides)


# ------------------------------------------------------------------------------------------------------ the student

def make_student(teacher: QueryUnderstandingModel, intents: Sequence[str], layers: Sequence[int]):
    """A copy of the teacher with only its transformer layers `layers` (indices into the teacher's layers): its
    embeddings, those layers and its heads. The student's config names the checkpoint layers they came from, so
    `build_intent_model` (and so `restore_intent_run`) rebuilds the same shape; every layer is trainable."""
    n_teacher = len(teacher.encoder.bert.encoder.layer)
    try:
        layers = check_layer_selection(layers, n_teacher, owner="the teacher")
    except ValueError as exc:
        raise ConfigError(str(exc), path="layers") from None
    kept = teacher.config.encoder_layers or list(range(n_teacher))
    config = dataclasses.replace(teacher.config, encoder_layers=[kept[j] for j in layers], trainable_layers=-1)
    student = build_intent_model(config, list(intents), init_prototypes=False)
    source, target = teacher.encoder.bert, student.encoder.bert
    target.embeddings.set_weights(source.embeddings.get_weights())
    for i, j in enumerate(layers):
        target.encoder.layer[i].set_weights(source.encoder.layer[j].get_weights())
    for mine, theirs in zip(_heads(student), _heads(teacher)):
        mine.set_weights(theirs.get_weights())
    return student


def _heads(model: QueryUnderstandingModel) -> List[tf.keras.layers.Layer]:
    return [*model.intent_mlp, model.intent_head, *model.slot_mlp, model.slot_head]


# ---------------------------------------------------------------------------------------------------- distillation

@dataclasses.dataclass
class TargetBatch:
    """A batch of texts and the teacher's outputs on them; `is_query` 0 for titles (embedding term only)."""

    texts: np.ndarray
    is_query: float
    embedding: np.ndarray
    intent_logits: np.ndarray
    slot_logits: np.ndarray

    def tensors(self):
        return (tf.constant(self.texts), tf.constant(self.embedding), tf.constant(self.intent_logits),
                tf.constant(self.slot_logits), tf.constant(self.is_query, tf.float32))


_TEXTS = tf.TensorSpec([None], tf.string)
_SIGNATURE = [_TEXTS, tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None, None], tf.float32),
              tf.TensorSpec([None, None, None], tf.float32), tf.TensorSpec([], tf.float32)]


def teacher_targets(teacher, queries, titles, batch_size: int, seed: int = 0) -> List[TargetBatch]:
    """The teacher's outputs on `queries` and `titles`, in batches of one kind each, texts shuffled (seeded)."""

    @tf.function(input_signature=[_TEXTS])
    def outputs(texts):
        out = teacher(texts, training=False)
        return out["embedding"], out["intent_logits"], out["slot_logits"]

    batches = []
    for is_query, texts in ((1.0, queries), (0.0, titles)):
        texts = np.asarray(texts).astype(str)
        order = np.random.default_rng(seed).permutation(len(texts))
        for start in range(0, len(texts), batch_size):
            chunk = texts[order[start : start + batch_size]]
            batches.append(TargetBatch(chunk, is_query, *(t.numpy() for t in outputs(tf.constant(chunk)))))
    return batches


def distillation_loss(out: Dict[str, tf.Tensor], embedding, intent_logits, slot_logits, is_query,
                      weights: LossWeights) -> tf.Tensor:
    """The loss of the module docstring for one batch of student outputs `out` against the teacher's."""
    loss = weights.embedding * tf.reduce_mean(1.0 - tf.reduce_sum(out["embedding"] * embedding, axis=-1))
    kl_intent = tf.keras.losses.kl_divergence(tf.nn.softmax(intent_logits), tf.nn.softmax(out["intent_logits"]))
    mask = tf.cast(out["token_starts"] >= 0, tf.float32)
    kl_slots = tf.keras.losses.kl_divergence(tf.nn.softmax(slot_logits), tf.nn.softmax(out["slot_logits"]))
    slot_loss = tf.math.divide_no_nan(tf.reduce_sum(kl_slots * mask), tf.reduce_sum(mask))
    return loss + is_query * (weights.intent * tf.reduce_mean(kl_intent) + weights.slots * slot_loss)


@dataclasses.dataclass
class DistilStats:
    """What distillation did: seconds for the teacher's targets and for training, batches per epoch, the epoch
    kept (1-based; 0 when no epoch beat the undistilled student on validation) and per epoch {"epoch", "loss",
    "val_loss"}."""

    targets_s: float
    train_s: float
    batches: int
    best_epoch: int
    history: List[Dict[str, float]]


def distil(teacher, student, queries, titles, config: DistilConfig, validation=None, run_dir: Optional[str] = None,
           log=print) -> DistilStats:
    """Trains `student` on the teacher's outputs (module docstring). `validation` ((queries, titles)) picks the best
    epoch by distillation loss; `run_dir` gets TensorBoard scalars in logs/, history.csv and checkpoints/best."""
    start = time.perf_counter()
    batches = teacher_targets(teacher, queries, titles, config.batch_size, config.seed)
    held_out = teacher_targets(teacher, *validation, config.batch_size, config.seed) if validation else []
    targets_s = time.perf_counter() - start
    log(f"teacher targets: {len(queries):,} queries, {len(titles):,} titles ({targets_s:.0f} s)")
    options = {"clipnorm": config.clipnorm} if config.clipnorm else {}
    optimizer = tf.keras.optimizers.Adam(learning_rate=config.learning_rate, **options)
    variables = student.trainable_variables

    @tf.function(input_signature=_SIGNATURE)
    def train_step(texts, embedding, intent_logits, slot_logits, is_query):
        with tf.GradientTape() as tape:
            out = student(texts, training=True)
            loss = distillation_loss(out, embedding, intent_logits, slot_logits, is_query, config.loss_weights)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    @tf.function(input_signature=_SIGNATURE)
    def held_out_loss(texts, embedding, intent_logits, slot_logits, is_query):
        out = student(texts, training=False)
        return distillation_loss(out, embedding, intent_logits, slot_logits, is_query, config.loss_weights)

    def validation_loss() -> float:
        return float(np.mean([float(held_out_loss(*b.tensors())) for b in held_out]))

    writers = _summary_writers(run_dir, bool(held_out))
    rng, history, best_loss, best_epoch, kept = np.random.default_rng(config.seed), [], np.inf, 0, None
    start = time.perf_counter()
    if held_out:  # epoch 0: the student as cut from the teacher, kept if distillation only makes it worse
        best_loss, kept = validation_loss(), student.get_weights()
        log(f"before distillation: val_loss {best_loss:.4f}")
    for epoch in range(1, config.epochs + 1):
        if config.verbose:
            print(f"Epoch {epoch}/{config.epochs}")
        progress = tf.keras.utils.Progbar(len(batches), verbose=config.verbose)
        losses = []
        for i, k in enumerate(rng.permutation(len(batches))):
            losses.append(float(train_step(*batches[k].tensors())))
            progress.update(i + 1, [("loss", losses[-1])])
        row = {"epoch": epoch, "loss": float(np.mean(losses))}
        if held_out:
            row["val_loss"] = validation_loss()
        history.append(row)
        _record(writers, row, epoch)
        monitored = row.get("val_loss", -epoch)  # without validation the last epoch is the best
        if monitored < best_loss:
            best_loss, best_epoch, kept = monitored, epoch, student.get_weights()
        log(f"distillation epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "epoch"))
    train_s = time.perf_counter() - start
    student.set_weights(kept)
    log(f"kept epoch {best_epoch} " + ("(lowest validation loss; 0: the undistilled student)" if held_out
                                       else "(the last: no validation split)"))
    if run_dir:
        student.save_weights(os.path.join(run_dir, "checkpoints", "best"))
        _write_history(run_dir, history)
    return DistilStats(targets_s, train_s, len(batches), best_epoch, history)


def _summary_writers(run_dir: Optional[str], validation: bool) -> Dict[str, tf.summary.SummaryWriter]:
    if not run_dir:
        return {}
    names = ["train"] + (["validation"] if validation else [])
    return {n: tf.summary.create_file_writer(os.path.join(run_dir, "logs", n)) for n in names}


def _record(writers, row: Dict[str, float], epoch: int) -> None:
    """Epoch losses as Keras's TensorBoard callback names them (epoch_loss under train/ and validation/)."""
    for name, key in (("train", "loss"), ("validation", "val_loss")):
        if name in writers and key in row:
            with writers[name].as_default():
                tf.summary.scalar("epoch_loss", row[key], step=epoch)
            writers[name].flush()


def _write_history(run_dir: str, history: List[Dict[str, float]]) -> None:
    with open(os.path.join(run_dir, "history.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


def fidelity(teacher_outputs: Dict[str, np.ndarray], student, queries: np.ndarray, batch_size: int = 64) -> Dict:
    """How closely the student follows the teacher on `queries`: top-1 intent agreement and mean query-embedding
    cosine (`teacher_outputs`: the teacher's intent_logits and embedding on the same queries)."""
    top, cosine = [], []
    for start, out in predict_batches(student, queries, batch_size):
        end = start + len(out["embedding"])
        top.append(out["intent_logits"].argmax(-1) == teacher_outputs["intent_logits"][start:end].argmax(-1))
        cosine.append((out["embedding"] * teacher_outputs["embedding"][start:end]).sum(-1))
    return {"intent_agreement": float(np.concatenate(top).mean()),
            "embedding_cosine": float(np.concatenate(cosine).mean())}


def _outputs(model, queries: np.ndarray, batch_size: int = 64) -> Dict[str, np.ndarray]:
    parts = [out for _, out in predict_batches(model, queries, batch_size)]
    return {k: np.concatenate([p[k] for p in parts]) for k in ("intent_logits", "embedding")}


# --------------------------------------------------------------------------------------------------------- the job

@dataclasses.dataclass
class DistilRun:
    run_dir: str
    model: QueryUnderstandingModel
    report: IntentReport  # the student's, on the teacher run's test split
    teacher_report: Dict  # the teacher run's test report (metrics.json)
    fidelity: Dict[str, Dict[str, float]]  # "before" / "after" distillation, on the test split
    stats: DistilStats

    def format(self) -> str:
        """Teacher beside student on the test split, and how closely the student follows the teacher."""
        student = self.report.to_dict()
        lines = [f"{'test split':<16}{'teacher':>10}{'student':>10}"]
        for label, key in _REPORT_KEYS:
            lines.append(f"{label:<16}" + "".join(_show(r.get(key)) for r in (self.teacher_report, student)))
        before, after = self.fidelity["before"], self.fidelity["after"]
        lines.append(f"agreement with the teacher: intent top-1 {before['intent_agreement']:.3f} -> "
                     f"{after['intent_agreement']:.3f}, embedding cosine {before['embedding_cosine']:.3f} -> "
                     f"{after['embedding_cosine']:.3f} (before -> after distillation)")
        return "\n".join(lines)


def _show(value) -> str:
    return f"{'-':>10}" if value is None else f"{value:>10.4f}"


def distil_intent(teacher_run_dir: str, run_dir: str, config: Optional[DistilConfig] = None, log=print) -> DistilRun:
    """Distils the intent run in `teacher_run_dir` into a student run in `run_dir` (module docstring)."""
    config = config or DistilConfig()
    if os.path.abspath(teacher_run_dir) == os.path.abspath(run_dir):
        raise ValueError(f"the student's run directory must differ from the teacher's ({run_dir})")
    teacher_config, intents, teacher = restore_intent_run(teacher_run_dir)
    student = make_student(teacher, intents, config.layers)
    log(f"student: teacher layers {config.layers} of {len(teacher.encoder.bert.encoder.layer)} "
        f"(checkpoint layers {student.config.encoder_layers}), embeddings and heads from {teacher_run_dir}")
    _write_run_files(teacher_run_dir, run_dir, teacher_config, student, config)
    train, test = read_split(teacher_config, run_dir, "train"), read_split(teacher_config, run_dir, "test")
    validation = read_split(teacher_config, run_dir, "validation")
    teacher_test = _outputs(teacher, test["query"])
    before = fidelity(teacher_test, student, test["query"])
    stats = distil(teacher, student, train["query"], _distinct_titles(train), config,
                   (validation["query"], _distinct_titles(validation)) if len(validation["query"]) else None,
                   run_dir, log)
    report = evaluate_intent_model(student, test, intents)
    teacher_report = _teacher_report(teacher_run_dir, teacher, test, intents)
    run = DistilRun(run_dir, student, report, teacher_report,
                    {"before": before, "after": fidelity(teacher_test, student, test["query"])}, stats)
    sizes = {split: len(columns["query"]) for split, columns in
             (("train", train), ("validation", validation), ("test", test))}
    with open(os.path.join(run_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump({"test": report.to_dict(), "zero_shot": None, "sizes": sizes, "teacher": teacher_report,
                   "fidelity": run.fidelity, "distillation": {
                       "teacher_run": os.path.abspath(teacher_run_dir), "layers": list(config.layers),
                       **dataclasses.asdict(stats)}}, f, indent=2)
    return run


def _distinct_titles(columns: Dict[str, np.ndarray]) -> List[str]:
    return sorted({str(t) for t in columns["title"] if t})


def _teacher_report(teacher_run_dir: str, teacher, test, intents) -> Dict:
    """The teacher run's test report as its job wrote it; evaluated here when the run has none."""
    path = os.path.join(teacher_run_dir, "metrics.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            report = json.load(f).get("test")
        if report:
            return report
    return evaluate_intent_model(teacher, test, intents).to_dict()


def _write_run_files(teacher_run_dir: str, run_dir: str, teacher_config, student, config: DistilConfig) -> None:
    """The intent job's layout: job.json, config.yaml (the student's model), intents.json, the teacher's data
    splits, and distil.yaml with the distillation settings."""
    os.makedirs(run_dir, exist_ok=True)
    student_config = dataclasses.replace(teacher_config, model=student.config, run_dir=run_dir)
    dump_config(student_config, os.path.join(run_dir, "config.yaml"))
    dump_config(config, os.path.join(run_dir, DISTIL_CONFIG_FILE))
    with open(os.path.join(run_dir, "job.json"), "w", encoding="utf-8") as f:
        json.dump({"job": JOB, "distilled_from": os.path.abspath(teacher_run_dir)}, f)
    shutil.copyfile(os.path.join(teacher_run_dir, INTENTS_FILE), os.path.join(run_dir, INTENTS_FILE))
    shutil.copytree(os.path.join(teacher_run_dir, "data"), os.path.join(run_dir, "data"), dirs_exist_ok=True)
