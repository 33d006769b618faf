"""One campaign: start the system, run the workload while injecting faults in a seeded
order, drain, collect the evidence and reconcile. Every child is killed at the end."""
from __future__ import annotations

import importlib
import json
import os
import random
import signal
import sys
import time
from typing import Any

from ..support.polling import poll
from .evidence import SubscriberLog, read_jsonl, read_storage
from .injectors import INJECTORS
from .reconcile import Inputs, Result, reconcile
from .rig import Rig, Settings
from .workload import Workload


def plan(seed: int, count: int) -> list[str]:
    """The injection order: rounds, each a seeded shuffle of every fault, so that every
    fault is injected once before any is injected twice."""
    rng = random.Random(seed)
    order: list[str] = []
    while len(order) < count:
        names = sorted(INJECTORS)
        rng.shuffle(names)
        order.extend(names)
    return order[:count]


def say(text: str) -> None:
    """A progress line on standard error."""
    print('chaos: %s' % text, file=sys.stderr, flush=True)


def inject(rig: Rig, settings: Settings, workload: Workload,
           min_count: int) -> list[dict[str, Any]]:
    """Inject faults until ``settings.seconds`` pass (and at least ``min_count`` ran).
    A fault counts as survived when what it broke came back and a fresh task then ran
    to completion (the probe). Each is recorded in ``injections.jsonl``."""
    rng = random.Random(settings.seed * 7919 + 1)
    deadline = time.monotonic() + settings.seconds
    records: list[dict[str, Any]] = []
    log = open(os.path.join(rig.workdir, 'injections.jsonl'), 'a', buffering=1)
    for name in plan(settings.seed, settings.max_injections):
        if time.monotonic() >= deadline and len(records) >= min_count:
            break
        down = rig.ensure_up()
        if down:
            say('restarted what was down before the next fault: %s' % ', '.join(down))
        t0 = time.time()
        try:
            ok, detail = INJECTORS[name](rig, rng)
        except Exception as exc:  # a fault that could not be injected is reported, not fatal
            ok, detail = False, {'error': '%s: %s' % (type(exc).__name__, exc)}
        if not workload.probe(60):
            ok, detail['probe'] = False, 'no task completed within 60 s after the fault (%s)' % (
                workload.probe_errors[-1:] or 'enqueue kept failing')
        records.append({'name': name, 't0': t0, 't1': time.time(), 'ok': ok,
                        'detail': detail})
        log.write(json.dumps(records[-1]) + '\n')
        say('%-18s %s %s' % (name, 'ok ' if ok else 'FAILED', json.dumps(detail)))
        pause = rng.uniform(*settings.gap)
        time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
    log.close()
    return records


def load_app(storage_url: str) -> Any:
    """The workload app, imported as the consumer imports it, on the campaign's Redis."""
    from queue_core.storage import storage_from_url
    os.environ['CHAOS_STORAGE'] = storage_url
    app = importlib.import_module('scripts.chaos.workload_app')
    app.queue.storage = storage_from_url(storage_url, app.queue.name)
    return app


def drain(app: Any, ids: list[str], timeout: float, idle: float = 10.0) -> bool:
    """Wait until every task ended in storage and nothing is left queued or in flight;
    or until nothing is left anywhere for ``idle`` seconds (what has not ended by then
    never will: it vanished). Whether everything ended."""
    quiet_since: list[float] = []

    def done() -> bool:
        try:
            state = read_storage(app.queue, ids)
        except Exception:
            return False
        unfinished = [i for i in ids if i not in state.outcome
                      or state.outcome[i] == 'retrying']
        if any(state.leftover.values()):
            quiet_since.clear()
        elif not quiet_since:
            quiet_since.append(time.monotonic())
        empty_long = bool(quiet_since) and time.monotonic() - quiet_since[0] > idle
        return not unfinished and not any(state.leftover.values()) or empty_long
    poll(done, timeout, interval=0.5)
    state = read_storage(app.queue, ids)
    return all(i in state.outcome and state.outcome[i] != 'retrying' for i in ids)


def catch_up(rig: Rig, timeout: float) -> dict[str, Any] | None:
    """Wait until both subscribers logged the broker's last event; its final stats."""
    return poll(rig.caught_up, timeout, interval=0.5) or rig.broker.stats()


def stop_all(rig: Rig) -> None:
    """Stop subscribers, consumer and broker the polite way (they are killed later anyway)."""
    for child, signum in [(sub, signal.SIGTERM) for sub in rig.subs] + [
            (rig.consumer, signal.SIGINT), (rig.broker, signal.SIGTERM)]:
        child.send(signum)
    for child in rig.subs + [rig.consumer, rig.broker]:
        child.wait(20)


def collect(rig: Rig, app: Any, workload: Workload, injections: list[dict[str, Any]],
            final: dict[str, Any] | None) -> Inputs:
    """Read every piece of evidence."""
    ids = [row['id'] for row in workload.enqueued + workload.failed]
    return Inputs(enqueued=list(workload.enqueued), failed=list(workload.failed),
                  executions=read_jsonl(rig.exec_log),
                  logs=[SubscriberLog.from_rows(sub.label, read_jsonl(sub.events_path))
                        for sub in rig.subs],
                  storage=read_storage(app.queue, ids), injections=injections,
                  flood_dropped=sum(inj['detail'].get('dropped', 0) for inj in injections
                                    if inj['name'] == 'flood'),
                  final_epoch=final['epoch'] if final else None,
                  final_last_seq=int(final['last_seq']) if final else 0)


def run(settings: Settings, workdir: str, min_injections: int = 0) -> Result:
    """The whole campaign; returns the reconciliation (``RuntimeError`` if it cannot start)."""
    rig = Rig(workdir, settings)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    workload: Workload | None = None
    publisher = None
    try:
        say('starting redis-server, signal-broker, 2 subscribers, queue-consumer in %s'
            % workdir)
        rig.start()
        app = load_app(rig.storage_url)
        publisher = app.queue.attach_bus(rig.broker.ingest)
        workload = Workload(app, settings.rate, random.Random(settings.seed),
                            os.path.join(workdir, 'enqueued.jsonl'))
        workload.start()
        injections = inject(rig, settings, workload, min_injections)
        workload.stop()
        say('injections over; draining (restarted: %s)' % (rig.ensure_up() or 'nothing'))
        ids = [row['id'] for row in workload.enqueued]
        if not drain(app, ids, settings.drain_timeout):
            say('some tasks never ended (nothing was left queued, scheduled or in flight '
                'for 10 s, or %.0f s passed)' % settings.drain_timeout)
        final = catch_up(rig, 30)
        result = reconcile(collect(rig, app, workload, injections, final))
        stop_all(rig)
        return result
    finally:
        if workload is not None:
            workload.stop()
        if publisher is not None:
            _detach(publisher)
        rig.children.kill_all()
        signal.signal(signal.SIGTERM, previous)


def _detach(publisher: Any) -> None:
    app = sys.modules.get('scripts.chaos.workload_app')
    if app is not None:
        app.queue.remove_signal_sink(publisher)
    publisher.close()


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt('SIGTERM')

