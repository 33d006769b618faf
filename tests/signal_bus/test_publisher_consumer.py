"""Across processes: an application and a real ``queue-consumer`` publish one task's events
over different connections, and the broker delivers each task's lifecycle in order."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tests.signal_bus.bus_helpers import body_of


APP = '''
from queue_core import TaskQueue

q = TaskQueue('bus-e2e', storage={storage!r}, bus={ingest!r})


@q.task()
def add(a, b):
    return a + b


@q.task(retries=1)
def fail_once(key):
    if q.put_if_empty('failed:' + key, '1'):
        raise ValueError('first try fails')
    return key
'''


@pytest.fixture
def app(tmp_path, redis_url, broker):
    """The app module (importable here and by the consumer) and a running consumer."""
    (tmp_path / 'bus_e2e_app.py').write_text(textwrap.dedent(APP.format(
        storage=redis_url, ingest=broker.endpoints.ingest)))
    sys.path.insert(0, str(tmp_path))
    import bus_e2e_app
    consumer = subprocess.Popen(
        [sys.executable, '-c', 'from queue_core.cli import entry_point; entry_point()',
         'bus_e2e_app.q', '-w', '2', '-q'],   # the queue's own bus= publishes
        cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    yield bus_e2e_app, consumer
    consumer.send_signal(signal.SIGINT)
    try:
        consumer.wait(timeout=20)
    finally:
        if consumer.poll() is None:
            consumer.kill()
        bus_e2e_app.q.close()
        sys.path.remove(str(tmp_path))
        sys.modules.pop('bus_e2e_app', None)


def test_each_tasks_lifecycle_arrives_in_order_across_processes(app, broker, raw_sub):
    app, consumer = app
    adds = [app.add(index, 1) for index in range(20)]
    retried = app.fail_once('k')
    expected = {handle.id: ['enqueued', 'executing', 'complete'] for handle in adds}
    expected[retried.id] = ['enqueued', 'executing', 'error', 'retrying', 'enqueued',
                            'executing', 'complete']
    events = raw_sub.events(sum(map(len, expected.values())), timeout=30)

    assert [event.meta.seq for event in events] == list(range(1, len(events) + 1))
    assert not any(event.meta.gap for event in events)
    seen: dict[str, list] = {}
    for event in events:
        body = body_of(event)
        seen.setdefault(body['task_id'], []).append((body['signal'], body['tseq'],
                                                     body['source']))
    assert {task: [entry[0] for entry in entries] for task, entries in seen.items()} == expected
    for task_id, entries in seen.items():
        assert [entry[1] for entry in entries] == list(range(1, len(entries) + 1))
        assert entries[0][2] == 'app' and {entry[2] for entry in entries[1:]} == {'worker'}
    pids = {body_of(event)['pid'] for event in events}
    assert os.getpid() in pids and len(pids) >= 2
    consumer.send_signal(signal.SIGINT)
    assert consumer.wait(timeout=20) == 0
    stats = broker.stats()                 # every event exactly once, nothing lost
    assert (stats['received'], stats['published'], stats['held']) == (len(events),) * 2 + (0,)
    assert stats['publisher_drops'] == 0
