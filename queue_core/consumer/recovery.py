"""Recovering in-flight records whose worker is gone.

A dead worker's records are sorted by what its progress file (``progress.py``) says:
those it finished are dropped, the one it was running is reported ``INTERRUPTED`` (and
requeued with ``--requeue-interrupted``), and prefetched ones it never started go back to
the head of the queue as they were, with no signal. Without the file (another host, a
reboot) every record is reported ``INTERRUPTED``, which is never wrong about a task that
did start.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from collections import defaultdict
from typing import Any, Collection, Iterable

from .. import signals as S
from ..execution import error_value, give_up
from ..signals import SOURCE_CONSUMER
from ..storage.base import InFlight
from .owner import parse_owner
from .progress import FINISHED, RUNNING, Position, forget, read_position
from .queue_protocol import RecoveryQueue

logger = logging.getLogger('queue_core.consumer')

#: Seconds a recovering process holds an adopted record before another may take it over.
RECOVERY_LEASE = 30.0
#: How far a requeued task's ``tseq`` jumps past the stored one, so that it never repeats
#: a number the dead worker may have sent (SPEC §7 "Restarts and recovery").
REQUEUE_TSEQ_GAP = 100


def recoverer_id() -> str:
    """The in-flight owner name of this process while it recovers others' tasks, in the
    workers' ``host:pid:suffix`` form, so a recoverer that dies is noticed like a worker."""
    return '%s:%d:recovery' % (socket.gethostname(), os.getpid())


def recover_record(queue: RecoveryQueue, record: InFlight, requeue: bool = False,
                   owner: str | None = None) -> bool:
    """Report an abandoned in-flight task (its worker died): ``INTERRUPTED`` with source
    ``consumer`` and no ``tseq``; with ``requeue`` put it back on the queue (its ``tseq``
    continues from the stored one + ``REQUEUE_TSEQ_GAP``). Returns whether this caller won
    the record.

    The record is first adopted by ``owner`` (this process by default) under a lease,
    and dropped only once it was reported or requeued: a recovery cut short, even by
    a lost storage reply, leaves a record whose lease runs out and is recovered again."""
    adopted = queue.storage.adopt(record.token, record.owner, owner or recoverer_id(),
                                  time.time() + RECOVERY_LEASE)
    if adopted is None:
        return False
    task = queue._decode(adopted.data)
    if task is None:
        queue.storage.release(adopted.token)
        return True
    stored_tseq = task.tseq or 0
    with queue.emitting_as(S.SOURCE_CONSUMER):
        task.tseq = None
        queue.emit(S.SIGNAL_INTERRUPTED, task, final=not requeue)
        task.tseq, task.eta = stored_tseq + REQUEUE_TSEQ_GAP, None
        if requeue:
            _requeue(queue, adopted, task)
        else:
            give_up(queue, task, error_value(queue, task, RuntimeError(
                'worker %s died' % record.owner)))
            queue.storage.release(adopted.token)
    return True


def _requeue(queue: RecoveryQueue, adopted: InFlight, task: Any) -> None:
    """Put the recovered task back on the queue, announcing it first.

    The ``INTERRUPTED`` just sent (no ``tseq``) reset the broker's ordering for the task,
    so the broker takes its next ``tseq`` as it comes: were the copy claimable before its
    ``ENQUEUED`` left, a worker's ``EXECUTING`` could reach the broker first and be
    released ahead of it. So ``ENQUEUED`` is emitted (and the sinks flushed) while the
    task is still held, durably, in the adopted record; should the move fail, the record
    is recovered again.
    """
    data = queue._encode_for_write(task)
    queue.emit(S.SIGNAL_ENQUEUED, task, bump=False)
    flush = getattr(queue, 'flush_signal_sinks', None)
    if flush is not None:
        flush()
    if not queue.storage.requeue_in_flight(adopted.token, data, task.priority or 0):
        logger.warning('recovered task %s was taken over by another recoverer before it '
                       'was requeued', task.id)


def hand_back(queue: RecoveryQueue, record: InFlight, owner: str | None = None) -> bool:
    """Put a claimed task that never started back at the head of its priority, exactly
    as it was stored (no signal, no ``tseq`` change). Adopted first, so of several
    recoverers one hands it back; whether this caller did."""
    adopted = queue.storage.adopt(record.token, record.owner, owner or recoverer_id(),
                                  time.time() + RECOVERY_LEASE)
    if adopted is None:
        return False
    task = queue._peek_task(adopted.data)
    return queue.storage.requeue_in_flight(adopted.token, adopted.data,
                                           (task.priority or 0) if task else 0, head=True)


def sort_by_progress(records: Iterable[InFlight], position: Position | None
                     ) -> tuple[list[InFlight], list[InFlight], list[InFlight]]:
    """One dead worker's records as ``(finished, started, never_started)``, each in claim
    order. With no known position every record counts as started."""
    ordered = sorted(records, key=lambda rec: rec.token)
    if position is None:
        return [], ordered, []
    finished, started, waiting = [], [], []
    for rec in ordered:
        if position.state in (RUNNING, FINISHED) and rec.token < position.token:
            finished.append(rec)
        elif rec.token == position.token and position.state == FINISHED:
            finished.append(rec)
        elif rec.token == position.token and position.state == RUNNING:
            started.append(rec)
        else:
            waiting.append(rec)
    return finished, started, waiting


def pid_is_gone(pid: int) -> bool:
    """Whether no process ``pid`` exists on this host (a zombie still counts as existing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def owner_is_gone(owner: str, host: str) -> bool:
    """Whether ``owner`` names a worker on this host whose process no longer exists."""
    parsed = parse_owner(owner)
    return parsed is not None and parsed[0] == host and pid_is_gone(parsed[1])


def recover_records(queue: RecoveryQueue, records: Iterable[InFlight],
                    requeue: bool = False) -> int:
    """Recover each record of gone workers, sorted by their progress on this host;
    count the records won (dropped, reported or handed back). Started tasks go back on the
    queue with ``requeue`` (``--requeue-interrupted``)."""
    by_owner: dict[str, list[InFlight]] = defaultdict(list)
    for record in records:
        by_owner[record.owner].append(record)
    won = 0
    with queue.emitting_as(SOURCE_CONSUMER):
        for owner, held in by_owner.items():
            won += _recover_owner(queue, owner, held, requeue)
    return won


def _recover_owner(queue: RecoveryQueue, owner: str, records: list[InFlight],
                   requeue: bool) -> int:
    # Only a worker known to be gone may have its unstarted tasks handed back: a live one
    # whose lease lapsed (stuck) would still run them.
    gone = owner_is_gone(owner, socket.gethostname())
    position = read_position(owner) if gone else None
    finished, started, waiting = sort_by_progress(records, position)
    won = 0
    for record in finished:
        won += bool(queue.storage.release(record.token))
    for record in started:
        if queue.recover(record, requeue):
            won += 1
            logger.warning('recovered in-flight task of gone worker %s (token %s)',
                           owner, record.token)
    handed = sum(hand_back(queue, record) for record in reversed(waiting))
    if handed:
        logger.warning('put %d unstarted task(s) of gone worker %s back at the head of the '
                       'queue', handed, owner)
    if gone:
        forget(owner)
    return won + handed


def recover_owners(queue: RecoveryQueue, owners: Collection[str], requeue: bool = False) -> int:
    """Recover every record held by ``owners`` (workers known to be dead)."""
    won = recover_records(queue, queue.storage.in_flight_of(owners), requeue)
    host = socket.gethostname()
    for owner in owners:
        if owner_is_gone(owner, host):
            forget(owner)
    return won


def sweep_abandoned(queue: RecoveryQueue, live_owners: Collection[str], now: float | None = None,
                    requeue: bool = False) -> int:
    """Recover records whose lease expired, or whose owner on this host no longer exists,
    leaving alone the records of ``live_owners`` (this consumer's running workers)."""
    now = time.time() if now is None else now
    host = socket.gethostname()
    abandoned = [rec for rec in queue.storage.in_flight()
                 if rec.owner not in live_owners
                 and (rec.lease_until < now or owner_is_gone(rec.owner, host))]
    return recover_records(queue, abandoned, requeue)
