"""Task messages that cannot run are set aside, never executed, never lost.

A stored message that does not decode is moved to a ``corrupt:<uuid>`` key and logged. A
message that decodes to a map whose fields have the wrong types (``eta: "tomorrow"``,
``retries: "abc"``, a non-string ``id``, ...) is moved aside the same way and, because it
names a task, also ends that task for whoever waits on it: a final ``error`` event whose
``exc.type`` is ``queue_core.MalformedTask`` (``task_id`` the message's id as a string,
source ``consumer``), and the error as the task's result, so ``result.get()`` raises
instead of waiting forever.
"""
from __future__ import annotations

import datetime
import logging
import uuid
from typing import TYPE_CHECKING, Any

from . import signals as S
from .exceptions import QueueError
from .message import task_from_map
from .task import Task

if TYPE_CHECKING:  # pragma: no cover
    from .api import TaskQueue

logger = logging.getLogger('queue_core')

CORRUPT_PREFIX = 'corrupt:'


class MalformedTask(QueueError):
    """A stored task message whose fields have types no task can have."""


MalformedTask.__module__ = 'queue_core'  # its public name: queue_core.MalformedTask

_NUMBER = (int, float)
_MOMENT = (datetime.datetime,)
#: Each field a message may hold, and the types its value may have (``None`` always may,
#: except for ``id`` and ``name``).
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    'id': (str,), 'name': (str,), 'args': (list, tuple), 'kwargs': (dict,),
    'retries': (int,), 'tseq': (int,), 'retry_delay': _NUMBER, 'retry_backoff': _NUMBER,
    'priority': (int,), 'timeout': _NUMBER, 'eta': _MOMENT, 'expires_at': _MOMENT,
    'expires': _NUMBER + _MOMENT + (datetime.timedelta,), 'chord': (dict,),
    'on_complete': (dict,), 'on_error': (dict,),
}
_REQUIRED = ('id', 'name')


def check_message(message: dict[str, Any], where: str = '') -> None:
    """Raise ``MalformedTask`` naming the first field of ``message`` (or of a nested
    pipeline step) whose value has the wrong type."""
    for field in _REQUIRED:
        if field not in message:
            raise MalformedTask('%s%s is missing' % (where, field))
    for field, kinds in FIELD_TYPES.items():
        value = message.get(field)
        if value is None and field not in _REQUIRED:
            continue
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise MalformedTask('%s%s must be %s, got %s %r' % (
                where, field, ' or '.join(k.__name__ for k in kinds), type(value).__name__,
                _short(value)))
    if any(not isinstance(key, str) for key in message.get('kwargs') or {}):
        raise MalformedTask('%skwargs must have string keys' % (where,))
    for step in ('on_complete', 'on_error'):
        if message.get(step):
            check_message(message[step], '%s%s.' % (where, step))


def decode(queue: 'TaskQueue', data: bytes) -> Task | None:
    """The task in ``data``, or ``None`` after setting the message aside (see above)."""
    try:
        message = queue.serializer.deserialize(data)
        if not isinstance(message, dict):
            raise TypeError('a task message is a map, got %s' % type(message).__name__)
    except Exception as exc:
        logger.error('undecodable task message moved aside to %r: %s',
                     set_aside(queue, data), exc)
        return None
    try:
        check_message(message)
        return task_from_map(message, queue.registry.lookup)
    except MalformedTask as exc:
        report_malformed(queue, message, exc, set_aside(queue, data))
    except Exception as exc:
        logger.error('undecodable task message moved aside to %r: %s',
                     set_aside(queue, data), exc)
    return None


def set_aside(queue: 'TaskQueue', data: bytes) -> str:
    """Keep ``data`` under a new ``corrupt:`` key; return the key."""
    key = CORRUPT_PREFIX + uuid.uuid4().hex
    queue.storage.put_data(key, data)
    return key


def report_malformed(queue: 'TaskQueue', message: dict[str, Any], exc: MalformedTask,
                     key: str) -> None:
    """Log, store the error as the task's result, emit the final ``error`` event."""
    from .execution import error_value
    task_id = str(message.get('id'))
    given_name = message.get('name')
    name = given_name if isinstance(given_name, str) else 'unknown'
    logger.error('malformed task message %s (%s) moved aside to %r, not executed: %s',
                 task_id, name, key, exc)
    stand_in = Task(None, id=task_id, registry_name=name, name=name.rsplit('.', 1)[-1],
                    tseq=None)
    if queue.results:
        queue.put_result(task_id, error_value(queue, stand_in, exc))
    with queue.emitting_as(S.SOURCE_CONSUMER):
        queue.emit(S.SIGNAL_ERROR, stand_in, exc, final=True)


def _short(value: Any, limit: int = 60) -> Any:
    """``value``, or its ``repr`` cut to ``limit`` characters when longer."""
    text = repr(value)
    return value if len(text) <= limit else text[:limit] + '...'
