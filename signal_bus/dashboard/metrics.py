"""``/metrics``: the history's totals and histograms in Prometheus text format.

Every value is read from the history (or the bus watch) at scrape time, so counters are the
history's own totals: they continue after a restart and pruning never lowers them.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

from prometheus_client.core import (CollectorRegistry, CounterMetricFamily,
                                    GaugeMetricFamily, HistogramMetricFamily)
from prometheus_client.exposition import generate_latest

from ..history import BUCKETS, History
from .watch import BusWatch


class HistoryCollector:
    """A ``prometheus_client`` collector over a ``History`` and a ``BusWatch``."""

    def __init__(self, history: History, watch: BusWatch,
                 queue_counts: Callable[[], dict[str, Any] | None]) -> None:
        self.history = history
        self.watch = watch
        self.queue_counts = queue_counts

    def collect(self) -> Iterator[Any]:
        """The metric families of SPEC §8."""
        events = CounterMetricFamily('queue_core_events', 'Events stored, by signal and task',
                                     labels=['signal', 'task', 'queue'])
        for row in self.history.totals():
            events.add_metric([row['signal'], row['task'] or '', row['queue'] or ''],
                              row['count'])
        yield events
        yield CounterMetricFamily('queue_core_events_lost', 'Events the history knows it '
                                  'missed', value=self.history.lost_total())
        yield from self._histograms()
        yield GaugeMetricFamily('queue_core_tasks_in_flight', 'Tasks without a final event '
                                'yet', value=self.history.inflight_count())
        up = 1 if self.watch.broker_state() == 'connected' else 0
        yield GaugeMetricFamily('queue_core_broker_up', 'Whether the broker is heard',
                                value=up)
        yield self._workers()
        counts = self.queue_counts()
        if counts is not None:
            yield GaugeMetricFamily('queue_core_queue_pending', 'Tasks waiting in the queue',
                                    value=counts['pending'])
            yield GaugeMetricFamily('queue_core_queue_scheduled', 'Tasks in the schedule',
                                    value=counts['scheduled'])

    def _histograms(self) -> Iterator[HistogramMetricFamily]:
        rows: dict[tuple[str, str], list[Any]] = {}
        for row in self.history.durations():
            slot = rows.setdefault((row['metric'], row['task'] or ''),
                                   [[0] * len(BUCKETS), 0.0])
            slot[0][min(row['bucket'], len(BUCKETS) - 1)] += row['count']
            slot[1] += row['total']
        for metric, help_text in (('runtime', 'Seconds from executing to the outcome'),
                                  ('wait', 'Seconds from enqueued to executing')):
            family = HistogramMetricFamily('queue_core_task_%s_seconds' % metric, help_text,
                                           labels=['task'])
            for (kind, task), (counts, total) in sorted(rows.items()):
                if kind != metric:
                    continue
                cumulative, buckets = 0, []
                for bound, count in zip(BUCKETS, counts):
                    cumulative += count
                    buckets.append(('+Inf' if bound == float('inf') else repr(bound),
                                    cumulative))
                family.add_metric([task], buckets, total)
            yield family

    def _workers(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily('queue_core_workers', 'Workers of each live consumer',
                                   labels=['queue', 'host'])
        sums: dict[tuple[str, str], int] = {}
        for consumer in self.watch.consumers():
            key = (str(consumer.get('queue') or ''), str(consumer.get('host') or ''))
            sums[key] = sums.get(key, 0) + int(consumer.get('workers') or 0)
        for (queue, host), workers in sorted(sums.items()):
            family.add_metric([queue, host], workers)
        return family


def render(collector: HistoryCollector) -> bytes:
    """The Prometheus text exposition of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
