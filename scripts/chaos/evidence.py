"""What the campaign collects for the reconciliation: its own records, the subscribers'
logs, the execution log, and the final state of the storage."""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from queue_core.values import Error


def read_jsonl(path: str) -> list[dict[str, Any]]:
    """Every whole JSON line of ``path`` (a line cut short by a SIGKILL is skipped)."""
    rows = []
    try:
        with open(path) as handle:
            for line in handle:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue
    except FileNotFoundError:
        pass
    return rows


def read_tail(path: str, size: int = 256 * 1024) -> list[dict[str, Any]]:
    """The whole JSON lines among the last ``size`` bytes of ``path``."""
    try:
        with open(path, 'rb') as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - size))
            lines = handle.read().split(b'\n')[1:]
    except FileNotFoundError:
        return []
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


@dataclass
class SubscriberLog:
    """One subscriber's log, indexed."""

    label: str
    events: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    losses: list[dict[str, Any]] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)

    @classmethod
    def from_rows(cls, label: str, rows: list[dict[str, Any]]) -> 'SubscriberLog':
        """Index events by ``(epoch, seq)``; give each loss report the epoch it concerns
        (its own ``ep``, else that of the next event logged after it, else the last)."""
        log = cls(label)
        pending: list[dict[str, Any]] = []
        last_epoch = None
        for number, row in enumerate(rows):
            row['n'] = number
            if row.get('k') == 'e':
                log.events[(row['ep'], row['seq'])] = row
                if row['ep'] not in log.epochs:
                    log.epochs.append(row['ep'])
                for loss in pending:
                    loss.setdefault('ep', row['ep'])
                pending, last_epoch = [], row['ep']
            elif row.get('k') == 'loss':
                loss = dict(row)
                if loss.get('ep') is None:
                    loss.pop('ep', None)
                    pending.append(loss)
                log.losses.append(loss)
        for loss in pending:
            loss.setdefault('ep', last_epoch)
        return log

    def seqs(self, epoch: int) -> set[int]:
        """The seqs logged in ``epoch``."""
        return {seq for (ep, seq) in self.events if ep == epoch}

    def finals(self) -> dict[str, list[dict[str, Any]]]:
        """Final events by task id."""
        found: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in self.events.values():
            if row.get('fin'):
                found[row['id']].append(row)
        return found

    def by_task(self) -> dict[str, list[dict[str, Any]]]:
        """Every event by task id."""
        found: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in self.events.values():
            found[row['id']].append(row)
        return found


@dataclass
class StorageState:
    """The storage at the end: each task's outcome and what is still queued."""

    outcome: dict[str, str]            # id -> 'complete' | 'error' (final) | 'retrying'
    leftover: dict[str, list[str]]     # 'pending' / 'scheduled' / 'in-flight' -> ids


def outcome_of(serializer: Any, data: bytes | None) -> str | None:
    """``complete``, ``error`` (failed for good), ``retrying`` (an error with retries left)
    or ``None`` (nothing stored) for one stored result."""
    if data is None:
        return None
    value = serializer.deserialize(data)
    if isinstance(value, Error):
        return 'error' if not value.metadata.get('retries') else 'retrying'
    return 'complete'


def read_storage(queue: Any, ids: list[str]) -> StorageState:
    """Peek (never consume) the results of ``ids`` and list what is left in the queue."""
    outcome: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for task_id, data in zip(chunk, queue.storage.peek_many(chunk)):
            state = outcome_of(queue.serializer, data)
            if state is not None:
                outcome[task_id] = state
    leftover = {'pending': [t.id for t in queue.pending()],
                'scheduled': [t.id for t in queue.scheduled()],
                'in-flight': [row['id'] for row in queue.in_flight()]}
    return StorageState(outcome, leftover)


def is_terminal(state: StorageState, task_id: str) -> bool:
    """Whether the storage shows ``task_id`` ended (completed, or failed for good)."""
    return state.outcome.get(task_id) in ('complete', 'error')
