"""The test suite; a package so its shared helpers import as ``tests.<module>`` (the
repository root is on ``sys.path`` through ``pythonpath`` in pyproject.toml)."""
