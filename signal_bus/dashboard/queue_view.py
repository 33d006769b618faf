"""With ``--storage``: the queue's own counts and the revoke/restore actions.

The dashboard is an application like the consumer, so it opens the queue through
``queue_core`` (SPEC §8). One lock serialises use of the storage connection, which the
web server's worker threads share.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from queue_core import TaskQueue


class QueueView:
    """Counts and actions on one named queue in one storage."""

    def __init__(self, storage: str, name: str) -> None:
        self.queue = TaskQueue(name, storage=storage)
        self._lock = threading.Lock()

    def counts(self) -> dict[str, Any]:
        """``pending``, ``scheduled`` and ``in_flight`` counts."""
        with self._lock:
            return {'pending': self.queue.pending_count(),
                    'scheduled': self.queue.scheduled_count(),
                    'in_flight': len(self.queue.in_flight())}

    def act(self, action: str, body: Any) -> dict[str, Any]:
        """Revoke or restore ``{"id": task_id}`` or ``{"task": registry name}``; raises
        ``ValueError`` for a body that names neither."""
        if not isinstance(body, dict) or not (isinstance(body.get('id'), str)
                                              or isinstance(body.get('task'), str)):
            raise ValueError('the body must be {"id": task_id} or {"task": name}')
        with self._lock:
            if action == 'revoke':
                if 'id' in body:
                    self.queue.revoke_by_id(body['id'])
                else:
                    self.queue.revoke_all(body['task'])
                return {'ok': True, 'revoked': body, 'ts': time.time()}
            removed = (self.queue.restore_by_id(body['id']) if 'id' in body
                       else self.queue.restore_all(body['task']))
            return {'ok': True, 'restored': removed}

    def close(self) -> None:
        """Close the storage."""
        with self._lock:
            self.queue.storage.close()
