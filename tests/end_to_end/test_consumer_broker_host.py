"""``queue-consumer --broker`` and the bus, as a user runs them (SPEC §7 "Failures are
visible", "Meta topics"; Huey's SIGHUP): a broker that cannot bind stops the consumer with
one line, a broker that dies comes back with a new epoch, SIGHUP loads new code and keeps
the broker, the consumer announces itself on ``_consumer``, and a refused CURVE key is
said in the log; a stored message with wrongly typed fields ends in a final error."""
from __future__ import annotations

import os
import signal
import socket
import sys

import msgpack
import pytest

from scripts.support.polling import wait_until
from scripts.support.ports import three_free_ports
from tests.end_to_end.consumer_harness import Consumer, load_app


zmq = pytest.importorskip('zmq')

RELOAD_APP = '''
import os
from queue_core import TaskQueue
q = TaskQueue("reload", storage=os.environ["QUEUE_STORAGE"])

@q.task()
def version():
    return VERSION

VERSION = %d
'''


@pytest.fixture
def consumers(tmp_path):
    """Start consumers on sqlite storage in ``tmp_path``; whatever is left is killed."""
    started: list[Consumer] = []

    def start(*args: str, app: str = 'signals_app.q') -> Consumer:
        log = str(tmp_path / ('consumer-%d.log' % len(started)))
        consumer = Consumer('sqlite:///%s' % (tmp_path / 'queue.db'),
                            str(tmp_path / 'signals.jsonl'), log, *args, app=app).start()
        started.append(consumer)
        return consumer

    yield start
    for consumer in started:
        consumer.close()


class MetaListener:
    """A raw SUB socket on the broker's publish endpoint, for its meta topics."""

    def __init__(self, publish: str) -> None:
        self.context = zmq.Context()
        self.sock = self.context.socket(zmq.SUB)
        for topic in (b'_heartbeat', b'_consumer'):
            self.sock.subscribe(topic)
        self.sock.connect(publish)

    def next(self, topic: bytes, timeout: float = 30.0) -> dict:
        """The next map published on ``topic``."""
        found: list[dict] = []

        def arrived() -> bool:
            if self.sock.poll(200):
                frames = self.sock.recv_multipart()
                if frames[0] == topic:
                    found.append(msgpack.unpackb(frames[1]))
            return bool(found)

        wait_until(arrived, timeout, interval=0, message='a %r message' % topic)
        return found[0]

    def close(self) -> None:
        """Close the socket and its context."""
        self.sock.close(linger=0)
        self.context.term()


@pytest.fixture
def bus():
    """Three free loopback ports (ingest, publish, control) and a listener on publish."""
    base = three_free_ports()
    listener = MetaListener('tcp://127.0.0.1:%d' % (base + 1))
    yield 'tcp://127.0.0.1:%d' % base, listener
    listener.close()


def broker_pid(consumer: Consumer) -> int:
    """The consumer's only child with thread workers: its broker."""
    pids = consumer.worker_pids()
    assert len(pids) == 1, pids
    return pids[0]


def test_a_broker_that_cannot_bind_stops_the_consumer_with_one_line(consumers):
    taken = socket.socket()
    taken.bind(('127.0.0.1', 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        consumer = consumers('-k', 'thread', '--broker', '--bus', 'tcp://127.0.0.1:%d' % port)
        assert consumer.wait(30) == 2
    finally:
        taken.close()
    lines = consumer.log().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith('queue-consumer: error: the embedded broker cannot bind')
    assert 'Address already in use' in lines[0]


def test_a_broker_that_dies_is_restarted_with_a_new_epoch(consumers, bus):
    ingest, listener = bus
    consumer = consumers('-k', 'thread', '--broker', '--bus', ingest)
    first = listener.next(b'_heartbeat')['epoch']
    old = broker_pid(consumer)
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: listener.next(b'_heartbeat')['epoch'] != first, 30,
               message='a heartbeat from a new broker\n' + consumer.log())
    assert broker_pid(consumer) != old
    assert 'embedded broker (pid %d) died (exit status -9); restarting it' % old \
        in consumer.log()


def test_sighup_reexecutes_the_consumer_and_keeps_its_broker(consumers, bus, tmp_path,
                                                             monkeypatch):
    ingest, listener = bus
    app_file = tmp_path / 'reload_app_for_hup.py'
    app_file.write_text(RELOAD_APP % 1)
    monkeypatch.setenv('PYTHONPATH', str(tmp_path))
    consumer = consumers('-k', 'thread', '--broker', '--bus', ingest,
                         app='reload_app_for_hup.q')
    epoch = listener.next(b'_heartbeat')['epoch']
    broker = broker_pid(consumer)
    monkeypatch.setenv('QUEUE_STORAGE', 'sqlite:///%s' % (tmp_path / 'queue.db'))
    sys.path.insert(0, str(tmp_path))
    try:
        import reload_app_for_hup as app
        assert app.version().get(blocking=True, timeout=30) == 1
        app_file.write_text(RELOAD_APP % 2)
        consumer.send(signal.SIGHUP)
        wait_until(lambda: consumer.log().count('consumer started') == 2, 30,
                   message='the consumer executed again\n' + consumer.log())
        assert app.version().get(blocking=True, timeout=30) == 2
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop('reload_app_for_hup', None)
    assert broker_pid(consumer) == broker  # the same broker process, never bound again
    assert consumer.log().count('embedded broker started') == 1
    assert listener.next(b'_heartbeat')['epoch'] == epoch
    consumer.send(signal.SIGINT)
    assert consumer.wait(30) == 0
    wait_until(lambda: not os.path.exists('/proc/%d' % broker) or
               open('/proc/%d/stat' % broker).read().split()[2] == 'Z', 10,
               message='the broker to stop with the consumer')


def test_the_consumer_announces_itself_on_the_consumer_meta_topic(consumers, bus):
    ingest, listener = bus
    consumer = consumers('-k', 'thread', '-w', '2', '--broker', '--bus', ingest)
    first = listener.next(b'_consumer')
    assert first['v'] == 1 and first['queue'] == 'e2e'
    assert (first['pid'], first['workers'], first['host']) == (
        consumer.pid, 2, socket.gethostname())
    assert first['started'] <= first['ts'] and 'stopping' not in first
    second = listener.next(b'_consumer', timeout=15)  # every 5 s
    assert second['ts'] > first['ts'] and second['started'] == first['started']
    consumer.send(signal.SIGINT)
    last = listener.next(b'_consumer', timeout=15)
    while not last.get('stopping'):
        last = listener.next(b'_consumer', timeout=15)
    assert last['pid'] == consumer.pid
    assert consumer.wait(30) == 0


def test_a_refused_curve_key_is_logged_once(consumers, tmp_path):
    from signal_bus import Broker, BrokerConfig
    from signal_bus.keys import generate_keypair

    keys = tmp_path / 'keys'
    _, broker_secret = generate_keypair(str(keys), 'broker')
    _, stranger_secret = generate_keypair(str(keys / 'stranger'), 'stranger')
    (keys / 'authorized').mkdir()  # the consumer's key is not in it
    broker = Broker(BrokerConfig(ingest='tcp://127.0.0.1:*', publish='tcp://127.0.0.1:*',
                                 control='tcp://127.0.0.1:*', curve_secret_key=broker_secret,
                                 curve_authorized_keys=str(keys / 'authorized'))).start()
    ingest = broker.endpoints.ingest
    try:
        consumer = consumers('-k', 'thread', '--bus', ingest,
                             '--curve-server-key', str(keys / 'broker.key'),
                             '--curve-keypair', stranger_secret)
        wait_until(lambda: 'refused' in consumer.log(), 30,
                   message='a log line about the refused key\n' + consumer.log())
        consumer.send(signal.SIGINT)
        assert consumer.wait(30) == 0
    finally:
        broker.stop()
    # ZeroMQ retried the handshake all along (every 100 ms); the line was written once.
    line = [row for row in consumer.log().splitlines() if 'refused' in row]
    assert len(line) == 1
    assert 'handshake with %s refused' % ingest in line[0]
    assert "the broker refused this client's key" in line[0]


def test_a_malformed_message_ends_in_a_final_malformed_task_error_on_the_bus(
        consumers, tmp_path):
    from signal_bus import Subscriber
    base = three_free_ports()
    consumer = consumers('-k', 'thread', '--broker', '--bus', 'tcp://127.0.0.1:%d' % base)
    app = load_app('sqlite:///%s' % (tmp_path / 'queue.db'))
    with Subscriber('tcp://127.0.0.1:%d' % (base + 1)) as sub:
        sub.wait_connected(timeout=30)
        bad = {'id': 7, 'name': app.add.registry_name, 'args': [1, 2], 'eta': 'tomorrow'}
        app.q.storage.enqueue(app.q.serializer.serialize(bad), 0)
        after = app.add(2, 3)
        events = []

        def ended():
            event = sub.receive(timeout=0.2)
            if event is not None:
                events.append(event)
            return any(e.id == after.id and e.signal == 'complete' for e in events) and \
                any(e.id == '7' for e in events)

        wait_until(ended, 30, interval=0, message='the events\n' + consumer.log())
    malformed = [e for e in events if e.id == '7']
    assert [(e.signal, e.final, e.source) for e in malformed] == [('error', True, 'consumer')]
    assert malformed[0].exc['type'] == 'queue_core.MalformedTask'
    assert 'id must be str' in malformed[0].exc['message']
    assert "malformed task message 7 (signals_app.add) moved aside" in consumer.log()
    assert after.get(blocking=True, timeout=30) == 5
    consumer.send(signal.SIGINT)
    assert consumer.wait(30) == 0
