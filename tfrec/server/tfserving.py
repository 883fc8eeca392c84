"""`tfrec serve --backend tfserving`: the same flags handed to TF Serving's own `tensorflow_model_server`, when it
is on PATH. Flags TF Serving spells differently become its files: TLS → an `--ssl_config_file` (SSLConfig text),
the metrics port → `--rest_api_port` with a `--monitoring_config_file` exposing /monitoring/prometheus/metrics,
the request size limit → `--grpc_channel_arguments=grpc.max_receive_message_length=N`.
TF Serving has no flag for the gRPC listen address: it listens on all interfaces.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import List, Optional

BINARY = "tensorflow_model_server"
METRICS_PATH = "/monitoring/prometheus/metrics"


def find_tfserving(binary: str = BINARY) -> str:
    """Path of tensorflow_model_server, or FileNotFoundError saying how to get it."""
    path = shutil.which(binary)
    if path is None:
        raise FileNotFoundError(
            f"{binary} is not on PATH: install TensorFlow Serving (https://www.tensorflow.org/tfx/serving/setup, "
            "or the tensorflow/serving Docker image) or use --backend ours")
    return path


def _text(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def tfserving_command(binary: str, port: int, workdir: str, model_config_file: Optional[str] = None,
                      model_name: Optional[str] = None, model_base_path: Optional[str] = None,
                      enable_batching: bool = False, batching_parameters_file: Optional[str] = None,
                      poll_wait_seconds: Optional[float] = None, monitoring_port: Optional[int] = None,
                      ssl_cert_file: Optional[str] = None, ssl_key_file: Optional[str] = None,
                      ssl_ca_file: Optional[str] = None, max_request_bytes: Optional[int] = None,
                      intra_op_threads: int = 0, inter_op_threads: int = 0) -> List[str]:
    """The tensorflow_model_server argv for tfrec serve's flags; helper files (TLS, monitoring) go to `workdir`."""
    argv = [binary, f"--port={port}"]
    if model_config_file:
        argv.append(f"--model_config_file={os.path.abspath(model_config_file)}")
    else:
        argv += [f"--model_name={model_name}", f"--model_base_path={os.path.abspath(model_base_path)}"]
    if enable_batching or batching_parameters_file:
        argv.append("--enable_batching=true")
    if batching_parameters_file:
        argv.append(f"--batching_parameters_file={os.path.abspath(batching_parameters_file)}")
    if poll_wait_seconds is not None:
        argv.append(f"--file_system_poll_wait_seconds={max(1, int(round(poll_wait_seconds)))}")
    if monitoring_port is not None:
        path = os.path.join(workdir, "monitoring.config")
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"prometheus_config {{\n  enable: true\n  path: {_text(METRICS_PATH)}\n}}\n")
        argv += [f"--rest_api_port={monitoring_port}", f"--monitoring_config_file={path}"]
    if ssl_cert_file or ssl_key_file:
        if not (ssl_cert_file and ssl_key_file):
            raise ValueError("TLS needs both --ssl_cert_file and --ssl_key_file")
        lines = [f"server_key: {_text(_read(ssl_key_file))}", f"server_cert: {_text(_read(ssl_cert_file))}"]
        if ssl_ca_file:
            lines += [f"custom_ca: {_text(_read(ssl_ca_file))}", "client_verify: true"]
        path = os.path.join(workdir, "ssl.config")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(path, 0o600)
        argv.append(f"--ssl_config_file={path}")
    if max_request_bytes:
        argv.append(f"--grpc_channel_arguments=grpc.max_receive_message_length={int(max_request_bytes)}")
    if intra_op_threads:
        argv.append(f"--tensorflow_intra_op_parallelism={int(intra_op_threads)}")
    if inter_op_threads:
        argv.append(f"--tensorflow_inter_op_parallelism={int(inter_op_threads)}")
    return argv


def exec_tfserving(**flags) -> None:
    """Replaces this process with tensorflow_model_server run with `flags` (see tfserving_command)."""
    binary = find_tfserving()
    argv = tfserving_command(binary, workdir=tempfile.mkdtemp(prefix="tfrec-serve-"), **flags)
    os.execv(binary, argv)
