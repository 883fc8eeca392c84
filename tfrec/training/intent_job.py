"""The query-understanding training job: labelled queries → split → slot tags → TFRecords → fine-tune → report.

A run directory holds what evaluation and export need without the raw data:

    job.json               {"job": "intent"}
    config.yaml            the resolved config
    intents.json           the intent classes (the intent head's outputs, in order)
    data/{train,validation,test}-*.tfrecord
    checkpoints/best*      weights with the best validation loss
    logs/                  TensorBoard
    history.csv, metrics.json (fine-tuned and zero-shot test reports)
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from tfrec.config import dump_config, load_config
from tfrec.data.tfrecord import list_shards, read_columns, tfrecord_dataset, write_tfrecords
from tfrec.models.intent import INTENT, QUERY, SLOT_TAGS, TITLE, IntentModelConfig, QueryUnderstandingModel
from tfrec.text.bert_checkpoint import resolve_checkpoint
from tfrec.text.bert_encoder import BertEncoder
from tfrec.training.intent_data import (
    SPLITS, IntentDataConfig, encode_examples, intent_vocabulary, load_labelled_queries, split_queries,
)
from tfrec.training.intent_evaluation import IntentReport, evaluate_intent_model
from tfrec.training.trainer import (
    WORKER_FINISHED, OptimizerConfig, TrainingConfig, fit, job_process, restore_best_weights,
)

JOB = "intent"
INTENTS_FILE = "intents.json"


def _default_training() -> TrainingConfig:
    return TrainingConfig(batch_size=32, epochs=3, monitor="val_objective", monitor_mode="min", early_stopping_patience=1,
                          num_shards=2, shuffle_buffer=10_000,
                          optimizer=OptimizerConfig(name="adam", learning_rate=5e-5, clipnorm=1.0))


@dataclasses.dataclass
class IntentJobConfig:
    """Everything `tfrec train intent` needs; loaded from configs/intent.yaml."""

    data: IntentDataConfig = dataclasses.field(default_factory=IntentDataConfig)
    model: IntentModelConfig = dataclasses.field(default_factory=IntentModelConfig)
    training: TrainingConfig = dataclasses.field(default_factory=_default_training)
    zero_shot_baseline: bool = True  # also report the encoder before fine-tuning (nearest class name)
    run_dir: str = "runs/intent"


def load_intent_config(path: str, overrides: Optional[Dict] = None) -> IntentJobConfig:
    return load_config(path, IntentJobConfig, overrides)


def _parse_spec(max_length: int) -> Dict[str, tf.io.FixedLenFeature]:
    return {
        QUERY: tf.io.FixedLenFeature([], tf.string, default_value=""),
        INTENT: tf.io.FixedLenFeature([], tf.int64, default_value=-1),
        SLOT_TAGS: tf.io.FixedLenFeature([max_length], tf.int64),
        TITLE: tf.io.FixedLenFeature([], tf.string, default_value=""),
    }


def build_intent_model(config: IntentModelConfig, intents: List[str], init_prototypes: bool = True):
    """The model with a fresh head on the configured checkpoint (only its `encoder_layers` when set); intent
    prototypes start at the class names' embeddings (the last level of a category path, which is what shoppers
    type)."""
    checkpoint = resolve_checkpoint(config.checkpoint, config.checkpoint_sha256)
    encoder = BertEncoder(checkpoint, max_length=config.max_length, trainable_layers=config.trainable_layers,
                          dropout=config.dropout, layers=config.encoder_layers, name="bert_encoder")
    prototypes = None
    if init_prototypes:
        names = [name.split(" > ")[-1] for name in intents]
        prototypes = np.concatenate([encoder(tf.constant(names[i : i + 256]))["embedding"].numpy()
                                     for i in range(0, len(names), 256)])
    model = QueryUnderstandingModel(config, encoder, intents, prototypes)
    model(tf.constant(["warm up"]))  # builds every head, so checkpoints restore into it
    return model


@dataclasses.dataclass
class IntentRun:
    run_dir: str
    model: QueryUnderstandingModel
    report: IntentReport
    zero_shot: Optional[IntentReport]


def prepare_intent_data(config: IntentJobConfig, run_dir: str, log=print) -> Dict[str, int]:
    """Loads, splits and tags the queries and writes TFRecords + intents.json; returns rows per split."""
    from tfrec.text.tokenizer import BertTokenizer

    data = load_labelled_queries(config.data)
    splits = split_queries(data, config.data)
    intents = intent_vocabulary(splits["train"])
    log(f"{len(data)} labelled queries, {len(intents)} intents; split "
        + ", ".join(f"{s} {len(splits[s])}" for s in SPLITS))
    tokenizer = BertTokenizer.from_checkpoint(resolve_checkpoint(config.model.checkpoint, config.model.checkpoint_sha256),
                                              max_length=config.model.max_length)
    data_dir = os.path.join(run_dir, "data")
    sizes = {}
    for split in SPLITS:
        columns = encode_examples(splits[split], intents, tokenizer, config.model.max_length)
        write_tfrecords(columns, data_dir, split, num_shards=config.training.num_shards if split == "train" else 1)
        sizes[split] = len(splits[split])
    with open(os.path.join(run_dir, INTENTS_FILE), "w", encoding="utf-8") as f:
        json.dump(intents, f, indent=1)
    return sizes


def read_intents(run_dir: str) -> List[str]:
    with open(os.path.join(run_dir, INTENTS_FILE), encoding="utf-8") as f:
        return json.load(f)


def make_datasets(config: IntentJobConfig, data_dir: str, has_validation: bool):
    spec, t = _parse_spec(config.model.max_length), config.training
    train = tfrecord_dataset(list_shards(data_dir, "train"), spec, t.batch_size, shuffle_buffer=t.shuffle_buffer,
                             seed=t.seed, cache=t.cache, drop_remainder=False)
    validation = (tfrecord_dataset(list_shards(data_dir, "validation"), spec, t.batch_size, ordered=True)
                  if has_validation else None)
    return train, validation


def read_split(config: IntentJobConfig, run_dir: str, split: str) -> Dict[str, np.ndarray]:
    return read_columns(list_shards(os.path.join(run_dir, "data"), split), _parse_spec(config.model.max_length))


def train_intent(config: IntentJobConfig, log=print) -> Optional[IntentRun]:
    """Runs the whole job; returns the fine-tuned model and its test report (and the zero-shot one); None on a
    non-chief worker of a `multi_worker` run, which only trains (`tfrec.training.trainer.job_process`)."""
    with job_process(config.training, config.run_dir) as process:
        return _train_intent(dataclasses.replace(config, run_dir=process.run_dir), process.chief, log)


def _train_intent(config: IntentJobConfig, chief: bool, log) -> Optional[IntentRun]:
    run_dir = config.run_dir
    dump_config(config, os.path.join(run_dir, "config.yaml"))
    with open(os.path.join(run_dir, "job.json"), "w", encoding="utf-8") as f:
        json.dump({"job": JOB}, f)
    sizes = prepare_intent_data(config, run_dir, log)
    intents = read_intents(run_dir)
    test = read_split(config, run_dir, "test")

    zero_shot = None
    if config.zero_shot_baseline and chief:
        zero_shot = evaluate_intent_model(build_intent_model(config.model, intents), test, intents)
        log(zero_shot.format("zero-shot encoder (nearest class name), test split"))
    train_ds, val_ds = make_datasets(config, os.path.join(run_dir, "data"), sizes["validation"] > 0)
    model, _ = fit(lambda: build_intent_model(config.model, intents), train_ds, val_ds, config.training, run_dir)
    if not chief:
        log(WORKER_FINISHED)
        return None
    restore_best_weights(model, run_dir, "tfrec train intent")
    report = evaluate_intent_model(model, test, intents)
    log(report.format("fine-tuned, test split"))
    with open(os.path.join(run_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump({"test": report.to_dict(), "zero_shot": zero_shot.to_dict() if zero_shot else None,
                   "sizes": sizes}, f, indent=2)
    return IntentRun(run_dir, model, report, zero_shot)


def restore_intent_run(run_dir: str):
    """(config, intents, model with the run's best weights) of a finished run."""
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"run directory {run_dir} not found: train one with `tfrec train intent`")
    config = load_intent_config(os.path.join(run_dir, "config.yaml"))
    intents = read_intents(run_dir)
    model = build_intent_model(config.model, intents, init_prototypes=False)
    return config, intents, restore_best_weights(model, run_dir, "tfrec train intent")
