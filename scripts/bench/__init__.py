"""The benchmarks (docs/benchmarks.md): each module a benchmark that runs as
``python scripts/bench/<name>.py`` (or ``python -m scripts.bench.<name>``); ``run_all`` runs
them all and writes the table. ``common`` and ``bus_tools`` are what they share beyond
``scripts.support``; ``apps/`` holds the task apps the consumers run (from this folder, as a
user's app)."""
