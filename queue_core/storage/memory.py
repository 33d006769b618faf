"""A real in-memory storage: one private store per instance, safe across threads.

It backs immediate mode and fast tests. It cannot be shared between processes.
"""
from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Sequence

from .base import InFlight, Storage, new_tokens


class MemoryStorage(Storage):
    """Everything in Python structures guarded by one condition variable."""

    def __init__(self, name: str = 'queue') -> None:
        super().__init__(name)
        self._cond = threading.Condition()
        self._counter = itertools.count()
        self._head = itertools.count(-1, -1)  # orders of messages handed back to the head
        self._queue: list[tuple[int, int, bytes]] = []
        self._schedule: list[tuple[float, int, bytes]] = []
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._counters: dict[str, tuple[int, float | None]] = {}
        self._in_flight: dict[str, InFlight] = {}

    # -- queue -----------------------------------------------------------------
    def enqueue(self, data: bytes, priority: int = 0) -> None:
        with self._cond:
            heapq.heappush(self._queue, (-(priority or 0), next(self._counter), data))
            self._cond.notify_all()

    def enqueue_many(self, items: Sequence[tuple[bytes, int]]) -> None:
        with self._cond:
            for data, priority in items:
                heapq.heappush(self._queue, (-(priority or 0), next(self._counter), data))
            self._cond.notify_all()

    def dequeue(self) -> bytes | None:
        with self._cond:
            if not self._queue:
                return None
            return heapq.heappop(self._queue)[2]

    def claim_many(self, owner: str, lease_until: float, limit: int,
                   release: Sequence[str] = (), counter: str | None = None
                   ) -> list[InFlight]:
        with self._cond:
            for token in release:
                self._in_flight.pop(token, None)
            taken = [heapq.heappop(self._queue)[2]
                     for _ in range(min(max(limit, 0), len(self._queue)))]
            if not taken:
                return []
            value = self._counter_value(counter) if counter is not None else None
            records = [InFlight(token, owner, lease_until, data, value)
                       for token, data in zip(new_tokens(len(taken)), taken)]
            self._in_flight.update((record.token, record) for record in records)
            return records

    def wait_for_work(self, timeout: float) -> None:
        with self._cond:
            if not self._queue:
                self._cond.wait(timeout)

    def queue_size(self) -> int:
        return len(self._queue)

    def enqueued_items(self, limit: int | None = None) -> list[bytes]:
        with self._cond:
            items = [entry[2] for entry in sorted(self._queue)]
        return items if limit is None else items[:limit]

    def flush_queue(self) -> None:
        with self._cond:
            self._queue.clear()

    # -- schedule --------------------------------------------------------------
    def add_to_schedule(self, data: bytes, ts: float) -> None:
        with self._cond:
            heapq.heappush(self._schedule, (ts, next(self._counter), data))

    def read_schedule(self, ts: float) -> list[bytes]:
        due = []
        with self._cond:
            while self._schedule and self._schedule[0][0] <= ts:
                due.append(heapq.heappop(self._schedule)[2])
        return due

    def due_items(self, ts: float, limit: int = 1000) -> list[tuple[bytes, bytes]]:
        with self._cond:
            due = sorted(entry for entry in self._schedule if entry[0] <= ts)[:limit]
        return [(str(counter).encode(), data) for _, counter, data in due]

    def move_to_queue(self, ref: bytes, data: bytes | None, priority: int = 0) -> bool:
        counter = int(ref)
        with self._cond:
            for index, entry in enumerate(self._schedule):
                if entry[1] == counter:
                    self._schedule.pop(index)
                    heapq.heapify(self._schedule)
                    if data is not None:
                        heapq.heappush(self._queue,
                                       (-(priority or 0), next(self._counter), data))
                        self._cond.notify_all()
                    return True
        return False

    def scheduled_items(self, limit: int | None = None) -> list[bytes]:
        with self._cond:
            items = [entry[2] for entry in sorted(self._schedule)]
        return items if limit is None else items[:limit]

    def schedule_size(self) -> int:
        return len(self._schedule)

    def flush_schedule(self) -> None:
        with self._cond:
            self._schedule.clear()

    # -- key/value ---------------------------------------------------------------
    def _live(self, key: str) -> bytes | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and expires <= time.time():
            del self._data[key]
            return None
        return value

    def put_data(self, key: str, value: bytes, ttl: float | None = None) -> None:
        with self._cond:
            self._data[key] = (value, time.time() + ttl if ttl else None)
            self._cond.notify_all()

    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        with self._cond:
            if self._live(key) is not None:
                return False
            self._data[key] = (value, time.time() + ttl if ttl else None)
            self._cond.notify_all()
            return True

    def peek_data(self, key: str) -> bytes | None:
        with self._cond:
            return self._live(key)

    def pop_data(self, key: str) -> bytes | None:
        with self._cond:
            value = self._live(key)
            if value is not None:
                del self._data[key]
            return value

    def delete_data(self, key: str) -> bool:
        with self._cond:
            found = self._live(key) is not None
            self._data.pop(key, None)
            return found

    def wait_for_data(self, key: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._live(key) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def result_store_size(self) -> int:
        with self._cond:
            return sum(1 for key in list(self._data) if self._live(key) is not None)

    def result_items(self) -> dict[str, bytes]:
        with self._cond:
            return {key: value for key in list(self._data)
                    if (value := self._live(key)) is not None}

    def flush_results(self) -> None:
        with self._cond:
            self._data.clear()

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        with self._cond:
            now = time.time()
            value, expires = self._counters.get(key, (0, None))
            if expires is not None and expires <= now:
                value, expires = 0, None
            if key not in self._counters or value == 0 and expires is None:
                expires = now + ttl if ttl else None
            value += amount
            self._counters[key] = (value, expires)
            return value

    def _counter_value(self, key: str) -> int:
        value, expires = self._counters.get(key, (0, None))
        return 0 if expires is not None and expires <= time.time() else value

    def flush_counters(self) -> None:
        with self._cond:
            self._counters.clear()

    # -- in-flight ---------------------------------------------------------------
    def release(self, token: str) -> bool:
        with self._cond:
            return self._in_flight.pop(token, None) is not None

    def renew(self, owner: str, lease_until: float) -> int:
        with self._cond:
            mine = [rec for rec in self._in_flight.values() if rec.owner == owner]
            for rec in mine:
                self._in_flight[rec.token] = InFlight(rec.token, owner, lease_until, rec.data)
            return len(mine)

    def in_flight(self) -> list[InFlight]:
        with self._cond:
            return list(self._in_flight.values())

    def adopt(self, token: str, expected_owner: str, owner: str,
              lease_until: float) -> InFlight | None:
        with self._cond:
            record = self._in_flight.get(token)
            if record is None or record.owner != expected_owner:
                return None
            record = self._in_flight[token] = InFlight(token, owner, lease_until, record.data)
            return record

    def requeue_in_flight(self, token: str, data: bytes, priority: int = 0,
                          head: bool = False) -> bool:
        with self._cond:
            if self._in_flight.pop(token, None) is None:
                return False
            order = next(self._head) if head else next(self._counter)
            heapq.heappush(self._queue, (-(priority or 0), order, data))
            self._cond.notify_all()
            return True

    def flush_in_flight(self) -> None:
        with self._cond:
            self._in_flight.clear()
