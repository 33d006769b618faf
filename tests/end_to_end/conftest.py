"""End-to-end fixtures: the task apps under ``apps/`` are importable, and ``run`` is one
scenario (signal file, app, consumers) that stops its consumers afterwards."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), 'apps'))

from consumer_harness import Run  # noqa: E402


@pytest.fixture
def run(tmp_path, redis_url):
    """A ``Run`` on the session's throwaway Redis."""
    scenario = Run(tmp_path, redis_url)
    yield scenario
    scenario.close()
