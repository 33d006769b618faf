"""A task as a plain map (the task message) and back.

Only non-default fields are written, to keep messages small. Nested pipeline steps
(``on_complete``/``on_error``) are nested maps.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from .task import Task

if TYPE_CHECKING:  # pragma: no cover
    from .task import TaskWrapper

_OPTIONAL = ('eta', 'retry_delay', 'retry_backoff', 'priority', 'expires', 'expires_at',
             'timeout', 'chord')


def task_to_map(task: Task) -> dict[str, Any]:
    """The message map of ``task`` (and its pipeline steps)."""
    message: dict[str, Any] = {'id': task.id, 'name': task.registry_name}
    if task.args:
        message['args'] = list(task.args)  # always a tuple again on the way back
    if task.kwargs:
        message['kwargs'] = task.kwargs
    if task.retries:
        message['retries'] = task.retries
    if task.tseq:
        message['tseq'] = task.tseq
    for field in _OPTIONAL:
        value = getattr(task, field)
        if value is not None:
            message[field] = value
    if task.on_complete is not None:
        message['on_complete'] = task_to_map(task.on_complete)
    if task.on_error is not None:
        message['on_error'] = task_to_map(task.on_error)
    return message


def task_from_map(message: dict[str, Any],
                  lookup: Callable[[str], 'TaskWrapper | None']) -> Task:
    """Rebuild a task from its message map; ``lookup`` finds the wrapper by registry name.

    An unknown name gives a task without a wrapper, whose execution fails with a clear error.
    """
    name = message['name']
    wrapper = lookup(name)
    nested = {key: task_from_map(message[key], lookup)
              for key in ('on_complete', 'on_error') if message.get(key)}
    optional: dict[str, Any] = {field: message.get(field) for field in _OPTIONAL
                                if field not in ('retry_delay',)}
    return Task(wrapper, message.get('args') or (), message.get('kwargs') or {},
                id=message['id'], registry_name=name,
                name=wrapper.name if wrapper else name.rsplit('.', 1)[-1],
                retries=message.get('retries', 0), tseq=message.get('tseq', 0),
                retry_delay=message.get('retry_delay', 0),
                on_complete=nested.get('on_complete'), on_error=nested.get('on_error'),
                **optional)
