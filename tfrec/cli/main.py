"""Entry point of the `tfrec` command: builds the parser from each command module and turns user errors into
one-line messages (exit status 2) instead of tracebacks."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

USER_ERRORS = (ValueError, KeyError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError)


def build_parser() -> argparse.ArgumentParser:
    from tfrec.cli import (ab, data, demo, distil, evaluate, export, online, online_update, price, query, search, serve,
                           train, tune)

    parser = argparse.ArgumentParser(
        prog="tfrec",
        description="TensorFlow models and serving for e-commerce search and recommendation.",
    )
    parser.add_argument("--traceback", action="store_true", help="show the full traceback on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (data, train, tune, distil, evaluate, export, query, serve, search, online, online_update, ab, price,
                   demo):
        module.register(commands)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    import tfrec  # noqa: F401  (sets up tf-keras before any command imports TensorFlow models)

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except USER_ERRORS as exc:
        if args.traceback:
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"tfrec: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tfrec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
