"""CURVE: a broker with an authorized-keys directory refuses every unlisted client."""
from __future__ import annotations

import os
import shutil

import pytest
import zmq

from signal_bus import BusConfig, BusConfigError, Publisher
from signal_bus.keys import client_keys, generate_keypair, load_public_key, main

from scripts.support.polling import wait_until
from tests.signal_bus.bus_helpers import ControlClient, FakeTask, RawSubscriber, body_of


@pytest.fixture
def curve(tmp_path, broker_factory):
    """A CURVE broker that lists the key of ``friend`` and not that of ``stranger``."""
    keys, authorized = tmp_path / 'keys', tmp_path / 'authorized'
    authorized.mkdir()
    broker_public, broker_secret = generate_keypair(str(keys), 'broker')
    friend_public, friend_secret = generate_keypair(str(keys), 'friend')
    _, stranger_secret = generate_keypair(str(keys), 'stranger')
    shutil.copy(friend_public, authorized / 'friend.key')
    broker = broker_factory(curve_secret_key=broker_secret,
                            curve_authorized_keys=str(authorized), heartbeat_interval=0.05)
    return {'broker': broker, 'paths': (broker_public, friend_secret),
            'friend': client_keys(broker_public, friend_secret),
            'stranger': client_keys(broker_public, stranger_secret)}


def test_listed_client_publishes_and_subscribes(curve, zmq_context):
    broker = curve['broker']
    sub = RawSubscriber(zmq_context, broker.endpoints.publish, curve=curve['friend'])
    sub.wait_connected()
    server_key, keypair = curve['paths']
    publisher = Publisher(broker.endpoints.ingest, curve_server_key=server_key,
                          curve_keypair=keypair)
    publisher.publish('complete', FakeTask(id='secret-work', tseq=1))
    assert body_of(sub.events(1)[0])['task_id'] == 'secret-work'
    stats = ControlClient(zmq_context, broker.endpoints.control, curve['friend']).stats()
    assert stats['published'] == 1
    publisher.close()


def test_unlisted_key_receives_nothing_and_cannot_publish(curve, zmq_context):
    broker = curve['broker']
    friend = RawSubscriber(zmq_context, broker.endpoints.publish, curve=curve['friend'])
    friend.wait_connected()
    stranger = RawSubscriber(zmq_context, broker.endpoints.publish, curve=curve['stranger'])
    plain = RawSubscriber(zmq_context, broker.endpoints.publish)
    intruder = Publisher(BusConfig(ingest=broker.endpoints.ingest, curve=curve['stranger']))
    intruder.publish('complete', FakeTask(id='forged', tseq=1))
    publisher = Publisher(BusConfig(ingest=broker.endpoints.ingest, curve=curve['friend']))
    publisher.publish('complete', FakeTask(id='genuine', tseq=1))
    assert body_of(friend.events(1)[0])['task_id'] == 'genuine'
    # Many heartbeats later the refused clients still have nothing, and only one event
    # was ever received.
    beats = [friend.meta('_heartbeat') for _ in range(10)]
    assert beats[-1].data['last_seq'] == 1
    assert stranger.recv(timeout=0) is None and plain.recv(timeout=0) is None
    assert broker.stats()['received'] == 1
    intruder.close()
    publisher.close()


def test_one_key_loader_for_every_client(tmp_path):
    public, secret = generate_keypair(str(tmp_path), 'one')
    assert client_keys(None, None) is None
    with pytest.raises(BusConfigError):
        client_keys(None, secret)         # a pair without the broker's key
    throwaway = client_keys(public, None)  # encrypted; a broker with a key list refuses it
    assert throwaway.server_public == load_public_key(public) and len(throwaway.secret) == 40
    pair = zmq.curve_keypair()
    loaded = client_keys(public, tuple(k.decode() for k in pair))
    assert (loaded.public, loaded.secret) == pair
    with pytest.raises(BusConfigError):
        client_keys(public, public)       # a public key file holds no secret
    keys = client_keys(load_public_key(public).decode(), secret)
    assert keys.server_public == load_public_key(public) and len(keys.secret) == 40


def test_keys_command_writes_a_pair(tmp_path, capsys):
    assert main([str(tmp_path / 'k'), 'worker']) == 0
    assert sorted(os.listdir(tmp_path / 'k')) == ['worker.key', 'worker.key_secret']
    assert os.stat(tmp_path / 'k' / 'worker.key_secret').st_mode & 0o077 == 0
    assert 'worker.key_secret' in capsys.readouterr().out


def test_broker_refuses_authorized_keys_without_its_own_pair(tmp_path):
    from signal_bus import BrokerConfig
    with pytest.raises(BusConfigError):
        BrokerConfig(curve_authorized_keys=str(tmp_path))


def test_a_publisher_whose_key_is_refused_logs_one_line_saying_so(curve, caplog):
    broker = curve['broker']
    intruder = Publisher(BusConfig(ingest=broker.endpoints.ingest, curve=curve['stranger']))
    caplog.set_level('ERROR', logger='signal_bus.publisher')
    for index in range(3):
        intruder.publish('complete', FakeTask(id='forged-%d' % index, tseq=1))

    def refusals():
        return [r for r in caplog.records if 'handshake' in r.getMessage()
                and 'refused' in r.getMessage()]

    wait_until(refusals, message='a line saying the handshake was refused')
    intruder.close()
    lines = refusals()
    assert len(lines) == 1 and "refused this client's key" in lines[0].getMessage()


def test_the_start_line_says_whether_curve_is_on(tmp_path, broker_factory, caplog):
    caplog.set_level('INFO', logger='signal_bus.broker')
    _, secret = generate_keypair(str(tmp_path / 'keys'), 'broker')
    broker_factory()
    broker_factory(curve_secret_key=secret)
    lines = [r.getMessage() for r in caplog.records if 'signal broker epoch' in r.getMessage()]
    assert len(lines) == 2
    assert 'CURVE off' in lines[0]
    assert 'CURVE on (encrypted), any client key accepted' in lines[1]
