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
    """The last ``capacity`` entries, appended with consecutive ``seq`` numbers from 1."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._slots: list[T | None] = [None] * capacity
        self.last_seq = 0
        self.size = 0

    @property
    def first_seq(self) -> int:
        """The oldest ``seq`` still held, or 0 when the ring is empty."""
        return self.last_seq - self.size + 1 if self.size else 0

    def append(self, seq: int, entry: T) -> None:
        """Store the entry released as ``seq`` (always ``last_seq + 1``)."""
        if seq != self.last_seq + 1:
            raise ValueError('ring expects seq %d, got %d' % (self.last_seq + 1, seq))
        self._slots[seq % self.capacity] = entry
        self.last_seq = seq
        self.size = min(self.size + 1, self.capacity)

    def page(self, from_seq: int, to_seq: int | None, limit: int) -> Page:
        """Up to ``limit`` entries from ``from_seq`` to ``to_seq`` inclusive.

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
        entries = [self._slots[seq % self.capacity] for seq in range(start, stop + 1)]
        return Page(entries, start + len(entries), missing, end)
