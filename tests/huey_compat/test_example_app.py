"""Acceptance: a Huey 3.5.4 example application, only its imports renamed, runs end to end
through a real ``queue-consumer`` (process workers, real Redis, an embedded broker), and
its signals are seen on the bus in each task's lifecycle order."""
from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys

import pytest

from scripts.support.polling import wait_until
from scripts.support.ports import three_free_ports


signal_bus = pytest.importorskip('signal_bus')

APPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'apps')
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def app(redis_server, redis_url, monkeypatch):
    """The example application, imported as the consumer imports it."""
    monkeypatch.setenv('REDIS_PORT', str(redis_server.port))
    monkeypatch.syspath_prepend(APPS)
    sys.modules.pop('huey_example', None)
    module = importlib.import_module('huey_example')
    yield module
    module.huey.close()
    sys.modules.pop('huey_example', None)


@pytest.fixture
def consumer(app, redis_server, tmp_path):
    """``queue-consumer huey_example.huey -w 2 --broker --bus …`` in its own session."""
    base = three_free_ports()
    log = open(tmp_path / 'consumer.log', 'wb')
    env = dict(os.environ, REDIS_PORT=str(redis_server.port), PYTHONUNBUFFERED='1',
               PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get('PYTHONPATH')) if p))
    proc = subprocess.Popen([sys.executable, '-m', 'queue_core.cli', 'huey_example.huey',
                             '-w', '2', '-s', '0.2', '--broker',
                             '--bus', 'tcp://127.0.0.1:%d' % base],
                            cwd=APPS, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    proc.base = base
    proc.log_path = tmp_path / 'consumer.log'
    yield proc
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)
    log.close()


class Events:
    """Bus events grouped by task id, filled by polling a subscriber."""

    def __init__(self, sub, log_path) -> None:
        self.sub, self.log_path, self.by_id = sub, log_path, {}

    def _pump(self) -> None:
        event = self.sub.receive(timeout=0.2)
        if event is not None:
            self.by_id.setdefault(event.id, []).append(event)

    def signals(self, task_id: str) -> list[str]:
        """The signals seen so far for one task."""
        return [e.signal for e in self.by_id.get(task_id, [])]

    def wait_final(self, *task_ids: str, timeout: float = 40) -> None:
        """Wait until each task's last event is final."""
        def done():
            self._pump()
            return all(self.by_id.get(i) and self.by_id[i][-1].final for i in task_ids)
        try:
            wait_until(done, timeout, interval=0, message='final events')
        except AssertionError:
            seen = {k: self.signals(k) for k in self.by_id}
            raise AssertionError('no final events for all of %s; seen %s\n%s' % (
                task_ids, seen, self.log_path.read_text(errors='replace'))) from None

    def wait_signal(self, task_id: str, name: str, timeout: float = 40) -> None:
        """Wait until ``name`` was seen for ``task_id``."""
        wait_until(lambda: self._pump() or name in self.signals(task_id), timeout,
                   interval=0, message='%s for %s' % (name, task_id))

    def by_name(self, name: str) -> list:
        """The events of the first task called ``name`` (its registry name)."""
        for events in self.by_id.values():
            if events[0].name == name:
                return events
        return []


def test_huey_example_app_runs_through_queue_consumer_with_signals_on_the_bus(app, consumer):
    from queue_core.huey import group
    huey = app.huey
    huey.attach_bus('tcp://127.0.0.1:%d' % consumer.base)  # the app's own ENQUEUED too
    sub = signal_bus.Subscriber('tcp://127.0.0.1:%d' % (consumer.base + 1))
    try:
        wait_until(lambda: _connected(sub), 30, message='the embedded broker')
        sub.replay_recent()  # what the consumer did before we listened (the periodic task)
        events = Events(sub, consumer.log_path)
        E, X, C = 'enqueued', 'executing', 'complete'

        single = app.add(1, 2)
        pipeline = huey.enqueue(app.add.s(1, 2).then(app.add, 3).then(app.add, 4))
        fan_in = huey.enqueue(group([app.add.s(i, i) for i in range(3)]).then(app.total))
        flaky = app.flaky('bus')
        me = app.whoami()
        assert single.get(blocking=True, timeout=30) == 3
        assert pipeline.get(blocking=True, timeout=30) == [3, 6, 10]
        assert fan_in.get(blocking=True, timeout=30) == 6
        assert me.get(blocking=True, timeout=30) == me.id

        # The lock, held here, makes the worker's attempt LOCKED; released, the retry runs.
        with huey.lock_task('reports'):
            report = app.generate_report('q4')
            events.wait_signal(report.id, 'locked')
            assert app.report_now('blocked') is None
        assert report.get(blocking=True, timeout=30) == 'report q4'

        ids = [single.id, *(r.id for r in pipeline), fan_in.id, flaky.id, me.id, report.id]
        events.wait_final(*ids)
        assert events.signals(single.id) == [E, X, C]
        assert [events.signals(r.id) for r in pipeline] == [[E, X, C]] * 3
        assert events.signals(fan_in.id) == [E, X, C]
        assert events.signals(flaky.id) == [E, X, 'error', 'retrying', 'scheduled', E, X, C]
        assert events.signals(report.id) == [E, X, 'locked', 'retrying', 'scheduled',
                                             E, X, C]
        assert flaky.get() == 'recovered bus'  # the retry's value replaced the first error
        beat = wait_until(lambda: events._pump() or events.by_name('huey_example.heartbeat'),
                          90, interval=0, message='the periodic task on the bus')
        assert [e.signal for e in beat][:2] == [E, X]
        assert [e.source for e in beat][:2] == ['scheduler', 'worker']
        wait_until(lambda: huey.get('heartbeat', peek=True) == 'beat', 30,
                   message="the periodic task's effect")
    finally:
        sub.close()
    consumer.send_signal(signal.SIGINT)
    assert consumer.wait(30) == 0


def _connected(sub) -> bool:
    try:
        sub.wait_connected(0.5)
    except TimeoutError:
        return False
    return True


def test_example_app_is_a_huey_app_giving_the_same_results_under_huey_3_5_4(tmp_path):
    """With its imports named back to ``huey``, the same file runs under Huey 3.5.4 itself
    (when installed, as the benchmarks' setup does) and gives the same results as ours."""
    real = pytest.importorskip('huey')
    if getattr(real, '__version__', None) != '3.5.4':
        pytest.skip('Huey 3.5.4 is not the installed huey')
    script = '''
import sys
sys.path.insert(0, sys.argv[1])
import huey_example as app
from %(pkg)s import group
app.huey.immediate = True
print([app.add(1, 2).get(), app.huey.enqueue(app.add.s(1, 2).then(app.add, 3)).get(),
       app.huey.enqueue(group([app.add.s(i, i) for i in range(3)]).then(app.total)).get(),
       app.generate_report('x').get(), app.report_now('y')])
'''
    with open(os.path.join(APPS, 'huey_example.py')) as handle:
        source = handle.read()
    (tmp_path / 'huey_example.py').write_text(source.replace('queue_core.huey', 'huey'))
    outputs = []
    for pkg, folder in (('huey', tmp_path), ('queue_core.huey', APPS)):
        env = dict(os.environ, PYTHONPATH=ROOT, REDIS_PORT='1')
        outputs.append(subprocess.run([sys.executable, '-c', script % {'pkg': pkg},
                                       str(folder)], env=env, capture_output=True, text=True,
                                      timeout=60, check=True).stdout)
    assert outputs[0] == outputs[1] == "[3, [3, 6], 6, 'report x', 'report y']\n"


def test_create_consumer_run_from_a_script_executes_tasks_and_stops_on_sigint(app, redis_server,
                                                                            tmp_path):
    """Huey's programmatic form, ``huey.create_consumer(**options).run()``, in a real process."""
    script = ('import sys; sys.path.insert(0, %r)\n'
              'import huey_example\n'
              'sys.exit(huey_example.huey.create_consumer(workers=2, worker_type="thread",'
              ' periodic=False).run())\n' % APPS)
    env = dict(os.environ, REDIS_PORT=str(redis_server.port),
               PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get('PYTHONPATH')) if p))
    with open(tmp_path / 'run.log', 'wb') as log:
        proc = subprocess.Popen([sys.executable, '-c', script], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        handle = app.add(20, 22)
        assert handle.get(blocking=True, timeout=30) == 42
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
