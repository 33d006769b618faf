"""Fixtures for bus tests: a running broker on free loopback ports and raw clients, and
the subscriber tests' ``bus`` (a broker with a raw publisher, tests/signal_bus/bus_rig.py)."""
from __future__ import annotations

import pytest
import zmq

from signal_bus.broker import Broker
from signal_bus.config import BusConfig

from tests.signal_bus.bus_helpers import (ControlClient, RawPusher, RawSubscriber, Rig,
                                          loopback_broker_config)
from tests.signal_bus.bus_rig import Bus


@pytest.fixture
def bus():
    """A running broker with a raw publisher attached."""
    running = Bus().start()
    yield running
    running.close()


@pytest.fixture
def broker_factory():
    """Start brokers with ``broker_factory(**BrokerConfig options)``; all stop at the end."""
    started: list[Broker] = []

    def start(**options) -> Broker:
        broker = Broker(loopback_broker_config(**options)).start()
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.stop()


@pytest.fixture
def broker(broker_factory) -> Broker:
    """A running broker with default settings on free loopback ports."""
    return broker_factory()


@pytest.fixture
def bus_config(broker) -> BusConfig:
    """A client config pointing at the ``broker`` fixture."""
    endpoints = broker.endpoints
    return BusConfig(ingest=endpoints.ingest, publish=endpoints.publish,
                     control=endpoints.control)


@pytest.fixture
def zmq_context():
    """A private ZeroMQ context; its sockets are closed by the helpers' ``close()``."""
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def raw_sub(broker, zmq_context) -> RawSubscriber:
    """A SUB on the broker, subscribed to everything and already connected."""
    sub = RawSubscriber(zmq_context, broker.endpoints.publish)
    sub.wait_connected()
    return sub


@pytest.fixture
def pusher_factory(broker, zmq_context):
    """``pusher_factory(pub=None)`` makes raw publishers on the broker's ingest.

    The fixture keeps every pusher referenced until the test ends: a socket that is
    garbage-collected is closed and silently drops what it had not sent yet.
    """
    made: list[RawPusher] = []

    def make(pub=None) -> RawPusher:
        made.append(RawPusher(zmq_context, broker.endpoints.ingest, pub))
        return made[-1]

    yield make
    for pusher in made:
        pusher.close()


@pytest.fixture
def control(broker, zmq_context) -> ControlClient:
    """A DEALER on the broker's control socket."""
    return ControlClient(zmq_context, broker.endpoints.control)


@pytest.fixture
def rig_factory(broker_factory, zmq_context):
    """``rig_factory(**BrokerConfig options)``: a broker plus connected raw clients."""
    def make(**options) -> Rig:
        broker = broker_factory(**options)
        sub = RawSubscriber(zmq_context, broker.endpoints.publish)
        sub.wait_connected()
        return Rig(broker, sub, RawPusher(zmq_context, broker.endpoints.ingest),
                   ControlClient(zmq_context, broker.endpoints.control))
    return make
