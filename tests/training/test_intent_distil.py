"""`tfrec distil intent` and `model.encoder_layers` on a small random 3-layer BERT checkpoint written here (safetensors,
like a Hugging Face one) and a few hundred synthetic queries: the teacher fine-tunes checkpoint layers [0, 2], the
student keeps the teacher's layer 1 (checkpoint layer 2). The student starts as a copy of the teacher's embeddings,
chosen layer and heads, ends closer to the teacher than it started, and its run directory restores, evaluates and
exports like a trained intent run; bad layer selections are errors naming the key."""

import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfrec.cli.main import main
from tfrec.config import ConfigError

REPO = Path(__file__).resolve().parents[2]
CHECKPOINT_LAYERS, TEACHER_LAYERS, STUDENT_LAYERS = 3, [0, 2], [1]
TINY_INTENT = {"data.dataset.preset": "tiny", "data.dataset.seed": 3, "data.max_queries": 400,
               "training.epochs": 1, "training.batch_size": 32, "training.verbose": 0,
               "training.optimizer.learning_rate": 2e-3,  # a random BERT needs a larger step
               "zero_shot_baseline": False}


def write_random_checkpoint(directory: Path, num_layers: int):
    """A Hugging Face-style BERT directory (config.json, vocab.txt, model.safetensors with PyTorch weight names) of a
    random BERT the size of tfrec's stand-in but `num_layers` deep; returns the TF model whose weights it holds."""
    from safetensors.numpy import save_file
    from transformers import BertConfig, TFBertModel
    from transformers.modeling_tf_pytorch_utils import TransposeType, convert_tf_weight_name_to_pt_weight_name

    from tfrec.text.bert_checkpoint import FALLBACK_CONFIG, fallback_vocabulary

    vocab = fallback_vocabulary()
    config = dict(FALLBACK_CONFIG, num_hidden_layers=num_layers, vocab_size=len(vocab))
    model = TFBertModel(BertConfig.from_dict(config))
    model(model.dummy_inputs, training=False)
    state = {}
    for weight in model.weights:
        name, transpose = convert_tf_weight_name_to_pt_weight_name(weight.name, start_prefix_to_remove="bert.",
                                                                   tf_weight_shape=weight.shape)
        state[name] = np.ascontiguousarray(weight.numpy().T if transpose is not TransposeType.NO else weight.numpy())
    directory.mkdir(parents=True)
    save_file(state, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "vocab.txt").write_text("".join(t + "\n" for t in vocab))
    return model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """(directory, the TF BERT whose weights it holds)."""
    directory = tmp_path_factory.mktemp("bert") / "checkpoint"
    return directory, write_random_checkpoint(directory, CHECKPOINT_LAYERS)


def _train(run_dir: Path, **overrides):
    from tfrec.training.intent_job import load_intent_config, train_intent

    config = load_intent_config(str(REPO / "configs" / "intent.yaml"),
                                {**TINY_INTENT, **overrides, "run_dir": str(run_dir)})
    return train_intent(config, log=lambda *_: None)


def _tfrec(*argv):
    printed, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        code = main([str(a) for a in argv])
    return code, printed.getvalue(), errors.getvalue()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, checkpoint):
    """(teacher run, student run, exported student, what `tfrec distil intent` printed, the teacher as trained)."""
    base = tmp_path_factory.mktemp("distil")
    teacher, student, models = base / "teacher", base / "student", base / "models"
    trained = _train(teacher, **{"model.checkpoint": str(checkpoint[0]), "model.encoder_layers": TEACHER_LAYERS})
    code, printed, errors = _tfrec("distil", "intent", "--teacher", teacher, "--run-dir", student,
                                   "--set", f"layers={STUDENT_LAYERS}", "--set", "epochs=2", "--set", "batch_size=32",
                                   "--set", "verbose=0")
    assert code == 0, errors
    assert _tfrec("export", "--run", student, "--base-dir", models)[0] == 0
    return teacher, student, models / "intent" / "1", printed, trained.model


@pytest.fixture(scope="module")
def teacher_model(runs):
    from tfrec.training.intent_job import restore_intent_run

    _, intents, model = restore_intent_run(str(runs[0]))
    return model, intents


@pytest.fixture(scope="module")
def test_queries(runs):
    from tfrec.training.intent_job import load_intent_config, read_split

    return read_split(load_intent_config(str(runs[0] / "config.yaml")), str(runs[0]), "test")["query"].astype(str)


def test_encoder_layers_load_the_chosen_checkpoint_layers(checkpoint):
    from tfrec.models.intent import IntentModelConfig
    from tfrec.training.intent_job import build_intent_model

    directory, source = checkpoint
    model = build_intent_model(IntentModelConfig(checkpoint=str(directory), encoder_layers=TEACHER_LAYERS), ["a", "b"],
                               init_prototypes=False)
    bert = model.encoder.bert
    assert len(bert.encoder.layer) == 2 and model.encoder.get_config()["layers"] == TEACHER_LAYERS
    pairs = [(bert.embeddings, source.bert.embeddings)] + [
        (bert.encoder.layer[i], source.bert.encoder.layer[j]) for i, j in enumerate(TEACHER_LAYERS)]
    for mine, theirs in pairs:
        for a, b in zip(mine.get_weights(), theirs.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=mine.name)


def test_train_intent_with_encoder_layers_restores_exactly(runs, test_queries):
    from tfrec.training.intent_job import restore_intent_run

    config, _, restored = restore_intent_run(str(runs[0]))
    assert config.model.encoder_layers == TEACHER_LAYERS and len(restored.encoder.bert.encoder.layer) == 2
    queries = tf.constant(test_queries[:20])
    want, got = runs[4](queries), restored(queries)
    for key in ("intent_logits", "slot_logits", "embedding"):
        np.testing.assert_array_equal(got[key].numpy(), want[key].numpy(), err_msg=key)


def test_student_starts_as_the_teachers_embeddings_chosen_layers_and_heads(teacher_model):
    from tfrec.training.intent_distil import make_student

    teacher, intents = teacher_model
    student = make_student(teacher, intents, STUDENT_LAYERS)
    assert len(student.encoder.bert.encoder.layer) == 1
    assert student.config.encoder_layers == [TEACHER_LAYERS[STUDENT_LAYERS[0]]]  # the checkpoint's layer 2
    pairs = [(student.encoder.bert.embeddings, teacher.encoder.bert.embeddings),
             (student.encoder.bert.encoder.layer[0], teacher.encoder.bert.encoder.layer[STUDENT_LAYERS[0]]),
             (student.intent_head, teacher.intent_head), (student.slot_head, teacher.slot_head)]
    for mine, theirs in pairs:
        for a, b in zip(mine.get_weights(), theirs.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=mine.name)


def test_distillation_brings_the_student_closer_to_the_teacher(runs, teacher_model, test_queries):
    """On held-out queries, the distillation loss (the student's distance to the teacher's embedding, intent and
    slot distributions) falls well below the freshly cut student's."""
    from tfrec.models.intent import LossWeights
    from tfrec.training.intent_distil import distillation_loss, make_student, teacher_targets
    from tfrec.training.intent_job import restore_intent_run

    teacher, intents = teacher_model
    _, _, distilled = restore_intent_run(str(runs[1]))
    targets = teacher_targets(teacher, test_queries, [], batch_size=len(test_queries))

    def loss(model):
        texts, *teacher_outputs = targets[0].tensors()
        return float(distillation_loss(model(texts), *teacher_outputs, LossWeights()))

    before, after = loss(make_student(teacher, intents, STUDENT_LAYERS)), loss(distilled)
    assert after < 0.7 * before, (before, after)
    metrics = json.loads((runs[1] / "metrics.json").read_text())
    assert set(metrics["fidelity"]) == {"before", "after"}
    assert metrics["teacher"] == json.loads((runs[0] / "metrics.json").read_text())["test"]
    assert metrics["test"]["intent_top1"] is not None and len(metrics["distillation"]["history"]) == 2
    assert "teacher" in runs[3] and "student" in runs[3] and "intent top-1" in runs[3]


def test_a_distillation_that_only_hurts_keeps_the_undistilled_student(teacher_model, test_queries):
    """The validation loss picks the epoch kept, the student as cut from the teacher (epoch 0) included."""
    from tfrec.training.intent_distil import DistilConfig, distil, make_student

    teacher, intents = teacher_model
    student = make_student(teacher, intents, STUDENT_LAYERS)
    before = student.get_weights()
    wrecking = DistilConfig(layers=STUDENT_LAYERS, epochs=1, batch_size=16, learning_rate=0.5, verbose=0)
    stats = distil(teacher, student, test_queries[:32], [], wrecking, validation=(test_queries[32:48], []),
                   log=lambda *_: None)
    assert stats.best_epoch == 0 and stats.history[0]["val_loss"] > 0
    for a, b in zip(student.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_student_run_has_the_intent_job_layout(runs):
    from tfrec.cli.export import run_job
    from tfrec.training.intent_job import load_intent_config

    student = runs[1]
    assert run_job(str(student)) == "intent"
    assert load_intent_config(str(student / "config.yaml")).model.encoder_layers == [2]
    assert (student / "intents.json").read_text() == (runs[0] / "intents.json").read_text()
    assert (student / "checkpoints" / "best.index").is_file()
    assert sorted(p.name for p in (student / "data").iterdir()) == sorted(p.name for p in (runs[0] / "data").iterdir())
    assert (student / "history.csv").read_text().splitlines()[0] == "epoch,loss,val_loss"
    assert any(n.startswith("events.out.tfevents") for _, _, files in os.walk(student / "logs") for n in files)


def test_student_export_matches_the_restored_model(runs, test_queries):
    from tfrec.export.intent import understand
    from tfrec.training.intent_job import restore_intent_run

    config, _, model = restore_intent_run(str(runs[1]))
    assert len(model.encoder.bert.encoder.layer) == 1
    served = tf.saved_model.load(str(runs[2])).signatures["serving_default"]
    queries = tf.constant(test_queries[:40])
    want, got = understand(model, queries), served(query=queries)
    assert set(got) == set(want)
    for key in ("intent", "top_intents", "brand", "color", "category"):
        np.testing.assert_array_equal(got[key].numpy(), want[key].numpy(), err_msg=key)
    for key in ("intent_probability", "top_probabilities", "embedding", "price_min", "price_max"):
        np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), rtol=1e-4, atol=1e-5, err_msg=key)


def test_evaluate_reports_the_student_run(runs):
    code, printed, errors = _tfrec("evaluate", "--run", runs[1], "--json")
    assert code == 0, errors
    report = json.loads(printed)
    saved = json.loads((runs[1] / "metrics.json").read_text())["test"]
    assert report["intent_top1"] == pytest.approx(saved["intent_top1"], abs=1e-6)
    assert report["title_mrr"] == pytest.approx(saved["title_mrr"], abs=1e-4)


def test_bad_layer_selections_are_errors_naming_the_key(runs, checkpoint, tmp_path):
    from tfrec.training.intent_distil import load_distil_config
    from tfrec.training.intent_job import load_intent_config

    distil_yaml, intent_yaml = str(REPO / "configs" / "intent_distil.yaml"), str(REPO / "configs" / "intent.yaml")
    with pytest.raises(ConfigError, match=r"intent_distil.yaml: layers: layer indices must be distinct"):
        load_distil_config(distil_yaml, {"layers": [0, 0]})
    with pytest.raises(ConfigError, match=r"intent.yaml: model.encoder_layers: .*ascending"):
        load_intent_config(intent_yaml, {"model.checkpoint": str(checkpoint[0]), "model.encoder_layers": [2, 0]})
    with pytest.raises(ConfigError, match=r"model.encoder_layers: .*0\.\.2 \(the checkpoint has 3 layers\)"):
        load_intent_config(intent_yaml, {"model.checkpoint": str(checkpoint[0]), "model.encoder_layers": [0, 3]})
    with pytest.raises(ConfigError, match=r"model.trainable_layers: must be -1 \(all\) or at most the 2 layers"):
        load_intent_config(intent_yaml, {"model.checkpoint": str(checkpoint[0]), "model.encoder_layers": [0, 2],
                                         "model.trainable_layers": 3})
    code, _, errors = _tfrec("distil", "intent", "--teacher", runs[0], "--run-dir", tmp_path / "s",
                             "--set", "layers=[0,5]")
    assert code == 2 and "layers: layer indices must be in 0..1 (the teacher has 2 layers)" in errors, errors
