"""The demo: a consumer daemon hosting a broker, a subscriber printing every event, the
live dashboard (signal-dashboard, its URL printed), and an application enqueueing tasks
that walk through the seed's signal orderings.

Runs on the embedded SQLite default in a temporary directory; no server is needed. In a
terminal the demo keeps the consumer and the dashboard running after the tasks end, until
Ctrl-C, so the dashboard can be looked at; ``--keep`` asks for that anywhere, ``--no-keep``
never.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
INGEST = 'tcp://127.0.0.1:7557'
PUBLISH = 'tcp://127.0.0.1:7558'
DASHBOARD = '127.0.0.1:7560'


def start_consumer(workdir: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.environ.get('PYTHONPATH', ''))
    return subprocess.Popen(
        [sys.executable, '-m', 'queue_core.cli', 'demo_app.huey', '-w', '2', '--broker',
         '-s', '0.2', '-l', os.path.join(workdir, 'consumer.log')],
        cwd=workdir, env=env)


def start_dashboard(workdir: str) -> subprocess.Popen:
    """signal-dashboard on the demo's bus and queue, its history beside the queue's file."""
    return subprocess.Popen(
        [sys.executable, '-m', 'signal_bus.dashboard.cli', '--connect', PUBLISH,
         '--history', 'sqlite:///' + os.path.join(workdir, 'history.db'),
         '--storage', 'sqlite:///' + os.path.join(workdir, 'demo.db'), '--queue', 'demo',
         '--http', DASHBOARD],
        cwd=workdir, stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(workdir, 'dashboard.log'), 'w'))


def keep_running(keep: bool) -> None:
    """Wait for Ctrl-C when asked to keep the consumer and dashboard up."""
    if not keep:
        return
    print('the consumer and the dashboard keep running; press Ctrl-C to stop', flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


def print_events(sub, seen: dict, lock: threading.Lock) -> None:
    for event in sub:
        line = '%5d  %-9s %-13s %-16s %s  retries=%s%s' % (
            event.seq, event.source, event.signal, event.task_name, event.task_id[:8],
            event.retries, '  exc=%s' % event.exc['message'] if event.exc else '')
        print(line, flush=True)
        with lock:
            seen.setdefault(event.task_id, []).append(event)


def wait_final(ids, seen, lock, timeout=60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with lock:
            if all(any(e.final for e in seen.get(i, ())) for i in ids):
                return True
        time.sleep(0.05)
    return False


def main() -> int:
    workdir = tempfile.mkdtemp(prefix='queue-demo-')
    os.chdir(workdir)
    sys.path.insert(0, HERE)
    from signal_bus import Subscriber
    import demo_app

    print('demo: SQLite storage in %s; consumer (2 workers, embedded broker) logging to '
          'consumer.log there' % workdir)
    consumer = start_consumer(workdir)
    dashboard = start_dashboard(workdir)
    keep = '--keep' in sys.argv or (sys.stdout.isatty() and '--no-keep' not in sys.argv)
    sub = Subscriber(PUBLISH)
    seen: dict = {}
    lock = threading.Lock()
    try:
        sub.wait_connected(timeout=30)
        print('dashboard: http://%s/ (log: dashboard.log)' % DASHBOARD, flush=True)
        threading.Thread(target=print_events, args=(sub, seen, lock), daemon=True).start()
        huey = demo_app.huey
        huey.attach_bus(INGEST)
        print('\n  seq  source    signal        task             id        ')
        demo_app.add.revoke()              # the seed's revoked example
        revoked = demo_app.add(5, 5)
        wait_final([revoked.id], seen, lock)
        demo_app.add.restore()
        handles = [demo_app.add(1, 2), demo_app.add.schedule((2, 3), delay=2),
                   demo_app.flaky(), demo_app.broken(), revoked]
        from queue_core import group
        chord = huey.enqueue(group([demo_app.add.s(i, i) for i in range(3)]).then(
            demo_app.total))
        ids = [h.id for h in handles] + [r.id for r in chord.results] + [chord.id]
        ok = wait_final(ids, seen, lock)
        print('\nadd(1, 2) = %s; chord total = %s' % (handles[0].get(), chord.get(True, 30)))
        print('every task reached a final event: %s' % ok)
        print('dashboard: http://%s/' % DASHBOARD, flush=True)
        keep_running(keep)
        return 0 if ok else 1
    finally:
        dashboard.terminate()
        dashboard.wait(timeout=30)
        consumer.send_signal(signal.SIGINT)
        consumer.wait(timeout=30)
        sub.close()


if __name__ == '__main__':
    sys.exit(main())
