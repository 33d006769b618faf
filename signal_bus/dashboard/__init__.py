"""``signal-dashboard``: the live view of the bus (SPEC §8).

``recorder`` (the history subscriber) and ``watch`` (heartbeats, consumers, broker stats)
need only ZeroMQ; ``server`` (pages, JSON API, server-sent events, ``/metrics``) needs the
``queue-core[dashboard]`` extra (aiohttp, prometheus_client). Nothing is imported here, so
``signal_bus.dashboard.recorder`` works without the extra.
"""
