"""Arguments shared by commands that read a YAML config."""

from __future__ import annotations


def add_config_arguments(parser, default: str, run_dir_help: str = "", example: str = "training.epochs=2") -> None:
    """--config, --set (`example` in its help) and --run-dir; with `run_dir_help` --run-dir is required and described
    by it (and is not a config override)."""
    parser.add_argument("--config", default=default, help=f"YAML config (default: {default})")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config value, e.g. --set {example} (repeatable; VALUE is YAML)",
    )
    parser.add_argument("--run-dir", required=bool(run_dir_help),
                        help=run_dir_help or "where to write the run (overrides run_dir in the config)")


def config_overrides(args) -> dict:
    from tfrec.config import parse_overrides

    overrides = parse_overrides(args.set)
    if getattr(args, "run_dir", None):
        overrides["run_dir"] = args.run_dir
    return overrides


def serve_until_signalled(server, grace_seconds: float, name: str) -> None:
    """Blocks until `server` (anything with stop(grace) and wait_for_termination(timeout)) has stopped; SIGTERM or
    SIGINT stops it gracefully, letting requests in flight finish for up to `grace_seconds`."""
    import signal
    import threading

    def shutdown(signum, frame):
        print(f"tfrec {name}: stopping (waiting up to {grace_seconds:g}s for requests in flight)", flush=True)
        threading.Thread(target=server.stop, args=(grace_seconds,), daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    while not server.wait_for_termination(0.5):
        pass
