"""The broker over real loopback sockets: numbering, ordering, meta topics, bad input."""
from __future__ import annotations

import threading

import msgpack
import pytest

from signal_bus import Broker, wire

from scripts.support.polling import wait_until
from tests.signal_bus.bus_helpers import RawSubscriber, body_of, loopback_broker_config


def tseqs(events):
    return [(body_of(event)['task_id'], body_of(event)['tseq']) for event in events]


def test_released_events_get_consecutive_seq_and_per_signal_sseq(raw_sub, pusher_factory):
    pusher = pusher_factory()
    signals = ['enqueued', 'executing', 'enqueued', 'complete', 'enqueued']
    for index, signal in enumerate(signals):
        pusher.send(signal, 'task-%d' % index, None)
    events = raw_sub.events(5)
    assert [event.signal for event in events] == signals
    assert [event.meta.seq for event in events] == [1, 2, 3, 4, 5]
    assert [event.meta.sseq for event in events] == [1, 1, 2, 1, 3]
    assert len({event.meta.epoch for event in events}) == 1
    assert not any(event.meta.gap for event in events)


def test_body_is_forwarded_byte_for_byte_under_its_topic(raw_sub, pusher_factory):
    pusher = pusher_factory()
    pusher.send('error', 'abc', 1, name='app.tasks.boom', extra={'nested': [1, 2]})
    (event,) = raw_sub.events(1)
    assert (event.signal, event.task_name) == ('error', 'app.tasks.boom')
    assert body_of(event)['extra'] == {'nested': [1, 2]}
    assert event.as_map()['seq'] == 1


def test_signal_prefix_subscription_selects_one_signal(broker, zmq_context, pusher_factory):
    sub = RawSubscriber(zmq_context, broker.endpoints.publish,
                        prefixes=(wire.signal_prefix('error'), b'_'))
    sub.wait_connected()
    pusher = pusher_factory()
    pusher.send('complete', 'a', None)
    pusher.send('error', 'b', None)
    (event,) = sub.events(1)
    assert event.signal == 'error' and event.meta.seq == 2 and event.meta.sseq == 1


def test_task_order_holds_across_two_publishers(broker, raw_sub, pusher_factory, control):
    app, worker = pusher_factory(), pusher_factory()
    worker.send('executing', 'T', 2)
    wait_until(lambda: control.stats()['held'] == 1, message='tseq 2 to be held')
    app.send('enqueued', 'T', 1)
    events = raw_sub.events(2)
    assert tseqs(events) == [('T', 1), ('T', 2)]
    assert [event.meta.seq for event in events] == [1, 2]
    assert not any(event.meta.gap for event in events)


def test_missing_predecessor_is_released_after_the_window_marked_gap(rig_factory):
    rig = rig_factory(hold_ms=50)
    rig.pusher.send('executing', 'T', 2)
    (event,) = rig.sub.events(1)
    assert body_of(event)['tseq'] == 2 and event.meta.gap is True
    assert rig.control.stats()['gaps'] == 1


def test_held_event_holds_back_its_publishers_later_events(
        broker, raw_sub, pusher_factory, control):
    app, worker = pusher_factory(), pusher_factory()
    worker.send('executing', 'X', 2)
    worker.send('enqueued', 'Z', 1)          # ready on its own, but sent after X's tseq 2
    wait_until(lambda: control.stats()['held'] == 2, message='two events held')
    app.send('enqueued', 'X', 1)
    assert tseqs(raw_sub.events(3)) == [('X', 1), ('X', 2), ('Z', 1)]


def test_publisher_order_is_kept_when_the_window_runs_out(rig_factory):
    rig = rig_factory(hold_ms=30)
    rig.pusher.send('executing', 'X', 2)
    rig.pusher.send('enqueued', 'Z', 1)
    rig.pusher.send('complete', 'X', 3)
    events = rig.sub.events(3)
    assert tseqs(events) == [('X', 2), ('Z', 1), ('X', 3)]
    assert [event.meta.gap for event in events] == [True, False, False]


def test_nil_tseq_is_never_held_and_resets_the_task(raw_sub, pusher_factory):
    worker, supervisor = pusher_factory(), pusher_factory()
    worker.send('enqueued', 'R', 1)
    worker.send('executing', 'R', 2)
    events = raw_sub.events(2)
    supervisor.send('interrupted', 'R', None)
    supervisor.send('enqueued', 'R', 101)     # the requeued copy continues at stored + 100
    supervisor.send('executing', 'R', 102)
    events += raw_sub.events(3)
    assert tseqs(events) == [('R', 1), ('R', 2), ('R', None), ('R', 101), ('R', 102)]
    assert not any(event.meta.gap for event in events)


def test_task_state_is_forgotten_after_its_final_event(raw_sub, pusher_factory, control):
    pusher = pusher_factory()
    pusher.send('enqueued', 'F', 1)
    pusher.send('complete', 'F', 2, final=True)
    raw_sub.events(2)
    assert control.stats()['tasks_tracked'] == 0


@pytest.mark.parametrize('frames', [
    [b'only one frame'],
    [b'a', b'b', b'c'],
    [b'\xc1', wire.encode_body({})],
    [msgpack.packb([1, 'bogus', 'n', 'i', 1, 1, 1]), wire.encode_body({})],
    [msgpack.packb([2, 'complete', 'n', 'i', 1, 1, 1]), wire.encode_body({})],
    [msgpack.packb([1, 'complete', 'n', 'i', 'x', 1, 1]), wire.encode_body({})],
    [msgpack.packb([1, 'complete', 'n', 'i', 1, -1, 1]), wire.encode_body({})],
    [wire.encode_header('complete', 'n', 'i', 1, 1, 1), msgpack.packb([1, 2])],
    [wire.encode_header('complete', 'n', 'i', 1, 1, 1), wire.encode_body({'a': 1})[:-1]],
    [wire.encode_header('complete', 'n', 'i', 1, 1, 1)[:-2], wire.encode_body({})],
], ids=['1-frame', '3-frames', 'not-msgpack', 'unknown-signal', 'version-2', 'tseq-type',
        'negative-pub', 'body-not-map', 'truncated-body', 'truncated-header'])
def test_malformed_frames_are_counted_and_valid_events_still_flow(
        frames, raw_sub, pusher_factory, control):
    pusher = pusher_factory()
    pusher.raw(frames)
    pusher.send('complete', 'ok', None)
    (event,) = raw_sub.events(1)
    assert body_of(event)['task_id'] == 'ok' and event.meta.seq == 1
    stats = wait_until(lambda: (lambda s: s if s['received'] == 2 else None)(control.stats()))
    assert (stats['malformed'], stats['published'], stats['oversized']) == (1, 1, 0)


def test_oversized_events_are_counted_and_dropped(rig_factory):
    rig = rig_factory(max_event_bytes=2000)
    # each frame fits; header and body together do not
    rig.pusher.send('complete', 'big', None, blob='x' * 1900)
    rig.pusher.send('complete', 'small', None)
    (event,) = rig.sub.events(1)
    assert body_of(event)['task_id'] == 'small'
    stats = rig.control.stats()
    assert (stats['oversized'], stats['malformed'], stats['received']) == (1, 0, 2)


def test_heartbeat_answers_each_new_subscription(broker_factory, zmq_context):
    broker = broker_factory(heartbeat_interval=3600)
    first = RawSubscriber(zmq_context, broker.endpoints.publish)
    beat = first.wait_connected()
    assert beat.data['epoch'] == broker.epoch and beat.data['last_seq'] == 0
    assert beat.data['v'] == 1 and beat.data['last_sseq'] == {}
    second = RawSubscriber(zmq_context, broker.endpoints.publish)
    assert second.wait_connected().data['epoch'] == broker.epoch


def test_periodic_heartbeat_carries_last_seq(rig_factory):
    rig = rig_factory(heartbeat_interval=0.05)
    rig.pusher.send('enqueued', 'h', None)
    rig.sub.events(1)
    beat = rig.sub.meta('_heartbeat')
    assert beat.data['last_seq'] == 1 and beat.data['last_sseq'] == {'enqueued': 1}


def test_pseq_holes_are_reported_as_loss(raw_sub, pusher_factory, control):
    pusher = pusher_factory(pub=77)
    pusher.send('enqueued', 'a', None, pseq=1)
    pusher.send('enqueued', 'b', None, pseq=2)
    pusher.send('enqueued', 'c', None, pseq=5)
    loss = raw_sub.meta('_loss')
    assert loss.data == {'v': 1, 'pub': 77, 'host': 'test-host', 'pid': 4242, 'count': 2,
                         'first_pseq': 3, 'last_pseq': 4}
    assert control.stats()['publisher_drops'] == 2


def test_first_event_of_a_publisher_is_never_a_loss(raw_sub, pusher_factory, control):
    restarted, fresh = pusher_factory(pub=1), pusher_factory(pub=2)
    restarted.send('enqueued', 'a', None, pseq=9)   # as after a broker restart
    fresh.send('enqueued', 'b', None, pseq=1)
    metas: list = []
    raw_sub.events(2, metas=metas)
    assert not [meta for meta in metas if meta.topic == '_loss']
    assert control.stats()['publisher_drops'] == 0


def test_stats_counts_by_signal(raw_sub, pusher_factory, control):
    pusher = pusher_factory()
    for signal in ('enqueued', 'enqueued', 'error'):
        pusher.send(signal, signal, None)
    raw_sub.events(3)
    stats = control.stats()
    assert stats['by_signal'] == {'enqueued': 2, 'error': 1}
    assert (stats['received'], stats['published'], stats['last_seq']) == (3, 3, 3)
    assert stats['ring_first_seq'] == 1 and stats['epoch'] > 0
    for key in ('malformed', 'publisher_drops', 'oversized'):
        assert stats[key] == 0


def test_bad_control_requests_get_an_error_reply(control):
    (reply,) = control.request(msgpack.packb({'op': 'explode'}))
    assert reply.kind == 'error' and 'explode' in reply.data['error']
    (reply,) = control.request(b'\xc1 not msgpack')
    assert reply.kind == 'error'
    assert control.stats()['control_errors'] == 2


def test_a_broker_restarted_on_its_bound_ports_has_a_new_epoch(broker_factory, zmq_context):
    first = broker_factory()
    config = first.bound_config()
    assert config.ingest == first.endpoints.ingest and not config.ingest.endswith('*')
    epoch = first.epoch
    first.stop()
    second = broker_factory(**{key: getattr(config, key)
                               for key in ('ingest', 'publish', 'control')})
    sub = RawSubscriber(zmq_context, second.endpoints.publish)
    assert (second.endpoints.ingest, second.endpoints.control) == (config.ingest,
                                                                   config.control)
    assert sub.wait_connected().data['epoch'] == second.epoch != epoch


def test_run_serves_again_after_stop(zmq_context):
    broker = Broker(loopback_broker_config())

    def bound():
        try:
            return broker.endpoints
        except RuntimeError:
            return None

    for _ in range(2):
        thread = threading.Thread(target=broker.run)
        thread.start()
        sub = RawSubscriber(zmq_context, wait_until(bound).publish)
        assert sub.wait_connected().data['epoch'] == broker.epoch
        broker.stop()
        thread.join(10)
        assert not thread.is_alive()
        sub.close()
