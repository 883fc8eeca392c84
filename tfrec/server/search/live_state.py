"""The live loop inside the search service (`online.enabled`): LogEvents → event log → user-state store, and the
same store read by Search and Recommend, so a click changes the shopper's next response within the same second.

Built from the online config file (`online.config`, configs/online.yaml, with `online.overrides`): the SQLite event
log and the user-state store it names (in-process by default, Redis with `user_state.backend: redis`). An in-memory
store starts empty, so it is rebuilt from the whole event log at start (`online.restore_state`); a Redis store keeps
its state across restarts and is not replayed (replaying would count every event twice). With
`online.drift_reference`, newly logged events also feed the drift gauges (`drift_feed.DriftFeed`).
"""

from __future__ import annotations

import logging
from typing import Dict, List, Optional, Sequence

from tfrec.online.config import OnlineConfig, load_online_config
from tfrec.online.event_log import Ack, EventLog
from tfrec.online.events import Event
from tfrec.online.ingest import EventIngestor, make_user_state_store, restore_state
from tfrec.online.user_state import ItemInfo
from tfrec.server.search.catalog import Catalog
from tfrec.server.search.config import OnlineServiceConfig, SearchConfig
from tfrec.server.search.drift_feed import DriftFeed

log = logging.getLogger(__name__)


def catalog_metadata(catalog: Catalog) -> Dict[str, ItemInfo]:
    """item_id -> ItemInfo (category, brand, price) from the service's catalog, for the user-state fold."""
    cols = catalog.columns
    return {str(i): ItemInfo(str(c), str(b), float(p) if p == p else None)  # NaN price: unknown
            for i, c, b, p in zip(catalog.item_ids.tolist(), cols["category"].tolist(), cols["brand"].tolist(),
                                  cols["price"].tolist())}


class LiveState:
    """The event log, the user-state store and the ingestor between them; `append` is the LogEvents sink."""

    def __init__(self, config: OnlineConfig, catalog: Catalog, restore: bool = True,
                 service: Optional[OnlineServiceConfig] = None, registry=None):
        self.config = config
        self.event_log = EventLog(config.event_log.path, config.event_log.synchronous,
                                  config.event_log.max_future_seconds)
        self.store, self.drift = None, None
        try:
            items = catalog_metadata(catalog)
            self.store = make_user_state_store(config.user_state, items)
            self.restored_offset = 0
            if restore and config.user_state.backend == "memory":
                self.restored_offset = restore_state(self.event_log, self.store)
            if service is not None and service.drift_reference:
                self.drift = DriftFeed(service.drift_reference, self.event_log, items, config.drift, registry,
                                       service.drift_window, service.drift_every)
        except BaseException:
            self.close()
            raise
        self.ingestor = EventIngestor(self.event_log, self.store)
        log.info("user state from %s (backend %s), restored up to offset %d", config.event_log.path,
                 config.user_state.backend, self.restored_offset)

    def append(self, events: Sequence[Event]) -> List[Ack]:
        """Validates, logs durably and folds into the user state; one Ack per event."""
        acks = self.ingestor.ingest(events)
        if self.drift is not None:
            self.drift.logged(sum(1 for ack in acks if ack.is_new))
        return acks

    def close(self) -> None:
        if self.drift is not None:
            self.drift.close()
        if self.store is not None:
            self.store.close()
        self.event_log.close()


def load_live_state(config: SearchConfig, catalog: Catalog, registry=None) -> Optional[LiveState]:
    """The live state `config.online` asks for (drift gauges on `registry`), or None when it is off."""
    if not config.online.enabled:
        return None
    online = load_online_config(config.online.config, config.online.overrides)
    return LiveState(online, catalog, config.online.restore_state, config.online, registry)
