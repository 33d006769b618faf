"""Huey 3.5.4 names over ``queue_core``: an application written for Huey runs once its
imports say ``queue_core.huey`` instead of ``huey`` (see the README, "Moving from Huey").

Submodules mirror Huey's: ``api``, ``signals``, ``exceptions``, ``storage``, ``serializer``,
``utils`` and ``constants``."""
from .api import (SKIPPED, Error, Huey, MemoryHuey, PriorityRedisHuey, RedisExpireHuey,
                  RedisHuey, SqliteHuey, chord, crontab, group)
from .exceptions import CancelExecution, RetryTask

__version__ = '3.5.4'

__all__ = ['Huey', 'MemoryHuey', 'SqliteHuey', 'RedisHuey', 'PriorityRedisHuey',
           'RedisExpireHuey', 'chord', 'crontab', 'group', 'CancelExecution', 'RetryTask',
           'Error', 'SKIPPED']
