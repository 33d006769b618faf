"""The benchmark application for Huey 3.5.4: the same no-op task on Redis.

``huey_consumer.py apps.huey_app.huey`` reads the Redis URL from ``BENCH_REDIS_URL``; the
benchmark process itself calls ``build(url)``.
"""
from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse


def noop(n: int = 0) -> bool:
    """Does nothing and returns True, so that a result is stored."""
    return True


def build(url: str) -> tuple[Any, Any]:
    """A ``RedisHuey`` named ``bench`` on ``url`` and its ``noop`` task wrapper."""
    from huey import RedisHuey

    parsed = urlparse(url)
    huey = RedisHuey('bench', host=parsed.hostname, port=parsed.port)
    return huey, huey.task()(noop)


def __getattr__(name: str) -> Any:
    if name == 'huey':
        huey, _ = build(os.environ['BENCH_REDIS_URL'])
        globals()['huey'] = huey
        return huey
    raise AttributeError('module %r has no attribute %r' % (__name__, name))
