"""The out-of-process signal bus: wire format, publisher, broker, subscriber, tail.

Public names are loaded on first use, so ``import signal_bus`` imports no ZeroMQ.
"""
from __future__ import annotations

import importlib
from typing import Any

from .exceptions import BusConfigError, BusError, WireError

_LAZY = {
    'Publisher': 'signal_bus.publisher',
    'Broker': 'signal_bus.broker',
    'run_broker': 'signal_bus.broker',
    'BrokerConfig': 'signal_bus.config',
    'BusConfig': 'signal_bus.config',
    'Subscriber': 'signal_bus.subscriber',
    'Event': 'signal_bus.event',
    'ErrorInfo': 'signal_bus.event',
    'CurveClientKeys': 'signal_bus.config',
    'client_keys': 'signal_bus.keys',
    'generate_keypair': 'signal_bus.keys',
}

__all__ = ['BusConfigError', 'BusError', 'WireError', *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError('module %r has no attribute %r' % (__name__, name))
    return getattr(importlib.import_module(module), name)
