"""`import tfrec` gives tf-keras whatever was imported first, and refuses clearly when Keras 3 already owns tf.keras."""

import os
import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_tensorflow_imported_first_still_gets_tf_keras():
    proc = _run(
        "import tensorflow as tf\n"
        "import tfrec\n"
        "print(tf.keras.layers.Dense.__module__)\n"
        "import tensorflow_recommenders as tfrs\n"
        "print(isinstance(tfrs.models.Model(), tf.keras.Model))\n"
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    assert lines[0].startswith("tf_keras.") and lines[1] == "True"


def test_keras3_already_bound_is_a_clear_error():
    proc = _run("import tensorflow as tf\ntf.keras.layers.Dense\nimport tfrec\n")
    assert proc.returncode != 0
    assert "KerasVersionError" in proc.stderr
    assert "already bound to Keras 3" in proc.stderr and "TF_USE_LEGACY_KERAS=1" in proc.stderr


def test_broken_scann_install_gives_an_actionable_error(tmp_path):
    # A ScaNN wheel built for another TensorFlow fails inside tensorflow-recommenders' import with NotFoundError.
    fake = tmp_path / "scann"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import tensorflow as tf\n"
        "raise tf.errors.NotFoundError(None, None, 'scann/scann_ops/cc/_scann_ops.so: undefined symbol: absl')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["PYTHONPATH"] = str(tmp_path)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    proc = subprocess.run(
        [sys.executable, "-c", "import tfrec.models.ctr"], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr and "pip uninstall scann" in proc.stderr
