"""The consumer daemon: a supervisor, its workers and its scheduler (``queue-consumer``)."""
from __future__ import annotations

from .config import ConsumerConfig
from .scheduler import Scheduler
from .supervisor import Supervisor

__all__ = ['ConsumerConfig', 'Scheduler', 'Supervisor']
