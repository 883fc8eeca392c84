"""Imports tensorflow-recommenders, turning the known broken-ScaNN failure into an actionable error.

tensorflow-recommenders imports `scann.scann_ops` whenever the `scann` package is installed and only tolerates an
ImportError. A ScaNN wheel built against another TensorFlow raises NotFoundError (undefined symbol) instead, which
would make every tfrec model import fail with a C++ symbol name. Seen here with scann 1.4.2 and TensorFlow 2.21.
"""

import tensorflow as tf

try:
    import tensorflow_recommenders as tfrs
except tf.errors.NotFoundError as exc:  # pragma: no cover - depends on what else is installed
    if "scann" not in str(exc):
        raise
    raise ImportError(
        "tensorflow-recommenders could not import because the installed `scann` package was built for another "
        f"TensorFlow version ({exc}). Uninstall it (`pip uninstall scann`) or install a ScaNN release built for "
        f"TensorFlow {tf.__version__}; tfrec does not need ScaNN's TensorFlow ops."
    ) from None

__all__ = ["tfrs"]
