"""What a batch of bus events adds to a history, worked out the same way for every store
(``signal_bus.history``: SQLite; ``signal_bus.history_redis``: Redis): which events are
new, the counts they add, each task's latest state, and the wait and run times they
complete. Pure bookkeeping: nothing here touches a file or a socket.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import msgpack

from queue_core.signals import (SIGNAL_CANCELED, SIGNAL_COMPLETE, SIGNAL_ENQUEUED,
                                SIGNAL_ERROR, SIGNAL_EXECUTING, SIGNAL_EXPIRED,
                                SIGNAL_INTERRUPTED, SIGNAL_LOCKED, SIGNAL_RATE_LIMITED,
                                SIGNAL_SCHEDULED, SIGNAL_TIMEOUT)

#: Final signals whose timelines are kept ``keep_failures_hours`` (SPEC §8).
FAILED_SIGNALS = frozenset({SIGNAL_ERROR, SIGNAL_TIMEOUT, SIGNAL_INTERRUPTED, SIGNAL_EXPIRED,
                            SIGNAL_LOCKED, SIGNAL_RATE_LIMITED})
#: Events that end an attempt started by ``executing`` (the runtime histogram's end).
OUTCOMES = frozenset({SIGNAL_COMPLETE, SIGNAL_ERROR, SIGNAL_TIMEOUT, SIGNAL_CANCELED,
                      SIGNAL_LOCKED, SIGNAL_RATE_LIMITED, SIGNAL_INTERRUPTED})
#: Signals that open a task's life (a new one after a final event).
OPENING = (SIGNAL_ENQUEUED, SIGNAL_SCHEDULED)
#: Upper bounds (seconds) of the wait and runtime histogram buckets; the last is +Inf.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
           300.0, float('inf'))
#: Open tasks whose start times are remembered in memory (older ones are forgotten).
OPEN_CAP = 200_000


class ReceivedEvent(dict):  # type: ignore[type-arg]
    """An event's wire map (body keys, then ``seq``, ``sseq``, ``epoch``) that keeps its
    body frame as received, so a store writes those bytes instead of packing the map."""

    __slots__ = ('body_frame',)
    body_frame: bytes


def received_event(body_frame: bytes, seq: int, sseq: int, epoch: int,
                   gap: bool = False) -> ReceivedEvent:
    """The ``ReceivedEvent`` of a body frame and its meta. A body that does not decode
    to a map (the broker checks every body, so only a non-conforming one sends it) is
    stored as an empty map."""
    try:
        data = msgpack.unpackb(body_frame, strict_map_key=False)
    except Exception:
        data = None
    if type(data) is not dict:
        data, body_frame = {}, msgpack.packb({})
    event = ReceivedEvent(data)
    event['seq'], event['sseq'], event['epoch'] = seq, sseq, epoch
    if gap:
        event['gap'] = True
    else:
        event.pop('gap', None)  # the meta's key, not the body's
    event.body_frame = body_frame
    return event


def error_text(exc: Any) -> str | None:
    """``"Type: message"`` of a wire ``exc`` map, or None."""
    if not isinstance(exc, dict):
        return None
    kind, message = exc.get('type') or 'Exception', exc.get('message') or ''
    return '%s: %s' % (kind, message) if message else str(kind)


def bucket(seconds: float) -> int:
    """The index in ``BUCKETS`` of the first bound at or above ``seconds``."""
    for index, bound in enumerate(BUCKETS):
        if seconds <= bound:
            return index
    return len(BUCKETS) - 1


def fresh_events(events: Iterable[Mapping[str, Any]], epoch: int | None,
                 seq: int) -> list[Mapping[str, Any]]:
    """The events after position ``(epoch, seq)``: a replay that overlaps what was stored
    is skipped; an event of another epoch starts that epoch's numbering."""
    fresh = []
    for event in events:
        ev_epoch, ev_seq = event.get('epoch'), int(event.get('seq') or 0)
        if ev_epoch == epoch and ev_seq <= seq:
            continue
        epoch, seq = ev_epoch, ev_seq
        fresh.append(event)
    return fresh


@dataclass
class TaskState:
    """A task's state after the batch; ``reopened`` when a new life began within it."""

    task_id: str
    name: Any
    queue: Any
    first_ts: float
    life_ts: float
    last_ts: float
    last_id: int
    last_signal: Any
    final: int
    failed: int
    error: str | None
    reopened: bool = False


@dataclass
class BatchSummary:
    """What one batch adds: counts, task states and durations (see ``summarize``)."""

    totals: dict[tuple[Any, Any, str], int] = field(default_factory=dict)
    minutes: dict[tuple[int, Any], int] = field(default_factory=dict)
    tasks: dict[str, TaskState] = field(default_factory=dict)
    durations: dict[tuple[str, str, int], list[float]] = field(default_factory=dict)


class OpenTimes:
    """Start times of open tasks (enqueued, executing), bounded to ``OPEN_CAP`` tasks, from
    which ``executing`` gives a wait and an outcome a run time."""

    def __init__(self) -> None:
        self.times: dict[str, list[float | None]] = {}

    def note(self, task_id: str, life_ts: float, executing: float | None) -> None:
        """Remember an open task read back from a store at start."""
        if len(self.times) < OPEN_CAP:
            self.times[task_id] = [life_ts, executing]

    def measure(self, task_id: str, signal: Any, ts: float, name: str, final: bool,
                summary: BatchSummary) -> None:
        """Add the wait or run time this event completes to ``summary.durations``."""
        times = self.times.get(task_id)
        if signal in OPENING:
            if times is None and len(self.times) >= OPEN_CAP:
                self.times.pop(next(iter(self.times)))
            self.times[task_id] = [ts, None]
        elif signal == SIGNAL_EXECUTING and times is not None and times[0] is not None:
            _add(summary, 'wait', name, ts - times[0])
            times[1] = ts
        elif signal in OUTCOMES and times is not None and times[1] is not None:
            _add(summary, 'runtime', name, ts - times[1])
            times[1] = None
        if final:
            self.times.pop(task_id, None)


def _add(summary: BatchSummary, metric: str, name: str, seconds: float) -> None:
    seconds = max(0.0, seconds)
    slot = summary.durations.setdefault((metric, name, bucket(seconds)), [0, 0.0])
    slot[0] += 1
    slot[1] += seconds


def summarize(events: list[Mapping[str, Any]], first_id: int,
              open_times: OpenTimes) -> BatchSummary:
    """Counts per ``(signal, task, queue)`` and per ``(minute, signal)``, each task's
    state, and durations, for ``events`` stored with ids from ``first_id`` on."""
    summary = BatchSummary()
    totals, minutes, tasks = summary.totals, summary.minutes, summary.tasks
    for event_id, event in enumerate(events, first_id):
        get = event.get  # each key read once: this loop runs for every stored event
        signal, ts, task_name, queue = get('signal'), float(get('ts') or 0.0), \
            get('task_name'), get('queue')
        key = (signal, task_name, queue or '')
        totals[key] = totals.get(key, 0) + 1
        minute = (int(ts // 60), signal)
        minutes[minute] = minutes.get(minute, 0) + 1
        task_id, final = str(get('task_id')), 1 if get('final') else 0
        failed = 1 if final and signal in FAILED_SIGNALS else 0
        error = error_text(get('exc'))
        state = tasks.get(task_id)
        if state is None:
            tasks[task_id] = TaskState(task_id, task_name, queue, ts, ts, ts, event_id,
                                       signal, final, failed, error)
        else:
            if state.final:  # a new life began within the batch
                state.life_ts, state.reopened = ts, True
            state.name, state.queue, state.last_ts, state.last_id = task_name, queue, ts, \
                event_id
            state.last_signal, state.final = signal, final
            state.failed = max(state.failed, failed)
            state.error = error or state.error
        open_times.measure(task_id, signal, ts, str(task_name), bool(final), summary)
    return summary


def number_lives(events: list[dict[str, Any]]) -> int:
    """Set ``life`` (1, 2, …) on a task's events in stream order: an ``enqueued`` or
    ``scheduled`` after a final event opens the next life. Returns the number of lives."""
    life, closed = 1, False
    for event in events:
        if closed and event['signal'] in OPENING:
            life += 1
        closed = bool(event['final'])
        event['life'] = life
    return life


def throughput_of(minute_counts: Iterable[tuple[int, str, int]], minutes: int,
                  now: float) -> list[dict[str, Any]]:
    """One point per minute over the last ``minutes`` from ``(minute, signal, count)``
    rows: ``{"minute": epoch seconds, "count", "failed"}``, oldest first, empty as 0."""
    last = int(now // 60)
    counts = {m: [0, 0] for m in range(last - minutes + 1, last + 1)}
    for minute, signal, count in minute_counts:
        if minute in counts:
            counts[minute][0] += count
            counts[minute][1] += count if signal in FAILED_SIGNALS else 0
    return [{'minute': m * 60, 'count': c, 'failed': f} for m, (c, f) in counts.items()]


def overview_of(history: Any, seconds: float, now: float) -> dict[str, Any]:
    """The overview map, from any store's query methods."""
    by_signal: dict[str, int] = {}
    for row in history.totals():
        by_signal[row['signal']] = by_signal.get(row['signal'], 0) + int(row['count'])
    epoch, seq = history.position()
    return {'now': now, 'totals': by_signal, 'window': history.window_counts(seconds, now),
            'window_seconds': seconds, 'throughput': history.throughput(60, now),
            'inflight': history.inflight(20, now), 'inflight_count': history.inflight_count(),
            'recent': history.recent_events(20), 'failures': history.recent_failures(10),
            'incidents': history.incidents(10), 'lost': history.lost_total(),
            'position': {'epoch': epoch, 'seq': seq}}


def breakdown_of(totals: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """``{task: {signal: count}}`` from ``totals()`` rows."""
    breakdown: dict[str, dict[str, int]] = {}
    for row in totals:
        per_task = breakdown.setdefault(row['task'], {})
        per_task[row['signal']] = per_task.get(row['signal'], 0) + int(row['count'])
    return breakdown
