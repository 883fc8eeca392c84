"""Arguments shared by commands that read a YAML config."""

from __future__ import annotations


def add_config_arguments(parser, default: str) -> None:
    parser.add_argument("--config", default=default, help=f"YAML config (default: {default})")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set training.epochs=2 (repeatable; VALUE is YAML)",
    )
    parser.add_argument("--run-dir", help="where to write the run (overrides run_dir in the config)")


def config_overrides(args) -> dict:
    from tfrec.config import parse_overrides

    overrides = parse_overrides(args.set)
    if getattr(args, "run_dir", None):
        overrides["run_dir"] = args.run_dir
    return overrides
