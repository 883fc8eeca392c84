"""One training loop for every model: distribution strategy, mixed precision, optimizer, callbacks, fit.

Strategies follow TensorFlow's documented patterns: the model and optimizer are created inside `strategy.scope()`;
`mirrored` replicates over the local GPUs (falling back to CPU when there are none); `multi_worker` reads TF_CONFIG.
Mixed precision (`mixed_float16`) is switched on only when a GPU is present (`auto`), because on CPU it is slower.
The GPU paths cannot be exercised here (no GPU that runs TensorFlow); their CPU equivalents are tested.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from typing import Callable, Iterator, Literal, Optional, Sequence

import tensorflow as tf


@dataclasses.dataclass
class OptimizerConfig:
    """Optimizer name and its main knobs (FTRL's are the classic ones for sparse logistic models)."""

    name: Literal["ftrl", "adam", "adagrad", "sgd"] = "adam"
    learning_rate: float = 0.01
    l1: float = 0.0  # FTRL only
    l2: float = 0.0  # FTRL only
    clipnorm: Optional[float] = None

    def validate(self) -> None:
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.l1 < 0 or self.l2 < 0:
            raise ValueError("l1 and l2 must be >= 0")
        if self.name != "ftrl" and (self.l1 or self.l2):
            raise ValueError(f"l1/l2 are FTRL settings; the model's own `l2` regularises {self.name}")


@dataclasses.dataclass
class TrainingConfig:
    """Batch size, epochs, early stopping and where and how training runs."""

    batch_size: int = 1024
    epochs: int = 10
    steps_per_epoch: Optional[int] = None
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    early_stopping_patience: int = 2
    monitor: str = "val_auc"
    monitor_mode: Literal["max", "min"] = "max"
    shuffle_buffer: int = 100_000
    cache: bool = True
    num_shards: int = 4
    strategy: Literal["default", "mirrored", "multi_worker"] = "default"
    mixed_precision: Literal["auto", "on", "off"] = "auto"
    seed: int = 42
    verbose: int = 1

    def validate(self) -> None:
        if self.batch_size < 1 or self.epochs < 1 or self.num_shards < 1:
            raise ValueError("batch_size, epochs and num_shards must be >= 1")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError("steps_per_epoch must be >= 1 when set")
        if self.early_stopping_patience < 0 or self.shuffle_buffer < 0:
            raise ValueError("early_stopping_patience and shuffle_buffer must be >= 0")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy named in the config."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy([d.name for d in gpus] or ["/cpu:0"])
    if name == "multi_worker":
        return _multi_worker_strategy()
    raise ValueError(f"unknown strategy {name!r}")


_MULTI_WORKER: Optional[tf.distribute.Strategy] = None


def _multi_worker_strategy() -> tf.distribute.Strategy:
    """The process's one MultiWorkerMirroredStrategy: TensorFlow configures its collectives once, before any op runs,
    so a second instance (e.g. for a job's second fit) would hang or fail."""
    global _MULTI_WORKER
    if _MULTI_WORKER is None:
        if "TF_CONFIG" not in os.environ:
            raise RuntimeError("strategy multi_worker needs TF_CONFIG describing the cluster and this task")
        json.loads(os.environ["TF_CONFIG"])  # a malformed TF_CONFIG fails here with a JSON error, not deep in TF
        try:
            _MULTI_WORKER = tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as exc:
            if "startup" not in str(exc):
                raise
            raise RuntimeError(
                "strategy multi_worker must be created before TensorFlow runs its first op: call "
                "tfrec.training.trainer.make_strategy('multi_worker') at the start of the program"
            ) from exc
    return _MULTI_WORKER


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's outputs: always, except on a non-chief worker of a multi-worker cluster."""
    return bool(strategy.extended.should_checkpoint)


WORKER_FINISHED = "worker: training finished; the chief restores, evaluates and writes the run"


@dataclasses.dataclass
class JobProcess:
    """This process's part in a training job: its strategy, whether it writes the run, and the directory it works
    in (the run directory on the chief, a temporary one on any other worker)."""

    strategy: tf.distribute.Strategy
    chief: bool
    run_dir: str


@contextlib.contextmanager
def job_process(training: TrainingConfig, run_dir: str) -> Iterator[JobProcess]:
    """Starts a training job's process: the strategy first, since MultiWorkerMirroredStrategy must exist before
    TensorFlow runs any op (data preparation runs many), then the directory this process writes to.

    Every worker prepares its own copy of the data and runs every `fit` alike; only the chief writes `run_dir` and
    then restores, evaluates and reports. A non-chief worker works in a temporary directory (its data, and the
    checkpoints Keras writes there) that is deleted when the job ends, so it leaves nothing behind and never touches
    the chief's run directory, even when both run the same command on one machine."""
    strategy = make_strategy(training.strategy)
    if is_chief(strategy):
        os.makedirs(run_dir, exist_ok=True)
        yield JobProcess(strategy, True, run_dir)
        return
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    scratch = tempfile.mkdtemp(prefix=f"tfrec-{task.get('type', 'worker')}{task.get('index', '')}-")
    try:
        yield JobProcess(strategy, False, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def configure_mixed_precision(setting: str) -> bool:
    """Sets the global Keras policy; returns whether mixed_float16 is on."""
    on = setting == "on" or (setting == "auto" and bool(tf.config.list_physical_devices("GPU")))
    tf.keras.mixed_precision.set_global_policy("mixed_float16" if on else "float32")
    return on


def make_optimizer(config: OptimizerConfig) -> tf.keras.optimizers.Optimizer:
    kwargs = {"learning_rate": config.learning_rate}
    if config.clipnorm:
        kwargs["clipnorm"] = config.clipnorm
    if config.name == "ftrl":
        return tf.keras.optimizers.Ftrl(
            l1_regularization_strength=config.l1, l2_regularization_strength=config.l2, **kwargs
        )
    if config.name == "adam":
        return tf.keras.optimizers.Adam(**kwargs)
    if config.name == "adagrad":
        return tf.keras.optimizers.Adagrad(**kwargs)
    return tf.keras.optimizers.SGD(**kwargs)


def make_callbacks(config: TrainingConfig, run_dir: str, has_validation: bool, chief: bool = True) -> list:
    """TensorBoard logs, best-weights checkpoints, early stopping and a CSV history under `run_dir`.

    On a non-chief worker (`chief` False) Keras writes the TensorBoard logs and checkpoints into temporary
    `workertemp_<id>` directories and deletes them (TensorFlow's multi-worker pattern); the CSV history is left out."""
    monitor = config.monitor if has_validation else config.monitor.replace("val_", "", 1)
    callbacks = [
        tf.keras.callbacks.TensorBoard(log_dir=os.path.join(run_dir, "logs"), update_freq="epoch"),
        tf.keras.callbacks.ModelCheckpoint(
            os.path.join(run_dir, "checkpoints", "best"),
            monitor=monitor,
            mode=config.monitor_mode,
            save_best_only=True,
            save_weights_only=True,
        ),
    ]
    if chief:
        callbacks.append(tf.keras.callbacks.CSVLogger(os.path.join(run_dir, "history.csv")))
    if config.early_stopping_patience:
        callbacks.append(
            tf.keras.callbacks.EarlyStopping(
                monitor=monitor,
                mode=config.monitor_mode,
                patience=config.early_stopping_patience,
                restore_best_weights=True,
            )
        )
    return callbacks


def fit(
    build_model: Callable[[], tf.keras.Model],
    train_data: tf.data.Dataset,
    validation_data: Optional[tf.data.Dataset],
    config: TrainingConfig,
    run_dir: str,
    callbacks: Sequence[tf.keras.callbacks.Callback] = (),
) -> tuple:
    """Builds and compiles the model inside the strategy scope, trains it, and returns (model, history).

    `callbacks` run before the standard ones, so metrics they add to the epoch logs (e.g. full-catalog validation
    recall) can drive checkpointing and early stopping. Under `multi_worker` only the chief keeps the run's logs,
    checkpoints and history (`is_chief`); every worker must call `fit` alike, and only the chief should restore the
    best checkpoint afterwards (`job_process` sets a job up that way)."""
    os.makedirs(run_dir, exist_ok=True)
    tf.keras.utils.set_random_seed(config.seed)
    configure_mixed_precision(config.mixed_precision)
    strategy = make_strategy(config.strategy)
    with strategy.scope():
        model = build_model()
        model.compile(optimizer=make_optimizer(config.optimizer))
    if strategy.num_replicas_in_sync > 1:
        # Keras's "auto" sums the replicas' step outputs: right for a loss scaled by the global batch, but metrics
        # such as AUC are already global and would be doubled on two workers. "first" logs them as they are (the
        # logged loss is then the first replica's share of it).
        model.distribute_reduction_method = "first"
    if config.strategy == "multi_worker":
        train_data = shard_by_data(train_data)
        validation_data = None if validation_data is None else shard_by_data(validation_data)
    history = model.fit(
        train_data,
        validation_data=validation_data,
        epochs=config.epochs,
        steps_per_epoch=config.steps_per_epoch,
        callbacks=list(callbacks) + make_callbacks(config, run_dir, validation_data is not None, is_chief(strategy)),
        verbose=config.verbose,
    )
    return model, history


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` split between multi-worker workers by batches, not files: TensorFlow's default file-based sharding
    fails when a split has fewer files than there are workers (a job writes one validation file)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def restore_best_weights(model: tf.keras.Model, run_dir: str, command: str) -> tf.keras.Model:
    """Loads `run_dir`'s best checkpoint into `model`; a clear error names the command when there is none yet."""
    checkpoint = os.path.join(run_dir, "checkpoints", "best")
    if not tf.io.gfile.exists(checkpoint + ".index"):
        if not is_chief(model.distribute_strategy):
            raise FileNotFoundError(f"{checkpoint}.index not found: a non-chief worker keeps no checkpoint (only the "
                                    "chief of a multi_worker run does); restore on the chief")
        raise FileNotFoundError(f"{checkpoint}.index not found: has `{command}` finished for {run_dir}?")
    model.load_weights(checkpoint).expect_partial()
    return model
