"""Fixtures for the Huey drop-in tests: a ``MemoryHuey`` driven in-process."""
from __future__ import annotations

import pytest

from queue_core.huey import MemoryHuey


@pytest.fixture
def huey():
    """A fresh in-memory ``MemoryHuey``, as Huey's own tests use."""
    return MemoryHuey('compat', utc=False)
