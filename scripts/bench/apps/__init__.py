"""Tiny applications the benchmarks drive, one per queue, doing exactly the same work."""
