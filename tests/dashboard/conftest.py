"""Fixtures for the live view: brokers on free loopback ports and raw publishers."""
from __future__ import annotations

import pytest
import zmq

from signal_bus.broker import Broker

from tests.signal_bus.bus_helpers import RawPusher, loopback_broker_config


@pytest.fixture
def start_broker():
    """``start_broker(**BrokerConfig options)``: brokers that stop when the test ends."""
    started: list[Broker] = []

    def start(**options) -> Broker:
        started.append(Broker(loopback_broker_config(**options)).start())
        return started[-1]

    yield start
    for broker in started:
        broker.stop()


@pytest.fixture
def pusher():
    """``pusher(broker)``: a raw publisher on that broker's ingest endpoint."""
    context = zmq.Context()
    made: list[RawPusher] = []

    def make(broker) -> RawPusher:
        made.append(RawPusher(context, broker.endpoints.ingest))
        return made[-1]

    yield make
    for item in made:
        item.close()
    context.destroy(linger=0)


@pytest.fixture(params=['sqlite', 'redis'])
def history_url(request, tmp_path):
    """Each history store in turn: a SQLite file, and the session's throwaway Redis."""
    if request.param == 'sqlite':
        return 'sqlite:///' + str(tmp_path / 'history.db')
    server = request.getfixturevalue('redis_server')
    server.flushall()
    return server.url
