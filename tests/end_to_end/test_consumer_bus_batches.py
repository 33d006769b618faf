"""A consumer whose workers batch their bus events (the broker announces batches, the app
has no local handlers): nothing waits for a long task to end."""
from __future__ import annotations

import importlib
import os

import pytest

from scripts.support.polling import wait_until
from scripts.support.ports import three_free_ports
from tests.end_to_end.consumer_harness import Consumer


signal_bus = pytest.importorskip('signal_bus')


@pytest.mark.parametrize('kind', ['process', 'thread'])
def test_events_gathered_before_a_long_task_reach_subscribers_while_it_runs(
        tmp_path, redis_url, kind):
    os.environ['QUEUE_STORAGE'] = redis_url
    app = importlib.import_module('quiet_app')
    base = three_free_ports()
    consumer = Consumer(redis_url, str(tmp_path / 'signals.jsonl'),
                        str(tmp_path / 'consumer.log'), '-w', '1', '-k', kind, '--broker',
                        '--bus', 'tcp://127.0.0.1:%d' % base, app='quiet_app.q').start()
    sub = signal_bus.Subscriber('tcp://127.0.0.1:%d' % (base + 1))
    try:
        sub.wait_connected(30)
        quick = app.add(1, 2)
        long = app.sleep_for(60)
        seen: list[tuple[str, str]] = []

        def long_task_is_executing():
            event = sub.receive(timeout=0.2)
            if event is not None:
                seen.append((event.id, event.signal))
            return (long.id, 'executing') in seen

        # The quick task's COMPLETE and the long one's EXECUTING were gathered just before
        # the long task's code began; they must not wait the 60 s for it to end.
        wait_until(long_task_is_executing, 30, interval=0, message='executing of the long '
                   'task while it runs; saw %r' % (seen,))
        assert (quick.id, 'complete') in seen
        assert (long.id, 'complete') not in seen
    finally:
        sub.close()
        consumer.send_group(9)
        consumer.wait()
