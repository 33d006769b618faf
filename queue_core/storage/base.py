"""The one interface every storage backend implements.

Storage moves bytes; serialization lives one layer above it (in ``TaskQueue``). Every
method here is exercised by the shared suite in ``tests/queue_core/test_storage.py``
against the memory, SQLite and Redis backends.

Times are wall-clock seconds since the epoch (floats), passed in by the caller, so
that several hosts sharing one storage agree on them and tests control the clock.
"""
from __future__ import annotations

import abc
import itertools
import os
import secrets
from dataclasses import dataclass
from typing import Iterable, Sequence


@dataclass(frozen=True)
class InFlight:
    """A message taken by a worker and not yet released.

    ``token`` names the record (unique per claim), ``owner`` the worker that claimed it,
    ``lease_until`` when the record is considered abandoned unless renewed.
    """

    token: str
    owner: str
    lease_until: float
    data: bytes
    #: The value of the counter named in ``claim(counter=…)``, read in the same step.
    counter: int | None = None


class _TokenSource:
    """Tokens that sort in the order they were made, unique across processes: a random
    prefix drawn anew in every process, then a fixed-width counter."""

    def __init__(self) -> None:
        self._pid = -1
        self._prefix = ''
        self._counter = itertools.count()

    def take(self, n: int) -> list[str]:
        if self._pid != os.getpid():  # a forked child must not repeat its parent's tokens
            self._pid, self._prefix = os.getpid(), secrets.token_hex(8)
        return ['%s%012x' % (self._prefix, next(self._counter)) for _ in range(n)]


_TOKENS = _TokenSource()


def new_tokens(n: int) -> list[str]:
    """``n`` fresh in-flight tokens; within one process they sort in the order made."""
    return _TOKENS.take(n)


class Storage(abc.ABC):
    """Abstract storage: a priority queue, a schedule, a key/value result store,
    counters, and an in-flight table.

    Queue order: higher ``priority`` first, FIFO within one priority.
    """

    def __init__(self, name: str = 'queue') -> None:
        self.name = name

    # -- queue -----------------------------------------------------------------
    @abc.abstractmethod
    def enqueue(self, data: bytes, priority: int = 0) -> None:
        """Append one message. Raises ``StorageError`` if it was not written."""

    def enqueue_many(self, items: Sequence[tuple[bytes, int]]) -> None:
        """Append many ``(data, priority)`` messages in one round trip where possible."""
        for data, priority in items:
            self.enqueue(data, priority)

    @abc.abstractmethod
    def dequeue(self) -> bytes | None:
        """Pop the first message, or ``None`` when the queue is empty."""

    def claim(self, owner: str, lease_until: float, release: str | None = None,
              counter: str | None = None) -> InFlight | None:
        """Pop the first message and record it in flight for ``owner``, in one atomic step.

        ``release`` names an in-flight record to drop first (the claimer's previous task),
        and ``counter`` a counter whose current value (0 when absent) comes back in the
        record's ``counter`` field: both ride on the same round trip. The release happens
        even when the queue is empty.
        """
        records = self.claim_many(owner, lease_until, 1,
                                  release=() if release is None else (release,),
                                  counter=counter)
        return records[0] if records else None

    @abc.abstractmethod
    def claim_many(self, owner: str, lease_until: float, limit: int,
                   release: Sequence[str] = (), counter: str | None = None
                   ) -> list[InFlight]:
        """Pop up to ``limit`` messages in queue order and record each in flight for
        ``owner`` (one record and lease per message), in one atomic step.

        The records come back in claim order, and their tokens sort in claim order among
        one owner's records (``new_tokens``). ``release`` names records to drop first
        (even when the queue is empty); every record carries ``counter``'s value.
        """

    @abc.abstractmethod
    def wait_for_work(self, timeout: float) -> None:
        """Block up to ``timeout`` seconds, returning early when a message may be waiting.

        Spurious returns are allowed; callers loop ``claim``/``wait_for_work``.
        """

    @abc.abstractmethod
    def queue_size(self) -> int:
        """How many messages are queued (one cheap call)."""

    @abc.abstractmethod
    def enqueued_items(self, limit: int | None = None) -> list[bytes]:
        """The queued messages in dequeue order, without removing them."""

    @abc.abstractmethod
    def flush_queue(self) -> None:
        """Remove every queued message."""

    # -- schedule --------------------------------------------------------------
    @abc.abstractmethod
    def add_to_schedule(self, data: bytes, ts: float) -> None:
        """Keep ``data`` until ``ts``."""

    @abc.abstractmethod
    def read_schedule(self, ts: float) -> list[bytes]:
        """Remove and return every message due at or before ``ts``, ordered by due time.

        Atomic: two readers never both receive one message.
        """

    @abc.abstractmethod
    def due_items(self, ts: float, limit: int = 1000) -> list[tuple[bytes, bytes]]:
        """``(ref, message)`` for the messages due at or before ``ts``, by due time,
        without removing them; ``ref`` names one schedule entry for ``move_to_queue``."""

    @abc.abstractmethod
    def move_to_queue(self, ref: bytes, data: bytes | None, priority: int = 0) -> bool:
        """Atomically remove the schedule entry ``ref`` and enqueue ``data`` in its place
        (``None``: only remove it). False when the entry is already gone (another
        scheduler moved it, or an earlier call whose reply was lost did), so a move
        happens once whatever is retried."""

    @abc.abstractmethod
    def scheduled_items(self, limit: int | None = None) -> list[bytes]:
        """The scheduled messages ordered by due time, without removing them."""

    @abc.abstractmethod
    def schedule_size(self) -> int:
        """How many messages are on the schedule."""

    @abc.abstractmethod
    def flush_schedule(self) -> None:
        """Remove every scheduled message."""

    # -- key/value (results, locks, revocations, chords) -----------------------
    @abc.abstractmethod
    def put_data(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` (replacing), expiring after ``ttl`` seconds if given,
        and wake anyone in ``wait_for_data(key)``."""

    @abc.abstractmethod
    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Store ``value`` only if ``key`` holds nothing; return whether it was stored."""

    @abc.abstractmethod
    def peek_data(self, key: str) -> bytes | None:
        """The value under ``key``, or ``None``."""

    @abc.abstractmethod
    def pop_data(self, key: str) -> bytes | None:
        """Remove and return the value under ``key``, or ``None``."""

    @abc.abstractmethod
    def delete_data(self, key: str) -> bool:
        """Remove ``key``; return whether it held something."""

    def peek_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values under ``keys`` (``None`` where absent), in one round trip where possible."""
        return [self.peek_data(key) for key in keys]

    def has_data_for_key(self, key: str) -> bool:
        """Whether ``key`` holds a value."""
        return self.peek_data(key) is not None

    @abc.abstractmethod
    def wait_for_data(self, key: str, timeout: float) -> bool:
        """Block up to ``timeout`` seconds until ``key`` holds a value; return whether it does.

        Backends that can, are woken by ``put_data`` instead of polling.
        """

    @abc.abstractmethod
    def result_store_size(self) -> int:
        """How many keys the key/value store holds (one cheap call)."""

    @abc.abstractmethod
    def result_items(self) -> dict[str, bytes]:
        """Every key and value in the key/value store."""

    @abc.abstractmethod
    def flush_results(self) -> None:
        """Remove every key."""

    @abc.abstractmethod
    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Atomically add ``amount`` to the integer counter ``key`` and return the new value.

        ``ttl`` (seconds) is applied when the counter is created. Counters live apart from
        the key/value store (they are not results).
        """

    # -- in-flight table -------------------------------------------------------
    @abc.abstractmethod
    def release(self, token: str) -> bool:
        """Remove the in-flight record ``token``; return whether it existed."""

    @abc.abstractmethod
    def renew(self, owner: str, lease_until: float) -> int:
        """Extend every lease held by ``owner``; return how many were renewed."""

    @abc.abstractmethod
    def in_flight(self) -> list[InFlight]:
        """Every in-flight record."""

    @abc.abstractmethod
    def adopt(self, token: str, expected_owner: str, owner: str,
              lease_until: float) -> InFlight | None:
        """Atomically hand the record ``token`` to ``owner`` with a new lease, if it is
        still held by ``expected_owner``; the record as adopted, or ``None``. Of several
        recovering consumers exactly one adopts a record; one whose reply was lost holds
        it under a lease that expires, so the record is recovered all the same."""

    @abc.abstractmethod
    def requeue_in_flight(self, token: str, data: bytes, priority: int = 0,
                          head: bool = False) -> bool:
        """Atomically drop the record ``token`` and enqueue ``data``; False (and nothing
        enqueued) when the record is gone. ``head`` puts it first among its priority
        (a task handed back unstarted), else last."""

    def in_flight_of(self, owners: Iterable[str]) -> list[InFlight]:
        """In-flight records held by any of ``owners``."""
        wanted = set(owners)
        return [rec for rec in self.in_flight() if rec.owner in wanted]

    # -- everything --------------------------------------------------------------
    def flush_all(self) -> None:
        """Remove queue, schedule, key/value data, counters and in-flight records."""
        self.flush_queue()
        self.flush_schedule()
        self.flush_results()
        self.flush_counters()
        self.flush_in_flight()

    @abc.abstractmethod
    def flush_counters(self) -> None:
        """Remove every counter."""

    @abc.abstractmethod
    def flush_in_flight(self) -> None:
        """Remove every in-flight record."""

    def close(self) -> None:
        """Release connections. The storage may be used again (it reconnects)."""

    def reset_after_fork(self) -> None:
        """Drop connections inherited from a parent process; called in a forked child."""
