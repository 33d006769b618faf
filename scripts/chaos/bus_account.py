"""One subscriber's bus account: what it logged, what the bus reported lost, and what is
missing without a report (see docs/chaos.md, "What is counted")."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .evidence import StorageState, SubscriberLog, is_terminal

MAX_EXAMPLES = 5
#: A lost final event that no subscriber ever saw is covered by a loss report made from
#: a second before the task was enqueued until this long after its last known event.
REPORT_WINDOW = 15.0


@dataclass
class Inputs:
    """Everything the reconciliation reads."""

    enqueued: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    executions: list[dict[str, Any]]
    logs: list[SubscriberLog]
    storage: StorageState
    injections: list[dict[str, Any]]
    final_epoch: int | None
    final_last_seq: int
    #: Events the flood publishers dropped themselves (each one a hole in their pseq).
    flood_dropped: int = 0


@dataclass
class BusAccount:
    """One subscriber's view of the bus."""

    label: str
    events: int = 0
    reported_seq: int = 0
    reported_publisher: int = 0
    reported_restarts: int = 0
    missing_covered: int = 0
    missing_unreported: int = 0
    examples: list[str] = field(default_factory=list)


def account_bus(inputs: Inputs, index: int) -> BusAccount:
    """Sum the subscriber's loss reports, then look for events missing from its log."""
    log = inputs.logs[index]
    others = [other for i, other in enumerate(inputs.logs) if i != index]
    account = BusAccount(log.label, events=len(log.events))
    for loss in log.losses:
        if loss['count'] is None:
            account.reported_restarts += 1
        elif loss['first'] is None:
            account.reported_publisher += int(loss['count'])
        else:
            account.reported_seq += int(loss['count'])
    _check_numbered(inputs, log, others, account)
    _check_unnumbered_finals(inputs, log, others, account)
    _check_publisher_drops(inputs, account)
    return account


def _check_publisher_drops(inputs: Inputs, account: BusAccount) -> None:
    """Every event a flood publisher dropped (it counts them) must reach the subscriber
    as a reported publisher loss (``_loss``)."""
    missing = inputs.flood_dropped - account.reported_publisher
    if missing > 0:
        account.missing_unreported += missing
        account.examples.append('%d events dropped by flood publishers, %d reported'
                                % (inputs.flood_dropped, account.reported_publisher))


def _miss(account: BusAccount, covered: bool, what: str) -> None:
    if covered:
        account.missing_covered += 1
    else:
        account.missing_unreported += 1
        if len(account.examples) < MAX_EXAMPLES:
            account.examples.append(what)


def _epochs(inputs: Inputs, logs: list[SubscriberLog]) -> dict[int, int]:
    """Every epoch anyone saw, with the highest seq known released in it."""
    top: dict[int, int] = defaultdict(int)
    for log in logs:
        for epoch, seq in log.events:
            top[epoch] = max(top[epoch], seq)
    if inputs.final_epoch is not None:
        top[inputs.final_epoch] = max(top[inputs.final_epoch], inputs.final_last_seq)
    return top


def _check_numbered(inputs: Inputs, log: SubscriberLog, others: list[SubscriberLog],
                    account: BusAccount) -> None:
    """Every seq the broker released (as far as anyone knows) is in the log, inside a loss
    range the subscriber reported, or after its last event of an epoch that ended in a
    broker restart it reported."""
    ranges: dict[Any, list[tuple[int, int]]] = defaultdict(list)
    for loss in log.losses:
        if loss['first'] is not None:
            ranges[loss.get('ep')].append((loss['first'], loss['last']))
    restarts = [loss['n'] for loss in log.losses if loss['count'] is None]
    for epoch, top in _epochs(inputs, [log] + others).items():
        mine = log.seqs(epoch)
        last_mine = max(mine, default=0)
        last_n = max((log.events[(epoch, s)]['n'] for s in mine), default=-1)
        tail_reported = epoch != inputs.final_epoch and any(n > last_n for n in restarts)
        for seq in range(1, top + 1):
            if seq in mine:
                continue
            covered = (any(a <= seq <= b for a, b in ranges[epoch])
                       or (seq > last_mine and tail_reported))
            _miss(account, covered, 'epoch %d seq %d' % (epoch, seq))


def _check_unnumbered_finals(inputs: Inputs, log: SubscriberLog,
                             others: list[SubscriberLog], account: BusAccount) -> None:
    """A task that ended (storage says so) but whose final event no subscriber has: the
    event never got a seq (lost before or inside a broker). The subscriber must have
    reported a loss while the task was alive."""
    finals = log.finals()
    other_finals = [other.finals() for other in others]
    events = defaultdict(list)
    for each in [log] + others:
        for task_id, rows in each.by_task().items():
            events[task_id].extend(rows)
    for row in inputs.enqueued:
        task_id = row['id']
        if task_id in finals or any(task_id in f for f in other_finals):
            continue
        if not is_terminal(inputs.storage, task_id):
            continue
        start = row['t'] - 1
        end = max([r.get('ts') or row['t'] for r in events[task_id]] + [row['t']])
        covered = any(start <= loss['t'] <= end + REPORT_WINDOW for loss in log.losses)
        _miss(account, covered, 'final event of task %s' % task_id)
