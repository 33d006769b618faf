"""CURVE at every door of the broker: a client with no key, or with a key the broker does
not list, is refused at the handshake on ingest, publish and control, and what it sends
never arrives; a listed client publishes and subscribes through the library's own clients.
"""
from __future__ import annotations

import os
import shutil
import time

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from signal_bus import BusConfig, Publisher, Subscriber
from signal_bus.broker import Broker
from signal_bus.keys import apply_client, client_keys, generate_keypair

from tests.signal_bus.bus_helpers import FakeTask, loopback_broker_config


DOORS = {'ingest': zmq.PUSH, 'publish': zmq.SUB, 'control': zmq.DEALER}
OUTCOMES = {zmq.EVENT_HANDSHAKE_SUCCEEDED: 'accepted',
            zmq.EVENT_HANDSHAKE_FAILED_AUTH: 'refused',
            zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: 'refused',
            zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: 'refused'}


@pytest.fixture
def keyring(tmp_path):
    """Key pairs for the broker, a listed client and an unlisted one."""
    authorized = tmp_path / 'authorized'
    authorized.mkdir()
    paths = {name: generate_keypair(str(tmp_path / 'keys'), name)
             for name in ('broker', 'friend', 'stranger')}
    shutil.copy(paths['friend'][0], authorized / 'friend.key')
    return {'paths': paths, 'authorized': str(authorized)}


@pytest.fixture
def curve_broker(keyring):
    """A broker that encrypts and admits only ``friend``."""
    broker = Broker(loopback_broker_config(
        curve_secret_key=keyring['paths']['broker'][1],
        curve_authorized_keys=keyring['authorized'], heartbeat_interval=0.05)).start()
    yield broker
    broker.stop()


def credentials(keyring, who):
    """Client CURVE material for ``who`` (``None``: no key at all)."""
    if who is None:
        return None
    return client_keys(keyring['paths']['broker'][0], keyring['paths'][who][1])


def handshake(kind, curve, endpoint, timeout=10.0):
    """Connect a raw socket and return how the broker answered its handshake, and the
    socket (still open, so that a caller may try to use it)."""
    context = zmq.Context.instance()
    sock = context.socket(kind)
    sock.linger = 0
    apply_client(sock, curve)
    monitor = sock.get_monitor_socket()
    sock.connect(endpoint)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if monitor.poll(int((deadline - time.monotonic()) * 1000)):
                event = recv_monitor_message(monitor)['event']
                if event in OUTCOMES:
                    return OUTCOMES[event], sock
        return 'no answer', sock
    finally:
        sock.disable_monitor()
        monitor.close(0)


@pytest.mark.parametrize('door', sorted(DOORS))
@pytest.mark.parametrize('who', [None, 'stranger', 'friend'], ids=['no-key', 'unlisted',
                                                                   'listed'])
def test_every_door_admits_only_a_listed_key(curve_broker, keyring, door, who):
    endpoint = getattr(curve_broker.endpoints, door)
    outcome, sock = handshake(DOORS[door], credentials(keyring, who), endpoint)
    sock.close(0)
    assert outcome == ('accepted' if who == 'friend' else 'refused')


def test_refused_publishers_deliver_nothing_and_a_listed_one_does(curve_broker, keyring):
    endpoints = curve_broker.endpoints
    friend = credentials(keyring, 'friend')
    with Subscriber(endpoints.publish, control=endpoints.control,
                    curve_server_key=friend.server_public,
                    curve_keypair=(friend.public, friend.secret)) as sub:
        sub.wait_connected()
        refused = []
        for who in (None, 'stranger'):
            outcome, sock = handshake(zmq.PUSH, credentials(keyring, who), endpoints.ingest)
            assert outcome == 'refused'
            try:   # refused: the socket has no peer to queue for (Again), or queues in vain
                sock.send_multipart([b'forged', b'event'], flags=zmq.NOBLOCK)
            except zmq.Again:
                pass
            refused.append(sock)
        for who in (None, 'stranger'):        # the library's own publisher, refused alike
            intruder = Publisher(BusConfig(ingest=endpoints.ingest,
                                           curve=credentials(keyring, who)))
            intruder.publish('complete', FakeTask(id='forged-%s' % who, tseq=1))
            intruder.close()
        publisher = Publisher(BusConfig(ingest=endpoints.ingest, curve=friend))
        publisher.publish('complete', FakeTask(id='genuine', tseq=1))
        event = sub.receive(timeout=10)
        publisher.close()
        for sock in refused:
            sock.close(0)
        assert event is not None and event.id == 'genuine'
        stats = sub.broker_stats()
    assert (stats['received'], stats['published'], stats['malformed']) == (1, 1, 0)


@pytest.mark.parametrize('who', ['no-key', 'unlisted'])
def test_a_subscriber_without_a_listed_key_never_connects(curve_broker, keyring, who):
    endpoints = curve_broker.endpoints
    options = {}
    if who == 'unlisted':      # the broker's key but no pair of its own: a throwaway pair
        options['curve_server_key'] = keyring['paths']['broker'][0]
    with Subscriber(endpoints.publish, control=endpoints.control, **options) as sub:
        with pytest.raises(TimeoutError):
            sub.wait_connected(timeout=1.0)


def test_key_files_stay_private(keyring):
    secret = keyring['paths']['friend'][1]
    assert os.stat(secret).st_mode & 0o077 == 0
