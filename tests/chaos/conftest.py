"""Fixtures for the fault and bad-input tests: a bus on free loopback ports, consumer
processes, and the bad-input apps."""
from __future__ import annotations

import importlib
import sys

import pytest

from tests.chaos.consumer_process import APPS_DIR, ConsumerProcess


@pytest.fixture
def bus():
    """A broker on free loopback ports (stopped at the end)."""
    from signal_bus.broker import Broker
    from tests.signal_bus.bus_helpers import loopback_broker_config
    broker = Broker(loopback_broker_config(heartbeat_interval=0.1)).start()
    yield broker
    broker.stop()


@pytest.fixture
def consumers(tmp_path):
    """``consumers(app, *args, storage=URL)`` makes consumer processes; all end at the end."""
    made: list[ConsumerProcess] = []

    def make(app: str, *args: str, storage: str) -> ConsumerProcess:
        log = str(tmp_path / ('consumer-%d.log' % len(made)))
        made.append(ConsumerProcess(app, *args, storage=storage, log_path=log))
        return made[-1]

    yield make
    for consumer in made:
        consumer.stop()


@pytest.fixture
def apps(monkeypatch):
    """``apps(name, storage)`` imports a test app module on ``storage`` (fresh each time)."""
    monkeypatch.syspath_prepend(APPS_DIR)

    def load(name: str, storage: str):
        monkeypatch.setenv('BAD_INPUT_STORAGE', storage)
        sys.modules.pop(name, None)
        return importlib.import_module(name)

    yield load
    for name in ('known_app', 'ghost_app'):
        module = sys.modules.pop(name, None)
        if module is not None:
            module.q.close()
