"""Servable.run calls a signature with its inputs as the graph's flat input list (skipping the per-call binding of
keyword arguments); it must answer exactly as the structured call `fn(**tensors)` does, and fall back to it."""

import numpy as np
import tensorflow as tf

from tfrec.server.servable import Servable


def _structured(servable, signature, inputs):
    fn = servable.signatures[signature]
    specs = fn.structured_input_signature[1]
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v, specs[k].dtype) for k, v in inputs.items()}).items()}


def _assert_same(got, want):
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name].dtype == want[name].dtype and np.array_equal(got[name], want[name]), name


def test_flat_calls_answer_as_the_structured_call(tiny_versions):
    servable = Servable("tiny", 3, tiny_versions[3])
    assert servable._flat_order["serving_default"] is not None  # the fast path is taken
    # Inputs of different dtypes, given in the other order than the signature declares them.
    inputs = {"word": np.array([b"a", b"bbb", "\u00e9t\u00e9".encode()], dtype=object),
              "x": np.array([1.0, -2.0, 0.5], np.float32)}
    got = servable.run("serving_default", inputs)
    _assert_same(got, _structured(servable, "serving_default", inputs))
    assert got["scores"].tolist() == [3.0, -6.0, 1.5] and got["length"].tolist() == [1, 3, 5]
    examples = {"examples": np.array([tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(float_list=tf.train.FloatList(value=[2.0]))})).SerializeToString()], dtype=object)}
    _assert_same(servable.run("serving_examples", examples), _structured(servable, "serving_examples", examples))


def test_a_flat_call_that_does_not_answer_like_the_signature_falls_back_for_good(tiny_versions):
    servable = Servable("tiny", 2, tiny_versions[2])
    fn = servable.signatures["serving_default"]

    class Odd:  # a TensorFlow whose flat call answered a list instead of the output mapping
        structured_input_signature = fn.structured_input_signature
        structured_outputs = fn.structured_outputs
        captured_inputs = ()

        @staticmethod
        def _call_flat(tensors, captured):
            return [tensors[0]]

        def __call__(self, **kwargs):
            return fn(**kwargs)

    servable.signatures["serving_default"] = Odd()
    inputs = {"x": np.array([1.0], np.float32), "word": np.array([b"ab"], dtype=object)}
    assert servable.run("serving_default", inputs)["scores"].tolist() == [2.0]
    assert servable._flat_order["serving_default"] is None
