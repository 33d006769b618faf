"""Imported first by a benchmark run as a file (``python scripts/bench/<name>.py`` puts only
``scripts/bench`` on ``sys.path``): the repository root goes on ``sys.path``, so that
``scripts.bench``, ``scripts.support`` and the product import as they do under pytest and
with ``python -m scripts.bench.<name>``. The one place the benchmarks touch ``sys.path``."""
from __future__ import annotations

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
