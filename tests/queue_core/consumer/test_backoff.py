"""Backoff through storage outages, and the stop flag signal handlers set."""
from __future__ import annotations

import time

from queue_core.consumer.backoff import Backoff, StopFlag
from queue_core.exceptions import StorageError


def test_delay_doubles_from_initial_and_is_capped():
    backoff = Backoff(StopFlag(), initial=0.1, maximum=0.5)
    delays = []
    for _ in range(5):
        backoff.failures += 1
        delays.append(backoff.delay)
    assert delays == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.succeeded()
    assert backoff.delay == 0.0


def test_call_retries_storage_errors_until_the_call_works(caplog):
    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise StorageError('down')
        return 'up'

    backoff = Backoff(StopFlag(), initial=0.001, maximum=0.002)
    assert backoff.call('testing', flaky) == (True, 'up')
    assert len(attempts) == 3
    assert 'storage unavailable while testing' in caplog.text
    assert 'reachable again after 2 failed attempt(s)' in caplog.text


def test_a_set_stop_flag_ends_the_retries():
    stop = StopFlag()
    stop.set()
    backoff = Backoff(stop, initial=10, maximum=10)
    started = time.monotonic()
    assert backoff.call('testing', lambda: (_ for _ in ()).throw(StorageError('down'))) == (
        False, None)
    assert time.monotonic() - started < 5


class Shared:
    value = 0


def test_stop_flag_follows_a_shared_value():
    shared = Shared()
    flag = StopFlag(shared)
    assert not flag.is_set() and not flag.wait(0.01)
    shared.value = 1
    assert flag.is_set() and flag.wait(5)
