"""A real ``signal-dashboard`` process for tests, and plain HTTP calls to it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

from scripts.support.polling import wait_until
from scripts.support.ports import free_port


class DashboardProcess:
    """``signal-dashboard`` on a free loopback port, fed by ``broker``, with its history
    in ``folder`` (or at ``history``); ``extra`` are more command-line arguments."""

    def __init__(self, folder: Any, broker: Any, *extra: str, history: str | None = None) -> None:
        self.port = free_port()
        self.history = history or 'sqlite:///' + str(folder / 'history.db')
        self.log = open(os.path.join(str(folder), 'dashboard-%d.log' % self.port), 'w+')
        self.args = [sys.executable, '-m', 'signal_bus.dashboard.cli',
                     '--connect', broker.endpoints.publish,
                     '--control', broker.endpoints.control, '--history', self.history,
                     '--http', '127.0.0.1:%d' % self.port, *extra]
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return 'http://127.0.0.1:%d' % self.port

    def start(self) -> 'DashboardProcess':
        """Start it and wait until ``/healthz`` answers."""
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=self.log)
        wait_until(self._healthy, timeout=20, message='the dashboard to answer /healthz')
        return self

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            self.log.seek(0)
            raise AssertionError('the dashboard exited: %s' % self.log.read())
        try:
            return self.get('/healthz')[0] == 200
        except OSError:
            return False

    def get(self, path: str, token: str | None = None, method: str = 'GET',
            body: Any = None, headers: dict | None = None) -> tuple[int, str]:
        """``(status, text)`` of one request."""
        request = urllib.request.Request(self.url + path, method=method,
                                         headers=dict(headers or {}))
        if token is not None:
            request.add_header('Authorization', 'Bearer ' + token)
        if body is not None:
            request.data = json.dumps(body).encode()
            request.add_header('Content-Type', 'application/json')
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def json(self, path: str, token: str | None = None) -> Any:
        """The JSON answer of a GET that must succeed."""
        status, text = self.get(path, token)
        assert status == 200, (status, text)
        return json.loads(text)

    def stored(self, count: int, timeout: float = 20.0) -> None:
        """Wait until the history has stored up to ``seq`` ``count``."""
        wait_until(lambda: self.json('/healthz')['last_seq'] >= count, timeout=timeout,
                   message='the dashboard to store seq %d' % count)

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> int | None:
        """SIGTERM and wait; the exit status."""
        if self.proc is None:
            return None
        self.proc.terminate()
        code = self.proc.wait(20)
        self.proc = None
        return code
