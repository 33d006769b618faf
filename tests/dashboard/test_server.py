"""``signal-dashboard`` as a real process: the JSON API, /metrics, restarts and tokens."""
from __future__ import annotations

import io
import json
import time
import urllib.request
import uuid

import msgpack
import pytest
from prometheus_client.parser import text_string_to_metric_families

from queue_core import TaskQueue
from signal_bus import wire
from signal_bus.dashboard.cli import main
from signal_bus.dashboard.metrics import HistoryCollector, render
from signal_bus.dashboard.watch import BusWatch
from signal_bus.history import History

from scripts.support.polling import wait_until
from tests.dashboard.dash_helpers import DashboardProcess


@pytest.fixture
def dashboards(tmp_path):
    """``dashboards(broker, *args)``: dashboard processes stopped at the end."""
    made: list[DashboardProcess] = []

    def make(broker, *args, history=None) -> DashboardProcess:
        made.append(DashboardProcess(tmp_path, broker, *args, history=history))
        return made[-1]

    yield make
    for dash in made:
        dash.kill()


def _life(push, task_id, outcome='complete', name='app.add'):
    push.send('enqueued', task_id, 1, name=name, source='app', ts=time.time(), queue='main')
    push.send('executing', task_id, 2, name=name, source='worker', ts=time.time(),
              queue='main')
    push.send(outcome, task_id, 3, name=name, source='worker', ts=time.time(), final=True,
              queue='main', exc=None if outcome == 'complete' else
              {'type': 'ValueError', 'message': 'boom', 'traceback': 'Traceback...'})


def _samples(text):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_parse_as_prometheus_text_with_totals_and_histograms(
        tmp_path, start_broker, pusher, dashboards):
    broker = start_broker()
    dash = dashboards(broker).start()
    push = pusher(broker)
    _life(push, str(uuid.uuid4()))
    _life(push, str(uuid.uuid4()), 'error')
    dash.stored(6)
    status, text = dash.get('/metrics')
    samples = _samples(text)
    key = ('queue_core_events_total', (('queue', 'main'), ('signal', 'complete'),
                                       ('task', 'app.add')))
    assert status == 200 and samples[key] == 1
    assert samples[('queue_core_task_runtime_seconds_count', (('task', 'app.add'),))] == 2
    assert samples[('queue_core_task_wait_seconds_count', (('task', 'app.add'),))] == 2
    assert samples[('queue_core_tasks_in_flight', ())] == 0
    assert samples[('queue_core_events_lost_total', ())] == 0
    wait_until(lambda: _samples(dash.get('/metrics')[1])[('queue_core_broker_up', ())] == 1,
               message='the broker to be heard')


def test_consumer_meta_gives_the_consumer_list_and_workers_gauge(tmp_path):
    history = History('sqlite:///' + str(tmp_path / 'h.db'))
    watch = BusWatch('tcp://127.0.0.1:1')
    meta = {'v': 1, 'queue': 'main', 'host': 'h1', 'pid': 7, 'workers': 4,
            'started': time.time(), 'ts': time.time()}
    watch.take(wire.MetaMessage('_consumer', meta))
    watch.take(wire.MetaMessage('_consumer', dict(meta, pid=8, workers=2)))
    watch.take(wire.MetaMessage('_consumer', dict(meta, pid=9, stopping=True)))
    assert [c['pid'] for c in watch.consumers()] == [7, 8]
    samples = _samples(render(HistoryCollector(history, watch, lambda: None)).decode())
    assert samples[('queue_core_workers', (('host', 'h1'), ('queue', 'main')))] == 6
    watch.take(wire.MetaMessage('_consumer', dict(meta, stopping=True)))
    assert [c['pid'] for c in watch.consumers()] == [8]


def test_a_consumer_map_sent_through_the_broker_lists_the_consumer(
        tmp_path, start_broker, pusher, dashboards):
    broker = start_broker()
    dash = dashboards(broker).start()
    meta = {'v': 1, 'queue': 'main', 'host': 'h1', 'pid': 7, 'workers': 3,
            'started': time.time(), 'ts': time.time()}
    push = pusher(broker)

    def listed():
        push.raw([msgpack.packb(dict(meta, ts=time.time()))])
        return dash.json('/api/overview')['consumers']

    consumers = wait_until(listed, interval=0.2, message='the consumer in the overview')
    assert [(c['host'], c['pid'], c['workers']) for c in consumers] == [('h1', 7, 3)]
    samples = _samples(dash.get('/metrics')[1])
    assert samples[('queue_core_workers', (('host', 'h1'), ('queue', 'main')))] == 3
    push.raw([msgpack.packb(dict(meta, stopping=True))])
    wait_until(lambda: dash.json('/api/overview')['consumers'] == [],
               message='the stopping consumer to leave the list')


def test_api_answers_overview_search_timeline_and_unknown_task(tmp_path, start_broker,
                                                                pusher, dashboards):
    broker = start_broker()
    dash = dashboards(broker).start()
    push = pusher(broker)
    bad = str(uuid.uuid4())
    _life(push, str(uuid.uuid4()))
    _life(push, bad, 'error', name='app.fail')
    dash.stored(6)
    overview = dash.json('/api/overview')
    assert overview['totals']['error'] == 1 and overview['broker'] in ('connected', 'silent')
    assert [f['task_id'] for f in overview['failures']] == [bad]
    found = dash.json('/api/events?signal=error')
    assert [e['task_id'] for e in found] == [bad]
    assert [e['task_id'] for e in dash.json('/api/events?q=boom')] == [bad]
    assert len(dash.json('/api/events?task=app.f*')) == 3
    assert len(dash.json('/api/events?after=%d' % found[0]['id'])) == 0
    events = dash.json('/api/tasks/' + bad)['events']
    assert [e['signal'] for e in events] == ['enqueued', 'executing', 'error']
    assert {'id', 'seq', 'epoch', 'signal', 'ts', 'source', 'retries', 'exc'} <= set(events[0])
    assert dash.get('/api/tasks/nope')[0] == 404
    assert dash.get('/api/events?signal=nope')[0] == 400


def test_the_stream_sends_overview_and_new_events(tmp_path, start_broker, pusher, dashboards):
    broker = start_broker()
    dash = dashboards(broker).start()
    with urllib.request.urlopen(dash.url + '/api/stream', timeout=10) as stream:
        assert stream.headers['Content-Type'].startswith('text/event-stream')
        _life(pusher(broker), str(uuid.uuid4()))
        seen = b''
        while b'event: events' not in seen:
            seen += stream.readline()
    assert b'event: overview' in seen


def test_a_killed_dashboard_restarts_losing_nothing_the_ring_held(
        history_url, start_broker, pusher, dashboards):
    broker = start_broker()
    dash = dashboards(broker, history=history_url).start()
    push = pusher(broker)
    _life(push, str(uuid.uuid4()))
    dash.stored(3)
    dash.kill()
    missed = [str(uuid.uuid4()) for _ in range(10)]
    for task_id in missed:
        _life(push, task_id)
    wait_until(lambda: broker.stats()['last_seq'] >= 33, message='the broker to take all')
    dash.start()
    dash.stored(33)
    stored = dash.json('/api/events?limit=1000')
    assert sorted(e['seq'] for e in stored) == list(range(1, 34))
    assert dash.json('/api/overview')['lost'] == 0
    assert all(len(dash.json('/api/tasks/' + t)['events']) == 3 for t in missed)


def test_a_ring_too_small_is_shown_as_a_counted_loss(tmp_path, start_broker, pusher,
                                                     dashboards):
    broker = start_broker(ring=6)
    dash = dashboards(broker).start()
    push = pusher(broker)
    _life(push, str(uuid.uuid4()))
    dash.stored(3)
    dash.kill()
    for _ in range(5):
        _life(push, str(uuid.uuid4()))
    wait_until(lambda: broker.stats()['last_seq'] >= 18, message='the broker to take all')
    dash.start()
    dash.stored(18)
    assert dash.json('/api/overview')['lost'] == 9
    assert _samples(dash.get('/metrics')[1])[('queue_core_events_lost_total', ())] == 9
    assert [(i['kind'], i['count']) for i in dash.json('/api/overview')['incidents']] == \
        [('loss', 9)]


def test_a_non_loopback_http_without_a_token_is_refused():
    err = io.StringIO()
    assert main(['--http', '0.0.0.0:0'], stderr=err) == 2
    assert err.getvalue().count('\n') == 1 and 'token' in err.getvalue()


def test_a_token_guards_everything_but_healthz(tmp_path, start_broker, dashboards):
    (tmp_path / 'token').write_text('s3cret-token\n')
    dash = dashboards(start_broker(), '--token-file', str(tmp_path / 'token')).start()
    for path in ('/', '/api/overview', '/metrics', '/events', '/api/stream'):
        assert dash.get(path)[0] == 401, path
        assert dash.get(path, token='wrong-token')[0] == 401, path
    assert dash.get('/api/overview', token='s3cret-token')[0] == 200
    assert dash.get('/healthz')[0] == 200


def test_actions_need_storage_a_token_and_the_same_origin(tmp_path, start_broker, dashboards):
    storage = 'sqlite:///' + str(tmp_path / 'queue.db')
    (tmp_path / 'token').write_text('s3cret-token')
    broker = start_broker()
    plain = dashboards(broker, '--storage', storage, '--queue', 'main').start()
    assert plain.get('/api/actions/revoke', method='POST', body={'id': 'x'})[0] == 404
    dash = dashboards(broker, '--storage', storage, '--queue', 'main',
                      '--token-file', str(tmp_path / 'token')).start()
    queue = TaskQueue('main', storage=storage)
    assert dash.get('/api/actions/revoke', method='POST', body={'id': 'abc'})[0] == 401
    assert not queue.is_revoked('abc')
    status, _ = dash.get('/api/actions/revoke', token='s3cret-token', method='POST',
                         body={'id': 'abc'}, headers={'Origin': 'http://evil.example'})
    assert status == 403 and not queue.is_revoked('abc')
    status, text = dash.get('/api/actions/revoke', token='s3cret-token', method='POST',
                            body={'id': 'abc'})
    assert status == 200 and queue.is_revoked('abc')
    assert dash.get('/api/actions/restore', token='s3cret-token', method='POST',
                    body={'id': 'abc'})[0] == 200
    assert not queue.is_revoked('abc')
    assert dash.get('/api/actions/revoke', token='s3cret-token', method='POST',
                    body={'nothing': 1})[0] == 400
    assert json.loads(dash.get('/api/overview', token='s3cret-token')[1])['queue'] == \
        {'pending': 0, 'scheduled': 0, 'in_flight': 0}
