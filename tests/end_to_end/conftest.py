"""End-to-end fixtures: ``run`` is one scenario (signal file, app, consumers) that stops
its consumers afterwards. The task apps under ``apps/`` import by their top-level names
(``pythonpath`` in pyproject.toml)."""
from __future__ import annotations

import pytest

from tests.end_to_end.consumer_harness import Run


@pytest.fixture
def run(tmp_path, redis_url):
    """A ``Run`` on the session's throwaway Redis."""
    scenario = Run(tmp_path, redis_url)
    yield scenario
    scenario.close()
