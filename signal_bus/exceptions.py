"""The exception tree of ``signal_bus``; ``BusError`` is its root."""
from __future__ import annotations


class BusError(Exception):
    """Root of every error ``signal_bus`` raises on its own account."""


class WireError(BusError, ValueError):
    """A frame or message does not follow the wire format (version 1).

    Raised by every decoder in ``signal_bus.wire`` for anything malformed: wrong frame
    count, bytes that are not msgpack, wrong types, unknown signal names, bad versions.
    """


class BusConfigError(BusError):
    """The bus was configured with something that cannot work (endpoint, key file)."""
