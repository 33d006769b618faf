"""A publisher's drops must reach the subscribers even when no later event of that
publisher does: the last events of a publisher that stops (or exits) while its socket is
full leave holes that no higher ``pseq`` ever reveals.

Still an open failure (docs/chaos.md, finding 4) that costs about 11 seconds, so it is marked
``known_failure`` and skipped unless asked for:
``python3 -m pytest --known-failures tests/chaos/test_publisher_tail_drops.py``."""
from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from signal_bus import BusConfig, Publisher, Subscriber

from scripts.support.polling import wait_until
from scripts.support.ports import free_port
from tests.signal_bus.bus_helpers import FakeTask


@pytest.fixture
def broker_process(tmp_path):
    """``signal-broker`` as a process (so it can be stopped with SIGSTOP); its endpoints."""
    ingest, publish, control = ['tcp://127.0.0.1:%d' % free_port() for _ in range(3)]
    with open(tmp_path / 'broker.log', 'wb') as log:
        proc = subprocess.Popen([sys.executable, '-m', 'signal_bus.broker_cli', '--ingest',
                                 ingest, '--publish', publish, '--control', control, '-q'],
                                stdout=log, stderr=subprocess.STDOUT)
    yield proc, ingest, publish, control
    proc.send_signal(signal.SIGCONT)
    proc.kill()
    proc.wait(10)


@pytest.mark.known_failure
@pytest.mark.xfail(raises=AssertionError, strict=False,
                   reason='a publisher re-offers its newest dropped event at close, which '
                          'reveals the holes before it; here the broker takes nothing during '
                          'the whole 1-second close, so those drops stay unreported '
                          '(docs/chaos.md, finding 4)')
def test_the_last_drops_of_a_publisher_that_stops_are_reported(broker_process):
    proc, ingest, publish, control = broker_process
    reported = []
    with Subscriber(publish, control=control) as sub:
        sub.on_loss(lambda count, first, last: reported.append(count or 0))
        sub.wait_connected(timeout=30)
        publisher = Publisher(BusConfig(ingest=ingest, send_hwm=100))
        publisher.publish('complete', FakeTask(id='first', tseq=1))
        assert wait_until(lambda: sub.receive(timeout=0.1), timeout=30).id == 'first'
        proc.send_signal(signal.SIGSTOP)            # the broker takes nothing for a while
        try:
            task = FakeTask(id='burst', tseq=None)
            for _ in range(100_000):
                publisher.publish('complete', task)
            publisher.close()
        finally:
            proc.send_signal(signal.SIGCONT)
        dropped = publisher.stats()['dropped']
        assert dropped > 0                          # the socket filled, as intended

        def all_reported() -> bool:
            sub.receive(timeout=0.1)
            return sum(reported) >= dropped
        try:
            wait_until(all_reported, timeout=5, message='the drops to be reported')
        except AssertionError:
            pass
        assert sum(reported) == dropped
