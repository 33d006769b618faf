"""The broker's ring of recently released events, addressed by ``seq``, and its paging."""
from __future__ import annotations

from typing import Generic, NamedTuple, TypeVar

T = TypeVar('T')


class Page(NamedTuple):
    """One replay page: entries from the ring, where to continue, and what was gone."""

    entries: list
    next_seq: int
    missing: int
    to_seq: int


class Ring(Generic[T]):
    """The last entries appended with consecutive ``seq`` numbers from 1: at most
    ``capacity`` of them and, oldest evicted first, at most ``max_bytes`` of their sizes
    (the newest entry is always kept, whatever its size)."""

    def __init__(self, capacity: int, max_bytes: int | None = None) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes if max_bytes is not None else float('inf')
        self._slots: list[T | None] = [None] * capacity
        self._sizes: list[int] = [0] * capacity
        self.last_seq = 0
        self.size = 0
        #: The sum of the sizes of the entries held.
        self.bytes = 0

    @property
    def first_seq(self) -> int:
        """The oldest ``seq`` still held, or 0 when the ring is empty."""
        return self.last_seq - self.size + 1 if self.size else 0

    def append(self, seq: int, entry: T, nbytes: int = 0) -> None:
        """Store the entry released as ``seq`` (always ``last_seq + 1``), of ``nbytes``."""
        if seq != self.last_seq + 1:
            raise ValueError('ring expects seq %d, got %d' % (self.last_seq + 1, seq))
        index = seq % self.capacity
        if self.size == self.capacity:
            self.bytes -= self._sizes[index]
        else:
            self.size += 1
        self._slots[index] = entry
        self._sizes[index] = nbytes
        self.bytes += nbytes
        self.last_seq = seq
        if self.bytes > self.max_bytes:
            self._evict()

    def _evict(self) -> None:
        slots, sizes, capacity = self._slots, self._sizes, self.capacity
        while self.bytes > self.max_bytes and self.size > 1:
            index = (self.last_seq - self.size + 1) % capacity
            self.bytes -= sizes[index]
            slots[index] = None
            sizes[index] = 0
            self.size -= 1

    def page(self, from_seq: int, to_seq: int | None, limit: int,
             max_bytes: int | None = None) -> Page:
        """Up to ``limit`` entries from ``from_seq`` to ``to_seq`` inclusive, ending early
        before ``max_bytes`` would be passed (a page has at least one entry).

        ``to_seq`` None (or past the end) means up to ``last_seq``. ``missing`` counts the
        numbers in range that the ring no longer holds; ask again from ``next_seq`` while
        it is at most ``to_seq``.
        """
        start = max(from_seq, 1)
        end = self.last_seq if to_seq is None else min(to_seq, self.last_seq)
        if start > end:
            return Page([], start, 0, end)
        oldest = self.first_seq or self.last_seq + 1
        missing = 0
        if start < oldest:
            missing = min(end, oldest - 1) - start + 1
            start = min(oldest, end + 1)
        stop = min(end, start + limit - 1)
        budget = float('inf') if max_bytes is None else max_bytes
        entries: list = []
        total = 0
        for seq in range(start, stop + 1):
            index = seq % self.capacity
            total += self._sizes[index]
            if entries and total > budget:
                break
            entries.append(self._slots[index])
        return Page(entries, start + len(entries), missing, end)
