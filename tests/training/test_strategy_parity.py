"""One training step under MirroredStrategy over two logical CPUs equals the same step without a strategy, for the
ranker, the logistic CTR and the intent model (loss reductions, weight penalties and in-batch negatives are correct
per replica), and one ranker step under `mixed_float16` (the GPU path's policy, set explicitly on CPU) trains with
loss scaling and float32 outputs. The steps run in strategy_parity_program.py, its own process, because the CPU must
be split into logical devices before TensorFlow starts."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

PROGRAM = Path(__file__).with_name("strategy_parity_program.py")


@pytest.fixture(scope="module")
def steps(tmp_path_factory):
    out = tmp_path_factory.mktemp("parity") / "steps.json"
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "TFREC_BERT_PACKAGE": "none",
           "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(PROGRAM), str(out)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("model", ["ranker", "ctr", "intent"])
def test_two_replicas_take_the_same_step_as_one(steps, model):
    default, mirrored = steps[model]["default"], steps[model]["mirrored"]
    assert mirrored["replicas"] == 2
    assert np.isfinite(default["loss"]) and default["loss"] > 0
    np.testing.assert_allclose(mirrored["loss"], default["loss"], rtol=1e-5, err_msg=f"{model} loss")
    assert len(mirrored["updates"]) == len(default["updates"])
    moved = 0
    for i, (one, two) in enumerate(zip(default["updates"], mirrored["updates"])):
        np.testing.assert_allclose(np.array(two), np.array(one), rtol=1e-5, atol=1e-5,
                                   err_msg=f"{model} variable {i}")
        moved += bool(np.any(np.array(one) != 0))
    assert moved >= len(default["updates"]) // 2, f"{model}: the step changed only {moved} variables"


def test_mixed_float16_step_scales_the_loss_and_keeps_float32_outputs(steps):
    mixed = steps["mixed_precision"]
    assert mixed["compute_dtype"] == "float16"  # the trunk really ran in float16
    assert mixed["optimizer"].startswith("LossScaleOptimizer") and mixed["loss_scale"] > 1
    assert mixed["output_dtypes"] == ["float32"]
    assert np.isfinite(mixed["loss"]) and mixed["finite_weights"]
