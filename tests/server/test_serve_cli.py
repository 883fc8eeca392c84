"""`tfrec serve`: flags → server options, the tfserving backend's command line, TLS, and the command itself
(a subprocess: serves, answers, stops on SIGTERM)."""

import argparse
import os
import shutil
import signal
import subprocess
import sys

import grpc
import pytest
import tensorflow as tf

from tfrec.cli import serve
from tfrec.server import build_server, single_model_config
from tfrec.server.tfserving import tfserving_command
from tiny_serving import Client, add_version, predict_request, rpc_error

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _parse(*argv):
    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    return parser.parse_args(["serve", *argv])


def test_flags_become_server_options(tmp_path):
    params = tmp_path / "batching.txt"
    params.write_text("max_batch_size { value: 16 } batch_timeout_micros { value: 500 }")
    args = _parse("--model_base_path", "/m/ctr", "--model-name", "ctr", "--port", "0", "--batching_parameters_file",
                  str(params), "--file_system_poll_wait_seconds", "2", "--max_request_bytes", "1000",
                  "--tensorflow_intra_op_parallelism", "2", "--tensorflow-inter-op-parallelism", "1")
    config, options = serve.server_options(args)
    (model,) = config.model_config_list.config
    assert (model.name, model.base_path) == ("ctr", "/m/ctr")
    assert options.batching.max_batch_size == 16 and options.batching.batch_timeout_micros == 500
    assert (options.host, options.port, options.poll_interval_s, options.max_request_bytes) == ("127.0.0.1", 0, 2, 1000)
    assert (options.intra_op_threads, options.inter_op_threads) == (2, 1)
    defaults = serve.server_options(_parse("--model_base_path", "/m", "--enable_batching"))[1].batching
    assert defaults.max_batch_size == 1000
    with pytest.raises(ValueError, match="either --model_config_file or --model_base_path"):
        serve.server_options(_parse("--port", "1"))
    with pytest.raises(ValueError, match="both --ssl_cert_file and --ssl_key_file"):
        serve.server_options(_parse("--model_base_path", "/m", "--ssl_cert_file", "c.pem"))


def test_tensorflow_thread_pools_are_sized_before_tensorflow_starts_or_refused():
    from tfrec.server.config import ConfigError
    from tfrec.server.server import apply_tf_threads

    with pytest.raises(ConfigError, match="--tensorflow_inter_op_parallelism: must be >= 0"):
        apply_tf_threads(0, -1)
    tf.constant(1.0) + 1.0  # TensorFlow's runtime is up: its pools are fixed now
    current = tf.config.threading.get_intra_op_parallelism_threads()
    apply_tf_threads(current, 0)  # the size it already has is fine
    with pytest.raises(ConfigError, match="--tensorflow_intra_op_parallelism=7: TensorFlow already runs"):
        apply_tf_threads(7 if current != 7 else 5, 0)


def test_tfserving_backend(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="tensorflow_model_server is not on PATH"):
        serve.run_serve(_parse("--model_base_path", "/m", "--backend", "tfserving"))
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("CERT\n")
    key.write_text('KEY "x"\n')
    argv = tfserving_command("/bin/tms", 8500, str(tmp_path), model_config_file="/s/models.config",
                             batching_parameters_file="/s/b.txt", poll_wait_seconds=5, monitoring_port=8501,
                             ssl_cert_file=str(cert), ssl_key_file=str(key), max_request_bytes=1024,
                             intra_op_threads=2, inter_op_threads=1)
    assert argv[:3] == ["/bin/tms", "--port=8500", "--model_config_file=/s/models.config"]
    assert {"--enable_batching=true", "--batching_parameters_file=/s/b.txt", "--file_system_poll_wait_seconds=5",
            "--rest_api_port=8501", "--grpc_channel_arguments=grpc.max_receive_message_length=1024",
            "--tensorflow_intra_op_parallelism=2", "--tensorflow_inter_op_parallelism=1"} <= set(argv)
    ssl = (tmp_path / "ssl.config").read_text()
    assert 'server_cert: "CERT\\n"' in ssl and 'server_key: "KEY \\"x\\"\\n"' in ssl
    assert "prometheus_config" in (tmp_path / "monitoring.config").read_text()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
def test_tls(tiny_versions, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    add_version(tiny_versions, tmp_path / "tiny", 1)
    server, port = build_server(single_model_config("tiny", str(tmp_path / "tiny")), poll_interval_s=0,
                                ssl_cert_file=str(cert), ssl_key_file=str(key))
    secure = Client(port, grpc.ssl_channel_credentials(cert.read_bytes()),
                    options=[("grpc.ssl_target_name_override", "localhost")])
    assert tf.make_ndarray(secure.predict.Predict(predict_request(x=[2.0]), timeout=20).outputs["scores"]) == [2.0]
    plain = Client(port)
    assert rpc_error(plain.predict.Predict, predict_request(), timeout=5).code() == grpc.StatusCode.UNAVAILABLE
    secure.close()
    plain.close()
    server.stop(grace=1)


def test_serve_command_serves_and_stops_on_sigterm(tiny_versions, tmp_path):
    add_version(tiny_versions, tmp_path / "tiny", 2)
    code = ("import argparse, sys; from tfrec.cli import serve; p = argparse.ArgumentParser(); "
            "serve.register(p.add_subparsers()); a = p.parse_args(sys.argv[1:]); sys.exit(a.handler(a))")
    env = dict(os.environ, PYTHONPATH=REPO, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen([sys.executable, "-c", code, "serve", "--model_base_path", str(tmp_path / "tiny"),
                                "--model_name", "tiny", "--port", "0", "--tensorflow_intra_op_parallelism", "1",
                                "--tensorflow_inter_op_parallelism", "1"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline()
        assert "gRPC on 127.0.0.1:" in line and "tiny [2]" in line, line
        client = Client(int(line.split("127.0.0.1:")[1].split(";")[0]))
        assert tf.make_ndarray(client.predict.Predict(predict_request(x=[1.0]), timeout=20).outputs["scores"]) == [2.0]
        client.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
