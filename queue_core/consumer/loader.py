"""Finding the application's queue from a dotted path such as ``myapp.tasks.huey``."""
from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import TYPE_CHECKING

from ..exceptions import ConfigurationError

if TYPE_CHECKING:  # pragma: no cover
    from ..api import TaskQueue


class AppImportError(ConfigurationError):
    """The application's module was found but raised while it was imported; ``details()``
    is the app's own traceback, which the CLI prints instead of a PYTHONPATH hint."""

    def __init__(self, module_name: str, exc: BaseException) -> None:
        super().__init__('importing %r raised %s: %s' % (module_name, type(exc).__name__, exc))
        self.exc = exc

    def details(self) -> str:
        """The traceback of the exception raised inside the application ('' for our own
        ``ConfigurationError``, such as a wrong storage URL: its message says it all)."""
        if isinstance(self.exc, ConfigurationError):
            return ''
        return ''.join(traceback.format_exception(type(self.exc), self.exc,
                                                  self.exc.__traceback__))


def _is_the_path(missing: str | None, module_name: str) -> bool:
    """Whether the module not found is ``module_name`` or one of its parent packages."""
    if not missing:
        return False
    return module_name == missing or module_name.startswith(missing + '.')


def load_queue(path: str) -> TaskQueue:
    """Import ``module.attribute`` (the current directory importable) and return the
    ``TaskQueue`` it names.

    Raises ``ConfigurationError`` saying what was wrong when the path does not resolve
    or names something other than a ``TaskQueue``, and ``AppImportError`` (a
    ``ConfigurationError``) when the module was found but raised while it was imported.
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
    except ModuleNotFoundError as exc:
        if not _is_the_path(exc.name, module_name):  # the app imports something missing
            raise AppImportError(module_name, exc) from exc
        raise ConfigurationError('cannot import module %r for %r: no module named %r; run '
                                 'the consumer from the directory that holds it or add it '
                                 'to PYTHONPATH' % (module_name, path, exc.name)) from exc
    except Exception as exc:  # raised by the app's own code while it was imported
        raise AppImportError(module_name, exc) from exc
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise ConfigurationError('module %r has no attribute %r; name the TaskQueue object, '
                                 'for example %s.huey' % (module_name, attr, module_name)) from None
    if not isinstance(obj, TaskQueue):
        raise ConfigurationError('%r is a %s, not a TaskQueue; name the TaskQueue object '
                                 'the tasks are registered on' % (path, type(obj).__name__))
    return obj
