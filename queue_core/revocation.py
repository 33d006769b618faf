"""Revocation: the records that stop a task (by id) or every task of a name from running.

A revocation is a key-value record ``r:<id or registry name>`` holding ``(revoke_until,
once)``: until a time, forever (``None``), or for the next run only. A counter of live
revocations lets a worker skip the lookups entirely while there are none (SPEC §1).
"""
from __future__ import annotations

import datetime
from typing import Any, Protocol

from .clock import normalize_time
from .storage import Storage

REVOKE_PREFIX = 'r:'
#: Counter of live revocations; while it is 0 a worker skips the revocation lookups.
REVOCATIONS_COUNTER = 'revocations'


class RevocationOwner(Protocol):
    """What revocation needs of its queue (read on every call: immediate mode swaps the
    storage)."""

    storage: Storage
    serializer: Any
    utc: bool

    def now(self) -> datetime.datetime:
        """The queue's current time."""


class Revocations:
    """The revocation records in a queue's storage, written with its serializer."""

    def __init__(self, owner: RevocationOwner) -> None:
        self.owner = owner

    def revoke(self, name: str, revoke_until: datetime.datetime | None, once: bool) -> None:
        """Revoke ``name`` (a task id or a registry name) until a time, or once."""
        owner = self.owner
        if revoke_until is not None:
            revoke_until = normalize_time(revoke_until, utc=owner.utc)
        key, data = REVOKE_PREFIX + name, owner.serializer.serialize((revoke_until, once))
        if owner.storage.put_if_empty(key, data):
            owner.storage.incr(REVOCATIONS_COUNTER, 1)
        else:
            owner.storage.put_data(key, data)

    def restore(self, name: str) -> bool:
        """Remove the revocation of ``name``; returns whether there was one."""
        return self._remove(REVOKE_PREFIX + name)

    def _remove(self, key: str) -> bool:
        storage = self.owner.storage
        if not storage.delete_data(key):
            return False
        storage.incr(REVOCATIONS_COUNTER, -1)
        return True

    def any_revoked(self, names: list[str], timestamp: datetime.datetime | None,
                    peek: bool) -> bool:
        """Whether any of ``names`` is revoked at ``timestamp`` (now); without ``peek`` a
        once-only revocation that matched is used up and a lapsed one cleared."""
        keys = [REVOKE_PREFIX + name for name in names]
        found = self.owner.storage.peek_many(keys)
        return any(self._in_force(key, data, timestamp, peek)
                   for key, data in zip(keys, found) if data is not None)

    def _in_force(self, key: str, data: bytes, timestamp: datetime.datetime | None,
                  peek: bool) -> bool:
        revoke_until, once = self.owner.serializer.deserialize(data)
        if once:
            if not peek:
                self._remove(key)
            return True
        if revoke_until is None or revoke_until > (timestamp or self.owner.now()):
            return True
        if not peek:
            self._remove(key)  # lapsed: clear it, as Huey does
        return False
