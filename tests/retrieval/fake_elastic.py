"""An in-memory fake of the few Elasticsearch/OpenSearch REST endpoints `ElasticsearchIndex` uses, served over
real HTTP on 127.0.0.1, so the client is tested end to end without a search cluster (none can run here)."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def error_body(status, etype, reason, root=None):
    root = root or {"type": etype, "reason": reason}
    return status, {"error": {"root_cause": [root], "type": etype, "reason": reason}, "status": status}


def _tokens(text):
    return re.findall(r"[^\W_]+", str(text).lower())


def _values(doc, field):
    value = doc.get(field)
    return [] if value is None else value if isinstance(value, list) else [value]


def _score(query, doc):
    """Score of `doc` for the subset of the query DSL the client sends; None when it does not match."""
    (kind, spec), = query.items()
    if kind == "match_all":
        return 0.0
    if kind == "multi_match":
        words = set(_tokens(spec["query"]))
        total = 0.0
        for field in spec["fields"]:
            name, _, boost = field.partition("^")
            total += float(boost or 1) * len(words & set(_tokens(doc.get(name, ""))))
        return total or None
    if kind == "bool":
        scores = [_score(q, doc) for q in spec.get("must", [])]
        if any(s is None for s in scores) or any(_score(q, doc) is None for q in spec.get("filter", [])):
            return None
        return sum(scores)
    (field, value), = spec.items()
    if kind == "term":
        return 0.0 if value in _values(doc, field) else None
    if kind == "terms":
        return 0.0 if set(value) & set(_values(doc, field)) else None
    if kind == "range":
        found = _values(doc, field)
        ok = found and all(found[0] >= value[b] if b == "gte" else found[0] <= value[b] for b in value)
        return 0.0 if ok else None
    raise ValueError(f"unknown query [{kind}]")


class FakeElastic(ThreadingHTTPServer):
    """An in-memory stand-in for the endpoints ElasticsearchIndex uses, on an ephemeral 127.0.0.1 port."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.indices = {}        # name -> {"body": create body, "docs": {id: source}}
        self.fail_next = []      # (status, json body) answers to the next requests, whatever they ask
        self.reject_ids = set()  # bulk index actions for these ids fail with mapper_parsing_exception
        self.requests = []       # (method, path, headers)
        self.lock = threading.Lock()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle(self, method, path, headers, raw):
        self.requests.append((method, path, dict(headers)))
        if self.fail_next:
            return self.fail_next.pop(0)
        parts = path.split("?")[0].strip("/").split("/")
        name, op = parts[0], "/".join(parts[1:])
        index = self.indices.get(name)
        if not op and method == "PUT":
            if index is not None:
                return error_body(400, "resource_already_exists_exception", f"index [{name}/xyz] already exists")
            self.indices[name] = {"body": json.loads(raw), "docs": {}}
            return 200, {"acknowledged": True, "index": name}
        if index is None:
            return error_body(404, "index_not_found_exception", f"no such index [{name}]")
        if not op and method == "DELETE":
            del self.indices[name]
            return 200, {"acknowledged": True}
        if not op and method == "HEAD":
            return 200, None
        if op == "_mapping":
            return 200, {name: {"mappings": index["body"]["mappings"]}}
        if op == "_refresh":
            return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        if op == "_count":
            return 200, {"count": len(index["docs"])}
        lines = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
        if op == "_bulk":
            return 200, self._bulk(index, lines)
        if op == "_msearch":
            return 200, {"responses": [self._search(index, body) for body in lines[1::2]]}
        return error_body(400, "illegal_argument_exception", f"unsupported {method} {path}")

    def _bulk(self, index, lines):
        items, known = [], set(index["body"]["mappings"]["properties"])
        while lines:
            action = lines.pop(0)
            (kind, meta), = action.items()
            doc_id = meta["_id"]
            if kind == "delete":
                found = index["docs"].pop(doc_id, None) is not None
                items.append({"delete": {"_id": doc_id, "status": 200 if found else 404,
                                         "result": "deleted" if found else "not_found"}})
                continue
            source = lines.pop(0)
            unknown = sorted(set(source) - known)
            if doc_id in self.reject_ids or unknown:
                _, err = error_body(400, "mapper_parsing_exception" if not unknown else "strict_dynamic_mapping_exception",
                                f"failed to parse field [price] of document {doc_id}" if not unknown
                                else f"mapping set to strict, dynamic introduction of {unknown} is not allowed")
                items.append({"index": {"_id": doc_id, "status": 400, "error": err["error"]}})
                continue
            created = doc_id not in index["docs"]
            index["docs"][doc_id] = source
            items.append({"index": {"_id": doc_id, "status": 201 if created else 200,
                                    "result": "created" if created else "updated"}})
        return {"took": 1, "errors": any("error" in next(iter(i.values())) for i in items), "items": items}

    def _search(self, index, body):
        try:
            scored = [(s, doc_id) for doc_id, doc in index["docs"].items()
                      if (s := _score(body["query"], doc)) is not None]
        except ValueError as e:
            return {"error": error_body(400, "parsing_exception", str(e))[1]["error"], "status": 400}
        scored.sort(key=lambda x: (-x[0], x[1]))
        hits = [{"_index": "x", "_id": d, "_score": s} for s, d in scored[:body["size"]]]
        return {"status": 200, "hits": {"total": {"value": len(scored)}, "hits": hits}}


class _Handler(BaseHTTPRequestHandler):
    def _answer(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            status, body = self.server.handle(self.command, self.path, self.headers, raw)
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _answer

    def log_message(self, *args):
        pass
