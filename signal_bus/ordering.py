"""The broker's ordering duties, as pure bookkeeping with time passed in.

``Sequencer`` releases events so that each task's events come out in ``tseq`` order and
each publisher's events keep their order, both at once. An event whose task predecessor
has not arrived is held for at most the hold-back window, and holds back the events its
publisher sent after it; when the window runs out it is released marked ``gap``.

``PublisherTable`` watches each publisher's ``pseq`` and reports the holes.
"""
from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict, deque
from typing import NamedTuple

from .wire import BodyInfo, Header


class Pending(NamedTuple):
    """An accepted event waiting for (or on its way to) release."""

    header: Header
    body: bytes
    final: bool
    arrived: float


class Released(NamedTuple):
    """An event the sequencer lets go; ``gap`` when its hold-back window ran out."""

    event: Pending
    gap: bool


class Loss(NamedTuple):
    """A hole in one publisher's ``pseq``: events that never reached the broker."""

    pub: int
    host: str | None
    pid: int | None
    events: int
    first_pseq: int
    last_pseq: int


_RESET = None  # a task's state after a tseq-nil event: a new life's first event is next
#: The events that open a task's new life after a reset (a recovered task's requeue).
_OPENING = frozenset({'enqueued', 'scheduled'})


class ForgottenTasks:
    """A compact memory of ``(task, last tseq)`` pairs the sequencer has let go of.

    Two rotating Bloom filters of ``capacity`` entries each (10 bits per entry each, four
    probes, about 1% false positives): a task forgotten for space or after its final
    event and heard from again continues without a hold-back. A false positive only
    releases an event of a never-seen task without waiting for its predecessor.
    """

    _BITS_PER_ENTRY = 10

    def __init__(self, capacity: int) -> None:
        self.capacity = max(capacity, 1)
        self._bits = self.capacity * self._BITS_PER_ENTRY
        self._current = bytearray(self._bits // 8 + 1)
        self._previous = bytearray(len(self._current))
        self._count = 0

    def _positions(self, task_id: str, tseq: int) -> tuple[int, int, int, int]:
        # Python's own (process-salted) hash runs in C, and two 64-bit hashes give the
        # four probes: this sits on the broker's per-event path (every final event).
        first, second = hash((task_id, tseq)), hash((tseq, task_id))
        bits = self._bits
        return ((first & 0xFFFFFFFF) % bits, ((first >> 32) & 0xFFFFFFFF) % bits,
                (second & 0xFFFFFFFF) % bits, ((second >> 32) & 0xFFFFFFFF) % bits)

    def add(self, task_id: str, tseq: int) -> None:
        """Remember that ``task_id`` was last released at ``tseq``."""
        if self._count >= self.capacity:
            self._previous, self._current = self._current, bytearray(len(self._current))
            self._count = 0
        current = self._current
        a, b, c, d = self._positions(task_id, tseq)
        current[a >> 3] |= 1 << (a & 7)
        current[b >> 3] |= 1 << (b & 7)
        current[c >> 3] |= 1 << (c & 7)
        current[d >> 3] |= 1 << (d & 7)
        self._count += 1

    def __contains__(self, item: tuple[str, int]) -> bool:
        positions = self._positions(*item)
        return any(all(bits[position >> 3] & (1 << (position & 7)) for position in positions)
                   for bits in (self._current, self._previous))


class Sequencer:
    """Per-task ``tseq`` order plus per-publisher FIFO, with a bounded hold-back.

    State per task is the last released ``tseq``; it is forgotten after the task's final
    event and, beyond ``max_tasks`` tasks, least recently used first (a compact memory of
    forgotten tasks lets them continue without a hold-back). A task the sequencer does not
    know is expected to start at ``tseq`` 1.
    """

    def __init__(self, hold: float, max_tasks: int = 100_000) -> None:
        self.hold = hold
        self.max_tasks = max_tasks
        self._tasks: OrderedDict[str, int | None] = OrderedDict()
        self._forgotten = ForgottenTasks(10 * max_tasks)
        self._queues: dict[int, deque[Pending]] = {}
        self._waiting: dict[str, set[int]] = {}
        self._blocked_head: dict[int, Pending] = {}
        self._timers: list[tuple[float, int, int]] = []
        self._counter = itertools.count()
        self._work: list[int] = []
        self.held = 0

    def push(self, event: Pending, now: float) -> list[Released]:
        """Accept ``event``; return what can be released now, in release order."""
        pub = event.header.pub
        queue = self._queues.get(pub)
        if queue:
            queue.append(event)
            self.held += 1
            out: list[Released] = []
        elif self._ready(event):
            out = [Released(event, False)]
            self._released(event)
            if not self._work:
                return out
        else:
            out = []
            self._queues[pub] = deque([event])
            self.held += 1
            self._block(pub, event)
        self._run_work(now, out)
        return out

    def expire(self, now: float) -> list[Released]:
        """Release held events whose window has run out (and what they unblock)."""
        out: list[Released] = []
        while self._timers and self._timers[0][0] <= now:
            self._work.append(heapq.heappop(self._timers)[2])
        self._run_work(now, out)
        return out

    def next_deadline(self) -> float | None:
        """When ``expire`` may next have something to release, or None."""
        return self._timers[0][0] if self._timers else None

    def tasks_tracked(self) -> int:
        """How many tasks have ordering state now."""
        return len(self._tasks)

    def _ready(self, event: Pending) -> bool:
        tseq = event.header.tseq
        if tseq is None:
            return True
        task_id = event.header.task_id
        if task_id not in self._tasks:
            return tseq <= 1 or (task_id, tseq - 1) in self._forgotten
        last = self._tasks[task_id]
        if last is _RESET:
            # A supervisor's report (tseq nil) reset the task: its next life opens with an
            # ENQUEUED or SCHEDULED whose tseq nobody here knows, from whichever process
            # requeued it, and anything else of the task waits for it (or its window).
            return event.header.signal in _OPENING
        return tseq <= last + 1

    def _block(self, pub: int, head: Pending) -> None:
        self._waiting.setdefault(head.header.task_id, set()).add(pub)
        if self._blocked_head.get(pub) is not head:
            self._blocked_head[pub] = head
            heapq.heappush(self._timers, (head.arrived + self.hold, next(self._counter), pub))

    def _unwait(self, pub: int, task_id: str) -> None:
        waiters = self._waiting.get(task_id)
        if waiters is not None:
            waiters.discard(pub)
            if not waiters:
                del self._waiting[task_id]

    def _release(self, event: Pending, gap: bool, out: list[Released]) -> None:
        out.append(Released(event, gap))
        self._released(event)

    def _released(self, event: Pending) -> None:
        """Update the task's state for a released event; wake publishers waiting on it."""
        header = event.header
        task_id, tseq = header.task_id, header.tseq
        tasks = self._tasks
        if event.final:
            last = tasks.pop(task_id, _RESET)
            self._forget(task_id, tseq if last is _RESET or tseq is None else max(last, tseq))
        elif tseq is None:
            tasks[task_id] = _RESET
            tasks.move_to_end(task_id)
        else:
            last = tasks.get(task_id, _RESET)
            tasks[task_id] = tseq if last is _RESET or tseq > last else last
            tasks.move_to_end(task_id)
            if len(tasks) > self.max_tasks:
                while len(tasks) > self.max_tasks:
                    self._forget(*tasks.popitem(last=False))
        if self._waiting:
            waiters = self._waiting.pop(task_id, None)
            if waiters:
                self._work.extend(waiters)

    def _forget(self, task_id: str, last: int | None) -> None:
        if last is not None:
            self._forgotten.add(task_id, last)

    def _run_work(self, now: float, out: list[Released]) -> None:
        while self._work:
            self._drain(self._work.pop(), now, out)

    def _drain(self, pub: int, now: float, out: list[Released]) -> None:
        queue = self._queues.get(pub)
        while queue:
            head = queue[0]
            ready = self._ready(head)
            if not ready and head.arrived + self.hold > now:
                self._block(pub, head)
                return
            queue.popleft()
            self.held -= 1
            self._unwait(pub, head.header.task_id)
            self._release(head, not ready, out)
        self._queues.pop(pub, None)
        self._blocked_head.pop(pub, None)


class PublisherTable:
    """Each publisher's last ``pseq``, ``host`` and ``pid``; finds holes in ``pseq``.

    A publisher's first event is never a loss (after a broker restart the earlier broker
    may have delivered the rest). Beyond ``max_publishers`` the least recently heard is
    forgotten.
    """

    def __init__(self, max_publishers: int = 10_000) -> None:
        self.max_publishers = max_publishers
        self._pubs: OrderedDict[int, list] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pubs)

    def __contains__(self, pub: int) -> bool:
        return pub in self._pubs

    def observe(self, header: Header, info: BodyInfo | None) -> Loss | None:
        """Record one event's ``pseq``; return the hole before it, if any. ``info`` (the
        body's host and pid) is needed only for a publisher not yet known."""
        state = self._pubs.get(header.pub)
        if state is None:
            if info is None:
                raise ValueError('the first event of publisher %d needs its body info'
                                 % header.pub)
            self._pubs[header.pub] = [header.pseq, info.host, info.pid]
            while len(self._pubs) > self.max_publishers:
                self._pubs.popitem(last=False)
            return None
        self._pubs.move_to_end(header.pub)
        last, host, pid = state
        if header.pseq <= last:
            return None
        state[0] = header.pseq
        if header.pseq == last + 1:
            return None
        return Loss(header.pub, host, pid, header.pseq - last - 1, last + 1, header.pseq - 1)
