"""A bounded queue of slow calls run in order, each retried with backoff: an output's own loop.

A target that is down holds back only this output's queue (the decisions go on); when the queue
is full, new work is dropped and counted, never the service's memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

LOG = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    attempts: int = 6  # then the job is given up (and reported)
    first_s: float = 1.0
    max_s: float = 60.0

    def delay(self, attempt: int) -> float:
        """Before retry number `attempt` (1-based)."""
        return float(min(self.first_s * 2 ** (attempt - 1), self.max_s))


class Jobs(Generic[T]):
    def __init__(self, name: str, backoff: Backoff, size: int = 256) -> None:
        self.name, self.backoff = name, backoff
        self.queue: asyncio.Queue[T] = asyncio.Queue(maxsize=size)
        self.stats: Counter[str] = Counter()
        self.last_error: str | None = None

    def put(self, job: T) -> bool:
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            self.stats["dropped_queue_full"] += 1
            LOG.warning("%s: queue full, a job was dropped", self.name)
            return False
        return True

    async def run(
        self,
        handle: Callable[[T], Awaitable[None]],
        permanent: tuple[type[BaseException], ...] = (),
    ) -> None:
        """Forever: take a job, try it until it works, fails for good, or runs out of attempts."""
        while True:
            job = await self.queue.get()
            for attempt in range(1, self.backoff.attempts + 1):
                try:
                    await handle(job)
                except asyncio.CancelledError:
                    raise
                except permanent as err:
                    self._failed(err, "failed for good")
                    break
                except Exception as err:  # reported and retried: an output must not stop
                    if attempt == self.backoff.attempts:
                        self._failed(err, f"given up after {attempt} attempts")
                        break
                    delay = self.backoff.delay(attempt)
                    self.stats["retries"] += 1
                    LOG.warning("%s: %s; retrying in %.1f s", self.name, _text(err), delay)
                    await asyncio.sleep(delay)
                else:
                    self.stats["done"] += 1
                    self.last_error = None
                    break

    def _failed(self, err: BaseException, how: str) -> None:
        self.stats["failed"] += 1
        self.last_error = _text(err)
        LOG.error("%s: %s (%s)", self.name, self.last_error, how)


def _text(err: BaseException) -> str:
    return str(err) or type(err).__name__
