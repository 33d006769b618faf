"""Groups and chords: several tasks enqueued together, optionally with a callback that
receives the list of their results."""
from __future__ import annotations

from typing import Any, Iterable, Union

from .task import Task, TaskWrapper

Member = Union[Task, 'Chord']


def _members(items: tuple[Any, ...]) -> list[Member]:
    if len(items) == 1 and not isinstance(items[0], (Task, Chord)):
        items = tuple(items[0])
    for item in items:
        if not isinstance(item, (Task, Chord)):
            raise TypeError('group members must be tasks (use wrapper.s(...)) or chords, '
                            'not %r' % (item,))
    return list(items)


class Group:
    """Tasks enqueued together; ``.then(callback)`` makes a chord of them."""

    def __init__(self, *tasks: Any) -> None:
        self.tasks = _members(tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def then(self, callback: Task | TaskWrapper, *args: Any, **kwargs: Any) -> 'Chord':
        """A chord: ``callback`` runs once every member has finished, with their results
        (a list, in member order) as its first argument."""
        return Chord(self.tasks, callback, *args, **kwargs)


class Chord:
    """Members plus a callback. A member's outcome is its value, an ``Error`` when it
    failed for good, or ``SKIPPED`` when it never ran (revoked, expired, canceled)."""

    def __init__(self, tasks: Iterable[Member], callback: Task | TaskWrapper,
                 *args: Any, **kwargs: Any) -> None:
        self.tasks = _members(tuple(tasks))
        self.callback = callback if isinstance(callback, Task) else callback.s(*args, **kwargs)

    @property
    def id(self) -> str:
        """The callback's id, which is the chord's result key."""
        return self.callback.id


def group(*tasks: Any) -> Group:
    """Tasks to enqueue together: ``group([t1, t2])`` or ``group(t1, t2)``."""
    return Group(*tasks)


def chord(tasks: Iterable[Member], callback: Task | TaskWrapper, *args: Any,
          **kwargs: Any) -> Chord:
    """``callback`` runs with the list of the members' results once they have all finished."""
    return Chord(tasks, callback, *args, **kwargs)
