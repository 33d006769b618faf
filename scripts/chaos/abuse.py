"""The "abusive clients" phase: a real ``signal-broker``, one healthy publisher and one
healthy subscriber, and the attacks of ``attacks.py`` one after the other.

Verdict: the broker is alive and answers ``stats`` after every attack, its resident memory
(sampled every 50 ms from ``/proc``) never passes the ceiling, and the healthy subscriber
logged every event of the healthy publisher or heard of at least as many lost events as
are missing from its log.
"""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..support.polling import poll
from .attacks import ATTACKS, Endpoints, Scale
from .evidence import SubscriberLog, read_jsonl
from .procs import BrokerProc, Children, SubscriberProc

#: SPEC §7 "Resource ceilings": with the defaults, under 1 GiB whatever such clients do.
CEILING_BYTES = 1 << 30
HEALTHY_INTERVAL = 0.005


@dataclass
class AttackRow:
    """What one attack did and how the broker came out of it."""

    name: str
    what: str = ''
    peak_rss: int = 0
    alive: bool = False
    answered: bool = False
    internal_errors: Any = None
    seconds: float = 0.0


@dataclass
class AbuseResult:
    """The phase's findings."""

    rows: list[AttackRow] = field(default_factory=list)
    peak_rss: int = 0
    ceiling: int = CEILING_BYTES
    healthy_sent: int = 0
    healthy_seen: int = 0
    reported_lost: int = 0
    subscriber_alive: bool = False
    final_stats: dict[str, Any] = field(default_factory=dict)

    @property
    def missing(self) -> int:
        """Healthy events absent from the healthy subscriber's log."""
        return self.healthy_sent - self.healthy_seen

    @property
    def passed(self) -> bool:
        """Alive and answering throughout, under the ceiling, every miss counted."""
        return (all(r.alive and r.answered for r in self.rows) and bool(self.rows)
                and self.subscriber_alive
                and self.peak_rss <= self.ceiling and self.missing <= self.reported_lost)


class RssSampler:
    """Samples a process's resident set size in a thread; ``take_peak()`` resets it."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval = pid, interval
        self.peak = self.overall = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            rss = rss_bytes(self.pid)
            self.peak, self.overall = max(self.peak, rss), max(self.overall, rss)

    def take_peak(self) -> int:
        """The peak since the last call (or the start)."""
        peak, self.peak = max(self.peak, rss_bytes(self.pid)), 0
        return peak

    def stop(self) -> None:
        """End the sampling thread."""
        self._stop.set()
        self._thread.join(2)


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` in bytes (0 once it is gone)."""
    try:
        with open('/proc/%d/status' % pid) as handle:
            for line in handle:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class HealthyPublisher:
    """A well-behaved publisher in a thread: one ``complete`` event every 5 ms."""

    registry_name, name, args, kwargs, retries, tseq = 'chaos.healthy', 'healthy', (), {}, 0, None

    def __init__(self, ingest: str) -> None:
        from signal_bus import Publisher
        self.publisher = Publisher(ingest)
        self.sent = 0
        self.id = ''
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(HEALTHY_INTERVAL):
            self.id = 'healthy-%d' % self.sent
            self.publisher.publish('complete', self)
            self.sent += 1

    def stop(self) -> int:
        """Stop publishing, close (what is queued leaves); the number of events published."""
        self._stop.set()
        self._thread.join(5)
        self.publisher.close()
        return self.sent


def run_abuse(workdir: str, scale: Scale, seed: int = 1,
              say: Any = lambda text: None) -> AbuseResult:
    """Start the broker and the healthy pair, run every attack, collect the verdict."""
    children = Children()
    broker = children.add(BrokerProc(workdir, 256 * 1024))
    sub = children.add(SubscriberProc(workdir, 'healthy', broker))
    result = AbuseResult()
    try:
        if not broker.start_ready() or not sub.start_ready():
            raise RuntimeError('the broker or the healthy subscriber did not start; see %s'
                               % workdir)
        sampler = RssSampler(broker.pid or 0)
        healthy = HealthyPublisher(broker.ingest)
        endpoints = Endpoints(broker.ingest, broker.publish, broker.control)
        rng = random.Random(seed)
        for name, attack in ATTACKS.items():
            say('abusive clients: %s' % name)
            result.rows.append(_attack(name, attack, endpoints, scale, rng, broker, sampler))
        result.healthy_sent = healthy.stop()
        result.final_stats = _caught_up(broker, sub) or {}
        result.subscriber_alive = sub.alive()
        sampler.stop()
        result.peak_rss = sampler.overall
        _account(result, sub.events_path)
    finally:
        children.kill_all()
    return result


def _attack(name: str, attack: Any, endpoints: Endpoints, scale: Scale, rng: random.Random,
            broker: BrokerProc, sampler: RssSampler) -> AttackRow:
    """Run one attack; then check the broker is alive and answers within 5 s."""
    row = AttackRow(name)
    sampler.take_peak()
    started = time.monotonic()
    try:
        row.what = attack(endpoints, scale, rng, lambda: broker.stats(2.0))
    except Exception as exc:  # the attacker's failure is reported, the phase goes on
        row.what = 'attacker failed: %s: %s' % (type(exc).__name__, exc)
    stats = broker.stats(5.0)
    row.seconds = time.monotonic() - started
    row.peak_rss = sampler.take_peak()
    row.alive = broker.alive()
    row.answered = stats is not None
    row.internal_errors = (stats or {}).get('internal_errors', 'n/a')
    return row


def _caught_up(broker: BrokerProc, sub: SubscriberProc) -> dict[str, Any] | None:
    """The broker's last stats once the healthy subscriber logged its last event (30 s)."""
    answer: dict[str, Any] = {}

    def logged_all() -> bool:
        stats = broker.stats()
        if stats is None:
            return False
        answer.update(stats)
        log = SubscriberLog.from_rows(sub.label, read_jsonl(sub.events_path))
        return max(log.seqs(stats['epoch']), default=0) >= stats['last_seq']

    return answer if poll(logged_all, 30.0, interval=0.2) else None


def _account(result: AbuseResult, events_path: str) -> None:
    """Count the healthy events the subscriber logged and the losses it heard of."""
    rows = read_jsonl(events_path)
    seen = {row['id'] for row in rows
            if row.get('k') == 'e' and str(row.get('id', '')).startswith('healthy-')}
    result.healthy_seen = len(seen)
    result.reported_lost = sum(int(row['count']) for row in rows
                               if row.get('k') == 'loss' and row.get('count') is not None)


def table(result: AbuseResult, header: str) -> str:
    """The phase's table (Markdown), with the verdict."""
    mb = 1024 * 1024
    lines = [header, '',
             '| attack | what | broker peak RSS | alive | stats answered | internal errors |',
             '|---|---|---|---|---|---|']
    for row in result.rows:
        lines.append('| %s | %s | %.0f MB | %s | %s | %s |' % (
            row.name, row.what, row.peak_rss / mb, 'yes' if row.alive else 'NO',
            'yes' if row.answered else 'NO', row.internal_errors))
    stats = result.final_stats
    lines += ['',
              'Broker peak RSS over the phase: %.0f MB against a ceiling of %.0f MB%s.' % (
                  result.peak_rss / mb, result.ceiling / mb,
                  '' if 'ring_bytes' not in stats else ' (ring %.1f MB at the end)'
                  % (stats['ring_bytes'] / mb)),
              'Healthy subscriber: %s; %d of %d healthy events logged, %d missing, %d lost events '
              'reported by the bus (%s).' % (
                  'ran throughout' if result.subscriber_alive else 'DIED (see its log)',
                  result.healthy_seen, result.healthy_sent, result.missing,
                  result.reported_lost, 'every miss counted' if result.missing
                  <= result.reported_lost else 'UNCOUNTED LOSS'),
              'Verdict: %s' % ('PASS' if result.passed else 'FAIL')]
    return '\n'.join(lines)


def scaled(factor: float) -> Scale:
    """The default scale multiplied by ``factor`` (the CI form uses a fraction)."""
    base = Scale()
    return Scale(**{name: max(1, int(getattr(base, name) * factor))
                    if name != 'large_event_bytes' else base.large_event_bytes
                    for name in base.__dataclass_fields__})

