"""`tfrec ab report EXPERIMENT --events PATH` and `tfrec ab assign EXPERIMENT USER...`: A/B experiments."""

from __future__ import annotations

DEFAULT_CONFIG = "configs/experiments.yaml"


def register(commands) -> None:
    ab = commands.add_parser("ab", help="A/B experiments: reports and assignments",
                             description="A/B experiments declared in a YAML file (default configs/experiments.yaml).")
    actions = ab.add_subparsers(dest="ab_command", metavar="ACTION", required=True)
    report = actions.add_parser(
        "report",
        help="per-arm metrics, significance test and verdict",
        description="Per-arm impressions, CTR, add-to-cart rate, conversion rate and revenue per request with "
        "user-clustered confidence intervals, every arm against the control (z-test, P(better)), and a verdict on "
        "the experiment's primary metric. Events: a CSV / JSON lines / Parquet file, a dataset directory or an "
        "SQLite event log.",
    )
    report.add_argument("experiment", metavar="EXPERIMENT", help="experiment name in the config")
    report.add_argument("--events", required=True, help="events file, dataset directory or event log (.db)")
    report.add_argument("--config", default=DEFAULT_CONFIG, help=f"experiments YAML (default: {DEFAULT_CONFIG})")
    report.add_argument("--plot", metavar="PNG", help="also write cumulative metrics over time to this PNG")
    report.add_argument("--bucket", choices=("auto", "hour", "day"), default="auto", help="time step of the plot")
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    report.add_argument("--arm-source", choices=("auto", "recorded", "assignment"), default="auto",
                        help="an event's arm: as recorded, else assigned (auto); only recorded; or always assigned")
    report.set_defaults(handler=run_report)
    assign = actions.add_parser("assign", help="the arm of each user id",
                                description="Prints each user's arm (the stable hash assignment).")
    assign.add_argument("experiment", metavar="EXPERIMENT")
    assign.add_argument("users", nargs="+", metavar="USER_ID")
    assign.add_argument("--config", default=DEFAULT_CONFIG, help=f"experiments YAML (default: {DEFAULT_CONFIG})")
    assign.set_defaults(handler=run_assign)


def run_report(args) -> int:
    from tfrec.online.ab_events import load_events
    from tfrec.online.ab_report import ab_report
    from tfrec.online.experiments import load_experiments

    experiment = load_experiments(args.config).get(args.experiment)
    events = load_events(args.events)
    report = ab_report(experiment, events, arm_source=args.arm_source)
    print(report.to_json() if args.json else report.format_text())
    if args.plot:
        from tfrec.online.ab_plot import plot_over_time

        plot_over_time(experiment, events, args.plot, bucket=args.bucket, arm_source=args.arm_source)
        if not args.json:
            print(f"plot: {args.plot}")
    return 0


def run_assign(args) -> int:
    from tfrec.online.experiments import assign_many, load_experiments

    experiment = load_experiments(args.config).get(args.experiment)
    for user, arm in zip(args.users, assign_many(experiment, args.users)):
        print(f"{user}\t{arm}")
    return 0
