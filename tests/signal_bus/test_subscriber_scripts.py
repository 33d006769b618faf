"""The example subscriber scripts, run as a user would run them, against a real broker."""
from __future__ import annotations

import os
import signal
import sys

from tests.signal_bus.bus_rig import Running, subscribed


SCRIPTS = os.path.join(os.path.dirname(__file__), '..', '..', 'scripts', 'subscribers')
BOOM = {'type': 'KeyError', 'message': "'user'", 'traceback': 'Traceback...'}


def start_script(name: str, bus, *args: str) -> Running:
    """``scripts/subscribers/<name>`` in a subprocess, pointed at ``bus``."""
    return Running([sys.executable, os.path.join(SCRIPTS, name), '--connect', bus.publish,
                    '--control', bus.control, *args])


def test_error_notifier_alerts_on_error_and_interrupted_only(bus):
    notifier = start_script('error_notifier.py', bus)
    subscribed(bus, 3)  # error, interrupted and the meta topics
    bus.send('complete', 'app.tasks.fine', task_id='t-ok')
    bus.send('error', 'app.tasks.login', task_id='t-retry', exc=BOOM, retries=2)
    bus.send('error', 'app.tasks.login', task_id='t-err', exc=BOOM, final=True)
    bus.send('interrupted', 'app.tasks.report', task_id='t-int', final=True)
    lines = notifier.read(3)
    status, _ = notifier.finish(signal.SIGINT)  # Ctrl-C ends Subscriber.run() cleanly
    assert lines[0].startswith("FAILED app.tasks.login t-retry on testhost pid ")
    assert lines[0].endswith("KeyError: 'user' (will retry, 2 left)")
    assert lines[1].startswith('FAILED app.tasks.login t-err') and 'retry' not in lines[1]
    assert lines[2].startswith('INTERRUPTED app.tasks.report t-int')
    assert status == 0


def test_metrics_counter_prints_counts_per_task_and_signal(bus):
    counter = start_script('metrics_counter.py', bus, '--interval', '0.2')
    subscribed(bus)
    for signal_name in ('enqueued', 'executing', 'complete'):
        bus.send(signal_name, 'app.tasks.add')
    bus.send('enqueued', 'app.tasks.mul')
    expected = {'task': ['complete', 'enqueued', 'executing'],
                'app.tasks.add': ['1', '1', '1'], 'app.tasks.mul': ['0', '1', '0'],
                'TOTAL': ['1', '2', '1']}
    # A table may come out while the events are still arriving: read until one is whole.
    tables = []
    while expected not in tables:
        header = counter.read_until(lambda line: line.startswith('task'))
        tables.append(read_table(counter, header))
        assert len(tables) < 50, tables
    status, _ = counter.finish(signal.SIGTERM)
    assert status == 0


def read_table(counter: Running, header: str) -> dict[str, list[str]]:
    """The table whose ``header`` line was just read, as rows, up to the loss line."""
    rows = {'task': header.split()[1:]}
    counter.read(1)  # the rule under the header
    for line in iter(lambda: counter.read(1)[0], ''):
        if line.startswith('lost on the bus'):
            break
        rows[line.split()[0]] = line.split()[1:]
    return rows
