"""A subscriber written with plain pyzmq and msgpack from the README's wire format alone
(no signal_bus import) sees every task's lifecycle through a real consumer with two
process workers: ``seq`` consecutive, each task's events in the seed's order, and the
application's ``ENQUEUED`` before the worker's ``EXECUTING`` although they travel over
different connections."""
from __future__ import annotations

import datetime

import msgpack
import pytest
import zmq

from scripts.support.polling import wait_until
from scripts.support.ports import three_free_ports
from tests.end_to_end.consumer_harness import Run


E, X, C, ERR = 'enqueued', 'executing', 'complete', 'error'


class PlainSubscriber:
    """The README's client: SUB to the publish endpoint; meta topics start with ``_``."""

    def __init__(self, endpoint: str) -> None:
        self.context = zmq.Context()
        self.sock = self.context.socket(zmq.SUB)
        self.sock.connect(endpoint)
        self.sock.subscribe(b'')
        self.heartbeats = 0
        self.events: list[dict] = []

    def pump(self, timeout_ms: int = 200) -> None:
        if not self.sock.poll(timeout_ms):
            return
        while self.sock.poll(0):
            frames = self.sock.recv_multipart()
            if frames[0].startswith(b'_'):
                self.heartbeats += frames[0] == b'_heartbeat'
                continue
            topic, meta, body = frames
            event = msgpack.unpackb(body, strict_map_key=False)
            event.update(msgpack.unpackb(meta))
            assert topic == ('%s\x00%s' % (event['signal'], event['task_name'])).encode()
            self.events.append(event)

    def of(self, task_id: str) -> list[str]:
        return [e['signal'] for e in self.events if e['task_id'] == task_id]

    def close(self) -> None:
        self.context.destroy(linger=0)


@pytest.fixture
def bus_run(tmp_path, redis_url):
    base = three_free_ports()
    run = Run(tmp_path, redis_url)
    client = PlainSubscriber('tcp://127.0.0.1:%d' % (base + 1))
    try:
        run.consumer('-w', '2', '-s', '0.1', '--broker', '--bus', 'tcp://127.0.0.1:%d' % base)
        wait_until(lambda: client.pump() or client.heartbeats, 30,
                   message='the embedded broker\n' + run.logs())
        publisher = run.q.attach_bus('tcp://127.0.0.1:%d' % base)
        try:
            yield run, client
        finally:
            # The app module is shared by every test in this process: detach the bus.
            run.q.remove_signal_sink(publisher)
            publisher.close()
    finally:
        client.close()
        run.close()


def test_plain_client_sees_every_seed_ordering_in_order(bus_run):
    run, client = bus_run
    app = run.app
    done = app.add(1, 2)
    retried = app.fail_once('raw-now')
    delayed = app.fail_once_delayed('raw-later')
    failed = app.always_fails()
    scheduled = app.add.schedule((2, 3), eta=datetime.datetime.utcnow())
    app.never_runs.revoke()
    revoked = app.never_runs()
    expected = {
        done.id: [E, X, C],
        retried.id: [E, X, ERR, 'retrying', E, X, C],
        delayed.id: [E, X, ERR, 'retrying', 'scheduled', E, X, C],
        failed.id: [E, X, ERR],
        revoked.id: [E, 'revoked'],
    }

    def all_final() -> bool:
        client.pump()
        return all(any(e['final'] for e in client.events if e['task_id'] == task_id)
                   for task_id in list(expected) + [scheduled.id])

    wait_until(all_final, 60, interval=0, message='final events\n' + run.logs())
    for task_id, signals in expected.items():
        assert client.of(task_id) == signals, task_id
    # A due-at-once schedule() call may run directly or pass through the schedule.
    assert client.of(scheduled.id) in ([E, X, C], [E, 'scheduled', E, X, C])
    assert [e['seq'] for e in client.events] == list(range(1, len(client.events) + 1))
    for task_id in expected:
        events = [e for e in client.events if e['task_id'] == task_id]
        assert events[0]['source'] == 'app' and events[0]['signal'] == E
        assert [e['tseq'] for e in events] == list(range(1, len(events) + 1))
    error = next(e for e in client.events if e['task_id'] == failed.id and e['signal'] == ERR)
    assert error['exc']['type'] and error['exc']['message'] and error['final'] is True
