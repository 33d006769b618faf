"""Hosting a signal broker in a child process of the consumer (``--broker``)."""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from typing import Any

from ..exceptions import ConfigurationError

logger = logging.getLogger('queue_core.consumer')


def broker_config(ingest: str | None) -> Any:
    """The embedded broker's configuration.

    Without ``ingest``: the default endpoints (ingest 7557, publish 7558, control 7559 on
    loopback). With ``ingest`` (``--bus tcp://host:PORT``): ingest at PORT, publish at
    PORT+1 and control at PORT+2 on the same host, the layout of the defaults.
    """
    from signal_bus.config import BrokerConfig, neighbour_endpoint
    if not ingest:
        return BrokerConfig()
    return BrokerConfig(ingest=ingest, publish=neighbour_endpoint(ingest, 1),
                        control=neighbour_endpoint(ingest, 2))


def check_bus(bus: str | None, broker: bool) -> None:
    """Raise ``ConfigurationError`` unless ``--bus``/``--broker`` can work."""
    try:
        from signal_bus.config import BusConfig
        from signal_bus.exceptions import BusError
    except ImportError as exc:
        raise ConfigurationError('--bus and --broker need the signal_bus package: %s'
                                 % exc) from exc
    try:
        if bus:
            BusConfig.coerce(bus)
        if broker:
            broker_config(bus)
    except BusError as exc:
        raise ConfigurationError('bad --bus endpoint %r: %s' % (bus, exc)) from exc


def default_ingest() -> str:
    """Where publishers reach an embedded broker started without ``--bus``."""
    from signal_bus.config import DEFAULT_INGEST
    return DEFAULT_INGEST


#: The signal the supervisor stops its broker with. SIGINT and SIGTERM sent to the whole
#: process group are ignored, so the broker outlives the workers and carries their last
#: events (INTERRUPTED after SIGTERM, for example).
STOP_SIGNAL = signal.SIGUSR1
_BLOCKED = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, STOP_SIGNAL}


def _watch_parent(parent: int) -> None:
    """Stop the broker when the supervisor is gone (killed outright)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), STOP_SIGNAL)


def _serve(config: Any, parent: int) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    signal.signal(STOP_SIGNAL, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _BLOCKED)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    from signal_bus.broker import run_broker
    try:
        run_broker(config)
    except KeyboardInterrupt:
        pass


class EmbeddedBroker:
    """A broker child process started before the workers and stopped after them."""

    def __init__(self, ingest: str | None) -> None:
        self.config = broker_config(ingest)
        self._process: Any = None

    @property
    def ingest(self) -> str:
        """The endpoint publishers push to."""
        return self.config.ingest

    def start(self) -> None:
        """Fork the broker process."""
        ctx = multiprocessing.get_context('fork')
        self._process = ctx.Process(target=_serve, args=(self.config, os.getpid()),
                                    name='queue-broker', daemon=True)
        # Blocked across the fork, so a signal sent before the child set its handlers waits.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED)
        try:
            self._process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        logger.info('embedded broker started (pid %d): ingest %s, publish %s, control %s',
                    self._process.pid, self.config.ingest, self.config.publish,
                    self.config.control)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the broker to stop, then kill it if it does not within ``timeout``."""
        if self._process is None:
            return
        if self._process.is_alive():
            os.kill(self._process.pid, STOP_SIGNAL)
            self._process.join(timeout)
        if self._process.is_alive():
            logger.warning('embedded broker did not stop within %.0fs; killing it', timeout)
            self._process.kill()
            self._process.join()
        self._process = None
