"""The publisher against a real broker: content, drops, broker down or restarted, fork."""
from __future__ import annotations

import os
import time


from signal_bus import Broker, BrokerConfig, BusConfig, Publisher

from scripts.support.polling import wait_until
from scripts.support.ports import free_port
from tests.signal_bus.bus_helpers import ControlClient, FakeTask, RawSubscriber, body_of


class Boom(Exception):
    """A user-defined exception, so the qualified name includes its module."""


def fixed_ports_config(**options) -> BrokerConfig:
    """A broker config on three free loopback ports, reusable after a restart."""
    ingest, publish, control = (free_port() for _ in range(3))
    return BrokerConfig(ingest='tcp://127.0.0.1:%d' % ingest,
                        publish='tcp://127.0.0.1:%d' % publish,
                        control='tcp://127.0.0.1:%d' % control, **options)


def test_published_event_carries_the_wire_body(bus_config, raw_sub):
    publisher = Publisher(bus_config)
    task = FakeTask('app.tasks.add', args=(1, 2), kwargs={'k': 'v'}, retries=2, tseq=1)
    publisher.publish('enqueued', task)
    (event,) = raw_sub.events(1)
    body = body_of(event)
    assert (event.signal, event.task_name) == ('enqueued', 'app.tasks.add')
    assert {key: body[key] for key in ('signal', 'task_id', 'task_name', 'tseq', 'source',
                                       'args', 'kwargs', 'retries', 'final', 'pid')} == {
        'signal': 'enqueued', 'task_id': task.id, 'task_name': 'app.tasks.add', 'tseq': 1,
        'source': 'app', 'args': [1, 2], 'kwargs': {'k': 'v'}, 'retries': 2,
        'final': False, 'pid': os.getpid()}
    assert isinstance(body['ts'], float) and body['host'] == publisher.host
    assert 'exc' not in body
    publisher.close()


def test_error_event_carries_the_exception_as_data(bus_config, raw_sub):
    publisher = Publisher(bus_config)
    task = FakeTask(tseq=2, final=True)
    try:
        raise Boom('it broke')
    except Boom as exc:
        publisher('error', task, exc, 'worker')
    body = body_of(raw_sub.events(1)[0])
    assert body['exc']['type'] == __name__ + '.Boom'
    assert body['exc']['message'] == 'it broke'
    assert 'raise Boom' in body['exc']['traceback']
    assert (body['source'], body['final']) == ('worker', True)
    publisher.close()


def test_supervisor_report_travels_with_nil_tseq(bus_config, raw_sub):
    publisher = Publisher(bus_config)
    publisher('interrupted', FakeTask(tseq=None, final=True), None, 'consumer')
    assert body_of(raw_sub.events(1)[0])['tseq'] is None
    publisher.close()


def test_events_keep_their_publish_order(bus_config, raw_sub):
    publisher = Publisher(bus_config)
    tasks = [FakeTask('app.t%d' % index, tseq=1) for index in range(50)]
    for task in tasks:
        publisher.publish('enqueued', task)
    assert [event.task_name for event in raw_sub.events(50)] == \
        [task.registry_name for task in tasks]
    publisher.close()


def test_publish_never_raises_into_the_caller(bus_config):
    publisher = Publisher(bus_config)
    publisher.publish('enqueued', object())                 # no id at all
    publisher.publish('not-a-signal', FakeTask())           # unknown to the wire
    stats = publisher.stats()
    assert (stats['errors'], stats['buffered']) == (2, 0)
    publisher.close()


def test_publisher_without_a_broker_never_blocks_and_delivers_once_it_starts():
    config = fixed_ports_config()
    publisher = Publisher(config.ingest)
    for index in range(5):
        publisher.publish('enqueued', FakeTask(id='early-%d' % index, tseq=1))
    wait_until(lambda: publisher.stats()['pending'] == 0, message='buffer to drain')
    broker = Broker(config).start()
    try:
        wait_until(lambda: broker.stats()['published'] == 5, message='queued events')
        control = ControlClient(_context(), broker.endpoints.control)
        events, _ = control.replay(1)
        assert [body_of(event)['task_id'] for event in events] == \
            ['early-%d' % index for index in range(5)]
        control.close()
    finally:
        publisher.close()
        broker.stop()


def test_full_socket_queue_drops_are_counted_and_reported_as_loss():
    config = fixed_ports_config()
    publisher = Publisher(BusConfig(ingest=config.ingest, send_hwm=4))
    for _ in range(40):
        publisher.publish('enqueued', FakeTask(tseq=1))
    wait_until(lambda: publisher.stats()['pending'] == 0, message='buffer to drain')
    stats = publisher.stats()
    assert stats['dropped_send'] > 0 and stats['sent'] + stats['dropped'] == 40
    broker = Broker(config).start()
    context = _context()
    try:
        wait_until(lambda: broker.stats()['received'] == stats['sent'], message='queued')
        sub = RawSubscriber(context, broker.endpoints.publish)
        sub.wait_connected()
        publisher.publish('complete', FakeTask(id='marker', tseq=1))
        loss = sub.meta('_loss')
        # The newest dropped event is offered again before the marker and gets through.
        assert publisher.stats()['dropped'] == stats['dropped'] - 1
        assert loss.data['count'] == stats['dropped'] - 1
        assert broker.stats()['publisher_drops'] == stats['dropped'] - 1
        assert loss.data['pid'] == os.getpid() and loss.data['pub'] == publisher.pub
    finally:
        publisher.close()
        broker.stop()
        context.destroy(linger=0)


def test_publisher_survives_a_broker_restart():
    config = fixed_ports_config()
    broker = Broker(config).start()
    publisher = Publisher(config.ingest)
    try:
        publisher.publish('enqueued', FakeTask(id='before', tseq=1))
        wait_until(lambda: broker.stats()['published'] == 1, message='first event')
        first_epoch = broker.epoch
        broker.stop()
        publisher.publish('enqueued', FakeTask(id='while-down', tseq=1))
        broker = Broker(config).start()
        publisher.publish('enqueued', FakeTask(id='after', tseq=1))
        wait_until(lambda: _replayed_ids(broker)[-1:] == ['after'], message='event after')
        assert broker.epoch != first_epoch
        assert broker.stats()['publisher_drops'] == 0
        assert publisher.stats()['errors'] == 0
    finally:
        publisher.close()
        broker.stop()


def test_forked_child_publishes_with_a_new_pub_id(broker, bus_config, raw_sub):
    publisher = Publisher(bus_config)
    publisher.publish('enqueued', FakeTask(id='parent', tseq=1))
    parent_pub = publisher.pub
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            publisher.publish('executing', FakeTask(id='child', tseq=1))
            os.write(write_end, b'%d %d' % (publisher.pub, publisher.stats()['pseq']))
            publisher.close()
        finally:
            os._exit(0)
    os.close(write_end)
    child_pub, child_pseq = map(int, os.read(read_end, 100).split())
    os.close(read_end)
    assert os.waitpid(child, 0)[1] == 0
    bodies = {body_of(event)['task_id']: body_of(event) for event in raw_sub.events(2)}
    assert bodies['child']['pid'] == child and bodies['parent']['pid'] == os.getpid()
    assert child_pub != parent_pub and child_pseq == 1
    assert broker.stats()['publishers'] == 2 and broker.stats()['publisher_drops'] == 0
    publisher.publish('complete', FakeTask(id='parent-again', tseq=1))
    assert body_of(raw_sub.events(1)[0])['task_id'] == 'parent-again'
    publisher.close()


def test_close_waits_at_most_about_a_second_with_no_broker():
    publisher = Publisher('tcp://127.0.0.1:%d' % free_port())
    for _ in range(100):
        publisher.publish('enqueued', FakeTask(tseq=1))
    started = time.monotonic()
    publisher.close()
    assert time.monotonic() - started < 3.0
    publisher.publish('enqueued', FakeTask(tseq=1))   # after close: ignored, no error
    assert publisher.stats()['errors'] == 0


def _context():
    import zmq
    return zmq.Context.instance()


def _replayed_ids(broker: Broker) -> list[str]:
    control = ControlClient(_context(), broker.endpoints.control)
    try:
        events, _ = control.replay(1)
        return [body_of(event)['task_id'] for event in events]
    finally:
        control.close()


def test_a_publishers_last_drops_are_reported_when_it_closes():
    config = fixed_ports_config()
    publisher = Publisher(BusConfig(ingest=config.ingest, send_hwm=4))
    for index in range(40):
        publisher.publish('enqueued', FakeTask(id='t%d' % index, tseq=1))
    dropped = publisher.stats()['dropped']
    broker = Broker(config).start()
    try:
        publisher.close()  # offers the newest dropped event once more: it reveals the holes
        wait_until(lambda: broker.stats()['publisher_drops'] == dropped - 1,
                   message='the tail drops reported')
        assert _replayed_ids(broker)[-1] == 't39'
    finally:
        broker.stop()
