"""PredictionClient: numpy in and out over real gRPC, inputs cast to the signature's dtypes (read with
GetModelMetadata), server errors surface as the RpcError with the server's status."""

import grpc
import numpy as np
import pytest

from tfrec.server import build_server, single_model_config
from tfrec.server.client import PredictionClient
from tiny_serving import add_version


@pytest.fixture(scope="module")
def served(tiny_versions, tmp_path_factory):
    base = tmp_path_factory.mktemp("client_models") / "tiny"
    add_version(tiny_versions, str(base), 1, scale=2)
    server, port = build_server(single_model_config("tiny", str(base)), host="127.0.0.1", port=0)
    client = PredictionClient(f"127.0.0.1:{port}")
    yield client
    client.close()
    server.stop(0)


def test_python_values_are_cast_to_the_signature_dtypes(served):
    out = served.predict("tiny", {"x": [1, 2, 3], "word": ["a", "bb", "café"]})  # ints for a float32 input
    np.testing.assert_allclose(out["scores"], [2.0, 4.0, 6.0])
    assert out["length"].tolist() == [1, 2, 5]  # bytes, as TF counts them
    assert [w.decode() for w in out["echo"]] == ["a", "bb", "café"]
    import tensorflow as tf

    assert served.input_dtypes("tiny") == {"x": tf.float32, "word": tf.string}


def test_output_filter_and_server_errors(served):
    assert set(served.predict("tiny", {"x": [1.0], "word": ["a"]}, output_filter=["scores"])) == {"scores"}
    with pytest.raises(grpc.RpcError) as error:
        served.predict("tiny", {"x": [1.0]})
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "word" in error.value.details()
    with pytest.raises(grpc.RpcError) as error:
        served.predict("no-such-model", {"x": [1.0]})
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(KeyError, match="no signature 'nope'"):
        served.predict("tiny", {"x": [1.0], "word": ["a"]}, signature="nope")
