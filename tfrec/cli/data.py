"""`tfrec data generate` and `tfrec data validate`."""

from __future__ import annotations

import json


def register(commands) -> None:
    data = commands.add_parser("data", help="generate or validate datasets", description="Dataset commands.")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    gen = sub.add_parser(
        "generate",
        help="write the built-in synthetic e-commerce dataset",
        description="Writes catalog, users and events (plus the generator's ground truth) to a dataset directory.",
    )
    gen.add_argument("--out", required=True, help="output directory (created if missing)")
    gen.add_argument("--preset", default="small", help="size: tiny, small, medium (~1M events) or large (~10M)")
    gen.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical data")
    gen.add_argument("--format", choices=("csv", "jsonl", "parquet"), default="csv", help="table file format")
    gen.set_defaults(handler=run_generate)

    val = sub.add_parser(
        "validate",
        help="check a dataset directory against the schema",
        description="Reads catalog/events/users in PATH, reports every bad row (file, row, field) and summary "
        "statistics. Exit status 1 when bad rows were found.",
    )
    val.add_argument("path", help="dataset directory (catalog.<ext>, events.<ext>, optional users.<ext>)")
    val.add_argument(
        "--fail-fast", action="store_true", help="stop at the first bad row instead of listing them all"
    )
    val.add_argument("--json", action="store_true", help="print the statistics as JSON")
    val.set_defaults(handler=run_validate)


def run_generate(args) -> int:
    from tfrec.data.dataset_io import dataset_stats, write_dataset
    from tfrec.data.synthetic import SyntheticConfig, generate

    data = generate(SyntheticConfig.preset(args.preset, seed=args.seed))
    written = write_dataset(data.dataset, args.out, format=args.format)
    data.ground_truth.save(args.out)
    stats = dataset_stats(data.dataset)
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in stats["rows"].items() if v is not None))
    print("  files: " + ", ".join(str(p) for p in written.values()))
    print("  events by type: " + ", ".join(f"{k} {v}" for k, v in stats["event_types"].items() if v))
    return 0


def run_validate(args) -> int:
    from tfrec.data.dataset_io import validate_dataset

    report, stats = validate_dataset(args.path, skip_bad_rows=not args.fail_fast)
    if args.json:
        print(json.dumps({"stats": stats, "skipped_rows": report.total_skipped}, indent=2))
    else:
        rows = ", ".join(f"{k} {v}" for k, v in stats["rows"].items() if v is not None)
        print(f"{args.path}: {rows}")
        print("  events by type: " + ", ".join(f"{k} {v}" for k, v in stats["event_types"].items() if v))
        if stats["time_range"]:
            print(f"  time range: {stats['time_range']['first']} .. {stats['time_range']['last']}")
    if report.total_skipped:
        print(report.summary())
        return 1
    print("  no bad rows")
    return 0
