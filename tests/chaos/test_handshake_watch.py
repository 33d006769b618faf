"""``signal_bus.handshake.watch_handshake``: a client whose handshake the broker refuses
says so in one log line (SPEC §7 "Failures are visible"), whatever the reason — a key the
broker does not list, a wrong broker key, CURVE on one side only; an accepted client logs
nothing; the watching thread ends with the socket."""
from __future__ import annotations

import logging
import shutil

import pytest
import zmq

from signal_bus.broker import Broker
from signal_bus.handshake import watch_handshake
from signal_bus.keys import apply_client, client_keys, generate_keypair

from scripts.support.polling import wait_until
from tests.signal_bus.bus_helpers import loopback_broker_config


@pytest.fixture
def curve_broker(tmp_path):
    """A CURVE broker that lists only ``friend``; the key files."""
    keys = {name: generate_keypair(str(tmp_path / 'keys'), name)
            for name in ('broker', 'friend', 'stranger', 'impostor')}
    (tmp_path / 'authorized').mkdir()
    shutil.copy(keys['friend'][0], tmp_path / 'authorized' / 'friend.key')
    broker = Broker(loopback_broker_config(
        curve_secret_key=keys['broker'][1],
        curve_authorized_keys=str(tmp_path / 'authorized'))).start()
    yield broker, keys
    broker.stop()


def watched_client(endpoint, keys, caplog_records, server='broker', client='friend'):
    """A PUSH client with CURVE keys (or none), watched; returns ``(socket, thread)``."""
    context = zmq.Context.instance()
    sock = context.socket(zmq.PUSH)
    if client is not None:
        apply_client(sock, client_keys(keys[server][0], keys[client][1]))
    thread = watch_handshake(sock, endpoint, 'test client')
    sock.connect(endpoint)
    return sock, thread


def refusals(caplog):
    return [r.getMessage() for r in caplog.records if 'handshake with' in r.getMessage()]


@pytest.mark.parametrize('server, client, reasons', [
    ('broker', 'stranger', ("the broker refused this client's key",)),
    ('impostor', 'friend', ('closed the connection during the handshake',)),
    # A client without CURVE: libzmq reports the mismatch as a protocol failure or, when
    # the broker hangs up first, as a handshake that ended without detail.
    ('broker', None, ('the security settings do not match',
                      'closed the connection during the handshake')),
])
def test_a_refused_handshake_is_logged_once(curve_broker, caplog, server, client, reasons):
    broker, keys = curve_broker
    endpoint = broker.endpoints.ingest
    with caplog.at_level(logging.ERROR, logger='signal_bus.handshake'):
        sock, thread = watched_client(endpoint, keys, caplog, server, client)
        wait_until(lambda: refusals(caplog), 20, message='a refusal line')
        sock.close(linger=0)
        thread.join(10)
    assert not thread.is_alive()
    lines = refusals(caplog)
    assert len(lines) == 1, lines
    assert lines[0].startswith('test client: handshake with %s refused' % endpoint)
    assert any(reason in lines[0] for reason in reasons), lines[0]


def test_an_accepted_client_logs_nothing(curve_broker, caplog):
    broker, keys = curve_broker
    with caplog.at_level(logging.DEBUG, logger='signal_bus.handshake'):
        sock, thread = watched_client(broker.endpoints.ingest, keys, caplog)
        sock.send_multipart([b'x'])  # any frame: it only leaves after the handshake
        wait_until(lambda: broker.stats()['malformed'] >= 1, 20,
                   message='the frame through the accepted connection')
        sock.close(linger=0)
        thread.join(10)
    assert not thread.is_alive() and refusals(caplog) == []
