"""Server-side batching with TF Serving's BatchingParameters semantics (its SharedBatchScheduler + BatchingSession).

Requests for the same loaded version and signature whose inputs have the same names, dtypes and non-batch
dimensions share a queue. A request's rows join the queue's open batch when they fit in `max_batch_size`, else a
new batch opens; opening one while `max_enqueued_batches` batches wait is RESOURCE_EXHAUSTED ("The batch scheduling
queue to which this task was submitted is full"), and a request larger than `max_batch_size` is INVALID_ARGUMENT.
A batch runs on one of `num_batch_threads` threads as soon as it is full (or closed by a request that did not fit),
or once its first request has waited `batch_timeout_micros` (0: whenever a thread is free). Its inputs are
concatenated along dimension 0, padded with copies of the first row up to the next `allowed_batch_sizes` entry
when those are set, run once, and the outputs split back by each request's rows.

Requests whose inputs are not all batch-major (a scalar input, or inputs with different dimension-0 sizes) run
unbatched; so do the requests of a batch whose outputs turn out not to be one row per input row.
"""

from __future__ import annotations

import bisect
import concurrent.futures
import threading
import time
from collections import deque
from typing import Callable, Deque, Dict, List, Optional

import grpc
import numpy as np

from tfrec.server.config import BatchingOptions
from tfrec.server.errors import ServingError
from tfrec.server.servable import Servable

# (servable, signature, padded rows, requests merged, real rows)
BatchCallback = Callable[[Servable, str, int, int, int], None]


class _Task:
    __slots__ = ("arrays", "rows", "future")

    def __init__(self, arrays: Dict[str, np.ndarray], rows: int):
        self.arrays, self.rows, self.future = arrays, rows, concurrent.futures.Future()


class _Batch:
    __slots__ = ("tasks", "rows", "created")

    def __init__(self):
        self.tasks: List[_Task] = []
        self.rows = 0
        self.created = time.monotonic()


class _Queue:
    __slots__ = ("servable", "signature", "batches")

    def __init__(self, servable: Servable, signature: str):
        self.servable, self.signature = servable, signature
        self.batches: Deque[_Batch] = deque()


def batch_rows(arrays: Dict[str, np.ndarray]) -> Optional[int]:
    """Dimension 0 shared by every input, or None when the request is not batch-major."""
    sizes = {a.shape[0] if a.ndim else None for a in arrays.values()}
    return sizes.pop() if len(sizes) == 1 and None not in sizes else None


class BatchScheduler:
    """Merges concurrent requests into batches (see the module docstring); `run` is a Runner for inference."""

    def __init__(self, options: BatchingOptions, on_batch: Optional[BatchCallback] = None):
        self.options = options
        self._on_batch = on_batch
        self._timeout = options.batch_timeout_micros / 1e6
        self._cv = threading.Condition()
        self._queues: Dict[tuple, _Queue] = {}
        self._stopping = False
        self._threads = [threading.Thread(target=self._work, name=f"tfrec-batch-{i}", daemon=True)
                         for i in range(options.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    def run(self, servable: Servable, signature: str, arrays: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Runs one request's inputs as part of a batch and returns its own rows of the outputs."""
        rows = batch_rows(arrays)
        if not rows:
            return servable.run(signature, arrays)
        return self.submit(servable, signature, arrays, rows).result()

    def submit(self, servable: Servable, signature: str, arrays: Dict[str, np.ndarray],
               rows: int) -> concurrent.futures.Future:
        """Enqueues a request of `rows` rows; the future gets its outputs (or the batch's error)."""
        limit = self.options.max_batch_size
        if rows > limit:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"Task size {rows} is larger than maximum input batch size {limit}")
        key = (id(servable), signature,
               tuple(sorted((k, a.dtype.str, a.shape[1:]) for k, a in arrays.items())))
        task = _Task(arrays, rows)
        with self._cv:
            if self._stopping:
                raise ServingError(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = _Queue(servable, signature)
            batch = queue.batches[-1] if queue.batches else None
            if batch is None or batch.rows + rows > limit:
                if len(queue.batches) >= self.options.max_enqueued_batches:
                    raise ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                       "The batch scheduling queue to which this task was submitted is full")
                batch = _Batch()
                queue.batches.append(batch)
            batch.tasks.append(task)
            batch.rows += rows
            self._cv.notify_all()
        return task.future

    def pending_batches(self) -> int:
        """Batches waiting for a batch thread (not those running)."""
        with self._cv:
            return sum(len(q.batches) for q in self._queues.values())

    def stop(self) -> None:
        """Runs what is queued, then stops the batch threads; later requests get UNAVAILABLE."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        for thread in self._threads:
            thread.join()

    # -- batch threads ----------------------------------------------------------------------------------------------
    def _take(self):
        """(queue, batch) of the oldest ready batch, removed from its queue, or (None, seconds to wait)."""
        now, best, wait = time.monotonic(), None, None
        for key, queue in self._queues.items():
            head = queue.batches[0]
            ready_at = head.created + self._timeout
            if self._stopping or len(queue.batches) > 1 or head.rows >= self.options.max_batch_size or ready_at <= now:
                if best is None or head.created < best[1].batches[0].created:
                    best = (key, queue)
            else:
                wait = ready_at - now if wait is None else min(wait, ready_at - now)
        if best is None:
            return None, wait
        key, queue = best
        batch = queue.batches.popleft()
        if not queue.batches:
            del self._queues[key]
        return (queue, batch), None

    def _work(self) -> None:
        while True:
            with self._cv:
                while True:
                    taken, wait = self._take()
                    if taken is not None:
                        self._cv.notify_all()  # another thread may now be the one to time the remaining queues
                        break
                    if self._stopping and not self._queues:
                        return
                    self._cv.wait(wait)
            self._process(*taken)

    def _padded(self, rows: int) -> int:
        sizes = self.options.allowed_batch_sizes
        return sizes[bisect.bisect_left(sizes, rows)] if sizes else rows

    def _process(self, queue: _Queue, batch: _Batch) -> None:
        tasks, servable, signature = batch.tasks, queue.servable, queue.signature
        try:
            padded = self._padded(batch.rows)
            if len(tasks) == 1 and padded == batch.rows:
                inputs = tasks[0].arrays
            else:
                inputs = {k: np.concatenate([t.arrays[k] for t in tasks]) for k in tasks[0].arrays}
            if padded > batch.rows:
                inputs = {k: np.concatenate([v, np.repeat(v[:1], padded - batch.rows, axis=0)])
                          for k, v in inputs.items()}
            outputs = servable.run(signature, inputs)
            self._report(servable, signature, padded, len(tasks), batch.rows)
            if len(tasks) == 1 and padded == batch.rows:
                tasks[0].future.set_result(outputs)
            elif all(np.ndim(v) and np.shape(v)[0] == padded for v in outputs.values()):
                start = 0
                for task in tasks:
                    task.future.set_result({k: v[start:start + task.rows] for k, v in outputs.items()})
                    start += task.rows
            else:  # outputs not batch-major: the batch cannot be split, run the requests one by one
                for task in tasks:
                    self._run_alone(servable, signature, task)
        except Exception as exc:
            for task in tasks:
                if not task.future.done():
                    task.future.set_exception(exc)

    def _run_alone(self, servable: Servable, signature: str, task: _Task) -> None:
        try:
            task.future.set_result(servable.run(signature, task.arrays))
        except Exception as exc:
            task.future.set_exception(exc)

    def _report(self, servable: Servable, signature: str, padded: int, requests: int, rows: int) -> None:
        if self._on_batch is not None:
            try:
                self._on_batch(servable, signature, padded, requests, rows)
            except Exception:
                pass
