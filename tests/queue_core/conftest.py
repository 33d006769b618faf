"""Fixtures of the storage suite (tests/queue_core/test_storage*.py): a storage on each
backend in turn, and a second storage object on the same data."""
from __future__ import annotations

import pytest

from queue_core.storage import storage_from_url


@pytest.fixture
def storage(storage_url):
    """A storage for queue 'test' on each backend in turn."""
    store = storage_from_url(storage_url, 'test')
    yield store
    store.flush_all()
    store.close()


@pytest.fixture
def peer(storage, storage_url):
    """A second storage object on the same data (memory storages are private: the same one)."""
    if storage_url.startswith('memory'):
        yield storage
        return
    other = storage_from_url(storage_url, 'test')
    yield other
    other.close()
