"""`tfrec profile USER` / `tfrec profile --all`: user profiles built from behaviour in an event log or data files."""

from __future__ import annotations

import json
import os

DEFAULT_CONFIG = "configs/online.yaml"


def register(commands) -> None:
    p = commands.add_parser(
        "profile",
        help="user profiles from behaviour",
        description="Prints one user's profile (top categories and brands with weights, price band, activity, "
        "predicted interests) as JSON, or with --all writes every user's profile as JSON lines. Events come from "
        "the service's SQLite event log or from canonical data files (a dataset directory or an events file).",
    )
    p.add_argument("user", nargs="?", metavar="USER", help="the user_id to profile")
    p.add_argument("--all", action="store_true", help="profile every user (writes --out)")
    p.add_argument("--events", required=True, help="event log (.sqlite), dataset directory or events file")
    p.add_argument("--catalog", help="dataset directory or catalog file (default: --events when it is a directory)")
    p.add_argument("--out", help="where --all writes (default: profiles.output in the config)")
    p.add_argument("--config", default=DEFAULT_CONFIG, help=f"online config YAML (default: {DEFAULT_CONFIG})")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=run_profile)


def run_profile(args) -> int:
    from tfrec.config import apply_overrides, from_dict, parse_overrides
    from tfrec.online.config import OnlineConfig, load_online_config
    from tfrec.online.event_sources import read_events, read_item_metadata
    from tfrec.online.profiles import CategoryCooccurrence, build_all_profiles, build_profile, fold_states

    if bool(args.user) == bool(args.all):
        raise ValueError("give either a USER or --all")
    overrides = parse_overrides(args.set)
    if os.path.exists(args.config) or args.config != DEFAULT_CONFIG:
        config = load_online_config(args.config, overrides)
    else:  # run outside the repository: the defaults, plus any --set
        config = from_dict(OnlineConfig, apply_overrides({}, overrides), "--set")
    catalog = args.catalog or (args.events if os.path.isdir(args.events) else None)
    if catalog is None:
        raise ValueError("--catalog is required when --events is not a dataset directory")
    items = read_item_metadata(catalog)
    events = read_events(args.events)
    top_k, predicted = config.profiles.top_k, config.profiles.predicted_interests
    if args.all:
        out = args.out or config.profiles.output
        n = build_all_profiles(events, items, out, config.user_state, top_k, predicted, progress=not args.quiet)
        print(f"wrote {n} profiles to {out}")
        return 0
    store = fold_states(events, items, config.user_state, progress=not args.quiet)
    state = store.get(args.user)
    if state.is_empty:
        raise ValueError(f"user {args.user!r} has no events in {args.events}")
    cooccurrence = CategoryCooccurrence.from_states(store.get(u) for u in store.user_ids())
    profile = build_profile(state, cooccurrence=cooccurrence, top_k=top_k, predicted=predicted)
    print(json.dumps(profile.to_dict(), indent=2, ensure_ascii=False))
    return 0
