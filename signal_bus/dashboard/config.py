"""The dashboard's configuration: one frozen dataclass, checked when built."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ..config import DEFAULT_PUBLISH
from ..exceptions import BusConfigError
from ..history import DEFAULT_HISTORY, Retention

DEFAULT_HTTP = '127.0.0.1:7560'


def split_http(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[::1]:PORT``) as ``(host, port)``."""
    host, sep, port = value.rpartition(':')
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise BusConfigError('--http wants HOST:PORT (for example 127.0.0.1:7560), not %r'
                             % value)
    return host.strip('[]') or '0.0.0.0', int(port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class DashboardConfig:
    """Everything ``signal-dashboard`` is told (SPEC §8)."""

    connect: str = DEFAULT_PUBLISH
    control: str | None = None
    history: str = DEFAULT_HISTORY
    storage: str | None = None
    queue: str | None = None
    http: str = DEFAULT_HTTP
    retention: Retention = field(default_factory=Retention)
    token: str | None = None
    curve_server_key: str | None = None
    curve_keypair: str | None = None

    def __post_init__(self) -> None:
        host, _ = split_http(self.http)
        if not is_loopback(host) and not self.token:
            raise BusConfigError('refusing to serve %s without a token: a non-loopback --http '
                                 'needs --token-file' % self.http)
        if (self.storage is None) != (self.queue is None):
            raise BusConfigError('--storage and --queue go together (the queue name is the '
                                 "TaskQueue's name)")
        if self.token is not None and len(self.token) < 8:
            raise BusConfigError('the token is too short (at least 8 characters)')

    @property
    def host(self) -> str:
        """The host part of ``http``."""
        return split_http(self.http)[0]

    @property
    def port(self) -> int:
        """The port part of ``http`` (0: any free port)."""
        return split_http(self.http)[1]
