"""Drift gauges fed by the search service's own event log (`online.drift_reference`): every `drift_every` newly
logged events, the newest `drift_window` logged events are compared with the training data's events by
`tfrec.online.drift.DriftMonitor` (PSI and KS per feature, `tfrec_online_*` gauges on the service's registry).

The check runs on one background thread, never on a LogEvents call, and at most one at a time: when traffic outruns
it, checks are skipped rather than queued (the gauges describe the newest window, not every window).
"""

from __future__ import annotations

import logging
import threading
from concurrent import futures
from typing import Mapping, Optional, Sequence

from tfrec.online.config import DriftConfig
from tfrec.online.drift import DriftMonitor, DriftReport
from tfrec.online.event_log import EventLog

log = logging.getLogger(__name__)


class DriftFeed:
    """Counts newly logged events and refreshes the drift gauges from the newest window of the log."""

    def __init__(self, reference_dir: str, event_log: EventLog, item_metadata: Mapping[str, Sequence],
                 config: DriftConfig, registry, window: int, every: int):
        from tfrec.data.dataset_io import load_dataset

        reference = load_dataset(reference_dir)[0].events
        self.monitor = DriftMonitor(reference, item_metadata, config, registry)
        self.event_log, self.window, self.every = event_log, window, every
        self.report: Optional[DriftReport] = None
        self._new = 0
        self._lock = threading.Lock()
        self._pending: Optional[futures.Future] = None
        self._executor = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tfrec-drift")

    def logged(self, new_events: int) -> None:
        """Called after each ingested batch with how many events were new to the log."""
        with self._lock:
            self._new += new_events
            if self._new < self.every or (self._pending is not None and not self._pending.done()):
                return
            self._new = 0
            self._pending = self._executor.submit(self._check)

    def _check(self) -> None:
        last = self.event_log.last_offset()
        recent = [logged for batch in self.event_log.read_batches(max(last - self.window, 0), last, self.window)
                  for logged in batch]
        try:
            self.report = self.monitor.check(recent)
        except Exception:  # noqa: BLE001 - monitoring never takes the service down
            log.exception("drift check over %d logged events failed", len(recent))

    def wait(self, timeout: Optional[float] = None) -> None:
        """Blocks until the running check (if any) is done."""
        with self._lock:
            pending = self._pending
        if pending is not None:
            futures.wait([pending], timeout)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
