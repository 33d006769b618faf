"""Finding in-flight records whose worker is gone, and handing them to ``queue.recover``."""
from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any, Collection, Iterable

from ..signals import SOURCE_CONSUMER
from .pool import parse_owner

logger = logging.getLogger('queue_core.consumer')


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


def recover_records(queue: Any, records: Iterable[Any]) -> int:
    """Recover each record (INTERRUPTED, and a requeue if configured); count those won."""
    won = 0
    with queue.emitting_as(SOURCE_CONSUMER):
        for record in records:
            if queue.recover(record):
                won += 1
                logger.warning('recovered in-flight task of gone worker %s (token %s)',
                               record.owner, record.token)
    return won


def recover_owners(queue: Any, owners: Collection[str]) -> int:
    """Recover every record held by ``owners`` (workers known to be dead)."""
    return recover_records(queue, queue.storage.in_flight_of(owners))


def sweep_abandoned(queue: Any, live_owners: Collection[str], now: float | None = None) -> int:
    """Recover records whose lease expired, or whose owner on this host no longer exists,
    leaving alone the records of ``live_owners`` (this consumer's running workers)."""
    now = time.time() if now is None else now
    host = socket.gethostname()
    abandoned = [rec for rec in queue.storage.in_flight()
                 if rec.owner not in live_owners
                 and (rec.lease_until < now or owner_is_gone(rec.owner, host))]
    return recover_records(queue, abandoned)
