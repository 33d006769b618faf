"""Subscriber's stream path against a real broker: bursts taken in at once, bodies decoded
on first read, meta topics it does not know passed over, silence reported, refusals said."""
from __future__ import annotations

import logging
import time

import msgpack
import pytest

from signal_bus import wire
from signal_bus.event import Event
from signal_bus.subscriber import Subscriber

from scripts.support.polling import wait_until
from tests.signal_bus.bus_rig import Bus, refusing_bus


def take(sub: Subscriber, count: int, timeout: float = 20.0) -> list[Event]:
    """Receive ``count`` events (failing after ``timeout`` seconds)."""
    events: list[Event] = []

    def more() -> bool:
        event = sub.receive(timeout=0.05)
        if event is not None:
            events.append(event)
        return len(events) >= count
    wait_until(more, timeout=timeout, interval=0, message='%d events' % count)
    return events


@pytest.fixture
def subs():
    """Subscribers closed at the end of the test."""
    made: list[Subscriber] = []
    yield made
    for sub in made:
        sub.close()


def test_a_queued_burst_comes_out_whole_in_order_and_filtered_by_task_glob(bus, subs):
    sub = Subscriber(bus.publish, control=bus.control, tasks=['billing.*'], rcvhwm=0)
    subs.append(sub)
    sub.wait_connected(10)
    names = ['billing.charge', 'mail.send'] * 1500
    ids = [bus.send('complete', name) for name in names]
    bus.wait_published(len(names))
    events = take(sub, 1500)
    assert [event.id for event in events] == ids[::2]
    assert [event.seq for event in events] == list(range(1, 3001, 2))
    assert {event.name for event in events} == {'billing.charge'}
    # The last event (a mail.send) is taken in and filtered out, and nothing else comes.
    wait_until(lambda: sub.receive(0.05) is None and
               sub.stats()['received'] + sub.stats()['replayed'] == 3000,
               message='the filtered last event to be taken in')
    assert sub.stats()['lost'] == 0 and sub.stats()['delivered'] == 1500


@pytest.mark.parametrize('signals', [None, ['complete']])
def test_consumer_announcements_between_events_are_passed_over(bus, subs, signals):
    sub = Subscriber(bus.publish, control=bus.control, signals=signals)
    subs.append(sub)
    sub.wait_connected(10)
    first = bus.send('complete')
    bus.push.send(msgpack.packb({'v': 1, 'queue': 'q', 'host': 'h', 'pid': 7, 'workers': 2,
                                 'started': time.time(), 'ts': time.time()}))
    second = bus.send('complete')
    events = take(sub, 2)
    assert [event.id for event in events] == [first, second]
    assert bus.broker.stats().get('malformed', 0) == 0
    assert sub.stats()['malformed'] == 0 and sub.stats()['lost'] == 0


def test_topic_and_meta_are_read_without_decoding_the_body(caplog):
    topic = wire.topic_for('complete', 'app.tasks.add')
    event = Event.received('complete', 'app.tasks.add', topic, 5, 3, 7, False, b'\x81\xc1')
    assert (event.signal, event.name, event.seq, event.sseq, event.epoch, event.gap) == (
        'complete', 'app.tasks.add', 5, 3, 7, False)
    assert not caplog.records  # nothing has touched the broken body yet
    with caplog.at_level(logging.WARNING, logger='signal_bus'):
        assert event.get('args') is None and event.final is False
    assert ['undecodable body' in record.getMessage() for record in caplog.records] == [True]


def test_a_body_read_later_gives_the_wire_keys_with_meta_merged():
    body = wire.encode_body({'signal': 'error', 'task_id': 't-1', 'args': [1, 2], 'seq': 99,
                             'exc': {'type': 'ValueError', 'message': 'bad'}})
    event = Event.received('error', 'app.tasks.boom', b'', 5, 3, 7, True, body)
    assert (event.id, event.args, event.error.type) == ('t-1', [1, 2], 'ValueError')
    assert event.to_dict() == {'signal': 'error', 'task_id': 't-1', 'args': [1, 2], 'seq': 5,
                               'sseq': 3, 'epoch': 7, 'gap': True,
                               'exc': {'type': 'ValueError', 'message': 'bad'}}
    assert event == Event(event.to_dict()) and event.get('seq') == 5


def test_the_body_frame_is_the_bytes_received_until_read_then_the_body_packed_again():
    body = wire.encode_body({'signal': 'complete', 'task_id': 't-1', 'args': [1]})
    event = Event.received('complete', 'app.tasks.add', b'', 5, 3, 7, False, body)
    assert event.body_frame() is body
    assert event.args == [1]
    assert msgpack.unpackb(event.body_frame()) == msgpack.unpackb(body)
    built = Event({'signal': 'complete', 'task_id': 't-1', 'seq': 5, 'epoch': 7, 'gap': True})
    assert msgpack.unpackb(built.body_frame()) == {'signal': 'complete', 'task_id': 't-1'}


def test_an_events_meta_keys_are_the_meta_frames_whatever_the_body_says():
    body = msgpack.packb({'id': 'a', 'seq': 99, 'gap': True})  # a stray body
    event = Event.received('complete', 'app.tasks.add', b'', 5, 3, 7, False, body)
    assert event.to_dict() == {'id': 'a', 'seq': 5, 'sseq': 3, 'epoch': 7}
    assert event.get('gap', False) is False and event.gap is False and event.seq == 5
    gapped = Event.received('complete', 'app.tasks.add', b'', 5, 3, 7, True, body)
    assert gapped.to_dict()['gap'] is True


def test_silence_is_reported_once_when_it_begins_and_once_when_the_broker_is_back(subs):
    quick = Bus(heartbeat=0.1).start()
    sub = Subscriber(quick.publish, control=quick.control, silence_after=1.0)
    subs.append(sub)
    seen: list[tuple[bool, float]] = []
    sub.on_silence(lambda silent, seconds: seen.append((silent, seconds)))
    try:
        sub.wait_connected(10)
        assert sub.receive(0.5) is None and seen == [] and sub.heard
        quick.stop()
        wait_until(lambda: sub.receive(0.05) is None and seen, timeout=20,
                   message='the silence to be reported')
        assert sub.receive(1.5) is None and len(seen) == 1 and sub.silent
        quick.start()
        task_id = quick.send('complete')
        (event,) = take(sub, 1)
    finally:
        quick.close()
    assert event.id == task_id
    assert [silent for silent, _ in seen] == [True, False]
    assert all(seconds >= 1.0 for _, seconds in seen)
    assert sub.stats()['silences'] == 1 and not sub.silent


def test_silence_before_any_broker_answered_is_reported_too(subs):
    from scripts.support.ports import free_port
    sub = Subscriber('tcp://127.0.0.1:%d' % free_port(), control='tcp://127.0.0.1:9',
                     silence_after=0.5)
    subs.append(sub)
    seen: list[tuple[bool, float]] = []
    sub.on_silence()(lambda silent, seconds: seen.append((silent, seconds)))
    wait_until(lambda: sub.receive(0.05) is None and seen, timeout=20,
               message='the silence to be reported')
    assert seen[0][0] is True and seen[0][1] >= 0.5 and not sub.heard


def test_a_subscriber_whose_key_the_broker_refuses_logs_one_line_saying_so(tmp_path, caplog,
                                                                          subs):
    secure, broker_public = refusing_bus(tmp_path)
    try:
        with caplog.at_level(logging.ERROR, logger='signal_bus.handshake'):
            stranger = Subscriber(secure.publish, curve_server_key=broker_public)
            subs.append(stranger)
            wait_until(lambda: any('refused' in r.getMessage() for r in caplog.records),
                       timeout=20, message='the refusal to be logged')
            assert stranger.receive(0.5) is None
    finally:
        secure.close()
    refusals = [r for r in caplog.records if 'refused' in r.getMessage()]
    assert len(refusals) == 1 and 'subscriber' in refusals[0].getMessage()


def test_malformed_messages_in_a_burst_are_counted_and_their_neighbours_delivered(subs):
    """A publish socket speaking the wire by hand (no broker sends such frames) fills the
    subscriber's queue with good events and bad messages mixed."""
    import zmq
    context = zmq.Context()
    xpub = context.socket(zmq.XPUB)
    xpub.setsockopt(zmq.LINGER, 0)
    port = xpub.bind_to_random_port('tcp://127.0.0.1')
    try:
        sub = Subscriber('tcp://127.0.0.1:%d' % port, control='tcp://127.0.0.1:9')
        subs.append(sub)
        assert xpub.poll(10_000)  # the subscription
        xpub.recv()
        xpub.send_multipart(wire.encode_heartbeat(7, 0, {}, time.time()))
        sub.wait_connected(10)
        topic = wire.topic_for('complete', 'app.tasks.add')

        def event(seq: int, meta: bytes | None = None, body: bytes | None = None) -> None:
            xpub.send_multipart([topic, meta or wire.encode_meta_fields(seq, seq, 7),
                                 body or wire.encode_body({'task_id': 't%d' % seq})])
        event(1)
        event(2, meta=msgpack.packb({'seq': 'two', 'sseq': 2, 'epoch': 7}))
        event(2, body=msgpack.packb(['not', 'a', 'map']))
        xpub.send_multipart([b'_future', msgpack.packb({'anything': 1})])
        xpub.send_multipart([topic, b'x', b'y', b'z'])
        event(2)
        events = take(sub, 2)
    finally:
        xpub.close(0)
        context.term()
    assert [(e.seq, e.id) for e in events] == [(1, 't1'), (2, 't2')]
    assert sub.stats()['malformed'] == 3 and sub.stats()['lost'] == 0
