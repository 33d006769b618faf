"""Results, enqueue-time errors, sinks and tseq, options and the rest of the public API."""
from __future__ import annotations

import datetime
import logging
import os
import threading
import uuid

import pytest

from queue_core import (SIGNAL_COMPLETE, SIGNAL_ENQUEUED, ConfigurationError, ResultTimeout,
                        SerializationError, StorageError, TaskQueue)
from queue_core.serializer import PickleSerializer
from queue_core.task import new_task_id

from scripts.support.polling import wait_until
from scripts.support.redis_server import RedisServer
from tests.helpers import SignalRecorder, execute_next


@pytest.fixture
def q():
    return TaskQueue('api', storage='memory://')


def test_result_read_is_destructive_unless_preserved(q):
    @q.task()
    def add(a, b):
        return a + b

    res = add(1, 2)
    execute_next(q)
    assert q.result(res.id, preserve=True) == 3
    assert q.result(res.id) == 3
    assert q.result(res.id) is None
    assert res.get() is None


def test_result_handle_caches_value_until_reset(q):
    @q.task()
    def add(a, b):
        return a + b

    res = add(1, 2)
    execute_next(q)
    assert res.get() == 3
    assert res.get() == 3
    res.reset()
    assert res.get() is None


def test_blocking_get_times_out_with_result_timeout(q):
    @q.task()
    def add(a, b):
        return a + b

    res = add(1, 2)
    with pytest.raises(ResultTimeout):
        res.get(blocking=True, timeout=0.05)


def test_blocking_get_wakes_when_result_arrives(storage_url):
    q = TaskQueue('wake', storage=storage_url)

    @q.task()
    def add(a, b):
        return a + b

    res = add(2, 2)
    worker = threading.Thread(target=execute_next, args=(q,))
    worker.start()
    assert res.get(blocking=True, timeout=10) == 4
    worker.join()


def test_unserializable_argument_fails_at_enqueue_naming_it_and_emits_nothing(q):
    rec = SignalRecorder(q)

    @q.task()
    def work(a, b=None):
        return a

    with pytest.raises(SerializationError) as info:
        work(1, b=object())
    assert isinstance(info.value, TypeError)
    assert 'work' in str(info.value) and "'b'" in str(info.value)
    assert rec.events == [] and q.pending_count() == 0


def test_storage_failure_raises_storage_error_and_emits_no_enqueued():
    server = RedisServer().start()
    try:
        q = TaskQueue('down', storage=server.url)
        rec = SignalRecorder(q)

        @q.task()
        def work():
            return 1

        work()
        server.stop(kill=True)
        with pytest.raises(StorageError):
            work()
        assert rec.signals() == [SIGNAL_ENQUEUED]
    finally:
        server.close()


def test_sinks_run_before_handlers_and_count_tseq(q):
    calls = []

    def sink(signal, task, exc, source):
        calls.append(('sink', signal, task.tseq, source, task.final))

    q.add_signal_sink(sink)

    @q.signal()
    def handler(signal, task, *extra):
        calls.append(('handler', signal, task.tseq))

    @q.task()
    def add(a, b):
        return a + b

    add(1, 2)
    stored = q.pending()[0]
    assert stored.tseq == 1  # the stored message already counts its ENQUEUED
    execute_next(q)
    assert calls == [
        ('sink', 'enqueued', 1, 'app', False), ('handler', 'enqueued', 1),
        ('sink', 'executing', 2, 'app', False), ('handler', 'executing', 2),
        ('sink', 'complete', 3, 'app', True), ('handler', 'complete', 3)]


def test_no_sink_leaves_tseq_unchanged(q):
    @q.task()
    def add(a, b):
        return a + b

    add(1, 2)
    assert q.pending()[0].tseq == 0


def test_failing_sink_is_logged_and_isolated(q, caplog):
    def bad_sink(signal, task, exc, source):
        raise RuntimeError('sink down')

    q.add_signal_sink(bad_sink)
    rec = SignalRecorder(q)

    @q.task()
    def add(a, b):
        return a + b

    with caplog.at_level(logging.ERROR, logger='queue_core'):
        res = add(1, 2)
        execute_next(q)
    assert rec.signals() == ['enqueued', 'executing', 'complete']
    assert res.get() == 3
    assert any('bad_sink' in r.getMessage() for r in caplog.records)
    q.remove_signal_sink(bad_sink)


def test_source_of_events(q):
    sources = []
    q.add_signal_sink(lambda s, t, e, src: sources.append((s, src)))

    @q.task()
    def add(a, b):
        return a + b

    add(1, 2)
    with q.emitting_as('worker'):
        execute_next(q)
    assert sources == [('enqueued', 'app'), ('executing', 'worker'), ('complete', 'worker')]


def test_reserved_options_override_defaults_and_other_kwargs_are_the_functions(q):
    @q.task(retries=1, priority=1)
    def work(a, color=None):
        return (a, color)

    work(1, color='red', retries=5, priority=9, id='fixed-id')
    task = q.pending()[0]
    assert (task.id, task.retries, task.priority, task.kwargs) == (
        'fixed-id', 5, 9, {'color': 'red'})
    with pytest.raises(ConfigurationError):
        @q.task()
        def clash(priority):
            return priority


def test_names_and_call_local(q):
    @q.task()
    def add(a, b):
        return a + b

    @q.task(name='renamed')
    def other():
        return 1

    assert add.call_local(2, 3) == 5
    assert q.pending_count() == 0
    task = add.s(1, 2)
    assert task.name == 'add' and task.registry_name == __name__ + '.add'
    assert other.s().registry_name == __name__ + '.renamed'


def test_map_enqueues_many_and_results_in_order(q):
    @q.task()
    def square(n):
        return n * n

    group = square.map(range(5))
    assert len(group) == 5 and q.pending_count() == 5
    while q.pending_count():
        execute_next(q)
    assert group.get() == [0, 1, 4, 9, 16]


def test_map_tasks_share_the_decorators_options_but_nothing_mutable(q):
    @q.task(retries=2, retry_delay=3, priority=5, timeout=9)
    def pair(a, b=0):
        return a + b

    group = pair.map([(1, 2), 3, (4,)])
    tasks = [result.task for result in group]
    assert [t.args for t in tasks] == [(1, 2), (3,), (4,)]
    assert len({t.id for t in tasks}) == 3
    assert {(t.retries, t.retry_delay, t.priority, t.timeout) for t in tasks} == {(2, 3, 5, 9)}
    tasks[0].kwargs['b'] = 1
    assert tasks[1].kwargs == {} and tasks[2].kwargs == {}
    stored = [q.deserialize_task(data) for data in q.storage.enqueued_items()]
    assert sorted(t.id for t in stored) == sorted(t.id for t in tasks)
    assert {(t.retries, t.priority) for t in stored} == {(2, 5)}


def test_results_disabled_returns_none(q):
    q2 = TaskQueue('nores', storage='memory://', results=False)

    @q2.task()
    def add(a, b):
        return a + b

    assert add(1, 2) is None
    execute_next(q2)
    assert q2.result_count() == 0


def test_reschedule_revokes_original_and_enqueues_copy(q):
    rec = SignalRecorder(q)

    @q.task()
    def add(a, b):
        return a + b

    res = add(1, 2)
    new = res.reschedule(delay=60)
    assert new.id != res.id
    execute_next(q)
    execute_next(q)
    assert rec.signals(res.id) == ['enqueued', 'revoked']
    assert rec.signals(new.id) == ['enqueued', 'scheduled']


def test_key_value_api_and_flush(q):
    q.put('k', {'a': (1, 2)})
    assert q.get('k', peek=True) == {'a': (1, 2)}
    assert q.get('k') == {'a': (1, 2)}
    assert q.get('k') is None
    assert q.put_if_empty('k', 1) and not q.put_if_empty('k', 2)
    assert q.delete('k') and not q.delete('k')
    q.put('x', 1)
    q.flush()
    assert q.result_count() == 0


def test_memory_queues_are_private():
    a, b = TaskQueue('same', storage='memory://'), TaskQueue('same', storage='memory://')
    a.put('k', 1)
    assert b.get('k') is None


def test_bad_storage_url_names_it():
    with pytest.raises(ConfigurationError) as info:
        TaskQueue('x', storage='nosuch://host')
    assert 'nosuch://host' in str(info.value)


def test_result_ttl_expires_unread_results():
    q = TaskQueue('ttl', storage='memory://', result_ttl=0.05)
    q.put_result('r', 1)
    wait_until(lambda: q.result_count() == 0, timeout=5, message='result to expire')


def test_utc_false_reads_naive_eta_as_local_time():
    q = TaskQueue('local', storage='memory://', utc=False)

    @q.task()
    def work():
        return 1

    eta = datetime.datetime.now() + datetime.timedelta(hours=1)
    work.schedule(eta=eta)
    execute_next(q, datetime.datetime.now())
    assert q.scheduled()[0].eta == eta


def test_pickle_serializer_is_explicit_opt_in():
    q = TaskQueue('pickled', storage='memory://', serializer=PickleSerializer())

    @q.task()
    def echo(value):
        return value

    res = echo(complex(1, 2))
    execute_next(q)
    assert res.get() == complex(1, 2)


def test_unknown_task_name_errors_clearly(q):
    other = TaskQueue('api', storage=q.storage)

    @other.task()
    def only_elsewhere():
        return 1

    rec = SignalRecorder(q)
    only_elsewhere()
    execute_next(q)
    assert rec.signals() == ['executing', 'error']
    assert 'no task named' in str(rec.exceptions[0])


def test_corrupt_message_is_moved_aside(q):
    q.storage.enqueue(b'\xc1 not msgpack', 0)
    assert q.dequeue() is None
    assert any(key.startswith('corrupt:') for key in q.storage.result_items())


def test_context_task_and_hooks(q):
    events = []

    class Resource:
        def __enter__(self):
            events.append('enter')
            return 'conn'

        def __exit__(self, *exc):
            events.append('exit')

    @q.context_task(Resource(), as_argument=True)
    def use(conn, n):
        return (conn, n)

    @q.post_execute()
    def after(task, value, exc):
        events.append(('post', value, exc))

    res = use(7)
    execute_next(q)
    assert res.get() == ('conn', 7)
    assert events == ['enter', 'exit', ('post', ('conn', 7), None)]
    assert q.unregister_post_execute(after)


def test_in_flight_claim_release_and_recover(q):
    rec = SignalRecorder(q)

    @q.task()
    def add(a, b):
        return a + b

    add(1, 2)
    add(3, 4)
    task, token = q.claim('worker-1', lease=30)
    assert [row['id'] for row in q.in_flight()] == [task.id]
    q.execute(task)
    q.release(token)
    assert q.in_flight() == []
    lost, _ = q.claim('worker-2', lease=30)
    record = q.storage.in_flight()[0]
    assert q.recover(record, requeue=True)
    assert not q.recover(record, requeue=True)
    assert rec.signals(lost.id) == ['enqueued', 'interrupted', 'enqueued']
    assert q.pending()[0].tseq == 100  # continues past anything a dead worker sent
    execute_next(q)
    assert rec.signals(lost.id)[-1] == SIGNAL_COMPLETE


def test_claimed_task_skips_revocation_lookups_only_while_none_is_live(storage_url):
    q = TaskQueue('revcount', storage=storage_url)
    rec = SignalRecorder(q)

    @q.task()
    def work(n):
        return n

    plain = work(1)
    task, token = q.claim('w')
    assert task.revocations_seen == 0
    q.execute(task)
    doomed = work(2)
    doomed.revoke()
    task, token = q.claim('w', release=token)
    assert task.revocations_seen == 1
    q.execute(task)
    assert rec.signals(plain.id)[-1] == 'complete'
    assert rec.signals(doomed.id) == ['enqueued', 'revoked']
    assert not doomed.restore()  # a handle's revoke() is revoke-once: consumed above
    assert q.storage.incr('revocations', 0) == 0
    q.flush()


def test_final_flag_survives_a_handler_that_enqueues_the_task_again(q):
    seen = []

    @q.task()
    def work():
        raise KeyboardInterrupt

    @q.signal('interrupted')
    def requeue(signal, task, *args):
        q.enqueue(task)

    @q.signal()
    def record(signal, task, *args):
        seen.append((signal, task.final))

    work()
    with pytest.raises(KeyboardInterrupt):
        execute_next(q)
    assert ('interrupted', True) in seen


def test_task_ids_are_unique_version_4_uuids_and_a_forked_child_makes_its_own():
    ids = [new_task_id() for _ in range(3000)]
    assert len(set(ids)) == 3000
    assert all(str(uuid.UUID(i)) == i and uuid.UUID(i).version == 4
               and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, new_task_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert child != new_task_id()  # the parent's next id was not the child's


def test_map_tells_its_enqueued_signals_only_when_someone_listens():
    q = TaskQueue('quiet', storage='memory://')

    @q.task()
    def noop(i):
        return i

    noop.map(range(3))  # no sink, no handler: nothing to tell
    seen = []
    q.signal('enqueued')(lambda signal, task: seen.append(task.args))
    noop.map(range(3))
    assert seen == [(0,), (1,), (2,)] and q.pending_count() == 6
