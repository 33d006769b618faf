"""Configuration of the bus: one frozen dataclass per component.

``BusConfig`` is what a client (publisher, subscriber, tail) needs to reach a broker;
``BrokerConfig`` is what a broker needs to run. Both default to the loopback endpoints.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

from .exceptions import BusConfigError

DEFAULT_INGEST = 'tcp://127.0.0.1:7557'
DEFAULT_PUBLISH = 'tcp://127.0.0.1:7558'
DEFAULT_CONTROL = 'tcp://127.0.0.1:7559'
DEFAULT_RING = 100_000
DEFAULT_RING_BYTES = 128 * 1024 * 1024
DEFAULT_SUBSCRIBER_HWM = 1000
DEFAULT_MAX_SUBSCRIBERS = 1000
DEFAULT_HOLD_MS = 100
DEFAULT_MAX_EVENT_BYTES = 256 * 1024
#: ZeroMQ's own per-message cap on the broker's sockets: a last defence only.
ZMQ_MAX_MESSAGE_BYTES = 16 * 1024 * 1024

_TCP_PORT = re.compile(r'^(tcp://.*):(\d+)$')


def neighbour_endpoint(endpoint: str, offset: int = 1) -> str:
    """``endpoint`` with its TCP port moved by ``offset`` (publish port + 1 = control)."""
    match = _TCP_PORT.match(endpoint)
    if match is None:
        raise BusConfigError('cannot derive a port from %r: give the endpoint explicitly '
                             '(for example --control tcp://host:7559)' % (endpoint,))
    return '%s:%d' % (match.group(1), int(match.group(2)) + offset)


def check_endpoint(endpoint: Any, what: str) -> str:
    """Raise ``BusConfigError`` unless ``endpoint`` looks like a ZeroMQ endpoint."""
    if not isinstance(endpoint, str) or '://' not in endpoint:
        raise BusConfigError('%s endpoint %r is not a ZeroMQ endpoint such as '
                             'tcp://127.0.0.1:7557' % (what, endpoint))
    scheme, address = endpoint.split('://', 1)
    if scheme == 'tcp':
        host, _, port = address.rpartition(':')
        if not host or not (port == '*' or port.isdigit() and 0 < int(port) < 65536):
            raise BusConfigError('%s endpoint %r needs a host and a port from 1 to 65535 '
                                 '(or * to bind any), e.g. tcp://127.0.0.1:7557'
                                 % (what, endpoint))
    elif scheme not in ('ipc', 'inproc') or not address:
        raise BusConfigError('%s endpoint %r: use tcp://host:port, ipc://path or '
                             'inproc://name' % (what, endpoint))
    return endpoint


@dataclasses.dataclass(frozen=True)
class CurveClientKeys:
    """A client's CURVE material: the broker's public key and the client's own pair (Z85)."""

    server_public: bytes
    public: bytes
    secret: bytes


@dataclasses.dataclass(frozen=True)
class BusConfig:
    """How a client reaches a broker.

    ``ingest`` is where publishers push, ``publish`` where subscribers connect, ``control``
    the replay/stats socket (``None``: the publish port + 1). Given only a TCP ``ingest``
    endpoint, ``publish`` is the ingest port + 1 (the broker's default layout). ``curve`` enables CURVE.
    ``send_hwm`` bounds each publishing socket's queue (a full queue drops and counts).
    """

    ingest: str = DEFAULT_INGEST
    publish: str = DEFAULT_PUBLISH
    control: str | None = None
    curve: CurveClientKeys | None = None
    send_hwm: int = 10_000
    #: Log one line when the broker refuses this client's CURVE handshake (a consumer
    #: turns it off for its workers' publishers: its own report socket says it once).
    watch_refusals: bool = True

    def __post_init__(self) -> None:
        check_endpoint(self.ingest, 'ingest')
        check_endpoint(self.publish, 'publish')
        if (self.publish == DEFAULT_PUBLISH and self.control is None
                and self.ingest != DEFAULT_INGEST and _TCP_PORT.match(self.ingest)
                and not self.ingest.endswith(':*')):
            # Only the ingest endpoint was given: the broker's usual layout puts publish
            # and control on the next two ports (7557, 7558, 7559 by default).
            object.__setattr__(self, 'publish', neighbour_endpoint(self.ingest, 1))
        if self.control is not None:
            check_endpoint(self.control, 'control')
        if self.send_hwm < 1:
            raise BusConfigError('send_hwm must be at least 1')

    @property
    def control_endpoint(self) -> str:
        """The control endpoint, derived from the publish endpoint when not given."""
        return self.control or neighbour_endpoint(self.publish)

    @classmethod
    def from_endpoint(cls, ingest: str, **options: Any) -> 'BusConfig':
        """A config for a publisher given only the broker's ingest endpoint."""
        return cls(ingest=check_endpoint(ingest, 'ingest'), **options)

    @classmethod
    def coerce(cls, value: 'str | BusConfig | BrokerConfig') -> 'BusConfig':
        """Accept an ingest endpoint string, a ``BusConfig``, or a ``BrokerConfig``."""
        if isinstance(value, BusConfig):
            return value
        if isinstance(value, str):
            return cls.from_endpoint(value)
        if isinstance(value, BrokerConfig):
            return value.client_config()
        raise BusConfigError('a bus is an ingest endpoint string or a signal_bus.BusConfig, '
                             'got %s' % type(value).__name__)


@dataclasses.dataclass(frozen=True)
class BrokerConfig:
    """Everything a broker needs (``signal-broker`` options map one to one).

    Endpoints may use a wildcard port (``tcp://127.0.0.1:*``); ``Broker.endpoints`` then
    tells which ports were bound. ``curve_secret_key`` is a ``.key_secret`` certificate
    file; with ``curve_authorized_keys`` (a directory of ``.key`` files) clients whose
    public key is not listed are refused. ``ring`` and ``ring_bytes`` bound the ring by
    count and by bytes, ``subscriber_hwm`` each subscriber's send queue (messages), and
    ``max_subscribers`` the connected subscribers (SPEC §7 "Resource ceilings").
    """

    ingest: str = DEFAULT_INGEST
    publish: str = DEFAULT_PUBLISH
    control: str = DEFAULT_CONTROL
    ring: int = DEFAULT_RING
    ring_bytes: int = DEFAULT_RING_BYTES
    hold_ms: float = DEFAULT_HOLD_MS
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    curve_secret_key: str | None = None
    curve_authorized_keys: str | None = None
    heartbeat_interval: float = 1.0
    max_tasks: int = 100_000
    max_publishers: int = 10_000
    subscriber_hwm: int = DEFAULT_SUBSCRIBER_HWM
    max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS

    def __post_init__(self) -> None:
        for what in ('ingest', 'publish', 'control'):
            check_endpoint(getattr(self, what), what)
        if self.ring < 1:
            raise BusConfigError('ring must hold at least 1 event, got %r' % (self.ring,))
        for what in ('ring_bytes', 'subscriber_hwm', 'max_subscribers'):
            if getattr(self, what) < 1:
                raise BusConfigError('%s must be at least 1, got %r'
                                     % (what, getattr(self, what)))
        if self.hold_ms < 0:
            raise BusConfigError('hold_ms must be >= 0, got %r' % (self.hold_ms,))
        if not 1 <= self.max_event_bytes <= ZMQ_MAX_MESSAGE_BYTES:
            raise BusConfigError('max_event_bytes must be between 1 and %d, got %r'
                                 % (ZMQ_MAX_MESSAGE_BYTES, self.max_event_bytes))
        if self.curve_authorized_keys and not self.curve_secret_key:
            raise BusConfigError('curve_authorized_keys needs curve_secret_key too: the '
                                 'broker must have its own key pair to check clients')
        if self.heartbeat_interval <= 0 or self.max_tasks < 1 or self.max_publishers < 1:
            raise BusConfigError('heartbeat_interval, max_tasks and max_publishers must be '
                                 'positive')

    def client_config(self, **options: Any) -> BusConfig:
        """A ``BusConfig`` pointing at this broker's endpoints (on loopback when bound to
        all interfaces)."""
        return BusConfig(ingest=_connectable(self.ingest), publish=_connectable(self.publish),
                         control=_connectable(self.control), **options)


def _connectable(endpoint: str) -> str:
    if endpoint.endswith(':*'):
        raise BusConfigError('%s has a wildcard port: take the bound endpoints from '
                             'Broker.endpoints instead' % endpoint)
    return endpoint.replace('://0.0.0.0:', '://127.0.0.1:').replace('://*:', '://127.0.0.1:')
