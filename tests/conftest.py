"""Shared fixtures: a session-wide throwaway Redis and per-test storage URLs."""
from __future__ import annotations

import os
import sys

import pytest

# The repository root first: tests/queue_core (a folder of tests) must never shadow the
# queue_core package, whichever way pytest was started.
sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from helpers import RedisServer  # noqa: E402


@pytest.fixture(scope='session')
def redis_server():
    """One private redis-server for the whole run (tests that restart it start their own)."""
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server):
    """A clean database on the session's throwaway Redis."""
    redis_server.flushall()
    return redis_server.url


@pytest.fixture
def sqlite_url(tmp_path):
    """A SQLite file in this test's own directory."""
    return 'sqlite:///' + str(tmp_path / 'queue.db')


@pytest.fixture(params=['memory', 'sqlite', 'redis'])
def storage_url(request, tmp_path):
    """Each of the three backends in turn."""
    if request.param == 'memory':
        return 'memory://'
    if request.param == 'sqlite':
        return 'sqlite:///' + str(tmp_path / 'queue.db')
    server = request.getfixturevalue('redis_server')
    server.flushall()
    return server.url
