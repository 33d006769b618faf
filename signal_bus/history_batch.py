"""What a batch of bus events adds to a history, worked out the same way for every store
(``signal_bus.history``: SQLite; ``signal_bus.history_redis``: Redis): which events are
new, the counts they add, each task's latest state, and the wait and run times they
complete. Pure bookkeeping: nothing here touches a file or a socket.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

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


def error_text(exc: Any) -> str | None:
    """``"Type: message"`` of a wire ``exc`` map, or None."""
    if not isinstance(exc, Mapping):
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

    def measure(self, event: Mapping[str, Any], summary: BatchSummary) -> None:
        """Add the wait or run time this event completes to ``summary.durations``."""
        task_id, signal = str(event.get('task_id')), event.get('signal')
        ts, name = float(event.get('ts') or 0.0), str(event.get('task_name'))
        times = self.times.get(task_id)
        if signal in OPENING:
            if times is None and len(self.times) >= OPEN_CAP:
                self.times.pop(next(iter(self.times)))
            self.times[task_id] = [ts, None]
        elif signal == SIGNAL_EXECUTING and times is not None:
            _add(summary, 'wait', name, ts - times[0])
            times[1] = ts
        elif signal in OUTCOMES and times is not None and times[1] is not None:
            _add(summary, 'runtime', name, ts - times[1])
            times[1] = None
        if event.get('final'):
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
    for offset, event in enumerate(events):
        signal, ts = event.get('signal'), float(event.get('ts') or 0.0)
        key = (signal, event.get('task_name'), event.get('queue') or '')
        summary.totals[key] = summary.totals.get(key, 0) + 1
        minute = (int(ts // 60), signal)
        summary.minutes[minute] = summary.minutes.get(minute, 0) + 1
        _task_state(summary, event, first_id + offset, ts)
        open_times.measure(event, summary)
    return summary


def _task_state(summary: BatchSummary, event: Mapping[str, Any], event_id: int,
                ts: float) -> None:
    task_id, signal = str(event.get('task_id')), event.get('signal')
    final = 1 if event.get('final') else 0
    previous = summary.tasks.get(task_id)
    reopened = previous is not None and bool(previous.final)
    summary.tasks[task_id] = TaskState(
        task_id=task_id, name=event.get('task_name'), queue=event.get('queue'),
        first_ts=ts if previous is None else previous.first_ts,
        life_ts=ts if previous is None or reopened else previous.life_ts,
        last_ts=ts, last_id=event_id, last_signal=signal, final=final,
        failed=max(1 if final and signal in FAILED_SIGNALS else 0,
                   previous.failed if previous else 0),
        error=error_text(event.get('exc')) or (previous.error if previous else None),
        reopened=reopened or bool(previous and previous.reopened))


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
