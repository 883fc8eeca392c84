"""The loop that learns from live traffic: validated events, a durable event log, real-time user state (in-process
or Redis), user profiles and drift monitoring (see docs/online.md).

The event, log, state, profile and drift modules are plain Python and numpy (TensorFlow is only needed by
`event_log_dataset`), so a LogEvents call or a user-state lookup runs no graph code.
"""

from tfrec.online.config import OnlineConfig, UserStateConfig, load_online_config
from tfrec.online.event_log import Ack, EventLog, LoggedEvent, event_log_dataset
from tfrec.online.events import EVENT_TYPES, Event, EventValidationError, validate_event
from tfrec.online.ingest import EventIngestor, make_user_state_store, restore_state
from tfrec.online.user_state import InMemoryUserStateStore, ItemInfo, UserState, UserStateStore

__all__ = [
    "EVENT_TYPES", "Ack", "Event", "EventIngestor", "EventLog", "EventValidationError", "InMemoryUserStateStore",
    "ItemInfo", "LoggedEvent", "OnlineConfig", "UserState", "UserStateConfig", "UserStateStore", "event_log_dataset",
    "load_online_config", "make_user_state_store", "restore_state", "validate_event",
]
