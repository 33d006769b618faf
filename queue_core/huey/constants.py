"""Huey's constants: worker types and the empty-data marker."""
from ..consumer.config import WORKER_PROCESS, WORKER_THREAD

#: Accepted as a name only: greenlet workers are not supported (the consumer says so).
WORKER_GREENLET = 'greenlet'
WORKER_TYPES = (WORKER_THREAD, WORKER_GREENLET, WORKER_PROCESS)


class EmptyData:
    """Huey's marker for "no value stored" (``queue_core`` returns ``None`` to callers)."""


__all__ = ['WORKER_THREAD', 'WORKER_GREENLET', 'WORKER_PROCESS', 'WORKER_TYPES', 'EmptyData']
