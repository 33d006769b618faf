"""Replay from the broker's ring over the control socket, page by page (SPEC §7)."""
from __future__ import annotations

import threading

import msgpack
import pytest
import zmq

from signal_bus import wire
from signal_bus.client_sockets import ControlClient as LibraryControlClient
from signal_bus.exceptions import WireError
from signal_bus.ring import Ring

from scripts.support.polling import wait_until
from tests.signal_bus.bus_helpers import body_of


@pytest.fixture
def filled(rig_factory):
    """A broker with a ring of 10 that has released 25 events; returns a control client."""
    rig = rig_factory(ring=10)
    for index in range(1, 26):
        rig.pusher.send('enqueued', 'task-%d' % index, None)
    return rig.control, rig.sub.events(25)


def test_replay_pages_until_next_passes_to(broker, raw_sub, pusher_factory, control):
    pusher = pusher_factory()
    for index in range(1, 8):
        pusher.send('complete', 'task-%d' % index, None)
    live = raw_sub.events(7)
    pages, start = [], 2
    while start <= 6:
        events, end = control.replay(start, 6, limit=2)
        pages.append(([event.meta.seq for event in events], end['next'], end['missing']))
        start = end['next']
    assert pages == [([2, 3], 4, 0), ([4, 5], 6, 0), ([6], 7, 0)]
    replayed, _ = control.replay(1, None)
    assert [(event.meta, event.body) for event in replayed] == \
        [(event.meta, event.body) for event in live]


def test_replay_reports_what_the_ring_no_longer_holds(filled):
    control, live = filled
    events, end = control.replay(1, 25, limit=1000)
    assert [event.meta.seq for event in events] == list(range(16, 26))
    assert (end['from'], end['next'], end['missing']) == (1, 26, 15)
    assert end['ring_first_seq'] == 16 and end['last_seq'] == 25
    assert [body_of(event)['task_id'] for event in events] == \
        ['task-%d' % seq for seq in range(16, 26)]


def test_replay_of_a_range_wholly_gone_is_all_missing(filled):
    control, _ = filled
    events, end = control.replay(3, 7)
    assert events == [] and (end['next'], end['missing']) == (8, 5)


def test_replay_past_the_end_returns_an_empty_page(filled):
    control, _ = filled
    events, end = control.replay(26, None)
    assert events == [] and (end['next'], end['missing']) == (26, 0)


def test_replay_limit_is_capped_at_one_thousand(control):
    (reply,) = control.request(wire.encode_replay_request(1, None, 5000))
    assert reply.kind == 'end'


def test_replay_keeps_gap_flags_and_meta_bytes(rig_factory):
    rig = rig_factory(hold_ms=20)
    rig.pusher.send('executing', 'late', 3)
    (live,) = rig.sub.events(1)
    (replayed,), _ = rig.control.replay(1)
    assert replayed == live and replayed.meta.gap is True


def test_ring_page_arithmetic():
    ring: Ring[int] = Ring(4)
    assert ring.first_seq == 0 and ring.page(1, None, 10) == ([], 1, 0, 0)
    for seq in range(1, 7):
        ring.append(seq, seq * 10)
    assert ring.first_seq == 3
    assert ring.page(1, None, 10) == ([30, 40, 50, 60], 7, 2, 6)
    assert ring.page(1, 4, 1) == ([30], 4, 2, 4)
    assert ring.page(5, 100, 10) == ([50, 60], 7, 0, 6)
    assert ring.page(0, 2, 10) == ([], 3, 2, 2)
    with pytest.raises(ValueError):
        ring.append(9, 0)


def test_a_client_reading_page_after_page_gets_every_event(broker, pusher_factory, control,
                                                           zmq_context):
    # libzmq learns what a peer has read only every half queue: a queue of exactly one page
    # cut the second page short and left the client waiting for its end.
    pusher = pusher_factory()
    for index in range(5000):
        pusher.send('enqueued', 'page-%d' % index, None)
    wait_until(lambda: control.stats()['published'] == 5000, message='5,000 events in')
    client = LibraryControlClient(zmq_context, broker.endpoints.control, None, 10.0)
    for _ in range(2):
        seqs = [event.meta.seq for event in client.replay(1, 5000)]
        assert seqs == list(range(1, 5001))
    client.close()


@pytest.mark.parametrize('topic, body', [
    (b'_heartbeat', wire.encode_body({'signal': 'complete'})),
    (wire.topic_for('complete', 'app.add'), msgpack.packb([1, 2])),
    (b'no-separator', wire.encode_body({'signal': 'complete'})),
])
def test_a_replayed_event_that_is_not_one_is_a_wire_error(zmq_context, topic, body):
    router = zmq_context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port('tcp://127.0.0.1')
    meta = wire.encode_meta_fields(1, 1, 1)
    good = wire.encode_replay_event(wire.topic_for('complete', 'app.add'), meta,
                                    wire.encode_body({'signal': 'complete', 'task_id': 't'}))

    def answer() -> None:  # a broker whose second replayed event is malformed
        identity = router.recv_multipart()[0]
        router.send_multipart([identity] + good)
        router.send_multipart([identity] + wire.encode_replay_event(topic, meta, body))

    server = threading.Thread(target=answer, daemon=True)
    server.start()
    client = LibraryControlClient(zmq_context, 'tcp://127.0.0.1:%d' % port, None, 10.0)
    try:
        replay = client.replay(1, 2)
        assert next(replay).meta.seq == 1
        with pytest.raises(WireError):
            next(replay)
    finally:
        server.join(10)
        client.close()
        router.close(0)
