"""Crontab-style schedules for periodic tasks.

``crontab(minute='*/15', hour='9-17', day_of_week='1-5')`` returns a ``Crontab``, a callable
that answers whether a datetime's minute matches, as ``huey.crontab`` does. Each field
accepts ``*``, a number, a list ``1,2,5``, a range ``1-5``, a step over everything ``*/15``
or over a range ``1-30/5``, and a wrap-around range such as hour ``22-2`` (22, 23, 0, 1, 2)
or day of week ``5-1`` (Friday to Monday). For the day of week 0 and 7 both mean Sunday.
Only the month, day, day of week, hour and minute of a datetime are compared; seconds and
time zones are ignored, so pass datetimes in the queue's own clock.
"""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

__all__ = ['Crontab', 'crontab', 'hourly', 'daily', 'parse_field']

_RANGE_RE = re.compile(r'(\d+)-(\d+)(?:/(\d+))?')
_EVERY_RE = re.compile(r'\*/(\d+)')

# (name, lowest, highest); day_of_week allows 7 as a second Sunday.
_FIELDS = {
    'minute': (0, 59),
    'hour': (0, 23),
    'day': (1, 31),
    'month': (1, 12),
    'day_of_week': (0, 7),
}


@dataclass(frozen=True)
class Crontab:
    """A parsed crontab: the allowed values of each field, callable on a datetime.

    ``days_of_week`` uses 0 for Sunday (7 is folded into 0) up to 6 for Saturday.
    """

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]

    def __call__(self, dt: datetime.datetime) -> bool:
        """True when ``dt``'s month, day, weekday, hour and minute are all allowed."""
        # Python counts Monday as 0; crontab counts Sunday as 0.
        weekday = (dt.weekday() + 1) % 7
        return (dt.month in self.months and dt.day in self.days
                and weekday in self.days_of_week and dt.hour in self.hours
                and dt.minute in self.minutes)

    validate = __call__


def _bad(name: str, value: object, why: str) -> ValueError:
    low, high = _FIELDS[name]
    return ValueError(
        'crontab %s=%r is not valid: %s (use *, N, N-M, */S, N-M/S or a comma-separated '
        'list of these, with values from %d to %d)' % (name, value, why, low, high))


def _expand_range(name: str, value: object, lhs: int, rhs: int, step: int) -> list[int]:
    """The values from ``lhs`` to ``rhs`` inclusive, wrapping past the top when lhs > rhs."""
    low, high = _FIELDS[name]
    for number in (lhs, rhs):
        if not low <= number <= high:
            raise _bad(name, value, '%d is out of range' % number)
    if step < 1:
        raise _bad(name, value, 'a step must be at least 1')
    if lhs <= rhs:
        values = list(range(lhs, rhs + 1))
    else:
        # Day of week wraps after Saturday (6), since 7 and 0 are the same day.
        top = 6 if name == 'day_of_week' else high
        values = list(range(lhs, top + 1)) + list(range(low, rhs + 1))
    return values[::step]


def _parse_piece(name: str, value: object, piece: str) -> list[int] | None:
    """The values one comma-separated piece allows, or ``None`` if it is not crontab syntax."""
    low, high = _FIELDS[name]
    if piece == '*':
        return list(range(low, high + 1))
    if piece.isdigit():
        return _expand_range(name, value, int(piece), int(piece), 1)
    match = _RANGE_RE.fullmatch(piece)
    if match:
        lhs, rhs, step = match.groups()
        return _expand_range(name, value, int(lhs), int(rhs), int(step or 1))
    match = _EVERY_RE.fullmatch(piece)
    if match:
        if name == 'day_of_week':
            raise _bad(name, value, 'a */N step is not supported for the day of week')
        step = int(match.group(1))
        if step < 1:
            raise _bad(name, value, 'a step must be at least 1')
        return list(range(low, high + 1, step))
    return None


def _parse_text(name: str, value: str, strict: bool) -> set[int]:
    """The union of a field's comma-separated pieces, skipping non-syntax unless strict."""
    allowed: set[int] = set()
    for piece in value.split(','):
        values = _parse_piece(name, value, piece.strip())
        if values is None:
            if strict:
                raise _bad(name, value, '%r is not crontab syntax' % piece)
            continue
        allowed.update(values)
    return allowed


def parse_field(name: str, value: str | int, strict: bool = False) -> frozenset[int]:
    """The set of values one crontab field allows; raises ``ValueError`` on a bad field.

    As in Huey, a piece that is not crontab syntax is ignored unless ``strict`` is true,
    but a field that allows no value at all is always an error.
    """
    if name not in _FIELDS:
        raise ValueError('unknown crontab field %r; expected one of %s'
                         % (name, ', '.join(_FIELDS)))
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _bad(name, value, 'expected a string or an int')
    if isinstance(value, int):
        allowed = set(_expand_range(name, value, value, value, 1))
    else:
        allowed = _parse_text(name, value, strict)
    if name == 'day_of_week':
        allowed = {number % 7 for number in allowed}
    if not allowed:
        raise _bad(name, value, 'it matches no value')
    return frozenset(allowed)


def crontab(minute: str | int = '*', hour: str | int = '*', day: str | int = '*',
            month: str | int = '*', day_of_week: str | int = '*',
            strict: bool = False) -> Crontab:
    """A validator for ``periodic_task``: true for datetimes whose minute matches.

    Raises ``ValueError`` naming the field when a value is out of range, a step is not
    positive, a ``*/N`` step is given for the day of week, or a field matches nothing.
    With ``strict=True`` any piece that is not crontab syntax is an error too (Huey's
    meaning of ``strict``; without it such pieces are ignored next to valid ones).
    """
    fields = {'minute': minute, 'hour': hour, 'day': day, 'month': month,
              'day_of_week': day_of_week}
    parsed = {name: parse_field(name, value, strict) for name, value in fields.items()}
    return Crontab(minutes=parsed['minute'], hours=parsed['hour'], days=parsed['day'],
                   months=parsed['month'], days_of_week=parsed['day_of_week'])


def hourly() -> Crontab:
    """Every hour on the hour, as ``huey.crontab.hourly()``."""
    return crontab(minute='0')


def daily() -> Crontab:
    """Every day at midnight, as ``huey.crontab.daily()``."""
    return crontab(minute='0', hour='0')


# Huey users write ``crontab.hourly()`` and ``crontab.daily()``.
crontab.hourly = hourly  # type: ignore[attr-defined]
crontab.daily = daily  # type: ignore[attr-defined]
