"""Where a worker is in its claimed tasks, kept in a small shared-memory file.

A worker that claims several tasks at once (prefetch) writes, before each task starts and
after it finishes, which task that is: a store into a memory-mapped file, no system call
and no storage round trip. When the worker dies, whoever recovers its in-flight records on
this host (its supervisor, or a later consumer) reads the file and knows which records
finished (dropped), which one was running (``INTERRUPTED``) and which never started (back
to the head of the queue, unchanged). Without the file (another host, a reboot) every
record counts as started, as before prefetch.

Layout, 64 bytes: a state byte, then the task's in-flight token in ASCII. The state is
set to ``WRITING`` around a change of token, so a worker killed in mid-write leaves a
state that reads as unknown.
"""
from __future__ import annotations

import contextlib
import mmap
import os
import tempfile
from dataclasses import dataclass

SIZE = 64
EMPTY, WRITING, RUNNING, FINISHED = 0, 1, 2, 3


def progress_dir() -> str:
    """``/dev/shm`` where it exists (memory, gone at reboot), else the temp directory."""
    shm = '/dev/shm'
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else tempfile.gettempdir()


def progress_path(owner: str) -> str:
    """The file of the worker named ``owner`` (``host:pid:suffix``) on this host."""
    safe = ''.join(ch if ch.isalnum() or ch in '.-_' else '_' for ch in owner)
    return os.path.join(progress_dir(), 'queue-core-progress-%s' % safe)


@dataclass(frozen=True)
class Position:
    """What a worker last said: ``state`` (``EMPTY``, ``RUNNING`` or ``FINISHED``) and
    the token of that task (``''`` when ``EMPTY``)."""

    state: int
    token: str


class Progress:
    """The writing side, owned by one worker."""

    def __init__(self, owner: str) -> None:
        self.path = progress_path(owner)
        # A fresh file of our own: never follow a link planted at the (shared) path.
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0)
        try:
            fd = os.open(self.path, flags, 0o600)
        except FileExistsError:  # left by a process that had this pid and suffix
            os.unlink(self.path)
            fd = os.open(self.path, flags, 0o600)
        try:
            os.ftruncate(fd, SIZE)
            self._map = mmap.mmap(fd, SIZE)
        finally:
            os.close(fd)

    def started(self, token: str) -> None:
        """``token``'s task is about to start."""
        self._set(RUNNING, token)

    def finished(self, token: str) -> None:
        """``token``'s task reached its end (its final event was emitted)."""
        self._set(FINISHED, token)

    def _set(self, state: int, token: str) -> None:
        raw = token.encode('ascii')[:SIZE - 2]
        self._map[0] = WRITING
        self._map[1:SIZE] = raw + b'\0' * (SIZE - 1 - len(raw))
        self._map[0] = state

    def remove(self) -> None:
        """Delete the file (the worker left with nothing in hand)."""
        self._map.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def read_position(owner: str) -> Position | None:
    """What ``owner`` last wrote, or ``None`` when unknown (no file, or a torn write)."""
    try:
        with open(progress_path(owner), 'rb') as handle:
            raw = handle.read(SIZE)
    except OSError:
        return None
    if len(raw) != SIZE or raw[0] not in (EMPTY, RUNNING, FINISHED):
        return None
    return Position(raw[0], raw[1:].rstrip(b'\0').decode('ascii', 'replace'))


def forget(owner: str) -> None:
    """Remove ``owner``'s file once its records are recovered."""
    with contextlib.suppress(OSError):
        os.unlink(progress_path(owner))
