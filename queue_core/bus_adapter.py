"""The queue's one door to the signal bus: everything ``queue_core`` uses of ``signal_bus``.

Nothing else in ``queue_core`` imports ``signal_bus``; its modules import this one inside
the functions that need it, so importing the queue loads neither the bus nor ZeroMQ
until a queue attaches a bus, a consumer runs with ``--bus``/``--broker`` or
``queue-status`` asks a broker for its figures. The bus in turn imports from the queue
only ``queue_core.signals`` (the signal names and the handler registry both share).
"""
from __future__ import annotations

from typing import Any

import zmq

from signal_bus.broker import Broker
from signal_bus.client_sockets import ControlClient
from signal_bus.config import (DEFAULT_INGEST, BrokerConfig, BusConfig, CurveClientKeys,
                               neighbour_endpoint)
from signal_bus.exceptions import BusError
from signal_bus.handshake import watch_handshake
from signal_bus.keys import apply_client, client_keys
from signal_bus.publisher import Publisher

from .exceptions import ConfigurationError

__all__ = ['DEFAULT_INGEST', 'Broker', 'BusConfig', 'bus_publisher', 'broker_config',
           'broker_stats', 'check_bus', 'consumer_bus', 'open_announcer']


def bus_publisher(sinks: list[Any], bus: Any, queue_name: str) -> tuple[Any, bool]:
    """The publisher for ``bus`` (an ingest endpoint or a ``BusConfig``) among ``sinks``,
    or a new one for the queue named ``queue_name``; with whether it is new."""
    config = BusConfig.coerce(bus)
    for sink in sinks:
        if isinstance(sink, Publisher) and sink.config == config:
            return sink, False  # already publishing there: a second would double events
    return Publisher.from_config(config, queue=queue_name), True


def consumer_bus(ingest: str, curve_server_key: str | None,
                 curve_keypair: str | None) -> Any:
    """The bus a consumer publishes to: ``ingest``, with its CURVE keys if any."""
    if not (curve_server_key or curve_keypair):
        return ingest
    try:
        # The consumer's announcer says once that a key was refused; its workers'
        # publishers need not say it again.
        return BusConfig(ingest=ingest, curve=client_keys(curve_server_key, curve_keypair),
                         watch_refusals=False)
    except (BusError, OSError, ValueError) as exc:
        raise ConfigurationError('bad CURVE options for --bus: %s' % exc) from exc


def broker_config(ingest: str | None) -> BrokerConfig:
    """The embedded broker's configuration.

    Without ``ingest``: the default endpoints (ingest 7557, publish 7558, control 7559 on
    loopback). With ``ingest`` (``--bus tcp://host:PORT``): ingest at PORT, publish at
    PORT+1 and control at PORT+2 on the same host, the layout of the defaults.
    """
    if not ingest:
        return BrokerConfig()
    return BrokerConfig(ingest=ingest, publish=neighbour_endpoint(ingest, 1),
                        control=neighbour_endpoint(ingest, 2))


def check_bus(bus: str | None, broker: bool) -> None:
    """Raise ``ConfigurationError`` unless ``--bus``/``--broker`` can work."""
    try:
        if bus:
            BusConfig.coerce(bus)
        if broker:
            broker_config(bus)
    except BusError as exc:
        raise ConfigurationError('bad --bus endpoint %r: %s' % (bus, exc)) from exc


def open_announcer(config: BusConfig, who: str, logger: Any) -> tuple[zmq.Context, Any]:
    """A context and a PUSH socket connected to ``config``'s ingest for meta
    announcements: a few messages queued at most, CURVE as configured, a refused
    handshake logged once as ``who``."""
    context = zmq.Context()
    sock = context.socket(zmq.PUSH)
    try:
        sock.sndhwm = 4  # a consumer's presence is worth a few messages, no more
        apply_client(sock, config.curve)
        watch_handshake(sock, config.ingest, who, logger)
        sock.connect(config.ingest)
    except BaseException:
        sock.close(0)
        context.term()
        raise
    return context, sock


def broker_stats(endpoint: str, timeout: float = 2.0,
                 curve: CurveClientKeys | None = None) -> dict[str, Any] | None:
    """The stats map of the broker whose control socket is ``endpoint``; None when it
    does not answer."""
    context = zmq.Context()
    client = ControlClient(context, endpoint, curve, timeout)
    try:
        return client.stats()
    except Exception:
        return None
    finally:
        client.close()
        context.term()
