"""tfrec: TensorFlow (tf-keras) models and serving for e-commerce search and recommendation.

Importing tfrec routes `tf.keras` to tf-keras (Keras 2) first, so every model here is a tf-keras model whether or not
the caller imported tensorflow before us.
"""

from tfrec._keras_env import KerasVersionError, use_legacy_keras

use_legacy_keras()

__version__ = "0.1.0"

__all__ = ["KerasVersionError", "__version__"]
