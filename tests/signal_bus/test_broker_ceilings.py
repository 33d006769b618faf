"""The broker's resource ceilings (SPEC §7): no client within the wire format makes it grow
without bound. Memory is measured from /proc on a real ``signal-broker`` process."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from signal_bus import wire
from signal_bus.keys import apply_client, client_keys, generate_keypair

from scripts.support.polling import wait_until
from scripts.support.ports import three_free_ports
from tests.signal_bus.bus_helpers import ControlClient, RawPusher, RawSubscriber


MB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` in bytes."""
    with open('/proc/%d/status' % pid) as handle:
        for line in handle:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) * 1024
    raise AssertionError('no VmRSS for pid %d' % pid)


class BrokerProcess:
    """``python -m signal_bus.broker_cli`` on three free loopback ports."""

    def __init__(self, *options: str) -> None:
        base = three_free_ports()
        self.ingest, self.publish, self.control = (
            'tcp://127.0.0.1:%d' % port for port in (base, base + 1, base + 2))
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'signal_bus.broker_cli', '--ingest', self.ingest,
             '--publish', self.publish, '--control', self.control, '-q', *options],
            stderr=subprocess.PIPE)
        self.context = zmq.Context()
        self.control_client = ControlClient(self.context, self.control)

    def stats(self) -> dict:
        """The broker's stats (the first answer also proves it is up)."""
        assert self.proc.poll() is None, self.proc.stderr.read().decode()
        return self.control_client.stats()

    def rss(self) -> int:
        """The broker's resident memory now."""
        return rss_bytes(self.proc.pid)

    def close(self) -> None:
        self.control_client.close()
        self.context.destroy(linger=0)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stderr.close()


@pytest.fixture
def broker_process():
    """``broker_process(*flags)`` starts a broker process; all are stopped at the end."""
    started: list[BrokerProcess] = []

    def start(*options: str) -> BrokerProcess:
        started.append(BrokerProcess(*options))
        started[-1].stats()
        return started[-1]

    yield start
    for proc in started:
        proc.close()


def push_events(context: zmq.Context, ingest: str, count: int, pad_bytes: int) -> None:
    """``count`` well-formed events, each with a body padded by ``pad_bytes``."""
    pusher = RawPusher(context, ingest)
    pusher.socket.linger = 10_000
    pad = os.urandom(pad_bytes)
    for index in range(count):
        pusher.send('complete', 'task-%d' % index, 1, pad=pad)
    pusher.socket.close(linger=10_000)


def published(proc: BrokerProcess, count: int) -> dict:
    """Stats once the broker has published ``count`` events."""
    return wait_until(lambda: (lambda s: s if s['published'] >= count else None)(proc.stats()),
                      timeout=60, interval=0.05, message='%d events published' % count)


# -- the ring ---------------------------------------------------------------------------

def test_the_ring_is_bounded_by_bytes_and_replay_reports_the_evicted_missing(
        broker_factory, zmq_context):
    broker = broker_factory(ring=1000, ring_bytes=64 * 1024)
    control = ControlClient(zmq_context, broker.endpoints.control)
    push_events(zmq_context, broker.endpoints.ingest, 50, 4000)
    wait_until(lambda: control.stats()['published'] == 50, message='50 events published')
    stats = control.stats()
    assert 60 * 1024 < stats['ring_bytes'] <= 64 * 1024
    assert stats['ring_size'] < 50 and stats['ring_first_seq'] == 51 - stats['ring_size']
    events, end = control.replay(1)
    assert end['missing'] == stats['ring_first_seq'] - 1
    assert [event.meta.seq for event in events] == list(range(stats['ring_first_seq'], 51))


def test_events_near_the_size_limit_keep_the_broker_under_its_ring_bytes(broker_process,
                                                                        zmq_context):
    proc = broker_process('--ring-bytes', str(16 * MB))
    before = proc.rss()
    for sent in range(50, 601, 50):  # 150 MB of events, paced so no ingest backlog forms
        push_events(zmq_context, proc.ingest, 50, 250 * 1024)
        stats = published(proc, sent)
    assert stats['ring_bytes'] <= 16 * MB and stats['ring_size'] < 70
    assert proc.rss() - before < 60 * MB


def test_a_replay_page_ends_before_4_MiB_and_says_where_to_go_on(broker_factory,
                                                                 zmq_context):
    broker = broker_factory()
    control = ControlClient(zmq_context, broker.endpoints.control)
    push_events(zmq_context, broker.endpoints.ingest, 30, 200 * 1024)
    wait_until(lambda: control.stats()['published'] == 30, message='30 events published')
    events, end = control.replay(1)
    assert 0 < len(events) < 30 and end['next'] == len(events) + 1 and end['missing'] == 0
    assert sum(len(event.body) for event in events) <= 4 * MB
    rest, end = control.replay(end['next'])
    assert [event.meta.seq for event in events + rest] == list(range(1, 31))


# -- subscribers ------------------------------------------------------------------------

def test_subscribers_that_never_read_cost_at_most_their_queues(broker_process):
    proc = broker_process('--subscriber-hwm', '100')
    context = zmq.Context()
    try:
        subs = []
        for _ in range(30):
            sock = context.socket(zmq.SUB)
            sock.rcvhwm, sock.rcvbuf = 1, 4096
            sock.subscribe(b'')
            sock.connect(proc.publish)
            subs.append(sock)
        wait_until(lambda: proc.stats()['subscribers'] == 30, message='30 subscribers')
        before = proc.rss()
        push_events(context, proc.ingest, 30_000, 450)
        published(proc, 30_000)
        # The ring holds ~20 MB of these events; 30 full queues of 30,000 would be ~200 MB.
        assert proc.rss() - before < 60 * MB
    finally:
        context.destroy(linger=0)


def test_subscribers_past_the_cap_are_refused_counted_and_a_place_freed_is_taken(
        broker_factory, zmq_context):
    broker = broker_factory(max_subscribers=2)
    control = ControlClient(zmq_context, broker.endpoints.control)
    first, second = (RawSubscriber(zmq_context, broker.endpoints.publish) for _ in range(2))
    first.wait_connected()
    second.wait_connected()
    wait_until(lambda: control.stats()['subscribers'] == 2, message='2 subscribers')
    third = RawSubscriber(zmq_context, broker.endpoints.publish)
    wait_until(lambda: control.stats()['subscribers_refused'] >= 1, message='a refusal')
    assert third.socket.poll(0) == 0 and control.stats()['subscribers'] == 2
    first.close()
    wait_until(lambda: control.stats()['subscribers'] == 1, message='1 subscriber left')
    fourth = RawSubscriber(zmq_context, broker.endpoints.publish)
    fourth.wait_connected()
    # libzmq does not retry a refused handshake: the refused peer stays out.
    assert third.socket.poll(0) == 0 and control.stats()['subscribers'] == 2


def test_the_cap_and_curve_share_one_zap_handler(tmp_path, broker_factory, zmq_context):
    keys, authorized = tmp_path / 'keys', tmp_path / 'authorized'
    authorized.mkdir()
    broker_public, broker_secret = generate_keypair(str(keys), 'broker')
    friends = []
    for name in ('one', 'two'):
        public, secret = generate_keypair(str(keys), name)
        shutil.copy(public, authorized / ('%s.key' % name))
        friends.append(client_keys(broker_public, secret))
    _, stranger_secret = generate_keypair(str(keys), 'stranger')
    broker = broker_factory(curve_secret_key=broker_secret, max_subscribers=1,
                            curve_authorized_keys=str(authorized))
    control = ControlClient(zmq_context, broker.endpoints.control, friends[0])
    first = RawSubscriber(zmq_context, broker.endpoints.publish, curve=friends[0])
    first.wait_connected()
    wait_until(lambda: control.stats()['subscribers'] == 1, message='1 subscriber')
    second = RawSubscriber(zmq_context, broker.endpoints.publish, curve=friends[1])
    wait_until(lambda: control.stats()['subscribers_refused'] == 1, message='a refusal')
    first.close()
    wait_until(lambda: control.stats()['subscribers'] == 0, message='no subscriber left')
    stranger = zmq_context.socket(zmq.SUB)
    monitor = stranger.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH)
    apply_client(stranger, client_keys(broker_public, stranger_secret))
    stranger.connect(broker.endpoints.publish)
    assert monitor.poll(10_000) and recv_monitor_message(monitor)['value'] == 400
    stranger.disable_monitor()
    stranger.close(linger=0)
    monitor.close(linger=0)
    wait_until(lambda: control.stats()['subscribers'] == 0, message='the stranger gone')
    again = RawSubscriber(zmq_context, broker.endpoints.publish, curve=friends[1])
    again.wait_connected()
    stats = control.stats()
    assert second.socket.poll(0) == 0 and stats['subscribers_refused'] == 1
    assert stats['subscribers'] == 1


def test_a_subscription_over_1_KiB_drops_its_peer(broker, zmq_context):
    sock = zmq_context.socket(zmq.SUB)
    monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    try:
        sock.subscribe(b'x' * 1100)
        sock.connect(broker.endpoints.publish)
        assert monitor.poll(10_000), 'the broker kept a peer with a 1,100-byte subscription'
        assert recv_monitor_message(monitor)['event'] == zmq.EVENT_DISCONNECTED
        assert broker.stats()['subscriptions'] == 0
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)


def test_a_flood_of_subscriptions_is_welcomed_by_few_heartbeats(broker_factory, zmq_context):
    broker = broker_factory(heartbeat_interval=60.0)
    healthy = RawSubscriber(zmq_context, broker.endpoints.publish, prefixes=(b'_heartbeat',))
    healthy.wait_connected()
    flood = zmq_context.socket(zmq.SUB)
    flood.linger, flood.sndhwm = 0, 0  # else libzmq drops subscriptions past 1,000
    for index in range(3000):
        flood.subscribe(b'%08d' % index + os.urandom(992))
    flood.connect(broker.endpoints.publish)
    control = ControlClient(zmq_context, broker.endpoints.control)
    wait_until(lambda: control.stats()['subscriptions'] >= 3001, timeout=30,
               message='3,000 subscriptions taken')
    beats = 0
    while healthy.recv(0.5) is not None:  # every heartbeat queued for it so far
        beats += 1
    assert beats < 1000, '%d heartbeats for 3,000 subscriptions' % beats
    flood.close(linger=0)


# -- control clients --------------------------------------------------------------------

def test_control_clients_that_never_read_hold_a_page_each_not_every_reply(broker_process):
    proc = broker_process()
    context = zmq.Context()
    try:
        push_events(context, proc.ingest, 100, 100 * 1024)  # 10 MB in the ring
        published(proc, 100)
        before = proc.rss()
        hoarders = []
        for _ in range(2):
            sock = context.socket(zmq.DEALER)
            sock.rcvhwm, sock.rcvbuf = 1, 4096
            sock.connect(proc.control)
            for _ in range(10):
                sock.send(wire.encode_replay_request(1, None, 1000))
            sock.send(b'not msgpack')  # answered last: counts a control error
            hoarders.append(sock)
        wait_until(lambda: proc.stats()['control_errors'] == 2, message='every request')
        # Unbounded, the 20 pages of 10 MB would be ~200 MB queued in the broker.
        assert proc.rss() - before < 60 * MB
    finally:
        context.destroy(linger=0)


def test_stats_reports_the_ceilings(broker, raw_sub, zmq_context):
    stats = ControlClient(zmq_context, broker.endpoints.control).stats()
    assert stats['subscribers'] == 1 and stats['subscribers_refused'] == 0
    assert stats['ring_bytes'] == 0 and stats['internal_errors'] == 0
