"""A private ``redis-server`` on a free loopback port."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
from typing import Any

from .polling import poll
from .ports import free_port
from .procs import Child


class RedisServer(Child):
    """A private ``redis-server`` on a free loopback port, which may be stopped, stalled
    and started again on the same port.

    With ``appendonly=True`` it keeps its data in an append-only file (fsync always), so a
    restart loses nothing that was acknowledged. Its directory is ``workdir/redis`` (kept)
    or, without ``workdir``, a temporary one that ``close()`` removes.
    """

    def __init__(self, appendonly: bool = False, workdir: str | None = None) -> None:
        binary = shutil.which('redis-server')
        if binary is None:
            raise RuntimeError('redis-server is not installed; run scripts/setup.sh')
        self.appendonly = appendonly
        self.port = free_port()
        if workdir is None:
            self.dir, self.own_dir, log_path = tempfile.mkdtemp(prefix='redis-'), True, os.devnull
        else:
            self.dir, self.own_dir = os.path.join(workdir, 'redis'), False
            log_path = os.path.join(workdir, 'redis.out')
            os.makedirs(self.dir, exist_ok=True)
        args = [binary, '--port', str(self.port), '--bind', '127.0.0.1', '--dir', self.dir,
                '--save', '', '--daemonize', 'no', '--logfile', os.path.join(self.dir, 'redis.log')]
        args += (['--appendonly', 'yes', '--appendfsync', 'always'] if appendonly
                 else ['--appendonly', 'no'])
        super().__init__('redis', args, log_path, cwd=workdir or self.dir)

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return 'redis://127.0.0.1:%d/0' % self.port

    def url_with_timeout(self, socket_timeout: float) -> str:
        """The storage URL, with a short socket timeout so a stalled server is noticed."""
        return 'redis://127.0.0.1:%d/0?socket_timeout=%s&socket_connect_timeout=%s' % (
            self.port, socket_timeout, socket_timeout)

    def answers(self) -> bool:
        """Whether the server answers PING right now."""
        try:
            with socket.create_connection(('127.0.0.1', self.port), timeout=0.5) as sock:
                sock.sendall(b'PING\r\n')
                return sock.recv(16).startswith(b'+PONG')
        except OSError:
            return False

    def start_ready(self, timeout: float = 15.0) -> bool:
        """Start and wait until it answers PING; whether it did."""
        super().start()
        return bool(poll(self.answers, timeout, 0.02))

    def start(self) -> 'RedisServer':
        """Start the server and wait until it answers PING (``AssertionError`` if not)."""
        if not self.start_ready(10):
            raise AssertionError('timed out after 10.0s waiting for redis-server to answer '
                                 'PING on port %d' % self.port)
        return self

    def stop(self, kill: bool = False) -> None:
        """Stop the server and wait for it to exit: SIGTERM (it finishes its append-only
        file; SIGKILL if it lingers), or SIGKILL with ``kill=True``."""
        if kill or not self.alive():
            self.kill()
            return
        self.send(signal.SIGCONT)   # a stalled server finishes only once continued
        self.send(signal.SIGTERM)
        if self.wait(15) is None:
            self.kill()

    def restart(self) -> None:
        """Stop and start again on the same port (data kept only with ``appendonly``)."""
        self.stop()
        self.start()

    def _client(self) -> Any:
        import redis
        return redis.Redis(port=self.port)

    def flushall(self) -> None:
        """Empty this private server (never any other)."""
        client = self._client()
        client.flushall()
        client.close()

    def command_stats(self) -> dict[str, int]:
        """Calls per Redis command since the last ``reset_stats`` (``INFO commandstats``)."""
        client = self._client()
        info = client.info('commandstats')
        client.close()
        return {name.replace('cmdstat_', ''): int(value['calls']) for name, value in info.items()}

    def reset_stats(self) -> None:
        """Zero the server's command counters."""
        client = self._client()
        client.config_resetstat()
        client.close()

    def close(self) -> None:
        """Stop the server and remove its directory (unless it is under a ``workdir``)."""
        self.kill()
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> 'RedisServer':
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
