"""Bad input at every door gets a clear error and loses nothing: a task module that fails
to import, a task the consumer does not know, a corrupted message in storage, a storage
URL that is wrong or unreachable, a bus endpoint that is wrong."""
from __future__ import annotations

import pytest

from queue_core import TaskQueue
from queue_core.exceptions import ConfigurationError, StorageError, TaskException
from signal_bus import BusConfigError, Subscriber

from scripts.support.polling import wait_until
from scripts.support.redis_server import RedisServer


def test_a_task_module_that_fails_to_import_is_a_clear_exit_2_and_the_queue_keeps_its_tasks(
        redis_url, apps, consumers):
    app = apps('known_app', redis_url)
    app.add(1, 2)
    consumer = consumers('broken_app.q', storage=redis_url)
    assert consumer.run() == 2
    output = consumer.output()
    assert "importing 'broken_app' raised RuntimeError" in output
    assert 'the settings file /etc/badinput.conf is missing' in output
    # The app's own traceback (issue 13), not a hint about PYTHONPATH or the usage block.
    assert 'Traceback' in output and 'broken_app.py", line 2' in output
    assert 'PYTHONPATH' not in output and 'usage:' not in output
    assert app.q.pending_count() == 1


def test_a_task_the_consumer_does_not_know_ends_in_error_with_a_clear_message(
        redis_url, apps, consumers, bus):
    known, ghost = apps('known_app', redis_url), apps('ghost_app', redis_url)
    with Subscriber(bus.endpoints.publish, control=bus.endpoints.control) as sub:
        sub.wait_connected()
        consumer = consumers('known_app.q', '--bus', bus.endpoints.ingest, storage=redis_url)
        consumer.start()
        haunting = ghost.ghost()
        after = known.add(2, 3)
        events = {}
        wait_until(lambda: _collect_finals(sub, events) >= 2, timeout=60,
                   message='final events of both tasks')
        assert after.get(blocking=True, timeout=10) == 5
        assert consumer.alive()
    error = events[haunting.id]
    assert error.signal == 'error' and error.final
    assert "no task named 'ghost_app.ghost' is registered" in error.error.message
    assert events[after.id].signal == 'complete'
    with pytest.raises(TaskException, match='ghost_app.ghost'):
        haunting.get(blocking=True, timeout=10)


def _collect_finals(sub, found):
    event = sub.receive(timeout=0.2)
    if event is not None and event.get('final'):
        found[event.id] = event
    return len(found)


def test_a_corrupted_message_is_moved_aside_once_and_the_consumer_goes_on(
        redis_url, apps, consumers):
    app = apps('known_app', redis_url)
    garbage = b'\xc1\x00 this is not a task message'
    app.q.storage.enqueue(garbage, 0)
    consumer = consumers('known_app.q', storage=redis_url)
    consumer.start()
    handle = app.add(20, 22)
    assert handle.get(blocking=True, timeout=60) == 42
    corrupt = {key: value for key, value in app.q.storage.result_items().items()
               if key.startswith('corrupt:')}
    assert list(corrupt.values()) == [garbage]
    # The record of the finished task is dropped just after its result is stored.
    wait_until(lambda: app.q.pending_count() == 0 and app.q.in_flight() == [],
               timeout=30, message='the queue and the in-flight table to empty')
    assert consumer.alive()
    assert consumer.output().count('undecodable task message moved aside') == 1


@pytest.mark.parametrize('url, named', [
    ('redis://127.0.0.1:sixthousand/0', 'redis://127.0.0.1:sixthousand/0'),
    ('nosuch://host/0', "unknown scheme 'nosuch'"),
    ('sqlite:////no/such/directory/queue.db', "directory '/no/such/directory' does not exist"),
])
def test_a_wrong_storage_url_is_a_configuration_error_naming_it(url, named):
    with pytest.raises(ConfigurationError) as caught:
        TaskQueue('badinput', storage=url)
    assert named in str(caught.value)


def test_the_consumer_refuses_an_app_with_a_wrong_storage_url_with_exit_2(consumers,
                                                                         redis_url):
    consumer = consumers('bad_storage_app.q', storage=redis_url)
    assert consumer.run() == 2
    output = consumer.output()
    assert 'redis://127.0.0.1:sixthousand/0' in output and 'Traceback' not in output


def test_an_unreachable_storage_fails_the_enqueue_and_the_consumer_waits_for_it(
        apps, consumers):
    server = RedisServer()                 # its port, with nothing listening yet
    consumer = None
    try:
        app = apps('known_app', server.url)
        with pytest.raises(StorageError, match='check that the server is running'):
            app.add(1, 1)
        consumer = consumers('known_app.q', storage=server.url)
        consumer.start()
        wait_until(lambda: 'could not' in consumer.output() or 'Error' in consumer.output(),
                   timeout=30, message='the consumer to report the unreachable storage')
        assert consumer.alive()
        server.start()
        assert app.add(4, 5).get(blocking=True, timeout=60) == 9
        assert consumer.alive()
    finally:
        if consumer is not None:     # while its storage is still there to say goodbye to
            consumer.stop()
        server.close()


def test_a_wrong_bus_endpoint_is_refused_where_it_is_given(redis_url):
    with pytest.raises(BusConfigError, match='not a ZeroMQ endpoint'):
        TaskQueue('badinput', storage=redis_url, bus='not-an-endpoint')
    with pytest.raises(BusConfigError):
        Subscriber('not-an-endpoint')


def test_signal_tail_and_broker_refuse_a_wrong_endpoint_with_exit_2(capsys):
    from signal_bus import broker_cli, tail
    assert tail.main(['--connect', 'not-an-endpoint']) == 2
    assert broker_cli.main(['--ingest', 'not-an-endpoint']) == 2
    assert 'not-an-endpoint' in capsys.readouterr().err


def test_the_consumer_refuses_a_wrong_bus_endpoint_with_exit_2(consumers, redis_url):
    consumer = consumers('known_app.q', '--bus', 'not-an-endpoint', storage=redis_url)
    assert consumer.run() == 2
    output = consumer.output()
    assert 'not-an-endpoint' in output and 'Traceback' not in output


def test_a_bus_endpoint_with_a_bad_port_is_refused_at_configuration(redis_url):
    with pytest.raises(BusConfigError):
        TaskQueue('badinput', storage=redis_url, bus='tcp://127.0.0.1:notaport')


def test_a_bus_with_no_broker_behind_it_costs_the_tasks_nothing(redis_url, apps, consumers):
    from scripts.support.ports import free_port
    app = apps('known_app', redis_url)
    nobody = 'tcp://127.0.0.1:%d' % free_port()
    consumer = consumers('known_app.q', '--bus', nobody, storage=redis_url)
    consumer.start()
    handles = [app.add(i, i) for i in range(5)]
    assert [h.get(blocking=True, timeout=60) for h in handles] == [0, 2, 4, 6, 8]
    assert consumer.alive()
