"""The final accounting: tasks, executions and events, from storage and from the logs.

The rules, and why they prove the claim, are in docs/chaos.md ("What is counted").
"""
from __future__ import annotations

import datetime
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from .bus_account import BusAccount, Inputs, account_bus
from .evidence import SubscriberLog, is_terminal

@dataclass
class Result:
    """The table's figures and the verdict."""

    tasks: dict[str, int]
    executions: dict[str, int]
    bus: list[BusAccount]
    faults: dict[str, tuple[int, int]]
    vanished: list[str]
    unexplained_duplicates: list[str]
    #: One line per vanished task: its kind, last event and the faults just before it.
    diagnosis: list[str] = field(default_factory=list)

    @property
    def unreported(self) -> int:
        """Events missing from a subscriber's log that the bus never reported."""
        return sum(account.missing_unreported for account in self.bus)

    @property
    def passed(self) -> bool:
        """Nothing vanished, no loss went unreported, no unexplained second execution."""
        return not self.vanished and not self.unreported and not self.unexplained_duplicates


def task_figures(inputs: Inputs) -> tuple[dict[str, int], list[str]]:
    """Counts of tasks by what storage and the logs say; and the ids that vanished."""
    finals = [log.finals() for log in inputs.logs]
    ids = [row['id'] for row in inputs.enqueued]
    storage = inputs.storage
    with_final = [i for i in ids if any(i in f for f in finals)]
    terminal = [i for i in ids if is_terminal(storage, i)]
    completed = [i for i in ids if storage.outcome.get(i) == 'complete'
                 or any(r['sig'] == 'complete' for f in finals for r in f.get(i, ()))]
    leftover = {i for rows in storage.leftover.values() for i in rows}
    vanished = [i for i in ids if i not in set(with_final) | set(terminal)]
    failed_ids = [row['id'] for row in inputs.failed]
    figures = {
        'tasks enqueued (enqueue returned)': len(ids),
        'enqueue calls that raised (not counted as enqueued)': len(failed_ids),
        '... of which ran anyway (the write reached a stalled server)':
            sum(1 for i in failed_ids if is_terminal(storage, i)
                or any(i in f for f in finals)),
        'tasks with a final event on the bus': len(with_final),
        'tasks ended in storage (result or final error)': len(terminal),
        'tasks completed': len(completed),
        'tasks failed for good (planned)': sum(1 for i in terminal
                                              if storage.outcome[i] == 'error'),
        'tasks still queued, scheduled or in flight': len(leftover & set(ids)),
        'tasks vanished': len(vanished),
    }
    for index, log in enumerate(inputs.logs):
        figures['tasks with a final event, subscriber %s' % log.label] = sum(
            1 for i in ids if i in finals[index])
    return figures, vanished


def _interruptions(logs: list[SubscriberLog]) -> Counter[str]:
    seen: dict[tuple[int, int], str] = {}
    for log in logs:
        for key, row in log.events.items():
            if row['sig'] == 'interrupted':
                seen[key] = row['id']
    return Counter(seen.values())


def _after_broker_outage(t: float, injections: list[dict[str, Any]]) -> bool:
    return any(inj['name'] == 'restart-broker' and inj['t0'] - 1 <= t <= inj['t1'] + 10
               for inj in injections)


def execution_figures(inputs: Inputs) -> tuple[dict[str, int], list[str]]:
    """Executions, second runs of one attempt, and those with no ``INTERRUPTED`` to allow
    them (nor a broker outage that may have swallowed it, which the bus reported)."""
    starts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in inputs.executions:
        if row.get('k') == 'start':
            starts[row['id']].append(row)
    interrupted = _interruptions(inputs.logs)
    again = after_interrupted = after_outage = 0
    unexplained = []
    for task_id, rows in starts.items():
        attempts = Counter(row['retries'] for row in rows)
        extra = sum(n - 1 for n in attempts.values())
        if not extra:
            continue
        again += extra
        # One INTERRUPTED puts the task back as it was claimed, so every later attempt may
        # run once more: the runs beyond it are explained by the deepest repetition.
        repeats = max(attempts.values()) - 1
        if repeats <= interrupted.get(task_id, 0):
            after_interrupted += extra
            continue
        later = sorted(row['t'] for row in rows)[1:]
        if all(_after_broker_outage(t, inputs.injections) for t in later):
            after_outage += extra
        else:
            unexplained.append(task_id)
    figures = {
        'executions (task function started)': sum(len(r) for r in starts.values()),
        'second runs of one attempt': again,
        '... after an INTERRUPTED (allowed)': after_interrupted,
        '... whose INTERRUPTED fell in a reported broker outage': after_outage,
        'unexplained duplicate executions': len(unexplained),
    }
    return figures, unexplained


def fault_figures(injections: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """Per fault: ``(injected, survived)``."""
    figures: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for inj in injections:
        figures[inj['name']][0] += 1
        figures[inj['name']][1] += int(bool(inj['ok']))
    return {name: (a, b) for name, (a, b) in sorted(figures.items())}


def _clock(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime('%H:%M:%S.%f')[:-3]


def diagnose(inputs: Inputs, task_id: str) -> str:
    """What is known of a vanished task: kind, last event, storage, faults around it."""
    kind = next((row['kind'] for row in inputs.enqueued if row['id'] == task_id), '?')
    events = sorted((row for log in inputs.logs for row in log.events.values()
                     if row['id'] == task_id), key=lambda row: row.get('ts') or 0)
    last = events[-1] if events else None
    seen = ('last event %s at %s' % (last['sig'], _clock(last['ts']))) if last else 'no event'
    around = [inj for inj in inputs.injections if last is not None
              and last['ts'] - 2 <= inj['t1'] and inj['t0'] <= last['ts'] + 10]
    faults = ', '.join('%s %s-%s' % (inj['name'], _clock(inj['t0']), _clock(inj['t1']))
                       for inj in around) or 'none'
    return '%s (%s): %s; stored: %s; faults around it: %s' % (
        task_id, kind, seen, inputs.storage.outcome.get(task_id, 'nothing'), faults)


def reconcile(inputs: Inputs) -> Result:
    """The whole accounting."""
    tasks, vanished = task_figures(inputs)
    executions, unexplained = execution_figures(inputs)
    bus = [account_bus(inputs, index) for index in range(len(inputs.logs))]
    return Result(tasks, executions, bus, fault_figures(inputs.injections), vanished,
                  unexplained, [diagnose(inputs, task_id) for task_id in vanished])
