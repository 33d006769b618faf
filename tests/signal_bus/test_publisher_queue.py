"""A real TaskQueue with ``bus=`` publishes its lifecycle to the broker."""
from __future__ import annotations


from queue_core import TaskQueue

from tests.signal_bus.bus_helpers import body_of


def test_task_queue_events_reach_a_raw_subscriber_in_lifecycle_order(broker, raw_sub):
    queue = TaskQueue('t', storage='memory://', bus=broker.endpoints.ingest)

    @queue.task()
    def add(a, b):
        return a + b

    @queue.task(retries=1)
    def flaky():
        raise ValueError('uh-oh')

    try:
        add(1, 2)
        assert queue.execute(queue.dequeue()) == 3
        events = raw_sub.events(3)
        assert [event.signal for event in events] == ['enqueued', 'executing', 'complete']
        bodies = [body_of(event) for event in events]
        assert [body['tseq'] for body in bodies] == [1, 2, 3]
        assert [body['final'] for body in bodies] == [False, False, True]
        assert bodies[0]['task_name'].endswith('.add') and bodies[0]['args'] == [1, 2]
        assert [event.meta.seq for event in events] == [1, 2, 3]

        flaky()
        queue.execute(queue.dequeue())
        events = raw_sub.events(5)
        assert [event.signal for event in events] == [
            'enqueued', 'executing', 'error', 'retrying', 'enqueued']
        error = body_of(events[2])
        assert error['exc']['type'] == 'ValueError' and error['exc']['message'] == 'uh-oh'
        assert [body_of(event)['retries'] for event in events[3:]] == [1, 0]
    finally:
        queue.close()


def test_attaching_the_same_bus_twice_keeps_one_publisher(bus_config):
    queue = TaskQueue('twice', storage='memory://', bus=bus_config)
    first = queue.attach_bus(bus_config)
    assert queue.attach_bus(bus_config) is first
    assert len(queue._emitter.sinks) == 1
    queue.close()
