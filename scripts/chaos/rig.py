"""Everything the campaign runs: Redis, the broker, two subscribers and the consumer."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..support.procs import child_env
from ..support.redis_server import RedisServer
from .evidence import read_tail
from .procs import BrokerProc, Children, ConsumerProc, SubscriberProc


@dataclass(frozen=True)
class Settings:
    """The campaign's knobs (times in seconds)."""

    seconds: float = 180.0
    seed: int = 1
    rate: float = 6.0
    workers: int = 2
    lease: float = 3.0
    #: Redis client timeout; a stall longer than this makes storage calls fail.
    socket_timeout: float = 1.5
    pause: tuple[float, float] = (2.5, 4.0)
    outage: tuple[float, float] = (0.3, 1.5)
    gap: tuple[float, float] = (0.5, 2.0)
    max_injections: int = 1000
    max_event_bytes: int = 256 * 1024
    flood_publishers: int = 3
    flood_count: int = 20000
    #: Flood publishers repeat their last event until the socket takes it.
    flood_settle: bool = False
    bad_per_kind: int = 20
    drain_timeout: float = 90.0


class Rig:
    """The running system under test; ``children.kill_all()`` ends every process of it."""

    def __init__(self, workdir: str, settings: Settings) -> None:
        self.workdir = workdir
        self.settings = settings
        self.children = Children()
        self.redis = RedisServer(appendonly=True, workdir=workdir)
        self.children.add(self.redis)
        self.broker = BrokerProc(workdir, settings.max_event_bytes)
        self.children.add(self.broker)
        self.subs = [SubscriberProc(workdir, label, self.broker) for label in ('a', 'b')]
        for sub in self.subs:
            self.children.add(sub)
        self.storage_url = self.redis.url_with_timeout(settings.socket_timeout)
        self.exec_log = os.path.join(workdir, 'executions.jsonl')
        env = child_env(CHAOS_STORAGE=self.storage_url, CHAOS_EXEC_LOG=self.exec_log)
        self.consumer = ConsumerProc(workdir, env, self.broker.ingest, settings.workers,
                                     settings.lease)
        self.children.add(self.consumer)

    def start(self) -> None:
        """Start every part and wait until each is ready; ``RuntimeError`` if one is not."""
        steps = [('redis-server', self.redis.start_ready),
                 ('signal-broker', self.broker.start_ready)]
        steps += [('subscriber ' + sub.label, sub.start_ready) for sub in self.subs]
        steps.append(('queue-consumer',
                      lambda: self.consumer.start_ready(self.settings.workers)))
        for name, start in steps:
            if not start():
                raise RuntimeError('%s did not become ready; see the logs in %s'
                                   % (name, self.workdir))

    def ensure_up(self) -> list[str]:
        """Restart whatever is not running (before the final drain); names of those."""
        restarted = []
        if not self.redis.answers():
            self.redis.kill()
            self.redis.start_ready()
            restarted.append('redis-server')
        if not self.broker.alive():
            self.broker.start_ready()
            restarted.append('signal-broker')
        for sub in self.subs:
            if not sub.alive():
                sub.start_ready()
                restarted.append('subscriber ' + sub.label)
        if not self.consumer.alive():
            self.consumer.kill()
            self.consumer.start_ready(self.settings.workers)
            restarted.append('queue-consumer')
        return restarted

    def caught_up(self) -> dict[str, Any] | None:
        """The broker's stats if both subscribers logged its last event, else ``None``."""
        stats = self.broker.stats()
        if stats is None:
            return None
        for sub in self.subs:
            seqs = [row['seq'] for row in read_tail(sub.events_path)
                    if row.get('k') == 'e' and row['ep'] == stats['epoch']]
            if max(seqs, default=0) < stats['last_seq']:
                return None
        return stats
