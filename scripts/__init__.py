"""What lives beside the product and is not installed with it: the demo, example
subscribers, the benchmarks (``scripts.bench``), the fault campaign (``scripts.chaos``) and
the support package they and the tests share (``scripts.support``).

The repository root must be on ``sys.path`` to import these: pytest puts it there
(``pythonpath`` in pyproject.toml), and each script run as a file does it once itself.
"""
