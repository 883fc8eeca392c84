"""Routes `tf.keras` to tf-keras (Keras 2), which tensorflow-recommenders and keras-tuner 1.3.5 need.

TensorFlow binds `tf.keras` lazily, on first attribute access, reading `TF_USE_LEGACY_KERAS` at that moment.
Setting the variable before that access is therefore enough even if the caller imported tensorflow first; if
`tf.keras` was already bound to Keras 3, nothing can re-bind it in this process and we say so.
"""

import os


class KerasVersionError(ImportError):
    """tf.keras is bound to Keras 3 in this process, so tfrec's tf-keras models cannot work here."""


_FIX = (
    "tfrec builds tf-keras (Keras 2) models, as tensorflow-recommenders requires. In this process `tf.keras` was "
    "already bound to Keras 3 ({module}) before tfrec was imported. Fix: import tfrec before touching tf.keras, or "
    "set TF_USE_LEGACY_KERAS=1 in the environment before starting Python (e.g. `export TF_USE_LEGACY_KERAS=1`), "
    "and make sure the `tf-keras` package is installed (`pip install tf-keras~=2.21.0`)."
)


def use_legacy_keras() -> None:
    """Sets TF_USE_LEGACY_KERAS=1 and checks that `tf.keras` resolves to tf-keras, raising KerasVersionError if not."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    try:
        import tf_keras  # noqa: F401  (must be importable; fail with our message, not TensorFlow's)
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise KerasVersionError(
            "tfrec needs the `tf-keras` package (Keras 2 for TensorFlow 2.21): pip install 'tf-keras~=2.21.0'"
        ) from exc
    import tensorflow as tf

    dense_module = tf.keras.layers.Dense.__module__
    if not dense_module.startswith("tf_keras"):
        raise KerasVersionError(_FIX.format(module=dense_module))
