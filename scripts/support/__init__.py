"""What the tests, the benchmarks and the fault campaign share: free loopback ports
(``ports``), polling with a deadline (``polling``), child processes in their own process
group and the environment they start with (``procs``), and a private ``redis-server``
(``redis_server``).

Not part of the product (pyproject.toml installs only ``queue_core`` and ``signal_bus``).
"""
from __future__ import annotations

import os

SCRIPTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(SCRIPTS_DIR)
