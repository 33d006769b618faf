"""The ingest batch form (DESIGN, "Batches on ingest") and the ``_consumer`` meta topic."""
from __future__ import annotations

import msgpack

from signal_bus import wire

from tests.signal_bus.bus_helpers import body_of


def _pair(pusher, signal: str, task_id: str, tseq, pseq: int, final: bool = False):
    header = wire.encode_header(signal, 'app.t', task_id, tseq, pusher.pub, pseq)
    body = wire.encode_body({'signal': signal, 'task_id': task_id, 'tseq': tseq,
                             'final': final, 'host': 'h', 'pid': 1})
    return [header, body]


def test_pairs_of_a_batch_and_of_later_batches_keep_publishing_order(raw_sub, pusher_factory,
                                                                    control):
    pusher = pusher_factory()
    first = _pair(pusher, 'enqueued', 'A', 1, 1) + _pair(pusher, 'enqueued', 'B', 1, 2)
    second = (_pair(pusher, 'executing', 'A', 2, 3) + _pair(pusher, 'executing', 'B', 2, 4)
              + _pair(pusher, 'complete', 'A', 3, 5, final=True))
    pusher.raw(first)
    pusher.raw(second)
    events = raw_sub.events(5)
    assert [(body_of(e)['task_id'], e.signal) for e in events] == [
        ('A', 'enqueued'), ('B', 'enqueued'), ('A', 'executing'), ('B', 'executing'),
        ('A', 'complete')]
    assert [e.meta.seq for e in events] == [1, 2, 3, 4, 5]
    stats = control.stats()
    assert (stats['received'], stats['published'], stats['publisher_drops']) == (5, 5, 0)
    assert stats['ingest_messages'] == 2


def test_a_malformed_pair_is_dropped_and_counted_while_its_neighbours_are_delivered(
        raw_sub, pusher_factory, control):
    pusher = pusher_factory()
    bad = [wire.encode_header('complete', 'app.t', 'X', 1, pusher.pub, 2), b'not a map']
    pusher.raw(_pair(pusher, 'enqueued', 'A', 1, 1) + bad + _pair(pusher, 'enqueued', 'C', 1, 3))
    events = raw_sub.events(2)
    assert [body_of(e)['task_id'] for e in events] == ['A', 'C']
    stats = control.stats()
    assert (stats['received'], stats['malformed'], stats['published']) == (3, 1, 2)


def test_a_message_with_an_odd_frame_count_is_dropped_whole(raw_sub, pusher_factory, control):
    pusher = pusher_factory()
    pusher.raw(_pair(pusher, 'enqueued', 'A', 1, 1) + [b'stray'])
    pusher.send('enqueued', 'after', None)
    (event,) = raw_sub.events(1)
    assert body_of(event)['task_id'] == 'after'
    stats = control.stats()
    assert (stats['received'], stats['malformed'], stats['published']) == (2, 1, 1)


def test_a_batch_over_64_pairs_is_malformed(raw_sub, pusher_factory, control):
    pusher = pusher_factory()
    frames: list[bytes] = []
    for index in range(wire.MAX_BATCH_EVENTS + 1):
        frames += _pair(pusher, 'enqueued', 'T%d' % index, 1, index + 1)
    pusher.raw(frames)
    pusher.send('enqueued', 'after', None)
    assert body_of(raw_sub.events(1)[0])['task_id'] == 'after'
    assert control.stats()['malformed'] == 1


def test_consumer_map_is_fanned_out_as_a_meta_message_unnumbered(raw_sub, pusher_factory,
                                                                 control):
    pusher = pusher_factory()
    beat = {'v': 1, 'queue': 'q', 'host': 'h', 'pid': 7, 'workers': 2, 'started': 1.0,
            'ts': 2.0}
    pusher.raw([msgpack.packb(beat)])
    meta = raw_sub.meta('_consumer')
    assert meta.data == beat
    pusher.send('enqueued', 'next', None)
    assert raw_sub.events(1)[0].meta.seq == 1  # the meta message took no seq
    stats = control.stats()
    assert stats['consumer_meta'] == 1 and stats['received'] == 1


def test_broker_announces_batches_in_stats_and_heartbeats(raw_sub, control):
    assert control.stats()['batch'] is True
    assert raw_sub.meta('_heartbeat', timeout=5).data['batch'] is True
