"""tfrec's Search / Recommend gRPC service (tfrec.search.v1, serving/protos/tfrec/search.proto) on top of the model
server: query understanding ∥ retrieval → filters → DCN ranking → calibration → MMR diversity → top k with reasons.

- `config`: configs/search.yaml; `catalog`: item metadata and user attributes; `request`: request checks;
- `models`: gRPC calls to the model server; `inputs`: model inputs by signature name;
- `filters`, `text_slots`: request and query filters; `calibration`: Platt scaling; `diversity`: MMR;
- `explain`: contributions and reasons; `pipeline`: the stages and degraded paths; `responses`: to proto;
- `live_state`: LogEvents → event log → user-state store (`online`); `arms`: A/B arms (`ab`); `metrics`: Prometheus;
- `service`, `server`: the gRPC servicer and `build_search_server`; `client`: `SearchClient`; `format`: text.
"""

from tfrec.server.search.client import SearchClient, make_filter
from tfrec.server.search.config import SearchConfig, load_search_config
from tfrec.server.search.server import SearchServer, build_search_server

__all__ = ["SearchClient", "SearchConfig", "SearchServer", "build_search_server", "load_search_config", "make_filter"]
