"""The worker side of a work queue: client-go's processNextWorkItem, written once.

Every Kubernetes controller repeats the same twenty lines: `Run(workers)`
starts N goroutines, each looping over `processNextWorkItem`, which takes a
key from the queue, syncs it, and either forgets the key (success resets
its backoff) or puts it back rate-limited (failure: 5 ms, 10 ms, 20 ms, ...
apimachinery/workqueue.py), and always marks it done. Here that loop lives
in one place, `WorkLoop`, and every reconciler -- the controllers' base
class (controllers/base.py), the network agent's overlay loop
(netplugin/agent.py) -- hands it a queue and a `sync(key)`:

    loop = WorkLoop(queue, sync, on_error=log_failure)
    await loop.run(workers=2)          # until cancelled or the queue shuts down

One key, three syncs, the second one failing:

    get() -> a   sync(a) ok      forget(a)            done(a)
    get() -> a   sync(a) raises  on_error(a, exc)     add_rate_limited(a)  done(a)
                                 (a comes back after 5 ms)
    get() -> a   sync(a) ok      forget(a)            done(a)   next failure waits 5 ms again

What the loop guarantees, whatever `sync` does:

* `done(key)` is called exactly once per `get()`, so the queue's "one worker
  per key" rule never leaves a key stuck in `processing`;
* an exception from `sync` never ends a worker: it is reported to
  `on_error` (the caller decides the log line and its fields) and the key
  is retried with backoff; cancellation is not an error and ends the worker;
* shutdown is orderly: once the queue is shut down, each worker drains
  what is queued and returns; `run` leaving for any reason (cancelled, a
  worker crashed on a BaseException) shuts the queue down and cancels and
  awaits the workers, so no task outlives it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from apimachinery.workqueue import RateLimitingQueue, ShutDown

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

SyncFunc = Callable[[K], Awaitable[None]]
ErrorHandler = Callable[[K, Exception], None]


def log_sync_error(key: Hashable, exc: Exception) -> None:
    """The default report of a failed sync: one warning naming the key and the error."""
    log.warning("sync failed; requeued", extra={"key": str(key), "error": repr(exc)})


class WorkLoop(Generic[K]):
    """N workers over one rate-limited queue: get a key, sync it, forget or requeue, done."""

    def __init__(
        self,
        queue: RateLimitingQueue[K],
        sync: SyncFunc[K],
        *,
        on_error: ErrorHandler[K] = log_sync_error,
    ) -> None:
        self.queue = queue
        self.sync = sync
        self.on_error = on_error

    async def process_next_work_item(self) -> bool:
        """Sync one key; False once the queue is shut down and empty (the worker should stop).

        `on_error` runs inside the `except` block, so a handler may use
        `log.exception` to include the traceback.
        """
        try:
            key = await self.queue.get()
        except ShutDown:
            return False
        try:
            await self.sync(key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.on_error(key, exc)
            self.queue.add_rate_limited(key)
        else:
            self.queue.forget(key)
        finally:
            self.queue.done(key)
        return True

    async def worker(self) -> None:
        """One worker: process keys until the queue shuts down."""
        while await self.process_next_work_item():
            pass

    async def run(self, workers: int) -> None:
        """Run `workers` workers until they end or this is cancelled; then stop them all."""
        tasks = [asyncio.ensure_future(self.worker()) for _ in range(workers)]
        try:
            await asyncio.gather(*tasks)
        finally:
            self.queue.shut_down()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
