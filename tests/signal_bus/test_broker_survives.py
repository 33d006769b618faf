"""The broker survives any client that speaks the wire format (SPEC §7 "Resource ceilings")."""
from __future__ import annotations

import msgpack

from signal_bus import wire

from tests.signal_bus.bus_helpers import ControlClient


U64_MAX = 2 ** 64 - 1


def test_pseq_jumps_to_the_top_of_the_range_leave_stats_answerable(
        broker, raw_sub, pusher_factory, control):
    # Two publishers jump from pseq 1 to 2**64-1: the drop count passes the unsigned
    # 64-bit range, which once made encoding the stats reply raise and the broker exit.
    for pusher in (pusher_factory(), pusher_factory()):
        pusher.send('enqueued', 'a-%d' % pusher.pub, None, pseq=1)
        pusher.send('enqueued', 'b-%d' % pusher.pub, None, pseq=U64_MAX)
    raw_sub.events(4)
    stats = control.stats()
    assert stats['publisher_drops'] == U64_MAX  # saturated, not wrapped or overflowing
    assert stats['published'] == 4
    # and the broker still serves events afterwards
    pusher_factory().send('complete', 'c', None)
    (event,) = raw_sub.events(1)
    assert event.meta.seq == 5


def test_a_request_that_breaks_the_control_path_is_counted_and_answered(
        broker, raw_sub, pusher_factory, zmq_context):
    client = ControlClient(zmq_context, broker.endpoints.control)
    broker.counters.by_signal['enqueued'] = 2 ** 70  # a counter no reply could carry
    (reply,) = client.request(wire.encode_stats_request())
    assert reply.data['by_signal']['enqueued'] == U64_MAX
    broker.counters.by_signal['enqueued'] = object()  # a bug in the stats path
    (reply,) = client.request(wire.encode_stats_request())
    assert reply.kind == 'error'
    del broker.counters.by_signal['enqueued']
    assert client.stats()['internal_errors'] == 1
    pusher_factory().send('complete', 'after', None)
    assert raw_sub.events(1)[0].signal == 'complete'


def test_control_request_over_64_kib_gets_an_error_reply(control):
    frame = msgpack.packb({'op': 'stats', 'padding': b'x' * (65 * 1024)})
    (reply,) = control.request(frame)
    assert reply.kind == 'error'
    assert '64 KiB' in reply.data['error']
