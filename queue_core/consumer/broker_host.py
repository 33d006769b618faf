"""Hosting a signal broker in a child process of the consumer (``--broker``)."""
from __future__ import annotations

import logging
import multiprocessing
import os
import select
import signal
import threading
import time
from typing import Any

from ..exceptions import ConfigurationError

logger = logging.getLogger('queue_core.consumer')


#: The signal the supervisor stops its broker with. SIGINT and SIGTERM sent to the whole
#: process group are ignored, so the broker outlives the workers and carries their last
#: events (INTERRUPTED after SIGTERM, for example).
STOP_SIGNAL = signal.SIGUSR1
_BLOCKED = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, STOP_SIGNAL}
#: Environment variable naming a running broker child (``pid ingest``) across a re-exec.
ADOPT_ENV = 'QUEUE_CONSUMER_BROKER'
#: Longest the supervisor waits for a new broker to report its sockets bound.
BIND_TIMEOUT = 10.0


def _watch_parent(parent: int) -> None:
    """Stop the broker when the supervisor is gone (killed outright)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), STOP_SIGNAL)


def _report_bound(broker: Any, report: int, lock: threading.Lock, state: dict) -> None:
    """Tell the supervisor (one line on the ``report`` pipe) once the sockets are bound."""
    deadline = time.monotonic() + BIND_TIMEOUT
    while time.monotonic() < deadline and not state.get('done'):
        try:
            broker.endpoints
        except RuntimeError:
            time.sleep(0.01)
            continue
        with lock:
            if not state.get('done'):
                state['done'] = True
                os.write(report, b'ok %d\n' % broker.epoch)
        return


def _serve(config: Any, parent: int, report: int) -> int:
    """The broker child's life; returns its exit status (0 after STOP_SIGNAL)."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    signal.signal(STOP_SIGNAL, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _BLOCKED)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    from ..bus_adapter import Broker
    broker = Broker(config)
    lock = threading.Lock()
    state: dict[str, bool] = {}
    threading.Thread(target=_report_bound, args=(broker, report, lock, state),
                     daemon=True).start()
    try:
        broker.run()
    except KeyboardInterrupt:
        return 0
    except BaseException as exc:
        with lock:
            told = state.get('done')
            state['done'] = True
            if not told:  # it never bound: the supervisor prints this line and exits
                os.write(report, ('error %s: %s\n' % (type(exc).__name__, exc)).encode())
                return 3
        logger.exception('embedded broker failed')
        return 1
    logger.error('embedded broker stopped by itself')
    return 1


class EmbeddedBroker:
    """A broker child process started before the workers and stopped after them.

    ``start()`` returns once the broker's sockets are bound and raises
    ``ConfigurationError`` (one line) when they cannot be; ``check()``, called by the
    supervisor's loop, restarts a broker process that died (subscribers then see a new
    ``epoch``). Across a re-exec of the consumer (SIGHUP) the broker process keeps
    running: ``handover()`` names it in the environment and the new consumer adopts it,
    so the bus keeps its epoch, ring and sockets.
    """

    def __init__(self, ingest: str | None) -> None:
        from ..bus_adapter import broker_config
        self.config = broker_config(ingest)
        self.pid: int | None = None
        self.epoch: int | None = None
        self._retry_at = 0.0

    @property
    def ingest(self) -> str:
        """The endpoint publishers push to."""
        return self.config.ingest

    def start(self) -> None:
        """Adopt the broker a re-exec left running, or fork one and wait until it is bound."""
        if self._adopt():
            return
        read, write = os.pipe()
        # Blocked across the fork, so a signal sent before the child set its handlers waits.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED)
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child process
                status = 1
                try:
                    os.close(read)
                    multiprocessing.current_process().name = 'queue-broker'
                    status = _serve(self.config, os.getppid(), write)
                finally:
                    os._exit(status)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        os.close(write)
        self.pid = pid
        try:
            line = _read_line(read, BIND_TIMEOUT)
        finally:
            os.close(read)
        if not line.startswith('ok '):
            self.stop()
            raise ConfigurationError('the embedded broker cannot bind %s, %s and %s: %s' % (
                self.config.ingest, self.config.publish, self.config.control,
                line[len('error '):] if line else 'no answer within %.0fs' % BIND_TIMEOUT))
        self.epoch = int(line.split()[1])
        logger.info('embedded broker started (pid %d, epoch %d): ingest %s, publish %s, '
                    'control %s', pid, self.epoch, self.config.ingest, self.config.publish,
                    self.config.control)

    def _adopt(self) -> bool:
        """Take over the broker child a previous image of this process left running."""
        value = os.environ.pop(ADOPT_ENV, '')
        pid_text, _, ingest = value.partition(' ')
        if not pid_text.isdigit() or ingest != self.config.ingest:
            return False
        pid = int(pid_text)
        try:
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                return False
        except ChildProcessError:
            return False
        self.pid = pid
        logger.info('embedded broker (pid %d) kept across the restart: ingest %s', pid,
                    self.config.ingest)
        return True

    def handover(self) -> None:
        """Leave the broker running for the re-executed consumer, which adopts it."""
        if self.pid is not None:
            os.environ[ADOPT_ENV] = '%d %s' % (self.pid, self.config.ingest)
            self.pid = None

    def alive(self) -> bool:
        """Whether the broker process runs (reaping it if it ended)."""
        return self.pid is not None and self._reap() is None

    def _reap(self) -> int | None:
        """The exit status once the child ended (reaped), ``None`` while it runs."""
        assert self.pid is not None
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return -1
        return None if pid == 0 else os.waitstatus_to_exitcode(status)

    def check(self) -> None:
        """Restart the broker if its process died; log what happened."""
        if self.pid is None or time.monotonic() < self._retry_at:
            return
        status = self._reap()
        if status is None:
            return
        logger.error('embedded broker (pid %d) died (exit status %s); restarting it',
                     self.pid, status)
        self.pid = None
        try:
            self.start()
        except ConfigurationError as exc:
            logger.error('%s; trying again in 5s', exc)
            self._retry_at = time.monotonic() + 5.0

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the broker to stop, then kill it if it does not within ``timeout``."""
        if self.pid is None:
            return
        if self._reap() is None:
            os.kill(self.pid, STOP_SIGNAL)
            deadline = time.monotonic() + timeout
            while self._reap() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if self._reap() is None:
                logger.warning('embedded broker did not stop within %.0fs; killing it',
                               timeout)
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
        self.pid = None


def _read_line(fd: int, timeout: float) -> str:
    """One line from ``fd`` within ``timeout`` seconds ('' on timeout or end of file)."""
    data = b''
    deadline = time.monotonic() + timeout
    while not data.endswith(b'\n'):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode('utf-8', 'replace').strip()
