"""The queue's clock: naive UTC with utc=True, naive local time with utc=False."""
from __future__ import annotations

import datetime
import time

import pytest

from queue_core import clock

UTC = datetime.timezone.utc
# A fixed zone five hours behind UTC with no daylight saving, so expectations are exact.
LOCAL_ZONE = 'EST5'
LOCAL_OFFSET = datetime.timedelta(hours=-5)


@pytest.fixture
def local_zone(monkeypatch):
    """Run the test with the process's local time zone set to UTC-5."""
    monkeypatch.setenv('TZ', LOCAL_ZONE)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_utc_now_is_naive_and_in_utc():
    before = datetime.datetime.now(UTC).replace(tzinfo=None)
    value = clock.utc_now()
    after = datetime.datetime.now(UTC).replace(tzinfo=None)
    assert value.tzinfo is None
    assert before <= value <= after


def test_local_now_is_naive_local_time(local_zone):
    value = clock.local_now()
    assert value.tzinfo is None
    utc = clock.utc_now()
    # Five hours behind, give or take the instants between the two reads.
    assert abs((utc + LOCAL_OFFSET) - value) < datetime.timedelta(minutes=1)


def test_current_time_picks_the_clock(local_zone):
    utc_gap = clock.current_time(utc=True) - clock.current_time(utc=False)
    assert abs(utc_gap - datetime.timedelta(hours=5)) < datetime.timedelta(minutes=1)


def test_naive_eta_is_already_in_the_queue_clock():
    eta = datetime.datetime(2030, 1, 2, 3, 4, 5)
    assert clock.normalize_time(eta=eta, utc=True) == eta
    assert clock.normalize_time(eta=eta, utc=False) == eta


def test_aware_eta_is_converted_to_naive_utc():
    eta = datetime.datetime(2030, 1, 2, 3, 0, tzinfo=datetime.timezone(
        datetime.timedelta(hours=2)))
    result = clock.normalize_time(eta=eta, utc=True)
    assert result == datetime.datetime(2030, 1, 2, 1, 0)
    assert result.tzinfo is None


def test_aware_eta_is_converted_to_naive_local_time(local_zone):
    eta = datetime.datetime(2030, 1, 2, 12, 0, tzinfo=UTC)
    result = clock.normalize_time(eta=eta, utc=False)
    assert result == datetime.datetime(2030, 1, 2, 7, 0)
    assert result.tzinfo is None


@pytest.mark.parametrize('delay', [90, 90.0, datetime.timedelta(seconds=90)])
def test_delay_is_added_to_the_given_now(delay):
    now = datetime.datetime(2030, 1, 1, 23, 59)
    expected = datetime.datetime(2030, 1, 2, 0, 0, 30)
    assert clock.normalize_time(delay=delay, now=now) == expected
    assert clock.normalize_time(delay=delay, utc=False, now=now) == expected


def test_zero_delay_means_now():
    now = datetime.datetime(2030, 1, 1)
    assert clock.normalize_time(delay=0, now=now) == now


def test_delay_without_now_counts_from_the_current_time_in_the_clock(local_zone):
    utc_eta = clock.normalize_time(delay=60, utc=True)
    local_eta = clock.normalize_time(delay=60, utc=False)
    expected_utc = clock.utc_now() + datetime.timedelta(seconds=60)
    assert abs(utc_eta - expected_utc) < datetime.timedelta(minutes=1)
    assert abs(local_eta - (expected_utc + LOCAL_OFFSET)) < datetime.timedelta(minutes=1)


def test_aware_now_is_converted_before_adding_the_delay():
    now = datetime.datetime(2030, 1, 1, 12, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    assert clock.normalize_time(delay=60, now=now) == datetime.datetime(2030, 1, 1, 11, 1)


@pytest.mark.parametrize('kwargs, word', [({}, 'neither'), (
    {'eta': datetime.datetime(2030, 1, 1), 'delay': 5}, 'both')])
def test_exactly_one_of_eta_and_delay_is_required(kwargs, word):
    with pytest.raises(ValueError, match=word):
        clock.normalize_time(**kwargs)


def test_wrong_types_are_rejected_with_a_clear_error():
    with pytest.raises(TypeError, match='delay must be a number of seconds'):
        clock.normalize_time(delay='10')
    with pytest.raises(TypeError, match='expected a datetime'):
        clock.normalize_time(eta=datetime.date(2030, 1, 1))


def test_normalize_expires_accepts_datetime_or_delay():
    now = datetime.datetime(2030, 1, 1)
    at = datetime.datetime(2030, 6, 1, tzinfo=UTC)
    assert clock.normalize_expires(at, now=now) == datetime.datetime(2030, 6, 1)
    assert clock.normalize_expires(3600, now=now) == datetime.datetime(2030, 1, 1, 1)
    assert clock.normalize_expires(datetime.timedelta(days=1), now=now) == \
        datetime.datetime(2030, 1, 2)


def test_to_timestamp_reads_naive_as_utc():
    assert clock.to_timestamp(datetime.datetime(1970, 1, 1, 0, 1), utc=True) == 60.0
    dt = datetime.datetime(2024, 3, 10, 7, 30, 15, 250000)
    expected = datetime.datetime(2024, 3, 10, 7, 30, 15, 250000, tzinfo=UTC).timestamp()
    assert clock.to_timestamp(dt, utc=True) == expected


def test_to_timestamp_reads_naive_as_local_time(local_zone):
    assert clock.to_timestamp(datetime.datetime(1970, 1, 1, 0, 1), utc=False) == 60.0 + 5 * 3600


def test_to_timestamp_of_aware_datetime_ignores_the_clock(local_zone):
    dt = datetime.datetime(1970, 1, 1, 1, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    assert clock.to_timestamp(dt, utc=True) == 0.0
    assert clock.to_timestamp(dt, utc=False) == 0.0


def test_from_timestamp_gives_naive_utc_or_local(local_zone):
    assert clock.from_timestamp(60.5, utc=True) == datetime.datetime(1970, 1, 1, 0, 1, 0, 500000)
    assert clock.from_timestamp(0, utc=False) == datetime.datetime(1969, 12, 31, 19, 0)
    assert clock.from_timestamp(0, utc=True).tzinfo is None


@pytest.mark.parametrize('utc', [True, False])
def test_timestamps_round_trip_to_the_microsecond(local_zone, utc):
    for dt in (datetime.datetime(2001, 2, 3, 4, 5, 6, 7),
               datetime.datetime(2038, 1, 19, 3, 14, 8, 999999),
               datetime.datetime(2026, 11, 29, 18, 0, 0, 123456)):
        assert clock.from_timestamp(clock.to_timestamp(dt, utc), utc) == dt


def test_utc_and_local_readings_of_one_instant_agree(local_zone):
    instant = 1_700_000_000.25
    as_utc = clock.from_timestamp(instant, utc=True)
    as_local = clock.from_timestamp(instant, utc=False)
    assert as_utc - as_local == datetime.timedelta(hours=5)
    assert clock.to_timestamp(as_utc, utc=True) == clock.to_timestamp(as_local, utc=False)
