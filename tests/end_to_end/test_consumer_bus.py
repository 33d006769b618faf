"""``queue-consumer --broker --bus``: one command gives a working bus; worker, scheduler
and supervisor events reach a subscriber in each task's lifecycle order."""
from __future__ import annotations

import os
import signal

import pytest

from scripts.support.polling import wait_until
from scripts.support.ports import three_free_ports
from tests.end_to_end.consumer_harness import Run


signal_bus = pytest.importorskip('signal_bus')


def test_embedded_broker_carries_worker_scheduler_and_consumer_events(tmp_path, redis_url):
    base = three_free_ports()
    run = Run(tmp_path, redis_url)
    sub = None
    try:
        consumer = run.consumer('-w', '2', '--lease', '2', '-s', '0.2', '--broker',
                                '--bus', 'tcp://127.0.0.1:%d' % base)
        sub = signal_bus.Subscriber('tcp://127.0.0.1:%d' % (base + 1))
        wait_until(lambda: _connected(sub), 20, message='the embedded broker\n' + run.logs())
        done = run.app.add(1, 2)
        later = run.app.fail_once_delayed('bus')
        victim = run.app.slow_once('bus-victim')
        run.wait_running('bus-victim')
        victim_pid = [r['pid'] for r in run.rows() if r['signal'] == '_running'][0]
        os.kill(victim_pid, signal.SIGKILL)

        events: dict[str, list] = {}
        expected = {done.id: 2, later.id: 7, victim.id: 2}

        def collected():
            event = sub.receive(timeout=0.2)
            if event is not None:
                events.setdefault(event.id, []).append(event)
            return all(len(events.get(i, [])) >= n for i, n in expected.items())

        def wait_events(what):
            try:
                wait_until(collected, 30, interval=0, message=what)
            except AssertionError as exc:
                seen = {k: [e.signal for e in v] for k, v in events.items()}
                raise AssertionError('%s; got %s\n%s' % (exc, seen, run.logs())) from None

        wait_events('bus events')
        assert [e.signal for e in events[done.id]] == ['executing', 'complete']
        assert [e.signal for e in events[later.id]] == [
            'executing', 'error', 'retrying', 'scheduled', 'enqueued', 'executing', 'complete']
        assert [e.source for e in events[later.id]][4] == 'scheduler'
        assert [(e.signal, e.source, e.final) for e in events[victim.id]] == [
            ('executing', 'worker', False), ('interrupted', 'consumer', True)]
        assert [e.tseq for e in events[later.id]] == list(range(1, 8))
        assert events[victim.id][1].tseq is None

        # SIGTERM to the whole group: the broker outlives the workers and carries the
        # INTERRUPTED a worker emits for its running task.
        last = run.app.slow_once('bus-last')
        run.wait_running('bus-last')
        consumer.send_group(signal.SIGTERM)
        expected = {last.id: 2}
        wait_events("the last task's events")
        assert [(e.signal, e.source) for e in events[last.id]] == [
            ('executing', 'worker'), ('interrupted', 'worker')]
        assert consumer.wait(20) == 0
    finally:
        if sub is not None:
            sub.close()
        run.close()


def _connected(sub) -> bool:
    try:
        sub.wait_connected(0.5)
    except TimeoutError:
        return False
    return True
