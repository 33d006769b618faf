"""The faults. Each takes the rig and a seeded RNG, does one bounded thing, and returns
``(ok, detail)``: whether what it broke came back (or, for bad input, was counted)."""
from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from typing import Any, Callable

from ..support.polling import poll
from ..support.procs import Child
from . import frames
from .rig import Rig

Outcome = tuple[bool, dict[str, Any]]


def kill_worker(rig: Rig, rng: random.Random) -> Outcome:
    """SIGKILL one worker process; the supervisor must replace it."""
    pids = rig.consumer.children()
    if not pids:
        return False, {'error': 'the consumer has no worker to kill'}
    pid = rng.choice(sorted(pids))
    os.kill(pid, signal.SIGKILL)
    replaced = poll(lambda: pid not in rig.consumer.children()
                        and len(rig.consumer.children()) >= rig.settings.workers, 20)
    return bool(replaced), {'pid': pid}


def kill_consumer(rig: Rig, rng: random.Random) -> Outcome:
    """SIGKILL the supervisor and every worker, then start a new consumer."""
    rig.consumer.send_group(signal.SIGKILL)
    rig.consumer.wait(10)
    return rig.consumer.start_ready(rig.settings.workers), {}


def _stop_consumer(rig: Rig, signum: int, timeout: float) -> Outcome:
    rig.consumer.send(signum)
    status = rig.consumer.wait(timeout)
    detail: dict[str, Any] = {'exit': status}
    if status is None:
        detail['forced'] = True
    rig.consumer.kill()     # nothing of the old group may survive into the next run
    restarted = rig.consumer.start_ready(rig.settings.workers)
    return restarted and status == 0, detail


def term_consumer(rig: Rig, rng: random.Random) -> Outcome:
    """SIGTERM (immediate stop: running tasks interrupted), then a restart."""
    return _stop_consumer(rig, signal.SIGTERM, 30)


def int_consumer(rig: Rig, rng: random.Random) -> Outcome:
    """SIGINT (graceful stop: running tasks finish), then a restart."""
    return _stop_consumer(rig, signal.SIGINT, 30)


def restart_redis(rig: Rig, rng: random.Random) -> Outcome:
    """Stop Redis (it keeps its data in the append-only file) and start it again."""
    rig.redis.stop()
    return rig.redis.start_ready(), {}


def stall_redis(rig: Rig, rng: random.Random) -> Outcome:
    """SIGSTOP Redis for longer than the clients' socket timeout, then SIGCONT: connections
    stay open but nothing answers, so every storage call times out meanwhile."""
    seconds = round(rng.uniform(*rig.settings.pause), 2)
    rig.redis.send(signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        rig.redis.send(signal.SIGCONT)
    return bool(poll(rig.redis.answers, 10)), {'seconds': seconds}


def restart_broker(rig: Rig, rng: random.Random) -> Outcome:
    """SIGKILL the broker, leave it down a moment, start it again on the same ports."""
    seconds = round(rng.uniform(*rig.settings.outage), 2)
    rig.broker.kill()
    time.sleep(seconds)
    return rig.broker.start_ready(), {'down': seconds}


def restart_subscriber(rig: Rig, rng: random.Random) -> Outcome:
    """SIGKILL one subscriber and start it again; it continues its log from the ring."""
    sub = rng.choice(rig.subs)
    sub.kill()
    time.sleep(round(rng.uniform(0.2, 1.0), 2))
    return sub.start_ready(), {'subscriber': sub.label}


def bad_frames(rig: Rig, rng: random.Random) -> Outcome:
    """Malformed, truncated, oversized and wrong-typed frames to the ingest; the broker
    must count each one (``malformed`` / ``oversized``) and keep serving."""
    before = rig.broker.stats()
    if before is None:
        return False, {'error': 'the broker did not answer before the volley'}
    batch = frames.make_batch(rng, rig.settings.max_event_bytes, rig.settings.bad_per_kind)
    frames.send_batch(rig.broker.ingest, batch)

    def counted() -> dict[str, Any] | None:
        stats = rig.broker.stats()
        if stats is None:
            return None
        done = (stats['malformed'] - before['malformed'] >= batch.expect_malformed
                and stats['oversized'] - before['oversized'] >= batch.expect_oversized)
        return stats if done else None

    after = poll(counted, 15) or rig.broker.stats() or before
    detail = {'sent': batch.kinds, 'expect_malformed': batch.expect_malformed,
              'expect_oversized': batch.expect_oversized,
              'counted_malformed': after['malformed'] - before['malformed'],
              'counted_oversized': after['oversized'] - before['oversized']}
    ok = (detail['counted_malformed'] == batch.expect_malformed
          and detail['counted_oversized'] == batch.expect_oversized)
    return ok, detail


def flood(rig: Rig, rng: random.Random) -> Outcome:
    """Several publishers at once, each as fast as it can: far beyond the broker's rate."""
    floods = []
    for index in range(rig.settings.flood_publishers):
        log = os.path.join(rig.workdir, 'flood-%d.out' % len(rig.children.items))
        child = Child('flood-%d' % index, [sys.executable, '-m', 'scripts.chaos.flood', '--ingest',
                                           rig.broker.ingest, '--count',
                                           str(rig.settings.flood_count)]
                      + (['--settle'] if rig.settings.flood_settle else []), log)
        rig.children.add(child).start()
        floods.append(child)
    published = dropped = 0
    ok = True
    for child in floods:
        if child.wait(60) != 0:
            child.kill()
            ok = False
            continue
        lines = [line for line in child.log_text().splitlines() if line.startswith('{')]
        counts = json.loads(lines[-1])
        published += counts['published']
        dropped += counts['dropped']
    # Done once the subscribers have what the broker released (and its loss reports),
    # so that the next fault does not cut the flood's consequences short.
    settled = bool(poll(rig.caught_up, 60, interval=0.5))
    return ok and settled, {'published': published, 'dropped': dropped}


INJECTORS: dict[str, Callable[[Rig, random.Random], Outcome]] = {
    'kill-worker': kill_worker,
    'kill-consumer': kill_consumer,
    'term-consumer': term_consumer,
    'int-consumer': int_consumer,
    'restart-redis': restart_redis,
    'stall-redis': stall_redis,
    'restart-broker': restart_broker,
    'restart-subscriber': restart_subscriber,
    'bad-frames': bad_frames,
    'flood': flood,
}
