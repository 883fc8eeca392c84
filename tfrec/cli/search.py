"""`tfrec serve-search`, `tfrec search`, `tfrec recommend` and `tfrec search-calibrate`: the Search / Recommend
service on top of the model server, a client for it, and the ranker's Platt calibration."""

from __future__ import annotations

import json
import sys

from tfrec.cli.common import serve_until_signalled

DEFAULT_ADDRESS = "127.0.0.1:8600"


def register(commands) -> None:
    sv = commands.add_parser(
        "serve-search", help="serve Search/Recommend over gRPC on top of the model server",
        description="Runs tfrec.search.v1.SearchService: query understanding, retrieval, filters, DCN ranking, "
        "calibration, MMR diversity and explanations, calling the models on the model server over gRPC.")
    sv.add_argument("--config", default="configs/search.yaml", help="search config (default: configs/search.yaml)")
    sv.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    sv.add_argument("--host", help="listen address (default: the config's server.host, 127.0.0.1)")
    sv.add_argument("--port", type=int, help="gRPC port (default: the config's server.port; 0: any free port)")
    sv.add_argument("--model-server", help="model server address (overrides model_server)")
    sv.add_argument("--catalog", help="catalog dataset directory or file (overrides catalog)")
    sv.add_argument("--metrics-port", type=int,
                    help="serve Prometheus metrics over HTTP on this port (overrides server.metrics_port; 0: any)")
    sv.add_argument("--online", action="store_true",
                    help="turn on the live loop: LogEvents → event log → user state read by Search/Recommend "
                    "(online.enabled; the event log and store come from online.config)")
    sv.add_argument("--experiments", help="A/B experiments file (overrides ab.experiments)")
    sv.add_argument("--grace-seconds", type=float, default=10.0, help="on SIGTERM/SIGINT, time for requests in flight")
    sv.set_defaults(handler=run_serve_search)

    for name, helptext in (("search", "send a Search request to the search service"),
                           ("recommend", "send a Recommend request to the search service")):
        p = commands.add_parser(name, help=helptext, description=helptext + " and print the ranked products "
                                "with the reasons they are there.")
        if name == "search":
            p.add_argument("query", help="the search text (quote it)")
        p.add_argument("--user", default="", required=name == "recommend", help="shopper id")
        p.add_argument("--k", type=int, help="results wanted (default: the server's)")
        p.add_argument("--address", default=DEFAULT_ADDRESS, help=f"search service (default: {DEFAULT_ADDRESS})")
        p.add_argument("--filter", action="append", default=[], metavar="FIELD=V1,V2",
                       help="keep items whose FIELD is one of the values (brand=Nike, category=Shoes, color=red)")
        p.add_argument("--price-min", type=float)
        p.add_argument("--price-max", type=float)
        p.add_argument("--in-stock", action="store_true", help="only items the catalog lists as in stock")
        p.add_argument("--context", action="append", default=[], metavar="KEY=VALUE",
                       help="request context (device=mobile, timestamp=1706000000)")
        p.add_argument("--recent", default="", help="recent item ids, most recent first, comma-separated")
        p.add_argument("--mmr-lambda", type=float, help="relevance vs diversity in [0, 1] (default: the server's)")
        p.add_argument("--timeout", type=float, default=10.0, help="seconds (the request's gRPC deadline)")
        p.add_argument("--json", action="store_true", help="print the response as JSON")
        p.add_argument("--explain", action="store_true", default=None,
                       help="ask for each item's feature-group contributions (one more ranker call)")
        p.set_defaults(handler=run_request, kind=name)

    cal = commands.add_parser(
        "search-calibrate", help="fit the ranker's Platt calibration on logged impressions",
        description="Calls the ranker on the model server for the top-slot impressions of a dataset directory, fits "
        "P(click) = sigmoid(a * logit + b) on the older part, reports held-out log loss and writes the JSON "
        "configs/search.yaml's `calibration` points at.")
    cal.add_argument("--data", required=True, help="dataset directory with impressions and clicks")
    cal.add_argument("--out", required=True, help="calibration JSON to write")
    cal.add_argument("--model-server", default="127.0.0.1:8500")
    cal.add_argument("--ranker", default="ranker", help="ranker model name on the model server")
    cal.add_argument("--head", default="click")
    cal.set_defaults(handler=run_search_calibrate)


def _pairs(texts, flag: str) -> dict:
    out = {}
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} {text!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def request_filters(args) -> list:
    """Filter messages from --filter, --price-min/--price-max and --in-stock."""
    from tfrec.server.search.client import make_filter

    filters = [make_filter(field, *[v for v in values.split(",") if v.strip()])
               for field, values in _pairs(args.filter, "--filter").items()]
    if args.price_min is not None or args.price_max is not None:
        filters.append(make_filter("price", min=args.price_min, max=args.price_max))
    if args.in_stock:
        filters.append(make_filter("in_stock"))
    return filters


def run_request(args) -> int:
    import grpc
    from google.protobuf import json_format

    from tfrec.server.search.client import SearchClient
    from tfrec.server.search.format import format_response

    common = dict(user_id=args.user, k=args.k, filters=request_filters(args), context=_pairs(args.context, "--context"),
                  recent_items=[i.strip() for i in args.recent.split(",") if i.strip()], mmr_lambda=args.mmr_lambda,
                  explain=args.explain, timeout=args.timeout)
    with SearchClient(args.address) as client:
        try:
            response = (client.search(args.query, **common) if args.kind == "search"
                        else client.recommend(**common))
        except grpc.RpcError as exc:
            print(f"tfrec {args.kind}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(json_format.MessageToDict(response, preserving_proto_field_name=True), indent=1))
    else:
        print(format_response(response))
    return 0


def run_serve_search(args) -> int:
    from tfrec.config import parse_overrides
    from tfrec.server.search import build_search_server, load_search_config

    overrides = parse_overrides(args.set)
    if args.model_server:
        overrides["model_server"] = args.model_server
    if args.catalog:
        overrides["catalog"] = args.catalog
    if args.metrics_port is not None:
        overrides["server.metrics_port"] = args.metrics_port
    if args.online:
        overrides["online.enabled"] = True
    if args.experiments:
        overrides["ab.experiments"] = args.experiments
    config = load_search_config(args.config, overrides)
    server, port = build_search_server(config, host=args.host, port=args.port)
    host = args.host or config.server.host
    print(f"tfrec serve-search: gRPC on {host}:{port}; model server "
          f"{config.model_server}; catalog {server.pipeline.catalog.source} ({len(server.pipeline.catalog)} items)",
          flush=True)
    if server.live is not None:
        live = server.live
        print(f"tfrec serve-search: live user state ({live.config.user_state.backend}) from the event log "
              f"{live.config.event_log.path} (restored up to offset {live.restored_offset})", flush=True)
    if server.servicer.router is not None:
        experiment = server.servicer.router.experiment
        print(f"tfrec serve-search: A/B experiment {experiment.name!r}, arms "
              f"{', '.join(f'{a.name} {a.weight:g}' for a in experiment.arms)}", flush=True)
    if server.metrics_port is not None:
        print(f"tfrec serve-search: metrics on http://{host}:{server.metrics_port}/", flush=True)

    serve_until_signalled(server, args.grace_seconds, "serve-search")
    return 0


def run_search_calibrate(args) -> int:
    from tfrec.data.dataset_io import load_dataset
    from tfrec.data.examples import impression_examples
    from tfrec.server.search.calibration import calibrate_served_ranker
    from tfrec.server.search.models import ModelUnavailable

    dataset, _ = load_dataset(args.data)
    try:
        calibration = calibrate_served_ranker(args.model_server, impression_examples(dataset), args.ranker, args.head)
    except ModelUnavailable as exc:
        print(f"tfrec search-calibrate: ranker unavailable: {exc}", file=sys.stderr)
        return 1
    calibration.save(args.out)
    print(f"wrote {args.out}: {calibration.describe()}")
    print(json.dumps(calibration.report, indent=1))
    return 0
