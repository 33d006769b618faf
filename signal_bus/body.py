"""Build an event's body from a queue task: a map of plain msgpack values (SPEC §7).

Datetimes become ISO-8601 strings, tuples and sets arrays, other objects their ``repr``;
``args`` and ``kwargs`` over 64 KiB become ``{"truncated": <size>}``; an exception becomes
``{type, message, traceback}``. Nothing here touches a socket.
"""
from __future__ import annotations

import datetime
import time
import traceback as traceback_module
from typing import Any

import msgpack

MAX_ARGUMENT_BYTES = 64 * 1024
#: Tracebacks longer than this keep only their last part (the frames nearest the error).
MAX_TRACEBACK_CHARS = 32 * 1024
_MAX_DEPTH = 32
_INT_RANGE = (-2 ** 63, 2 ** 64 - 1)


def plain_default(value: Any) -> Any:
    """msgpack's fallback for values it cannot pack natively (datetimes as ISO-8601
    strings, sets as arrays, other objects as their ``repr``)."""
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (set, frozenset)):
        return list(value)
    return _safe_repr(value)


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return '<unrepresentable %s>' % class_name(type(value))


def to_plain(value: Any, depth: int = 0) -> Any:
    """``value`` as plain msgpack values, for what the fast path could not pack."""
    if depth > _MAX_DEPTH:
        return _safe_repr(value)
    if value is None or isinstance(value, (bool, float, str, bytes)):
        return value
    if isinstance(value, int):
        return int(value) if _INT_RANGE[0] <= value <= _INT_RANGE[1] else str(value)
    if isinstance(value, dict):
        return {_plain_key(key, depth): to_plain(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_plain(item, depth + 1) for item in value]
    plain = plain_default(value)
    return plain if isinstance(plain, (str, float)) else to_plain(plain, depth + 1)


def _plain_key(key: Any, depth: int) -> Any:
    plain = to_plain(key, depth + 1)
    return plain if isinstance(plain, (str, int, float, bool, bytes)) or plain is None \
        else _safe_repr(key)


def pack_plain(value: Any) -> bytes:
    """msgpack bytes of ``value`` made plain (never raises for odd objects)."""
    try:
        return msgpack.packb(value, use_bin_type=True, default=plain_default)
    except Exception:
        return msgpack.packb(to_plain(value), use_bin_type=True, default=_safe_repr)


def class_name(cls: type) -> str:
    """How an exception's class travels: ``ValueError`` for a builtin, else
    ``module.Class``."""
    return cls.__qualname__ if cls.__module__ == 'builtins' \
        else '%s.%s' % (cls.__module__, cls.__qualname__)


def exception_map(exc: BaseException) -> dict[str, Any]:
    """``{type, message, traceback}`` for ``exc``; the traceback is bounded in size.

    An exception that already travelled as data (one with string ``type`` and ``message``
    attributes and a ``traceback`` string or None, as the queue's ``RemoteException``)
    keeps the original's three fields."""
    kind, message = getattr(exc, 'type', None), getattr(exc, 'message', None)
    text = getattr(exc, 'traceback', None)
    if not (isinstance(kind, str) and isinstance(message, str)
            and (text is None or isinstance(text, str))):
        kind, message = class_name(type(exc)), _safe_str(exc)
        try:
            text = ''.join(traceback_module.format_exception(
                type(exc), exc, exc.__traceback__)) if exc.__traceback__ else None
        except Exception:
            text = None
    if isinstance(text, str) and len(text) > MAX_TRACEBACK_CHARS:
        text = '...\n' + text[-MAX_TRACEBACK_CHARS:]
    return {'type': kind, 'message': message, 'traceback': text}


def _safe_str(value: BaseException) -> str:
    try:
        return str(value)
    except Exception:
        return _safe_repr(value)


def build_body(signal: str, task: Any, exc: BaseException | None, source: str, *,
               host: str, pid: int, now: float | None = None,
               queue: str | None = None) -> dict[str, Any]:
    """The body map of one event (values not yet made plain; ``encode_body`` does that);
    ``queue`` is the name of the ``TaskQueue`` the event comes from, when known."""
    body = {
        'signal': signal,
        'task_id': str(task.id),
        'task_name': task_name_of(task),
        'tseq': event_tseq(task, source),
        'ts': time.time() if now is None else now,
        'host': host,
        'pid': pid,
        'source': source,
        'args': getattr(task, 'args', ()),
        'kwargs': getattr(task, 'kwargs', None) or {},
        'retries': getattr(task, 'retries', 0),
        'final': bool(getattr(task, 'final', False)),
    }
    if queue is not None:
        body['queue'] = queue
    if exc is not None:
        body['exc'] = exception_map(exc)
    return body


def task_name_of(task: Any) -> str:
    """The name a task carries on the bus: its registry name ``module.function``."""
    return str(getattr(task, 'registry_name', None) or getattr(task, 'name', ''))


def event_tseq(task: Any, source: str) -> int | None:
    """The task's ``tseq`` for this event, or nil when the task carries none.

    The queue clears ``tseq`` for a supervisor's report on a recovered task (which resets
    the broker's ordering state for it); the requeued copy's ``ENQUEUED`` that follows,
    also from the ``consumer``, carries its stored ``tseq`` + 101 again.
    """
    tseq = getattr(task, 'tseq', None)
    return tseq if isinstance(tseq, int) and not isinstance(tseq, bool) and tseq >= 0 else None


def encode_body(body: dict[str, Any]) -> bytes:
    """Pack a body map as plain msgpack, truncating ``args``/``kwargs`` over 64 KiB."""
    packed = pack_plain(body)
    if len(packed) <= MAX_ARGUMENT_BYTES:
        return packed
    for key in ('args', 'kwargs'):
        size = len(pack_plain(body[key]))
        if size > MAX_ARGUMENT_BYTES:
            body = dict(body, **{key: {'truncated': size}})
    return pack_plain(body)
