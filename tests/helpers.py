"""Test helpers: a throwaway Redis server, polling with deadlines, and queue drivers."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any, Callable


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01,
               message: str = 'condition') -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('timed out after %.1fs waiting for %s' % (timeout, message))
        time.sleep(interval)


class RedisServer:
    """A private ``redis-server`` on a free loopback port, which tests may stop and restart.

    With ``appendonly=True`` it keeps its data in an append-only file (fsync always), so a
    restart loses nothing that was acknowledged.
    """

    def __init__(self, appendonly: bool = False) -> None:
        binary = shutil.which('redis-server')
        if binary is None:
            raise RuntimeError('redis-server is not installed; run scripts/setup.sh')
        self.binary = binary
        self.appendonly = appendonly
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix='redis-test-')
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return 'redis://127.0.0.1:%d/0' % self.port

    def start(self) -> 'RedisServer':
        """Start the server and wait until it answers PING."""
        args = [self.binary, '--port', str(self.port), '--bind', '127.0.0.1',
                '--dir', self.dir, '--save', '', '--daemonize', 'no',
                '--logfile', os.path.join(self.dir, 'redis.log')]
        if self.appendonly:
            args += ['--appendonly', 'yes', '--appendfsync', 'always']
        else:
            args += ['--appendonly', 'no']
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._answers, timeout=10, message='redis-server to answer PING')
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(('127.0.0.1', self.port), timeout=0.5) as sock:
                sock.sendall(b'PING\r\n')
                return sock.recv(16).startswith(b'+PONG')
        except OSError:
            return False

    def stop(self, kill: bool = False) -> None:
        """Stop the server (SIGKILL with ``kill=True``) and wait for it to exit."""
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same port (data kept only with ``appendonly``)."""
        self.stop()
        self.start()

    def flushall(self) -> None:
        """Empty this throwaway server (never any other)."""
        import redis
        client = redis.Redis(port=self.port)
        client.flushall()
        client.close()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop(kill=True)
        shutil.rmtree(self.dir, ignore_errors=True)
