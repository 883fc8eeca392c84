"""The program behind tests/training/test_strategy_parity.py, in its own process because the CPU must be split into
two logical devices before TensorFlow initialises: `python strategy_parity_program.py OUT.json`.

For the ranker, the logistic CTR and the intent model it takes one training step (Keras `fit`, SGD) on the same
batch and the same starting weights under the default strategy and under `MirroredStrategy` over the two logical
CPUs, and records both total losses and weight updates; then one ranker step under the `mixed_float16` policy.
`python strategy_parity_program.py OUT.json --graph` runs the steps as traced functions instead of eagerly.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for ranker_tiny

ROWS = 24  # the global batch: 12 rows per replica
LEARNING_RATE = 0.5
# Keras runs the step eagerly (strategy.run per replica, the same losses and all-reduces as in a traced step): tracing
# three models twice would take a minute; `--graph` traces them as `fit` normally does.
EAGER = "--graph" not in sys.argv


def _split_cpu():
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def _shop_columns():
    from tfrec.data.examples import impression_examples
    from tfrec.data.synthetic import SyntheticConfig, generate

    data = generate(SyntheticConfig.preset("tiny", seed=3, n_sessions=300))
    return impression_examples(data.dataset)


def _tiny_features(columns, directory):
    """(ranker job config, fitted features, one batch of features) on the tiny ranker's features."""
    from ranker_tiny import CONFIG, tiny_ranker_config
    from tfrec.config import from_dict
    from tfrec.features.stats import fit_features
    from tfrec.training.ranker_job import RankerJobConfig

    data = tiny_ranker_config(model={"tasks": {"click": 1.0, "purchase": 0.5}, "dropout": 0.0, "cross_layers": 1,
                                     "deep_units": [16], "embedding_dim": 8, "l2": 0.01, "bias_l2": 0.01})
    config = from_dict(RankerJobConfig, data, str(CONFIG))
    spec = config.feature_spec
    fitted = fit_features(spec, {n: columns[n] for n in spec.names}, directory)
    return config, fitted, next(spec.tensor_batches({n: columns[n][:ROWS] for n in spec.names}, ROWS))


def _labels(columns, name, every):
    label = columns[name][:ROWS].astype("int64")
    label[::every] = 1  # positives on both replicas' halves
    return label


def _ranker_case(columns, tiny):
    """(build, batch) of the tiny ranker: embeddings, cross and deep L2, token biases, position tower, two heads."""
    from tfrec.models.ranker import build_ranker

    config, fitted, features = tiny
    labels = {"click": _labels(columns, "click", 3), "purchase": _labels(columns, "purchase", 7)}
    return (lambda: build_ranker(config.model, fitted, {"click": 0.2, "purchase": 0.05})), (features, labels)


def _ctr_case(columns, tiny):
    """(build, batch) of a logistic CTR on the same features, a cross and a large L2 (sparse and numeric weights)."""
    from tfrec.models.ctr import CTRModelConfig, build_ctr_model

    _, fitted, features = tiny
    config = CTRModelConfig(hash_buckets=4096, l2=0.01, crosses=[["user_id", "category"]])
    return (lambda: build_ctr_model(config, fitted)), (features, {"click": _labels(columns, "click", 4)})


def _intent_case():
    """(build, batch) of the intent model on the random tiny BERT; labels are uneven between the two halves."""
    import numpy as np

    from tfrec.models.intent import IntentModelConfig
    from tfrec.text.slots import TAG_IDS
    from tfrec.training.intent_job import build_intent_model

    intents = ["Shoes > Running shoes", "Kitchen > Sinks", "Garden > Hoses"]
    config = IntentModelConfig(max_length=16, dropout=0.0, head_learning_rate_multiplier=2.0)
    queries = ["red running shoes", "steel sink", "garden hose 50 ft", "cheap shoes", "blue hose", "kitchen sink",
               "nike shoes size 9", "hose reel"] * 3
    intent = np.array([0, 1, 2, 0, -1, 1, 0, -1] + [-1, -1, 2, -1, -1, -1, -1, 0] + [1, -1, -1, -1, 2, -1, -1, -1])
    tags = np.full((ROWS, 16), -1, np.int64)
    tags[[0, 4, 6, 20], 1] = TAG_IDS["B-color"]
    tags[[0, 4, 6, 20], 2] = TAG_IDS["O"]
    titles = ["Trail running shoe", "", "Garden hose", "", "Blue garden hose", "Steel kitchen sink", "", ""] * 3
    titles[13] = "Trail running shoe"  # the same title twice in the batch: an accidental hit to remove
    batch = {"query": np.array(queries), "intent": intent.astype(np.int64), "slot_tags": tags,
             "title": np.array(titles)}
    return (lambda: build_intent_model(config, intents)), batch


def _one_step(strategy, build, batch, start_weights=None):
    """(total loss, weight updates, start weights) of one `fit` step of a fresh model under `strategy`."""
    import numpy as np
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build()
        model.compile(optimizer=tf.keras.optimizers.SGD(LEARNING_RATE), run_eagerly=EAGER)
        if isinstance(batch, tuple):
            model(batch[0])  # builds every variable (the intent model is built by its constructor)
    dataset = tf.data.Dataset.from_tensor_slices(batch).batch(ROWS)
    if start_weights is None:
        rng = np.random.default_rng(0)
        for variable in model.trainable_variables:
            value = variable.numpy()
            if not value.any():  # zero-initialised (the CTR's weights, biases): their L2 terms would add nothing
                variable.assign(rng.normal(0.0, 0.1, value.shape).astype(value.dtype))
        start_weights = model.get_weights()
    model.set_weights(start_weights)
    before = [v.numpy() for v in model.trainable_variables]
    model.distribute_reduction_method = "sum"  # each replica returns its share of the global-batch loss
    logs = model.fit(dataset, epochs=1, verbose=0).history
    loss = logs.get("total_loss", logs["loss"])[0]
    updates = [(v.numpy() - b).tolist() for v, b in zip(model.trainable_variables, before)]
    return float(loss), updates, start_weights


def _mixed_precision_step(build, batch):
    """One ranker `fit` step under the mixed_float16 policy (what `mixed_precision: auto` picks on a GPU)."""
    import numpy as np
    import tensorflow as tf

    from tfrec.training.trainer import configure_mixed_precision

    assert configure_mixed_precision("on")
    try:
        model = build()
        model.compile(optimizer=tf.keras.optimizers.Adam(0.01), run_eagerly=EAGER)
        dataset = tf.data.Dataset.from_tensor_slices(batch).batch(ROWS)
        logs = model.fit(dataset, epochs=1, verbose=0).history
        outputs = model(batch[0])
        return {"loss": float(logs["total_loss"][0]),
                "optimizer": type(model.optimizer).__name__,
                "loss_scale": float(model.optimizer.loss_scale),
                "compute_dtype": model.body.compute_dtype,
                "output_dtypes": sorted({v.dtype.name for v in outputs.values()}),
                "finite_weights": bool(all(np.isfinite(w).all() for w in model.get_weights()))}
    finally:
        configure_mixed_precision("off")


def main(out: str) -> None:
    _split_cpu()
    import tfrec  # noqa: F401
    import tensorflow as tf

    default = tf.distribute.get_strategy()
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        columns = _shop_columns()
        tiny = _tiny_features(columns, directory)
        cases = {"ranker": _ranker_case(columns, tiny), "ctr": _ctr_case(columns, tiny),
                 "intent": _intent_case()}
        for name, (build, batch) in cases.items():
            loss, updates, start = _one_step(default, build, batch)
            mirrored_loss, mirrored_updates, _ = _one_step(mirrored, build, batch, start)
            results[name] = {"default": {"loss": loss, "updates": updates},
                             "mirrored": {"loss": mirrored_loss, "updates": mirrored_updates,
                                          "replicas": mirrored.num_replicas_in_sync}}
            print(f"{name}: loss {loss:.6f} default, {mirrored_loss:.6f} mirrored", flush=True)
        results["mixed_precision"] = _mixed_precision_step(*cases["ranker"])
    with open(out, "w", encoding="utf-8") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(sys.argv[1])
