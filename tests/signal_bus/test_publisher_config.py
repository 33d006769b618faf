"""Bus and broker configuration: coercion, derived endpoints, and clear refusals."""
from __future__ import annotations

import pytest

from signal_bus import BrokerConfig, BusConfig, BusConfigError, Publisher
from signal_bus.config import neighbour_endpoint


def test_a_bus_is_an_endpoint_a_bus_config_or_a_broker_config():
    assert BusConfig.coerce('tcp://10.0.0.5:7557').ingest == 'tcp://10.0.0.5:7557'
    config = BusConfig(ingest='tcp://127.0.0.1:1')
    assert BusConfig.coerce(config) is config
    hosted = BusConfig.coerce(BrokerConfig(ingest='tcp://0.0.0.0:9001',
                                           publish='tcp://*:9002'))
    assert (hosted.ingest, hosted.publish) == ('tcp://127.0.0.1:9001', 'tcp://127.0.0.1:9002')
    with pytest.raises(BusConfigError):
        BusConfig.coerce(7557)
    with pytest.raises(BusConfigError):
        BusConfig.coerce(BrokerConfig(ingest='tcp://127.0.0.1:*'))


def test_control_defaults_to_the_publish_port_plus_one():
    assert BusConfig(publish='tcp://bus.example:8000').control_endpoint == \
        'tcp://bus.example:8001'
    assert BusConfig(control='tcp://h:1').control_endpoint == 'tcp://h:1'
    with pytest.raises(BusConfigError, match='explicitly'):
        neighbour_endpoint('ipc:///tmp/bus.sock')


@pytest.mark.parametrize('options', [
    {'ingest': 'localhost:7557'}, {'ring': 0}, {'hold_ms': -1}, {'max_event_bytes': 0},
    {'max_event_bytes': 17 * 1024 * 1024}, {'heartbeat_interval': 0},
])
def test_broker_config_refuses_what_cannot_work(options):
    with pytest.raises(BusConfigError):
        BrokerConfig(**options)


def test_publisher_refuses_a_bus_that_is_not_one():
    with pytest.raises(BusConfigError):
        Publisher(None)
    with pytest.raises(BusConfigError):
        Publisher('nowhere')


@pytest.mark.parametrize('endpoint', ['tcp://127.0.0.1:notaport', 'tcp://127.0.0.1:0',
                                      'tcp://127.0.0.1:70000', 'tcp://:7557', 'udp://x:1',
                                      'ipc://'])
def test_malformed_endpoints_are_refused_with_an_example(endpoint):
    with pytest.raises(BusConfigError) as info:
        BusConfig(ingest=endpoint)
    assert endpoint in str(info.value)


def test_wildcard_ports_and_ipc_endpoints_are_accepted():
    assert BusConfig(ingest='tcp://127.0.0.1:*', publish='ipc:///tmp/bus').ingest
