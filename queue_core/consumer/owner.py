"""In-flight owner ids of workers: ``host:pid:suffix``."""
from __future__ import annotations

import socket


def make_owner(pid: int, suffix: str) -> str:
    """An in-flight owner id: ``host:pid:random`` (pid of the process running the worker)."""
    return '%s:%d:%s' % (socket.gethostname(), pid, suffix)


def parse_owner(owner: str) -> tuple[str, int] | None:
    """``(host, pid)`` from an owner id made by ``make_owner``, or ``None``."""
    host, _, rest = owner.rpartition(':')
    host, _, pid = host.rpartition(':')
    try:
        return host, int(pid)
    except ValueError:
        return None
