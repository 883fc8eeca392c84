"""`tfrec online-update --model ctr|ranker`: continue the serving model on new traffic, export it if not worse."""

from __future__ import annotations

DEFAULT_CONFIG = "configs/online_update.yaml"
EXIT_BLOCKED = 1  # the update ran, the guardrail kept the serving version (cron can alert on it)


def register(commands) -> None:
    p = commands.add_parser(
        "online-update",
        help="warm-start a serving model on new events; export it only if not worse (guardrail)",
        description="Finds the serving version of the model (the newest, a number or a models.config label), "
        "reads the event log from the offset its model card records, joins the new impressions with the run's "
        "catalog and users, trains the run's model warm-started from that version on all but the newest slice, "
        "scores it and the serving SavedModel on the newest slice, and exports the next version only when it is "
        "not worse on any configured metric (AUC and log loss by default); a model server polling the base path "
        "then loads it. Prints the decision table. Exit status: 0 promoted, 1 blocked by the guardrail, 2 an error.",
    )
    p.add_argument("--model", required=True, choices=("ctr", "ranker"), help="which model to update")
    p.add_argument("--config", default=DEFAULT_CONFIG, help=f"YAML config (default: {DEFAULT_CONFIG})")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set ranker.run_dir=runs/ranker2 (repeatable; VALUE is YAML)")
    p.add_argument("--quiet", action="store_true", help="no Keras progress bars")
    p.set_defaults(handler=run_online_update_command)


def run_online_update_command(args) -> int:
    from tfrec.config import parse_overrides
    from tfrec.online.online_update import load_online_update_config, run_online_update

    overrides = {**parse_overrides(args.set), "model": args.model}
    if args.quiet:
        overrides["training.verbose"] = 0
    config = load_online_update_config(args.config, overrides)
    result = run_online_update(config)  # prints what it reads, Keras progress and the decision table
    return 0 if result.promoted else EXIT_BLOCKED
