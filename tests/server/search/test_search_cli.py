"""`tfrec search`, `tfrec recommend` and `tfrec serve-search` against the tiny shop's models over real gRPC."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

from tfrec.cli.main import main
from tfrec.server.search import SearchClient

from search_models import CATALOG_SIZE, REPO


def test_search_and_recommend_print_ranked_products_with_reasons(start_search, capsys):
    address = f"127.0.0.1:{start_search().port}"
    assert main(["search", "shoes under 500", "--user", "U000001", "--k", "3", "--address", address,
                 "--price-max", "400", "--context", "device=mobile"]) == 0
    printed = capsys.readouterr().out
    assert re.search(rf"request \w+: 3 items from {CATALOG_SIZE} retrieved candidates \(\d+ after filters\); "
                     r"models intent v1, ranker v1, retrieval v1", printed), printed
    assert "filters: price <= 400" in printed and "understood: intent" in printed
    rows = re.findall(r"^\s+(\d) +(0\.\d{4}) +-?\d+\.\d{3} +(\d+\.\d\d)  .+\(I\d+, retrieved #\d+\)$", printed, re.M)
    assert [r[0] for r in rows] == ["1", "2", "3"] and all(float(r[2]) <= 400 for r in rows), printed
    assert printed.count("       why: ") == 3

    assert main(["recommend", "--user", "U000002", "--k", "4", "--address", address, "--json"]) == 0
    response = json.loads(capsys.readouterr().out)
    assert len(response["items"]) == 4 and all(item["explanation"]["reasons"] for item in response["items"])

    assert main(["search", "shoes", "--k", "0", "--address", address]) == 1
    assert "INVALID_ARGUMENT: k: must be >= 1" in capsys.readouterr().err
    assert main(["search", "shoes", "--filter", "colour=red", "--address", address]) == 1
    assert "filters[0].field: unknown filter field 'colour'" in capsys.readouterr().err


def test_serve_search_serves_until_sigterm(search_models, model_server, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_USE_LEGACY_KERAS="1")
    events = tmp_path / "events.sqlite"
    command = [sys.executable, "-m", "tfrec.cli.main", "serve-search",
               "--config", str(REPO / "configs" / "search.yaml"), "--port", "0", "--catalog", str(search_models.shop),
               "--model-server", f"127.0.0.1:{model_server}", "--online", "--metrics-port", "0",
               "--set", f"online.overrides.event_log.path={events}"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO, env=env)
    try:
        line = process.stdout.readline()
        match = re.search(r"tfrec serve-search: gRPC on 127\.0\.0\.1:(\d+); model server 127\.0\.0\.1:\d+; catalog "
                          rf"\S+catalog\.csv \({CATALOG_SIZE} items\)", line)
        assert match, line
        live = process.stdout.readline()
        assert f"live user state (memory) from the event log {events} (restored up to offset 0)" in live, live
        metrics = re.search(r"metrics on (http://127\.0\.0\.1:\d+/)", process.stdout.readline())
        with SearchClient(f"127.0.0.1:{match.group(1)}", timeout=60) as client:
            # "boots": a category with many items in the tiny shop ("shoes" parses to Running Shoes, which has one)
            assert len(client.search("boots", k=2).items) == 2
            click = {"event_type": "click", "user_id": "u", "item_id": "I000001", "timestamp": time.time()}
            assert client.log_events([click]).accepted == 1
        scraped = urllib.request.urlopen(metrics.group(1), timeout=10).read().decode()
        assert 'tfrec_search_requests_total{code="OK",method="Search"} 1.0' in scraped
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert "stopping" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
