"""Hosting a signal broker in a child process of the consumer (``--broker``)."""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from typing import Any

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


def default_ingest() -> str:
    """Where publishers reach an embedded broker started without ``--bus``."""
    from signal_bus.config import DEFAULT_INGEST
    return DEFAULT_INGEST


def _serve(config: Any) -> None:
    # The supervisor decides when the broker stops: it sends SIGTERM at shutdown.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
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
        self._process = ctx.Process(target=_serve, args=(self.config,),
                                    name='queue-broker', daemon=True)
        self._process.start()
        logger.info('embedded broker started (pid %d): ingest %s, publish %s, control %s',
                    self._process.pid, self.config.ingest, self.config.publish,
                    self.config.control)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the broker to stop (SIGTERM), then kill it if it does not within ``timeout``."""
        if self._process is None:
            return
        if self._process.is_alive():
            os.kill(self._process.pid, signal.SIGTERM)
            self._process.join(timeout)
        if self._process.is_alive():
            logger.warning('embedded broker did not stop within %.0fs; killing it', timeout)
            self._process.kill()
            self._process.join()
        self._process = None
