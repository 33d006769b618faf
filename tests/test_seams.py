"""The one seam between the queue and the bus (README "Layout"): ``queue_core`` reaches
``signal_bus`` only through ``queue_core.bus_adapter``, loaded on first use, and the
bus's own modules take from the queue only ``queue_core.signals``."""
from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _imports(path: pathlib.Path) -> set[str]:
    """Every module ``path`` imports, at any depth (absolute names only)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_queue_reaches_the_bus_only_through_its_adapter():
    reaching = {str(path.relative_to(ROOT)): sorted(
        name for name in _imports(path) if name.split('.')[0] == 'signal_bus')
        for path in (ROOT / 'queue_core').rglob('*.py')
        if path.name != 'bus_adapter.py'}
    assert {path: names for path, names in reaching.items() if names} == {}


def test_the_bus_takes_only_the_signal_names_from_the_queue():
    # The dashboard is an application, like the consumer: it may use the queue's storage.
    reaching = {str(path.relative_to(ROOT)): sorted(
        name for name in _imports(path)
        if name.split('.')[0] == 'queue_core' and name != 'queue_core.signals')
        for path in (ROOT / 'signal_bus').rglob('*.py') if 'dashboard' not in path.parts}
    assert {path: names for path, names in reaching.items() if names} == {}


def test_importing_the_queue_and_making_one_loads_no_bus():
    code = ('import sys, queue_core; queue_core.TaskQueue("seam", storage="memory://"); '
            'print(sorted(m for m in ("zmq", "signal_bus", "queue_core.bus_adapter") '
            'if m in sys.modules))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == '[]'
