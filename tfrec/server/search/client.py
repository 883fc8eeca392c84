"""A Python client of the search service: keyword arguments in, SearchResponse / LogEventsResponse protos out.

    with SearchClient("127.0.0.1:8600") as client:
        response = client.search("red running shoes under 80", user_id="U000012", k=10,
                                 filters=[make_filter("brand", "Nike")])
        for item in response.items:
            print(item.rank, item.title, item.probability, list(item.explanation.reasons))
"""

from __future__ import annotations

from typing import Iterable, Mapping, Optional, Sequence, Union

import grpc

from tfrec.server.protos import search_pb2, search_pb2_grpc

FilterLike = Union[search_pb2.Filter, Mapping]


def make_filter(field: str, *values: str, min: Optional[float] = None,  # noqa: A002 - the proto's names
                max: Optional[float] = None) -> search_pb2.Filter:  # noqa: A002
    """A Filter message: make_filter("brand", "Nike", "Adidas"), make_filter("price", max=80),
    make_filter("in_stock")."""
    proto = search_pb2.Filter(field=field, values=list(values))
    if min is not None:
        proto.min = float(min)
    if max is not None:
        proto.max = float(max)
    return proto


def _filters(filters: Iterable[FilterLike]):
    out = []
    for f in filters:
        if isinstance(f, search_pb2.Filter):
            out.append(f)
        else:
            f = dict(f)
            out.append(make_filter(f.pop("field"), *f.pop("values", ()), **f))
    return out


class SearchClient:
    """Search / Recommend / LogEvents over one channel to `target`; errors are grpc.RpcError with the status."""

    def __init__(self, target: str, timeout: float = 10.0, credentials: Optional[grpc.ChannelCredentials] = None):
        self.channel = grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
        self.stub = search_pb2_grpc.SearchServiceStub(self.channel)
        self.timeout = timeout

    @staticmethod
    def _common(request, user_id, k, filters, context, recent_items, request_id, mmr_lambda, explain):
        request.user_id = user_id
        if k is not None:
            request.k = int(k)
        request.filters.extend(_filters(filters))
        request.context.update({key: str(value) for key, value in (context or {}).items()})
        request.recent_items.extend(recent_items)
        request.request_id = request_id
        if mmr_lambda is not None:
            request.mmr_lambda = float(mmr_lambda)
        if explain is not None:
            request.explain = bool(explain)
        return request

    def search(self, query: str, user_id: str = "", k: Optional[int] = None, filters: Iterable[FilterLike] = (),
               context: Optional[Mapping[str, object]] = None, recent_items: Sequence[str] = (),
               request_id: str = "", mmr_lambda: Optional[float] = None, explain: Optional[bool] = None,
               timeout: Optional[float] = None) -> search_pb2.SearchResponse:
        """`explain=True` asks for each item's feature-group contributions (None: the server's setting)."""
        request = self._common(search_pb2.SearchRequest(query=query), user_id, k, filters, context, recent_items,
                               request_id, mmr_lambda, explain)
        return self.stub.Search(request, timeout=timeout or self.timeout)

    def recommend(self, user_id: str, k: Optional[int] = None, filters: Iterable[FilterLike] = (),
                  context: Optional[Mapping[str, object]] = None, recent_items: Sequence[str] = (),
                  request_id: str = "", mmr_lambda: Optional[float] = None, explain: Optional[bool] = None,
                  timeout: Optional[float] = None) -> search_pb2.SearchResponse:
        request = self._common(search_pb2.RecommendRequest(), user_id, k, filters, context, recent_items,
                               request_id, mmr_lambda, explain)
        return self.stub.Recommend(request, timeout=timeout or self.timeout)

    def log_events(self, events: Iterable[Mapping], timeout: Optional[float] = None) -> search_pb2.LogEventsResponse:
        """Sends events given as mappings with the Event message's field names."""
        request = search_pb2.LogEventsRequest(events=[search_pb2.Event(**dict(e)) for e in events])
        return self.stub.LogEvents(request, timeout=timeout or self.timeout)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "SearchClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
