"""crontab(): which minutes match, and which fields are rejected."""
from __future__ import annotations

import datetime

import pytest

from queue_core.crontab import Crontab, crontab, parse_field


def minutes_matching(validate, hour=1):
    return [m for m in range(60) if validate(datetime.datetime(2011, 1, 1, hour, m))]


def hours_matching(validate):
    return [h for h in range(24) if validate(datetime.datetime(2011, 1, 1, h))]


def january_days_matching(validate):
    # 1 January 2011 is a Saturday, 2 January a Sunday.
    return [d for d in range(1, 32) if validate(datetime.datetime(2011, 1, d))]


def test_default_crontab_matches_every_minute():
    validate = crontab()
    start = datetime.datetime(2024, 2, 28, 23, 0)
    for step in range(0, 60 * 48, 7):
        assert validate(start + datetime.timedelta(minutes=step))


def test_single_number_matches_only_that_minute():
    assert minutes_matching(crontab(minute='5')) == [5]
    assert minutes_matching(crontab(minute=5)) == [5]
    assert hours_matching(crontab(hour=0)) == [0]


def test_list_range_and_step_combine():
    assert minutes_matching(crontab(minute='4,8-9,*/6,1')) == [
        0, 1, 4, 6, 8, 9, 12, 18, 24, 30, 36, 42, 48, 54]


def test_step_over_everything_starts_at_the_lowest_value():
    assert minutes_matching(crontab(minute='*/16')) == [0, 16, 32, 48]
    assert january_days_matching(crontab(day='*/10')) == [1, 11, 21, 31]
    months = [m for m in range(1, 13) if crontab(month='*/6')(datetime.datetime(2011, m, 1))]
    assert months == [1, 7]


def test_step_over_a_range():
    assert minutes_matching(crontab(minute='0-30/5')) == [0, 5, 10, 15, 20, 25, 30]
    assert minutes_matching(crontab(minute='1-30/5')) == [1, 6, 11, 16, 21, 26]
    assert hours_matching(crontab(hour='9-17/4', strict=True)) == [9, 13, 17]


def test_wrap_around_hour_range():
    assert hours_matching(crontab(minute='0', hour='22-2', strict=True)) == [0, 1, 2, 22, 23]


def test_wrap_around_range_with_step():
    # 22, 0, 2 (every second hour counting from 22 across midnight).
    assert hours_matching(crontab(hour='22-3/2')) == [0, 2, 22]


def test_wrap_around_day_of_week_friday_to_monday():
    # 2011-01-02 .. 2011-01-08 run Sunday .. Saturday.
    validate = crontab(minute='0', hour='0', day_of_week='5-1', strict=True)
    matching = [d for d in range(2, 9) if validate(datetime.datetime(2011, 1, d))]
    assert matching == [2, 3, 7, 8]


def test_day_of_week_one_to_seven_is_every_day():
    validate = crontab(day_of_week='1-7', strict=True)
    assert validate.days_of_week == frozenset(range(7))


@pytest.mark.parametrize('sunday', ['0', '7', 0, 7])
def test_zero_and_seven_both_mean_sunday(sunday):
    validate = crontab(day_of_week=sunday, hour='0', minute='0')
    assert january_days_matching(validate) == [2, 9, 16, 23, 30]


def test_day_of_week_uses_sunday_zero_not_python_monday_zero():
    assert january_days_matching(crontab(day_of_week='0,2')) == [
        2, 4, 9, 11, 16, 18, 23, 25, 30]
    # 2011-01-03 is a Monday.
    assert crontab(day_of_week='1')(datetime.datetime(2011, 1, 3))
    assert not crontab(day_of_week='1')(datetime.datetime(2011, 1, 4))


def test_day_31_never_matches_february():
    validate = crontab(day='31')
    assert not any(validate(datetime.datetime(2011, 2, d)) for d in range(1, 29))
    assert validate(datetime.datetime(2011, 3, 31))


def test_all_fields_must_match():
    # 2011-05-01 is a Sunday; 2011-01-01 a Saturday.
    validate = crontab(month='1,5', day='1,4,7', day_of_week='0,6', hour='*/4',
                       minute='1-5,10-15,50')
    assert validate(datetime.datetime(2011, 5, 1, 4, 11))
    assert validate(datetime.datetime(2011, 5, 7, 20, 50))
    assert validate(datetime.datetime(2011, 1, 1, 0, 1))
    assert not validate(datetime.datetime(2011, 6, 4, 4, 11))  # month
    assert not validate(datetime.datetime(2011, 1, 6, 4, 11))  # day
    assert not validate(datetime.datetime(2011, 1, 4, 4, 11))  # day of week
    assert not validate(datetime.datetime(2011, 1, 1, 1, 11))  # hour
    assert not validate(datetime.datetime(2011, 1, 1, 4, 6))  # minute


def test_seconds_and_time_zone_are_ignored():
    validate = crontab(minute='30', hour='12')
    assert validate(datetime.datetime(2020, 6, 1, 12, 30, 59, 999999))
    aware = datetime.datetime(2020, 6, 1, 12, 30, tzinfo=datetime.timezone.utc)
    assert validate(aware)


def test_parsed_sets_are_exposed():
    validate = crontab(minute='0,30', hour='9-17', day='1', month='*/3', day_of_week='7')
    assert isinstance(validate, Crontab)
    assert validate.minutes == {0, 30}
    assert validate.hours == set(range(9, 18))
    assert validate.days == {1}
    assert validate.months == {1, 4, 7, 10}
    assert validate.days_of_week == {0}
    assert validate.validate(datetime.datetime(2024, 1, 1, 9, 0)) is False  # a Monday


def test_hourly_and_daily_shortcuts():
    hourly = crontab.hourly()
    assert hourly(datetime.datetime(2026, 4, 1, 0)) and hourly(datetime.datetime(2026, 4, 1, 1))
    assert not hourly(datetime.datetime(2026, 4, 1, 0, 1))
    daily = crontab.daily()
    assert daily(datetime.datetime(2026, 4, 2, 0))
    assert not daily(datetime.datetime(2026, 4, 1, 23, 59))


def test_spaces_around_list_items_are_allowed():
    assert minutes_matching(crontab(minute='1, 2 ,3', strict=True)) == [1, 2, 3]


@pytest.mark.parametrize('field, value, fragment', [
    ('minute', '61', '61 is out of range'),
    ('minute', 60, '60 is out of range'),
    ('minute', -1, '-1 is out of range'),
    ('minute', '0-61', '61 is out of range'),
    ('hour', '24', '24 is out of range'),
    ('day', '0', '0 is out of range'),
    ('day', '32', '32 is out of range'),
    ('month', '0', '0 is out of range'),
    ('month', '13', '13 is out of range'),
    ('day_of_week', '8', '8 is out of range'),
    ('minute', '0-30/0', 'step must be at least 1'),
    ('minute', '*/0', 'step must be at least 1'),
    ('day_of_week', '*/3', 'not supported for the day of week'),
    ('minute', 'abc', 'matches no value'),
    ('minute', '', 'matches no value'),
    ('minute', 1.5, 'expected a string or an int'),
    ('minute', True, 'expected a string or an int'),
    ('minute', None, 'expected a string or an int'),
])
def test_bad_field_raises_value_error_naming_it(field, value, fragment):
    with pytest.raises(ValueError) as info:
        crontab(**{field: value})
    message = str(info.value)
    assert fragment in message
    assert 'crontab %s=' % field in message


@pytest.mark.parametrize('value', ['abc', '*abc', 'a-b', '1-c', '0x9', '1,abc', '1-', '5/2'])
def test_strict_rejects_anything_that_is_not_crontab_syntax(value):
    with pytest.raises(ValueError, match='not crontab syntax|matches no value'):
        crontab(minute=value, strict=True)


def test_without_strict_unknown_pieces_next_to_valid_ones_are_ignored():
    # Huey's backwards-compatible behaviour: only an empty result is an error.
    assert crontab(minute='1,abc').minutes == {1}


def test_parse_field_rejects_unknown_field_names():
    with pytest.raises(ValueError, match='unknown crontab field'):
        parse_field('second', '*')
