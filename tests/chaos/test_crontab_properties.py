"""Property tests of the crontab parser against a small reference model of crontab syntax."""
from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from queue_core.crontab import crontab, parse_field

BOUNDS = {'minute': (0, 59), 'hour': (0, 23), 'day': (1, 31), 'month': (1, 12),
          'day_of_week': (0, 7)}
FIELDS = sorted(BOUNDS)


def reference(name: str, piece: str) -> set[int]:
    """What one piece means, written from the crontab rules rather than from the parser."""
    low, high = BOUNDS[name]
    step = 1
    if '/' in piece:
        piece, step_text = piece.split('/')
        step = int(step_text)
    if piece == '*':
        values = list(range(low, high + 1))
    elif '-' in piece:
        first, last = (int(x) for x in piece.split('-'))
        if first <= last:
            values = list(range(first, last + 1))
        else:   # wraps past the top (Saturday for the day of week)
            top = 6 if name == 'day_of_week' else high
            values = list(range(first, top + 1)) + list(range(low, last + 1))
    else:
        values = [int(piece)]
    chosen = set(values[::step])
    return {v % 7 for v in chosen} if name == 'day_of_week' else chosen


@st.composite
def pieces(draw, name: str) -> str:
    """One valid piece of a field: N, A-B, A-B/S, * or */S (no */S for the day of week)."""
    low, high = BOUNDS[name]
    number = st.integers(low, high)
    kinds = ['number', 'range', 'range-step', 'star']
    if name != 'day_of_week':
        kinds.append('star-step')
    kind = draw(st.sampled_from(kinds))
    step = draw(st.integers(1, high + 1))
    if kind == 'number':
        return str(draw(number))
    if kind == 'star':
        return '*'
    if kind == 'star-step':
        return '*/%d' % step
    first, last = draw(number), draw(number)
    return '%d-%d' % (first, last) + ('/%d' % step if kind == 'range-step' else '')


@st.composite
def fields(draw) -> tuple[str, list[str]]:
    """A field name and one to four valid pieces for it."""
    name = draw(st.sampled_from(FIELDS))
    return name, draw(st.lists(pieces(name), min_size=1, max_size=4))


@settings(max_examples=150, deadline=None)
@given(fields())
def test_a_valid_field_allows_exactly_the_union_of_its_pieces(field):
    name, parts = field
    expected = set().union(*(reference(name, part) for part in parts))
    assert parse_field(name, ','.join(parts), strict=True) == expected
    assert parse_field(name, ', '.join(parts)) == expected     # spaces around commas


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(FIELDS), st.integers(-100, 200))
def test_an_integer_is_that_value_or_a_value_error(name, value):
    low, high = BOUNDS[name]
    if low <= value <= high:
        assert parse_field(name, value) == {value % 7 if name == 'day_of_week' else value}
    else:
        with pytest.raises(ValueError, match=name):
            parse_field(name, value)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(FIELDS), st.text(alphabet='0123456789*/-, xa', max_size=12),
       st.booleans())
def test_any_text_parses_to_values_in_range_or_raises_value_error(name, text, strict):
    try:
        allowed = parse_field(name, text, strict)
    except ValueError as exc:
        assert name in str(exc)
        return
    low, high = BOUNDS[name]
    assert allowed and all(low <= v <= min(high, 6 if name == 'day_of_week' else high)
                           for v in allowed)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(FIELDS), st.integers(1, 300))
def test_out_of_range_numbers_are_refused_naming_the_field(name, excess):
    low, high = BOUNDS[name]
    with pytest.raises(ValueError, match=name):
        parse_field(name, str(high + excess), strict=True)
    with pytest.raises(ValueError, match=name):
        parse_field(name, '%d-%d' % (low, high + excess))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 7))
def test_seven_and_zero_are_both_sunday(day):
    assert parse_field('day_of_week', str(day)) == {day % 7}
    assert parse_field('day_of_week', '0') == parse_field('day_of_week', '7')


@st.composite
def schedules(draw) -> dict[str, str]:
    """A whole crontab: a valid field text for each of the five fields."""
    return {name: ','.join(draw(st.lists(pieces(name), min_size=1, max_size=3)))
            for name in FIELDS}


@settings(max_examples=100, deadline=None)
@given(schedules(), st.datetimes(min_value=datetime.datetime(2000, 1, 1),
                                 max_value=datetime.datetime(2100, 1, 1)))
def test_a_datetime_matches_exactly_when_every_field_allows_it(spec, moment):
    allowed = {name: parse_field(name, text) for name, text in spec.items()}
    sunday_first = (moment.weekday() + 1) % 7
    expected = (moment.minute in allowed['minute'] and moment.hour in allowed['hour']
                and moment.day in allowed['day'] and moment.month in allowed['month']
                and sunday_first in allowed['day_of_week'])
    assert crontab(strict=True, **spec)(moment) is expected


@settings(max_examples=100, deadline=None)
@given(schedules(), st.datetimes(min_value=datetime.datetime(2000, 1, 1),
                                 max_value=datetime.datetime(2100, 1, 1)),
       st.integers(0, 59), st.integers(0, 999999))
def test_seconds_and_microseconds_never_change_the_answer(spec, moment, second, micro):
    validate = crontab(**spec)
    assert validate(moment) == validate(moment.replace(second=second, microsecond=micro))
