"""Subscriber: filtering, handlers, gap repair from the ring, losses and broker restarts."""
from __future__ import annotations

import logging
import threading

import pytest

from signal_bus import BusConfigError
from signal_bus.subscriber import Subscriber

from scripts.support.polling import wait_until
from tests.signal_bus.bus_rig import Bus, LossyLink


def collect(sub: Subscriber, count: int, timeout: float = 10.0) -> list:
    """Receive ``count`` events (failing after ``timeout`` seconds)."""
    events = []
    wait_until(lambda: _take(sub, events) >= count, timeout=timeout,
               message='%d events (got %d)' % (count, len(events)))
    return events


def _take(sub: Subscriber, events: list) -> int:
    event = sub.receive(timeout=0.05)
    if event is not None:
        events.append(event)
    return len(events)


def run_in_thread(sub: Subscriber) -> threading.Thread:
    """``sub.run()`` in a background thread."""
    thread = threading.Thread(target=sub.run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def make_sub(bus):
    """Build subscribers on the test bus and close them afterwards."""
    made = []

    def make(endpoint=None, **options):
        options.setdefault('control', bus.control)
        sub = Subscriber(endpoint or bus.publish, **options)
        made.append(sub)
        return sub
    yield make
    for sub in made:
        sub.close()


def test_events_carry_wire_keys_with_meta_merged(bus, make_sub):
    sub = make_sub()
    sub.wait_connected(10)
    task_id = bus.send('complete', 'app.tasks.add', args=[1, 2], kwargs={'x': 1}, retries=2)
    (event,) = collect(sub, 1)
    assert (event.signal, event.task_id, event.task_name) == ('complete', task_id, 'app.tasks.add')
    assert (event.id, event.name) == (task_id, 'app.tasks.add')
    assert event.args == [1, 2] and event.kwargs == {'x': 1} and event.retries == 2
    assert event.seq == 1 and event.sseq == 1 and event.epoch == bus.broker.epoch
    assert event.host == 'testhost' and event.final is True and event.gap is False
    assert event.exc is None and event.error is None and not event.replayed
    assert event.to_dict()['seq'] == 1
    with pytest.raises(AttributeError):
        event.no_such_key


def test_wait_connected_times_out_without_a_broker():
    sub = Subscriber('tcp://127.0.0.1:9', control='tcp://127.0.0.1:10')
    try:
        with pytest.raises(TimeoutError, match='no heartbeat'):
            sub.wait_connected(0.3)
    finally:
        sub.close()


def test_unknown_signal_is_refused():
    with pytest.raises(BusConfigError, match='unknown signal'):
        Subscriber('tcp://127.0.0.1:7558', signals=['finished'])


def test_control_defaults_to_publish_port_plus_one():
    sub = Subscriber('tcp://127.0.0.1:17558')
    try:
        assert sub.control_endpoint == 'tcp://127.0.0.1:17559'
    finally:
        sub.close()


def test_decorator_filters_by_signal_and_task_glob(bus, make_sub):
    sub = make_sub(signals=['complete', 'error'], tasks=['app.tasks.*'])
    seen = []

    @sub.signal('error')
    def on_error(signal, task, exc):
        seen.append(('error-handler', task.name, exc.type, exc.message, exc.traceback))

    @sub.signal()
    def on_any(signal, task, *extra):
        seen.append(('any', signal, task.name, len(extra)))

    sub.wait_connected(10)
    bus.send('enqueued', 'app.tasks.add')
    bus.send('complete', 'other.jobs.add')
    bus.send('error', 'app.tasks.boom',
             exc={'type': 'ValueError', 'message': 'bad', 'traceback': 'Traceback…'})
    bus.send('complete', 'app.tasks.add')
    thread = run_in_thread(sub)
    wait_until(lambda: len(seen) >= 3, message='three handler calls')
    sub.close()
    thread.join(10)
    assert seen == [('error-handler', 'app.tasks.boom', 'ValueError', 'bad', 'Traceback…'),
                    ('any', 'error', 'app.tasks.boom', 1),
                    ('any', 'complete', 'app.tasks.add', 0)]
    assert not thread.is_alive()


def test_failing_handler_is_logged_with_its_name_and_changes_nothing(bus, make_sub, caplog):
    sub = make_sub()
    seen = []

    @sub.signal('complete')
    def broken_handler(signal, task):
        raise RuntimeError('oops')

    @sub.signal('complete')
    def working_handler(signal, task):
        seen.append(task.id)

    sub.wait_connected(10)
    ids = [bus.send('complete') for _ in range(3)]
    with caplog.at_level(logging.ERROR, logger='signal_bus'):
        thread = run_in_thread(sub)
        wait_until(lambda: len(seen) == 3, message='three completions')
        sub.close()
        thread.join(10)
    assert seen == ids
    failures = [r for r in caplog.records if 'broken_handler' in r.getMessage()]
    assert len(failures) == 3 and failures[0].exc_info is not None
    assert sub.stats()['delivered'] == 3


def test_close_from_a_handler_ends_run(bus, make_sub):
    sub = make_sub()

    @sub.signal('complete')
    def stop(signal, task):
        sub.close()

    sub.wait_connected(10)
    bus.send('complete')
    sub.run()
    assert sub.closed


def test_gap_is_replayed_in_order_before_later_live_events(bus, make_sub):
    link = LossyLink(bus.publish, drop=lambda seq: seq in (3, 4, 5, 8))
    try:
        sub = make_sub(link.endpoint)
        sub.wait_connected(10)
        link.hold()
        ids = [bus.send('complete' if n % 2 else 'enqueued') for n in range(10)]
        bus.wait_published(10)
        link.release()
        events = collect(sub, 10)
    finally:
        link.close()
    assert [event.seq for event in events] == list(range(1, 11))
    assert [event.id for event in events] == ids
    assert [event.seq for event in events if event.replayed] == [3, 4, 5, 8]
    assert link.dropped == [3, 4, 5, 8]
    stats = sub.stats()
    assert (stats['replayed'], stats['lost'], stats['delivered']) == (4, 0, 10)


@pytest.mark.parametrize('signals', [None, ['executing']])
def test_heartbeat_reveals_missed_tail_events(bus, make_sub, signals):
    link = LossyLink(bus.publish, drop=lambda seq: seq >= 2)
    try:
        sub = make_sub(link.endpoint, signals=signals)
        sub.wait_connected(10)
        ids = [bus.send('executing') for _ in range(3)]
        events = collect(sub, 3)
    finally:
        link.close()
    assert [event.seq for event in events] == [1, 2, 3]
    assert [event.id for event in events] == ids
    assert sub.stats()['replayed'] == 2


def test_task_globs_apply_to_replayed_events_too(bus, make_sub):
    link = LossyLink(bus.publish, drop=lambda seq: seq in (2, 3))
    try:
        sub = make_sub(link.endpoint, tasks=['billing.*'])
        sub.wait_connected(10)
        link.hold()
        names = ['billing.charge', 'billing.refund', 'mail.send', 'billing.charge']
        ids = [bus.send('complete', name) for name in names]
        bus.wait_published(4)
        link.release()
        events = collect(sub, 3)
        assert sub.receive(0.2) is None
    finally:
        link.close()
    assert [event.id for event in events] == [ids[0], ids[1], ids[3]]
    assert [event.replayed for event in events] == [False, True, False]
    assert sub.stats()['replayed'] == 2  # mail.send was fetched, then filtered out


def test_filtered_subscriber_repairs_each_signal_by_sseq(bus, make_sub):
    signals = ['enqueued', 'complete', 'error'] * 4
    link = LossyLink(bus.publish, drop=lambda seq: seq in (2, 5, 6, 11))
    try:
        sub = make_sub(link.endpoint, signals=['complete', 'error'])
        sub.wait_connected(10)
        link.hold()
        ids = [bus.send(signal) for signal in signals]
        bus.wait_published(len(signals))
        link.release()
        events = collect(sub, 8)
    finally:
        link.close()
    # Each signal is its own gap-free stream: a hole in one is only seen at its next event.
    for signal in ('complete', 'error'):
        wanted = [i for s, i in zip(signals, ids) if s == signal]
        assert [event.id for event in events if event.signal == signal] == wanted
        assert [event.sseq for event in events if event.signal == signal] == [1, 2, 3, 4]
    assert sub.stats()['lost'] == 0 and sub.stats()['replayed'] == 4


def test_loss_is_reported_when_the_ring_no_longer_has_the_events(make_sub):
    small = Bus(ring=5).start()
    link = LossyLink(small.publish, drop=lambda seq: 12 <= seq <= 18)
    losses = []
    try:
        sub = make_sub(link.endpoint, control=small.control)
        sub.on_loss(lambda count, first, last: losses.append((count, first, last)))
        sub.wait_connected(10)
        link.hold()
        for _ in range(20):
            small.send('complete')
        small.wait_published(20)
        link.release()
        events = collect(sub, 16)
    finally:
        link.close()
        small.close()
    assert [event.seq for event in events] == list(range(1, 12)) + list(range(16, 21))
    assert losses == [(4, 12, 15)]
    assert sub.stats()['lost'] == 4 and sub.stats()['replayed'] == 3


def test_broker_restart_is_reported_and_numbering_restarts(bus, make_sub):
    sub = make_sub()
    losses = []

    @sub.on_loss
    def on_loss(count, first_seq, last_seq):
        losses.append((count, first_seq, last_seq))

    sub.wait_connected(10)
    first_epoch = bus.broker.epoch
    bus.send('complete')
    collect(sub, 1)
    bus.restart()
    ids = [bus.send('complete') for _ in range(3)]
    events = collect(sub, 3)
    assert [event.seq for event in events] == [1, 2, 3]
    assert [event.id for event in events] == ids
    assert {event.epoch for event in events} == {bus.broker.epoch} != {first_epoch}
    assert losses == [(None, None, None)]
    assert sub.stats()['epoch_changes'] == 1


def test_replay_recent_starts_with_the_last_events_of_the_ring(bus, make_sub):
    ids = [bus.send('complete') for _ in range(5)]
    bus.wait_published(5)
    sub = make_sub()
    assert sub.replay_recent(3) == 3
    live = bus.send('error')
    events = collect(sub, 4)
    assert [event.id for event in events] == ids[2:] + [live]
    assert [event.replayed for event in events] == [True, True, True, False]


def test_events_from_the_real_publisher_reach_handlers_with_their_error(bus, make_sub):
    from types import SimpleNamespace

    from signal_bus.publisher import Publisher
    sub = make_sub()
    seen = []

    @sub.signal('error')
    def on_error(signal, task, exc):
        seen.append((task.id, task.name, task.args, task.retries, task.pid, exc))

    sub.wait_connected(10)
    task = SimpleNamespace(id='t-1', registry_name='app.tasks.boom', args=(1, 'x'),
                           kwargs={}, retries=0, tseq=1, final=True)
    try:
        raise ValueError('uh-oh')
    except ValueError as exc:
        error = exc
    with Publisher(bus.ingest) as publisher:
        publisher.publish('error', task, error, source='worker')
        thread = run_in_thread(sub)
        wait_until(lambda: seen, message='the error event')
    sub.close()
    thread.join(10)
    ((task_id, name, args, retries, pid, exc),) = seen
    assert (task_id, name, args, retries) == ('t-1', 'app.tasks.boom', [1, 'x'], 0)
    assert pid > 0 and exc.type == 'ValueError' and exc.message == 'uh-oh'
    assert 'raise ValueError' in exc.traceback


def test_publisher_side_loss_reaches_on_loss_without_seq_range(bus, make_sub):
    sub = make_sub()
    losses = []
    sub.on_loss()(lambda count, first, last: losses.append((count, first, last)))
    sub.wait_connected(10)
    bus.send('complete')
    bus.pseq += 3  # three events "dropped" before they reached the broker
    bus.send('complete')
    events = collect(sub, 2)
    wait_until(lambda: sub.receive(0.05) is None and losses, message='the _loss report')
    assert [event.seq for event in events] == [1, 2]
    assert losses == [(3, None, None)]
    assert sub.stats()['publisher_lost'] == 3 and sub.stats()['lost'] == 0


def test_curve_subscriber_with_an_authorized_key_receives_events(tmp_path):
    from signal_bus.keys import generate_keypair
    keys = tmp_path / 'keys'
    broker_public, broker_secret = generate_keypair(str(keys / 'broker'), 'broker')
    client_public, client_secret = generate_keypair(str(keys / 'allowed'), 'client')
    secure = Bus()
    secure.config_options.update(curve_secret_key=broker_secret,
                                 curve_authorized_keys=str(keys / 'allowed'))
    secure.start()
    try:
        sub = Subscriber(secure.publish, curve_server_key=broker_public,
                         curve_keypair=client_secret)
        stranger = Subscriber(secure.publish, curve_server_key=broker_public)
        sub.wait_connected(10)
        with pytest.raises(TimeoutError):
            stranger.wait_connected(0.5)
        # The raw test publisher has no keys, so read the ring: replay is CURVE too.
        assert sub.broker_stats()['last_seq'] == 0
    finally:
        sub.close()
        stranger.close()
        secure.close()


def test_slow_handler_behind_a_tiny_queue_still_sees_every_event_in_order(make_sub):
    crowded = Bus()
    crowded.config_options.update(subscriber_hwm=10)
    crowded.start()
    go, seqs = threading.Event(), []
    try:
        sub = make_sub(crowded.publish, control=crowded.control, rcvhwm=1)

        @sub.signal()
        def slow(signal, task):
            go.wait(30)  # blocked while the broker's queue to us overflows
            seqs.append(task.seq)

        sub.wait_connected(10)
        thread = run_in_thread(sub)
        for _ in range(5000):
            crowded.send('complete')
        crowded.wait_published(5000)
        go.set()
        wait_until(lambda: len(seqs) >= 5000, timeout=30, message='5000 events')
        sub.close()
        thread.join(10)
    finally:
        crowded.close()
    assert seqs == list(range(1, 5001))
    stats = sub.stats()
    assert stats['replayed'] > 0 and stats['received'] + stats['replayed'] == 5000
    assert stats['lost'] == 0


def test_gap_is_reported_as_lost_when_the_control_socket_does_not_answer(bus, make_sub):
    from scripts.support.ports import free_port
    link = LossyLink(bus.publish, drop=lambda seq: seq == 2)
    losses = []
    try:
        sub = make_sub(link.endpoint, control='tcp://127.0.0.1:%d' % free_port(),
                       replay_timeout=0.3)
        sub.on_loss(lambda *loss: losses.append(loss))
        sub.wait_connected(10)
        for _ in range(3):
            bus.send('complete')
        events = collect(sub, 2)
    finally:
        link.close()
    assert [event.seq for event in events] == [1, 3]
    assert losses == [(1, 2, 2)] and sub.stats()['lost'] == 1


def test_close_from_another_thread_ends_iteration(bus, make_sub):
    sub = make_sub()
    sub.wait_connected(10)
    seen, finished = [], threading.Event()

    def follow():
        for event in sub:
            seen.append(event.seq)
        finished.set()

    threading.Thread(target=follow, daemon=True).start()
    bus.send('complete')
    wait_until(lambda: seen == [1], message='the first event')
    sub.close()
    assert finished.wait(10) and sub.closed
    assert sub.receive(0.01) is None
