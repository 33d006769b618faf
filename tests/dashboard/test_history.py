"""The history store and its subscriber, against a real broker."""
from __future__ import annotations

import time
import uuid

import msgpack

from signal_bus.dashboard.recorder import HistoryRecorder, RecorderConfig
from signal_bus.history import History, Retention
from signal_bus.history_batch import received_event

from scripts.support.polling import wait_until


def _history(url, **retention) -> History:
    return History(url, Retention(**retention))


def _recorder(history, broker) -> HistoryRecorder:
    recorder = HistoryRecorder(history, RecorderConfig(
        connect=broker.endpoints.publish, control=broker.endpoints.control,
        batch_seconds=0.01, prune_seconds=3600))
    recorder.start()
    assert recorder.resumed.wait(10), 'the recorder never reached the broker'
    return recorder


def _life(push, task_id, outcome='complete', **body):
    push.send('enqueued', task_id, None, name='app.add', source='app', ts=time.time(), **body)
    push.send('executing', task_id, None, name='app.add', source='worker', ts=time.time())
    push.send(outcome, task_id, None, name='app.add', source='worker', final=True,
              ts=time.time(),
              exc={'type': 'ValueError', 'message': 'boom', 'traceback': 'tb'}
              if outcome != 'complete' else None)


def _stored(history, count):
    return wait_until(lambda: history.position()[1] >= count, timeout=15,
                      message='%d events stored' % count)


def test_every_event_is_stored_with_totals_and_a_timeline(history_url, start_broker, pusher):
    broker, history = start_broker(), _history(history_url)
    recorder = _recorder(history, broker)
    push = pusher(broker)
    ok, bad = str(uuid.uuid4()), str(uuid.uuid4())
    _life(push, ok, queue='main')
    _life(push, bad, 'error')
    _stored(history, 6)
    recorder.stop()
    assert history.overview()['totals'] == {'enqueued': 2, 'executing': 2, 'complete': 1,
                                            'error': 1}
    timeline = history.timeline(bad)
    assert [e['signal'] for e in timeline['events']] == ['enqueued', 'executing', 'error']
    assert timeline['events'][-1]['exc']['message'] == 'boom'
    assert [f['task_id'] for f in history.recent_failures()] == [bad]
    assert history.timeline('no-such-task') is None
    assert {row['queue'] for row in history.totals()} == {'main', ''}


def test_a_reopened_task_keeps_every_life_on_one_timeline(history_url, start_broker, pusher):
    broker, history = start_broker(), _history(history_url)
    recorder = _recorder(history, broker)
    push = pusher(broker)
    task_id = str(uuid.uuid4())
    _life(push, task_id, 'interrupted')
    _life(push, task_id)
    _stored(history, 6)
    recorder.stop()
    timeline = history.timeline(task_id)
    assert [e['life'] for e in timeline['events']] == [1, 1, 1, 2, 2, 2]
    assert timeline['lives'] == 2
    assert history.inflight_count() == 0


def test_a_restarted_recorder_takes_what_it_missed_from_the_ring(history_url, start_broker,
                                                                pusher):
    broker, history = start_broker(), _history(history_url)
    recorder = _recorder(history, broker)
    push = pusher(broker)
    _life(push, str(uuid.uuid4()))
    _stored(history, 3)
    recorder.stop()
    missed = [str(uuid.uuid4()) for _ in range(5)]
    for task_id in missed:
        _life(push, task_id)
    wait_until(lambda: broker.stats()['last_seq'] >= 18, message='the broker to take all')
    recorder = _recorder(history, broker)
    _stored(history, 18)
    recorder.stop()
    ids = [e['task_id'] for e in history.search_events(limit=100)]
    assert len(ids) == 18 and all(ids.count(t) == 3 for t in missed)
    assert history.lost_total() == 0 and history.incidents() == []


def test_what_the_ring_no_longer_holds_is_a_counted_loss(history_url, start_broker, pusher):
    broker, history = start_broker(ring=5), _history(history_url)
    recorder = _recorder(history, broker)
    push = pusher(broker)
    _life(push, str(uuid.uuid4()))
    _stored(history, 3)
    recorder.stop()
    for _ in range(4):
        _life(push, str(uuid.uuid4()))
    wait_until(lambda: broker.stats()['last_seq'] >= 15, message='the broker to take all')
    recorder = _recorder(history, broker)
    _stored(history, 15)
    recorder.stop()
    assert history.lost_total() == 7
    assert [(i['kind'], i['count'], i['first_seq'], i['last_seq'])
            for i in history.incidents()] == [('loss', 7, 4, 10)]
    assert sum(history.overview()['totals'].values()) == 3 + 5


def test_a_broker_restart_is_stored_and_numbering_continues(history_url, start_broker, pusher):
    first, history = start_broker(), _history(history_url)
    recorder = _recorder(history, first)
    _life(pusher(first), str(uuid.uuid4()))
    _stored(history, 3)
    recorder.stop()
    first.stop()
    second = start_broker()
    _life(pusher(second), str(uuid.uuid4()))
    wait_until(lambda: second.stats()['last_seq'] >= 3, message='the new broker to take all')
    recorder = _recorder(history, second)
    wait_until(lambda: history.position() == (second.epoch, 3), timeout=15,
               message='the new epoch stored')
    recorder.stop()
    assert [i['kind'] for i in history.incidents()] == ['restart']
    assert sum(history.overview()['totals'].values()) == 6


def _event(seq, task_id, signal, ts, final=False):
    return {'epoch': 1, 'seq': seq, 'ts': ts, 'signal': signal, 'task_id': task_id,
            'task_name': 'app.t', 'final': final}


def test_retention_prunes_old_events_but_keeps_failed_timelines_longer(history_url):
    history = _history(history_url, retention_hours=1, keep_failures_hours=10)
    now = time.time()
    old = now - 2 * 3600
    history.store([_event(1, 'ok', 'enqueued', old), _event(2, 'ok', 'complete', old, True),
                   _event(3, 'bad', 'enqueued', old), _event(4, 'bad', 'error', old, True),
                   _event(5, 'new', 'enqueued', now)])
    assert history.prune(now) == 2
    assert history.timeline('ok') is None
    assert [e['signal'] for e in history.timeline('bad')['events']] == ['enqueued', 'error']
    assert history.overview(now=now)['totals']['enqueued'] == 3
    assert history.prune(now + 11 * 3600) == 3


def test_max_events_prunes_oldest_first(history_url):
    history = _history(history_url, max_events=3)
    now = time.time()
    history.store([_event(seq, 't%d' % seq, 'enqueued', now) for seq in range(1, 7)])
    history.prune(now)
    assert [e['seq'] for e in history.recent_events(10)] == [6, 5, 4]
    assert sum(history.overview(now=now)['totals'].values()) == 6


def test_an_overlapping_replay_is_stored_once(history_url):
    history = _history(history_url)
    now = time.time()
    assert history.store([_event(1, 'a', 'enqueued', now), _event(2, 'a', 'executing', now)]) == 2
    assert history.store([_event(2, 'a', 'executing', now), _event(3, 'a', 'complete', now)]) == 1
    assert [e['seq'] for e in history.timeline('a')['events']] == [1, 2, 3]


def test_a_life_reopened_within_one_batch_ages_from_its_own_start(history_url):
    history = _history(history_url)
    now = time.time()
    history.store([_event(1, 'a', 'enqueued', now - 100)])
    history.store([_event(2, 'a', 'interrupted', now - 50, True),
                   _event(3, 'a', 'enqueued', now - 10)])
    [row] = history.inflight(now=now)
    assert row['task_id'] == 'a' and round(row['age']) == 10
    assert history.timeline('a')['lives'] == 2


def test_a_received_event_is_stored_with_its_body_bytes_as_they_arrived(history_url):
    body = {'signal': 'error', 'task_id': 'a', 'task_name': 'app.t', 'ts': time.time(),
            'final': True, 'args': [1, 'x'], 'host': 'h', 'pid': 7,
            'exc': {'type': 'ValueError', 'message': 'boom', 'traceback': 'tb'}}
    frame = msgpack.packb(body)
    event = received_event(frame, 4, 2, 9, gap=True)
    assert event == dict(body, seq=4, sseq=2, epoch=9, gap=True)
    assert event.body_frame is frame
    history = _history(history_url)
    assert history.store([event]) == 1
    [stored] = history.timeline('a')['events']
    assert (stored['seq'], stored['args'], stored['pid'], stored['error']) == (
        4, [1, 'x'], 7, 'ValueError: boom')
    assert history.recent_failures()[0]['task_id'] == 'a'


def test_the_meta_keys_of_a_received_event_are_the_meta_frames():
    frame = msgpack.packb({'task_id': 'a', 'seq': 99, 'gap': True})  # a stray body
    assert received_event(frame, 4, 2, 9) == {'task_id': 'a', 'seq': 4, 'sseq': 2, 'epoch': 9}
    assert received_event(frame, 4, 2, 9, gap=True)['gap'] is True


def test_a_received_body_that_is_no_map_is_stored_as_an_empty_one():
    for frame in (b'\xc1', msgpack.packb([1, 2])):
        event = received_event(frame, 1, 1, 1)
        assert event == {'seq': 1, 'sseq': 1, 'epoch': 1}
        assert msgpack.unpackb(event.body_frame) == {}


def test_two_dashboards_sharing_a_redis_history_store_each_event_once(
        redis_server, start_broker, pusher):
    redis_server.flushall()
    broker = start_broker()
    first, second = History(redis_server.url), History(redis_server.url)
    recorders = [_recorder(first, broker), _recorder(second, broker)]
    push = pusher(broker)
    tasks = [str(uuid.uuid4()) for _ in range(20)]
    for task_id in tasks:
        _life(push, task_id)
    _stored(first, 60)
    wait_until(lambda: sum(r.stored for r in recorders) >= 60, timeout=15,
               message='both recorders to have passed every event')
    for recorder in recorders:
        recorder.stop()
    assert sum(r.stored for r in recorders) == 60
    assert sorted(e['seq'] for e in second.search_events(limit=1000)) == list(range(1, 61))
    assert all(len(second.timeline(t)['events']) == 3 for t in tasks)
    assert second.overview()['totals'] == {'enqueued': 20, 'executing': 20, 'complete': 20}
