"""Finding the application's queue from a dotted path such as ``myapp.tasks.huey``."""
from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from ..exceptions import ConfigurationError


def load_queue(path: str) -> Any:
    """Import ``module.attribute`` (the current directory importable) and return the
    ``TaskQueue`` it names.

    Raises ``ConfigurationError`` saying what was wrong when the path does not resolve
    or names something other than a ``TaskQueue``.
    """
    from ..api import TaskQueue

    module_name, _, attr = path.rpartition('.')
    if not module_name or not attr:
        raise ConfigurationError('%r is not of the form module.queue_object, for example '
                                 'myapp.tasks.huey' % (path,))
    cwd = os.getcwd()
    if cwd not in sys.path and '' not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an app that fails to import is a configuration problem
        raise ConfigurationError('cannot import module %r for %r: %s: %s; run the consumer '
                                 'from the directory that holds it or add it to PYTHONPATH'
                                 % (module_name, path, type(exc).__name__, exc)) from exc
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise ConfigurationError('module %r has no attribute %r; name the TaskQueue object, '
                                 'for example %s.huey' % (module_name, attr, module_name)) from None
    if not isinstance(obj, TaskQueue):
        raise ConfigurationError('%r is a %s, not a TaskQueue; name the TaskQueue object '
                                 'the tasks are registered on' % (path, type(obj).__name__))
    return obj
