"""What every benchmark shares: consumers as real subprocesses, alternating rounds, medians
and the figures that become the table (a private Redis, free ports, polling and process
memory are ``scripts.support``).

Benchmarks run from this directory's parent's view: the apps they drive live in
``scripts/bench/apps`` and consumers are started with ``scripts/bench`` as their working
directory, so ``apps.ours.queue`` and ``apps.huey_app.huey`` import as a user's app would.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import signal
import statistics
import sys
import tempfile
import time
from typing import IO, Any, Callable, Iterable, Sequence

from scripts.support import REPO_ROOT, procs

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
OURS, HUEY = 'ours', 'huey'
HUEY_VERSION = '3.5.4'


def log(message: str, *args: Any) -> None:
    """Progress on standard error (standard output is for the figures)."""
    print('[bench %s] %s' % (time.strftime('%H:%M:%S'), message % args if args else message),
          file=sys.stderr, flush=True)


def import_app(name: str) -> Any:
    """Import ``apps.<module>`` under the name the consumers give it (they run from this
    directory, as a user's app), so the tasks this process enqueues carry the names the
    consumers know; the ``apps`` package is loaded from here without touching ``sys.path``."""
    if 'apps' not in sys.modules:
        folder = os.path.join(BENCH_DIR, 'apps')
        spec = importlib.util.spec_from_file_location(
            'apps', os.path.join(folder, '__init__.py'), submodule_search_locations=[folder])
        assert spec is not None and spec.loader is not None
        package = importlib.util.module_from_spec(spec)
        sys.modules['apps'] = package
        spec.loader.exec_module(package)
    return importlib.import_module(name)


# -- subprocesses ------------------------------------------------------------------------

def bench_env(redis_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment for a child: apps importable, the repository first on the path."""
    if redis_url is not None:
        extra['BENCH_REDIS_URL'] = redis_url
    # BENCH_CODE_ROOT runs the children against another checkout of the packages.
    return procs.child_env(BENCH_DIR, code_root=os.environ.get('BENCH_CODE_ROOT') or REPO_ROOT,
                           **extra)


def consumer_command(side: str, workers: int, bus: str | None = None) -> list[str]:
    """How a user starts each consumer: ours via its CLI, Huey via ``huey_consumer.py``."""
    if side == OURS:
        command = [sys.executable, '-m', 'queue_core.cli', 'apps.ours.queue',
                   '-w', str(workers), '-k', 'process', '-q']
        return command + (['--bus', bus] if bus else [])
    if bus:
        raise ValueError('Huey has no signal bus')
    import huey
    script = os.path.join(os.path.dirname(huey.__file__), 'bin', 'huey_consumer.py')
    return [sys.executable, script, 'apps.huey_app.huey', '-w', str(workers), '-k', 'process',
            '-q']


class Child(procs.Child):
    """A subprocess started at once in its own session (so its whole group can be
    stopped), run from the benchmark directory (so ``apps.*`` imports), logging to a
    temporary file that is shown when something goes wrong and removed by ``stop()``."""

    def __init__(self, command: Sequence[str], env: dict[str, str] | None = None,
                 stdin: int | IO[Any] | None = None, stdout: int | IO[Any] | None = None) -> None:
        with tempfile.NamedTemporaryFile(prefix='bench-child-', suffix='.log',
                                         delete=False) as logfile:
            log_path = logfile.name
        super().__init__(os.path.basename(command[0]), command, log_path, env=env or bench_env(), cwd=BENCH_DIR,
                         stdin=stdin, stdout=stdout)
        self.command = self.args
        self.start()

    @property
    def pid(self) -> int:
        """The child's process id."""
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self) -> None:
        """Raise (with the child's log) if it has exited."""
        if not self.alive():
            assert self.proc is not None
            raise RuntimeError('%s exited with status %s:\n%s'
                               % (' '.join(self.command), self.proc.returncode, self.log()))

    def log(self) -> str:
        """The last part of what the child wrote to its log."""
        return self.log_text()[-4000:]

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> int | None:
        """Send ``sig`` to the child's process group; kill the group if it lingers."""
        if self.alive():
            self.send_group(sig)
            if self.wait(timeout) is None:
                self.send_group(signal.SIGKILL)
                self.wait(10)
        # Whatever of the group survived its leader (workers of a killed consumer).
        self.send_group(signal.SIGKILL)
        os.unlink(self.log_path)
        assert self.proc is not None
        return self.proc.returncode


# -- rounds and statistics --------------------------------------------------------------

def alternate(rounds: int, runners: dict[str, Callable[[], Any]]) -> dict[str, list[Any]]:
    """Run each runner once per round, alternating which goes first, and collect results."""
    names = list(runners)
    results: dict[str, list[Any]] = {name: [] for name in names}
    for index in range(rounds):
        order = names if index % 2 == 0 else names[::-1]
        for name in order:
            log('round %d/%d: %s', index + 1, rounds, name)
            results[name].append(runners[name]())
    return results


def median(values: Iterable[float]) -> float:
    """The median of ``values``."""
    return float(statistics.median(list(values)))


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return float(ordered[index])


def median_of(records: Sequence[dict[str, Any]], key: str) -> float:
    """The median of one key over a list of per-round result maps."""
    return median(record[key] for record in records)


# -- figures ----------------------------------------------------------------------------

@dataclasses.dataclass
class Figure:
    """One line of the table: a measurement of ours, the reference it is compared with
    (Huey's figure, or ours in a baseline mode), and how the ratio meets the target."""

    bench: str
    metric: str
    unit: str
    ours: float
    ref: float | None = None
    ratio: float | None = None
    ratio_of: str = 'ours / Huey'
    ref_label: str = 'Huey 3.5.4'
    target: str = ''
    met: bool | None = None
    note: str = ''

    def line(self) -> str:
        """One line for the terminal."""
        parts = ['%-10s %-44s ours %s %s' % (self.bench, self.metric, fmt(self.ours), self.unit)]
        if self.ref is not None:
            parts.append('%s %s' % (self.ref_label, fmt(self.ref)))
        if self.ratio is not None:
            parts.append('ratio %.2fx (%s)' % (self.ratio, self.ratio_of))
        if self.target:
            parts.append('target %s: %s' % (self.target, verdict(self.met)))
        return ' | '.join(parts)


def fmt(value: float | None) -> str:
    """A number with sensible precision for the table."""
    if value is None:
        return '—'
    if value >= 1000:
        return '{:,.0f}'.format(value)
    if value >= 10:
        return '%.1f' % value
    return '%.2f' % value


def verdict(met: bool | None) -> str:
    """'met', 'NOT met' or '—'."""
    return '—' if met is None else 'met' if met else 'NOT met'


def paired_ratio(a: Sequence[float], b: Sequence[float]) -> tuple[float, str]:
    """The median of the per-round ratios ``a[i] / b[i]`` (rounds run back to back, so a
    slow spell on the machine hits both), and the ratios themselves for the note."""
    ratios = [x / y for x, y in zip(a, b) if y]
    if not ratios:
        return float('inf'), 'no rounds'
    return median(ratios), 'per-round ratios: ' + ', '.join('%.2f' % r for r in ratios)


def ratio(a: float, b: float) -> float:
    """``a / b``, or infinity when ``b`` is zero."""
    return a / b if b else float('inf')
