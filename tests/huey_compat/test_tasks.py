"""Tasks and wrappers as in Huey 3.5.4."""
from __future__ import annotations

import datetime
import time

import pytest

from queue_core import ConfigurationError, SerializationError
from queue_core.huey import MemoryHuey, RedisHuey
from queue_core.huey.serializer import SignedSerializer

from tests.helpers import SignalRecorder, execute_next


def test_tasks_are_equal_by_id_and_hash_by_id(huey):
    @huey.task()
    def add(a, b):
        return a + b

    task = add.s(1, 2)
    same = huey.deserialize_task(huey.serialize_task(task))
    assert same == task and hash(same) == hash(task) and {task, same} == {task}
    assert add.s(1, 2) != task


def test_expires_resolved_is_fixed_at_enqueue(huey):
    @huey.task(expires=60)
    def work():
        return 1

    handle = work()
    assert handle.task.expires_resolved is not None
    assert handle.task.expires_resolved == handle.task.expires_at


def test_time_remaining_and_is_timed_out_are_properties(huey):
    seen = {}

    @huey.task(context=True, timeout=30)
    def slow(task=None):
        seen['remaining'] = task.time_remaining
        seen['timed_out'] = task.is_timed_out
        return 1

    @huey.task(context=True)
    def unlimited(task=None):
        seen['unlimited'] = task.time_remaining
        return 1

    slow()
    unlimited()
    execute_next(huey)
    execute_next(huey)
    assert 0 < seen['remaining'] <= 30 and seen['timed_out'] is False
    assert seen['unlimited'] == float('inf')


def test_wrapper_exposes_its_settings_and_queue(huey):
    @huey.task(retries=3, retry_delay=5, priority=2, timeout=9)
    def work():
        return 1

    assert (work.retries, work.retry_delay, work.priority, work.timeout) == (3, 5, 2, 9)
    assert work.huey is huey and work.name == 'work'


def test_unregister_removes_the_task_from_its_queue(huey):
    @huey.task()
    def gone():
        return 1

    message = huey.serialize_task(gone.s())
    assert gone.unregister()
    assert not gone.unregister()
    assert huey.deserialize_task(message).wrapper is None


def test_coroutine_functions_are_refused_at_decoration(huey):
    with pytest.raises(ConfigurationError, match='coroutine'):
        @huey.task()
        async def not_allowed():
            return 1


def test_several_queues_in_one_process_keep_their_own_registries():
    first, second = MemoryHuey('first'), MemoryHuey('second')

    @first.task()
    def only_first():
        return 'first'

    @second.task(name='only_first')
    def other():
        return 'second'

    assert first.registry.lookup(only_first.registry_name) is only_first
    assert second.registry.lookup(only_first.registry_name) is other
    handle = only_first()
    assert second.pending_count() == 0
    assert execute_next(first) == 'first' and handle.get() == 'first'


def test_read_schedule_and_ready_to_run_take_a_timestamp(huey):
    @huey.task()
    def work():
        return 1

    now = datetime.datetime(2030, 1, 1, 12, 0)
    task = work.s(eta=now + datetime.timedelta(minutes=5))
    assert not huey.ready_to_run(task, now)
    assert huey.ready_to_run(task, now + datetime.timedelta(minutes=5))
    huey.enqueue(task)
    huey.execute(huey.dequeue(), now)
    assert huey.read_schedule(now) == []
    assert huey.read_schedule(now + datetime.timedelta(minutes=6)) == [task]


def test_serialize_and_deserialize_task_round_trip(huey):
    @huey.task()
    def add(a, b):
        return a + b

    task = add.s(1, b=2, retries=2)
    copy = huey.deserialize_task(huey.serialize_task(task))
    assert (copy.id, copy.args, copy.kwargs, copy.retries) == (task.id, (1,), {'b': 2}, 2)


def test_signed_serializer_runs_signed_messages_and_refuses_tampered_ones(redis_url, caplog):
    huey = RedisHuey('signed', url=redis_url, serializer=SignedSerializer('s3cret'))
    rec = SignalRecorder(huey)
    ran = []

    @huey.task()
    def record(value):
        ran.append(value)
        return value

    handle = record('good')
    assert execute_next(huey) == 'good' and handle.get() == 'good'
    message = huey.serialize_task(record.s('evil'))
    tampered = message.replace(b'evil', b'EVIL')
    huey.storage.enqueue(tampered)
    assert huey.dequeue() is None  # refused and moved aside, never executed
    assert ran == ['good'] and rec.signals().count('executing') == 1
    assert 'signature mismatch' in caplog.text
    other = SignedSerializer('another secret')
    with pytest.raises(SerializationError, match='signature mismatch'):
        other.deserialize(message)
    with pytest.raises(ConfigurationError):
        SignedSerializer('')


def test_is_timed_out_turns_true_once_the_timeout_passes(huey):
    @huey.task(context=True, timeout=0.05)
    def spin(task=None):
        deadline = time.monotonic() + 5
        while not task.is_timed_out and time.monotonic() < deadline:
            time.sleep(0.01)
        return task.time_remaining

    spin()
    assert execute_next(huey) == 0.0


def test_put_if_empty_with_ttl_and_get_raw(huey):
    from queue_core.huey.constants import EmptyData
    assert huey.put_if_empty('k', 'v', ttl=60)
    assert not huey.put_if_empty('k', 'w')
    assert huey.get_raw('missing') is EmptyData
    assert huey.serializer.deserialize(huey.get_raw('k', peek=True)) == 'v'
    assert huey.get('k') == 'v' and huey.get('k') is None


def test_resolve_expires_fixes_the_expiry_once(huey):
    @huey.task(expires=30)
    def work():
        return 1

    task = work.s()
    first = task.resolve_expires()
    assert first is not None and task.resolve_expires() == first == task.expires_resolved


def test_schedule_takes_a_lone_delay_or_eta_and_refuses_neither(huey):
    @huey.task()
    def work():
        return 1

    now = huey.now()
    by_delay = work.schedule(60)
    by_eta = work.schedule(now + datetime.timedelta(minutes=2))
    by_timedelta = work.schedule(datetime.timedelta(minutes=3))
    etas = [t.eta for t in (by_delay.task, by_eta.task, by_timedelta.task)]
    assert all(eta is not None and eta > now for eta in etas)
    with pytest.raises(ValueError):
        work.schedule()
    with pytest.raises(ValueError):
        work.schedule((), kwargs=[1], delay=1)


def test_a_task_decorated_again_on_another_queue_runs_there():
    first, second = MemoryHuey('one'), MemoryHuey('two')

    @first.task()
    def inc(n):
        return n + 1

    again = second.task(retries=1)(inc)
    handle = again(2)
    assert first.pending_count() == 0 and second.pending_count() == 1
    assert execute_next(second) == 3 and handle.get() == 3 and again.retries == 1


def test_further_decorator_keywords_read_as_task_attributes(huey):
    seen = []

    @huey.pre_execute()
    def route(task):
        seen.append(getattr(task, 'queue_hint', None))

    @huey.task(queue_hint='reports')
    def report():
        return 1

    report()
    execute_next(huey)
    assert seen == ['reports'] and report.settings['queue_hint'] == 'reports'
    with pytest.raises(AttributeError):
        report.s().no_such_setting


def test_periodic_task_isinstance_check_as_in_huey(huey):
    from queue_core.huey import crontab
    from queue_core.huey.api import PeriodicTask

    @huey.periodic_task(crontab(minute='0'))
    def tick():
        return 1

    @huey.task()
    def plain():
        return 1

    assert isinstance(tick.s(), PeriodicTask) and not isinstance(plain.s(), PeriodicTask)


def test_schedule_with_one_plain_value_as_args_passes_it_as_the_argument(huey):
    @huey.task()
    def echo(n):
        return n

    now = datetime.datetime(2030, 1, 1)
    handle = echo.schedule(7, eta=now)
    assert huey.execute(huey.dequeue(), now) == 7 and handle.get() == 7
