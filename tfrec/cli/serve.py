"""`tfrec serve`: a TF Serving-compatible gRPC model server (PredictionService + ModelService) for SavedModels in
TF Serving's layout, with TF Serving's flags. `--backend ours` (the default) runs tfrec.server; `--backend tfserving`
runs `tensorflow_model_server` with the same flags when it is on PATH."""

from __future__ import annotations

import sys

from tfrec.cli.common import serve_until_signalled


def _flag(parser, name: str, **kwargs) -> None:
    """A TF Serving-spelled flag (--model_base_path) that also accepts tfrec's dashed spelling (--model-base-path)."""
    names = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
    parser.add_argument(*names, dest=name, **kwargs)


def register(commands) -> None:
    sv = commands.add_parser(
        "serve",
        help="serve SavedModels over TF Serving's gRPC API",
        description="Serves <base>/<name>/<version>/ SavedModels over TF Serving's PredictionService and "
        "ModelService (Predict, Classify, Regress, MultiInference, GetModelMetadata, GetModelStatus, "
        "HandleReloadConfigRequest), loading new versions as they appear. Give --model_config_file, or "
        "--model_base_path (the directory holding the versions) with --model_name.",
    )
    _flag(sv, "model_config_file", help="TF Serving models.config (text ModelServerConfig)")
    _flag(sv, "model_base_path", help="one model: the directory holding its version directories")
    _flag(sv, "model_name", default="default", help="name of the --model_base_path model (default: default)")
    _flag(sv, "port", type=int, default=8500, help="gRPC port (default: 8500; 0: any free port)")
    _flag(sv, "host", default="127.0.0.1", help="gRPC (and metrics) listen address (default: 127.0.0.1)")
    _flag(sv, "enable_batching", action="store_true", help="merge concurrent requests into batches")
    _flag(sv, "batching_parameters_file", help="text BatchingParameters (implies --enable_batching)")
    _flag(sv, "file_system_poll_wait_seconds", type=float, default=1.0,
          help="seconds between polls of the base paths for new versions (0: load once; default: 1)")
    _flag(sv, "monitoring_port", type=int, help="serve Prometheus metrics over HTTP on this port")
    _flag(sv, "ssl_cert_file", help="TLS certificate (PEM); with --ssl_key_file the gRPC port speaks TLS")
    _flag(sv, "ssl_key_file", help="TLS private key (PEM)")
    _flag(sv, "ssl_ca_file", help="require client certificates signed by this CA (PEM)")
    _flag(sv, "max_request_bytes", type=int, default=64 * 1024 * 1024,
          help="largest request accepted; larger ones get RESOURCE_EXHAUSTED (default: 64 MiB)")
    _flag(sv, "grace_seconds", type=float, default=10.0,
          help="on SIGTERM/SIGINT, how long requests in flight may take to finish (default: 10)")
    _flag(sv, "tensorflow_intra_op_parallelism", type=int, default=0,
          help="threads one TensorFlow op may use (default 0: one per core)")
    _flag(sv, "tensorflow_inter_op_parallelism", type=int, default=0,
          help="TensorFlow ops run at once (default 0: one per core)")
    _flag(sv, "backend", choices=["ours", "tfserving"], default="ours",
          help="ours: tfrec's server; tfserving: exec tensorflow_model_server with the same flags")
    sv.set_defaults(handler=run_serve)


def _check(args) -> None:
    if bool(args.model_config_file) == bool(args.model_base_path):
        raise ValueError("give either --model_config_file or --model_base_path (with --model_name)")
    if bool(args.ssl_cert_file) != bool(args.ssl_key_file):
        raise ValueError("TLS needs both --ssl_cert_file and --ssl_key_file")


def server_options(args):
    """ServerOptions and the model config for parsed `tfrec serve` arguments."""
    from tfrec.server.config import load_batching_parameters, load_model_server_config, single_model_config
    from tfrec.server.server import ServerOptions

    _check(args)
    config = (load_model_server_config(args.model_config_file) if args.model_config_file
              else single_model_config(args.model_name, args.model_base_path))
    batching = None
    if args.enable_batching or args.batching_parameters_file:
        batching = load_batching_parameters(args.batching_parameters_file)
    options = ServerOptions(
        host=args.host, port=args.port, batching=batching, poll_interval_s=args.file_system_poll_wait_seconds,
        monitoring_port=args.monitoring_port, ssl_cert_file=args.ssl_cert_file, ssl_key_file=args.ssl_key_file,
        ssl_ca_file=args.ssl_ca_file, max_request_bytes=args.max_request_bytes,
        intra_op_threads=args.tensorflow_intra_op_parallelism, inter_op_threads=args.tensorflow_inter_op_parallelism)
    return config, options


def _tfserving(args) -> int:
    from tfrec.server.tfserving import exec_tfserving

    _check(args)
    print("tfrec serve: tensorflow_model_server listens on all interfaces; --host is not passed on", file=sys.stderr)
    exec_tfserving(port=args.port, model_config_file=args.model_config_file, model_name=args.model_name,
                   model_base_path=args.model_base_path, enable_batching=args.enable_batching,
                   batching_parameters_file=args.batching_parameters_file,
                   poll_wait_seconds=args.file_system_poll_wait_seconds, monitoring_port=args.monitoring_port,
                   ssl_cert_file=args.ssl_cert_file, ssl_key_file=args.ssl_key_file, ssl_ca_file=args.ssl_ca_file,
                   max_request_bytes=args.max_request_bytes, intra_op_threads=args.tensorflow_intra_op_parallelism,
                   inter_op_threads=args.tensorflow_inter_op_parallelism)
    return 0  # not reached: exec replaced the process


def run_serve(args) -> int:
    if args.backend == "tfserving":
        return _tfserving(args)
    from tfrec.server.server import build_server

    config, options = server_options(args)
    server, port = build_server(config, options.host, options.port, options)
    loaded = ", ".join(f"{name} {versions}" for name, versions in sorted(server.manager.loaded().items()))
    print(f"tfrec serve: gRPC on {options.host}:{port}{' (TLS)' if options.ssl_cert_file else ''}; "
          f"models: {loaded or 'none loaded yet'}", flush=True)
    if server.monitoring_port is not None:
        print(f"tfrec serve: metrics on http://{options.host}:{server.monitoring_port}/monitoring/prometheus/metrics",
              flush=True)

    serve_until_signalled(server, args.grace_seconds, "serve")
    return 0
