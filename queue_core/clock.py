"""The queue's clock: pure helpers for reading and converting times.

The convention, as in Huey: internally every datetime is **naive**, in UTC when the queue
has ``utc=True`` (the default) and in local time when it has ``utc=False``. A naive
datetime a user passes in (``eta``, ``expires``, the ``timestamp`` given to ``execute``) is
taken to be in that same clock; an aware one is converted into it. Storage orders
schedules by epoch seconds, so ``to_timestamp``/``from_timestamp`` translate between the
two. Logic takes the current time as an argument (``now=``) so that tests control it; only
``utc_now``, ``local_now`` and ``current_time`` read the system clock.
"""
from __future__ import annotations

import datetime

__all__ = ['utc_now', 'local_now', 'current_time', 'to_queue_time', 'normalize_time',
           'normalize_expires', 'to_timestamp', 'from_timestamp']

Delay = float | int | datetime.timedelta

_EPOCH = datetime.datetime(1970, 1, 1)


def utc_now() -> datetime.datetime:
    """The current time in UTC, as a naive datetime."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def local_now() -> datetime.datetime:
    """The current local time, as a naive datetime."""
    return datetime.datetime.now()


def current_time(utc: bool = True) -> datetime.datetime:
    """The current time in the queue's clock: ``utc_now()`` or ``local_now()``."""
    return utc_now() if utc else local_now()


def _is_aware(dt: datetime.datetime) -> bool:
    return dt.tzinfo is not None and dt.tzinfo.utcoffset(dt) is not None


def to_queue_time(dt: datetime.datetime, utc: bool = True) -> datetime.datetime:
    """``dt`` as a naive datetime in the queue's clock.

    A naive ``dt`` is already in that clock and is returned unchanged; an aware one is
    converted to UTC (``utc=True``) or to local time (``utc=False``).
    """
    if not isinstance(dt, datetime.datetime):
        raise TypeError('expected a datetime.datetime, got %s; pass a datetime, or give '
                        'a delay in seconds instead' % type(dt).__name__)
    if not _is_aware(dt):
        return dt
    if utc:
        return dt.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return dt.astimezone().replace(tzinfo=None)


def _as_timedelta(delay: Delay) -> datetime.timedelta:
    if isinstance(delay, datetime.timedelta):
        return delay
    if isinstance(delay, bool) or not isinstance(delay, (int, float)):
        raise TypeError('delay must be a number of seconds or a timedelta, got %s'
                        % type(delay).__name__)
    return datetime.timedelta(seconds=delay)


def normalize_time(eta: datetime.datetime | None = None, delay: Delay | None = None,
                   utc: bool = True,
                   now: datetime.datetime | None = None) -> datetime.datetime:
    """The moment given by ``eta`` or by ``delay`` from now, naive in the queue's clock.

    Give exactly one of ``eta`` (a datetime; see ``to_queue_time``) and ``delay`` (seconds
    or a ``timedelta``, added to ``now``, which defaults to the current time in the
    queue's clock). Raises ``ValueError`` if both or neither are given.
    """
    if (eta is None) == (delay is None):
        raise ValueError('specify either an eta (datetime) or a delay (seconds), not %s'
                         % ('both' if eta is not None else 'neither'))
    if eta is not None:
        return to_queue_time(eta, utc)
    start = to_queue_time(now, utc) if now is not None else current_time(utc)
    return start + _as_timedelta(delay)  # type: ignore[arg-type]


def normalize_expires(expires: datetime.datetime | Delay, utc: bool = True,
                      now: datetime.datetime | None = None) -> datetime.datetime:
    """An ``expires`` option (a datetime, or seconds/timedelta from now) in the queue's clock."""
    if isinstance(expires, datetime.datetime):
        return normalize_time(eta=expires, utc=utc)
    return normalize_time(delay=expires, utc=utc, now=now)


def to_timestamp(dt: datetime.datetime, utc: bool = True) -> float:
    """Epoch seconds of ``dt``; a naive ``dt`` is read in the queue's clock."""
    if _is_aware(dt):
        return dt.timestamp()
    if utc:
        return (dt - _EPOCH).total_seconds()
    # A naive datetime's own timestamp() reads it as local time.
    return dt.timestamp()


def from_timestamp(ts: float, utc: bool = True) -> datetime.datetime:
    """The naive datetime in the queue's clock for epoch seconds ``ts``."""
    if utc:
        return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).replace(tzinfo=None)
    return datetime.datetime.fromtimestamp(ts)
