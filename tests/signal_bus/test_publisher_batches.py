"""A coalescing publisher (what a consumer's worker uses): batches, order, bounds, drops."""
from __future__ import annotations

import random

import zmq

from signal_bus import Broker, BusConfig, Publisher, wire

from scripts.support.polling import wait_until
from tests.signal_bus.bus_helpers import ControlClient, FakeTask, RawSubscriber, body_of


def _coalescing(bus_config: BusConfig) -> Publisher:
    """A publisher whose calling thread batches, once the broker has said it may."""
    publisher = Publisher(bus_config)
    publisher.coalesce()
    assert publisher.wait_for_batches(10.0), 'the broker did not announce batches'
    return publisher


def test_coalesced_events_arrive_all_in_publishing_order_in_fewer_messages(
        bus_config, raw_sub, control):
    publisher = _coalescing(bus_config)
    before = publisher.stats()
    rng = random.Random(7)
    tasks = [FakeTask('app.t%d' % rng.randrange(5), tseq=0) for _ in range(40)]
    sent = []
    for _ in range(400):
        task = rng.choice(tasks)
        task.tseq += 1
        signal = rng.choice(['enqueued', 'scheduled', 'retrying', 'complete'])
        publisher.publish(signal, task, None, 'worker')
        sent.append((task.id, task.tseq, signal))
    publisher.flush()
    events = raw_sub.events(400)
    assert [(body_of(e)['task_id'], body_of(e)['tseq'], e.signal) for e in events] == sent
    assert [e.meta.seq for e in events] == list(range(events[0].meta.seq,
                                                      events[0].meta.seq + 400))
    after = publisher.stats()
    assert after['messages'] - before['messages'] < 400 / 4   # really batched
    assert after['dropped'] == 0 and control.stats()['publisher_drops'] == 0
    publisher.close()


def test_executing_goes_at_once_with_what_was_gathered_before_it(bus_config, raw_sub):
    publisher = _coalescing(bus_config)
    done, running = FakeTask('app.done', tseq=2), FakeTask('app.next', tseq=1)
    publisher.publish('complete', done, None, 'worker')
    assert publisher.stats()['pending'] == 1
    publisher.publish('executing', running, None, 'worker')    # the task's code runs next
    assert publisher.stats()['pending'] == 0
    assert [e.signal for e in raw_sub.events(2)] == ['complete', 'executing']
    publisher.close()


def test_an_event_published_while_a_task_runs_goes_at_once(bus_config, raw_sub):
    publisher = _coalescing(bus_config)
    publisher.publish('executing', FakeTask('app.parent', tseq=1), None, 'worker')
    publisher.publish('enqueued', FakeTask('app.child', tseq=1), None, 'worker')
    assert publisher.stats()['pending'] == 0     # the parent's code may run on for long
    assert [e.signal for e in raw_sub.events(2)] == ['executing', 'enqueued']
    publisher.close()


def test_a_lone_gathered_event_goes_out_at_flush_and_at_close(bus_config, raw_sub):
    publisher = _coalescing(bus_config)
    publisher.publish('complete', FakeTask('app.one', tseq=3), None, 'worker')
    publisher.flush()                        # what the worker does before it blocks
    assert raw_sub.events(1)[0].task_name == 'app.one'
    publisher.publish('complete', FakeTask('app.two', tseq=3), None, 'worker')
    publisher.close()
    assert raw_sub.events(1)[0].task_name == 'app.two'


def test_a_publisher_not_asked_to_coalesce_sends_each_event_alone(bus_config, raw_sub):
    publisher = Publisher(bus_config)
    for index in range(5):
        publisher.publish('enqueued', FakeTask('app.t%d' % index, tseq=1))
    assert publisher.stats()['messages'] == 5 and not publisher.stats()['batching']
    assert len(raw_sub.events(5)) == 5
    publisher.close()


def test_no_batches_for_a_broker_that_does_not_announce_them(broker, zmq_context):
    # The control endpoint answers nothing here (a socket that never replies), so the
    # publisher keeps to two-frame messages.
    silent = zmq_context.socket(__import__('zmq').ROUTER)
    port = silent.bind_to_random_port('tcp://127.0.0.1')
    config = BusConfig(ingest=broker.endpoints.ingest, publish=broker.endpoints.publish,
                       control='tcp://127.0.0.1:%d' % port)
    sub = RawSubscriber(zmq_context, broker.endpoints.publish)
    sub.wait_connected()
    publisher = Publisher(config)
    publisher.coalesce()
    assert not publisher.wait_for_batches(0.3)
    for index in range(3):
        publisher.publish('enqueued', FakeTask('app.t%d' % index, tseq=1))
    assert len(sub.events(3)) == 3
    assert publisher.stats()['messages'] == 3
    publisher.close()
    silent.close(linger=0)


def test_a_full_queue_drops_and_counts_whole_batches_and_sending_resumes(
        broker_factory, zmq_context):
    broker = broker_factory()
    endpoints, same_ports = broker.endpoints, broker.bound_config()
    config = BusConfig(ingest=endpoints.ingest, publish=endpoints.publish,
                       control=endpoints.control, send_hwm=1)
    publisher = _coalescing(config)
    broker.stop()                                # nobody takes the queued messages now
    for index in range(200):
        publisher.publish('complete', FakeTask('app.t%d' % index, tseq=2), None, 'worker')
        if index % 50 == 49:
            publisher.flush()
    stats = publisher.stats()
    assert stats['dropped'] > 0 and stats['pending'] == 0
    assert stats['sent'] + stats['dropped'] == stats['pseq']   # each event one or the other
    restarted = Broker(same_ports).start()
    try:
        sub = RawSubscriber(zmq_context, endpoints.publish)
        sub.wait_connected()

        def delivered_again():
            # Until the socket reconnects, its queue is still full: each new event is
            # dropped in turn and the newest offered again before the next.
            publisher.publish('complete', FakeTask('app.after', tseq=2), None, 'worker')
            publisher.flush()
            return sub.recv(timeout=0.2)

        wait_until(delivered_again, message='events to flow after the broker came back')
        publisher.close()
    finally:
        restarted.stop()


def test_a_gathered_event_is_on_the_wire_before_a_local_handler_runs(bus_config, raw_sub):
    from queue_core import SIGNAL_COMPLETE, TaskQueue
    queue = TaskQueue('batches', storage='memory://')
    publisher = queue.attach_bus(bus_config)
    queue.coalesce_signals()
    assert publisher.wait_for_batches(10.0), 'the broker did not announce batches'
    seen_by_handler = []

    @queue.signal(SIGNAL_COMPLETE)
    def slow_handler(signal, task):
        seen_by_handler.append(raw_sub.recv(timeout=5))   # a handler that takes its time

    @queue.task()
    def add(a, b):
        return a + b

    with queue.emitting_as('worker'):
        queue.emit(SIGNAL_COMPLETE, add.s(1, 2), final=True)
    (event,) = seen_by_handler
    assert event is not None and event.signal == 'complete'
    assert body_of(event)['queue'] == 'batches'
    publisher.close()


def test_a_dropped_event_offered_again_never_makes_a_batch_over_64(zmq_context):
    # A channel whose newest dropped event waits to be offered again gathers at most 63
    # more, so the batch that carries both stays within the wire's 64 pairs.
    from signal_bus.publisher import _Channel
    pull = zmq_context.socket(zmq.PULL)
    port = pull.bind_to_random_port('tcp://127.0.0.1')
    channel = _Channel(zmq_context, BusConfig(ingest='tcp://127.0.0.1:%d' % port))
    channel.batching = True                         # as after the broker's answer
    channel.retry = (b'dropped-header', b'dropped-body')
    for index in range(200):
        channel.send('complete', 'app.t', 'id-%d' % index, 2, b'\x80')
    channel.flush()
    sizes = []
    while len(sizes) < 4 and pull.poll(5000):
        sizes.append(len(pull.recv_multipart()) // 2)
    assert max(sizes) <= wire.MAX_BATCH_EVENTS and sum(sizes) == 201
    channel.close(0)
    pull.close(0)
