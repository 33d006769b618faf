"""Free TCP ports on loopback."""
from __future__ import annotations

import socket

HIGHEST_PORT = 65535


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def consecutive_free_ports(count: int, attempts: int = 50) -> list[int]:
    """``count`` consecutive loopback ports that were free a moment ago (a broker's
    default layout: ingest, publish, control on three ports in a row)."""
    for _ in range(attempts):
        first = free_port()
        ports = list(range(first, first + count))
        if ports[-1] > HIGHEST_PORT:
            continue
        socks = []
        try:
            for port in ports:
                sock = socket.socket()
                socks.append(sock)
                sock.bind(('127.0.0.1', port))
            return ports
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError('found no %d consecutive free ports' % count)


def three_free_ports() -> int:
    """A port P such that P, P+1 and P+2 are free on loopback (ingest, publish, control)."""
    return consecutive_free_ports(3)[0]
