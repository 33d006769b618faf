"""Groups and chords: several tasks enqueued together, optionally with a callback that
receives the list of their results (appended to the callback's own arguments, as in Huey).

A chord member may be a task, a pipeline (its last step reports to the chord) or another
chord (its callback's last step reports)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Union

from .execution import CHORD_PREFIX, CHORD_TTL
from .result import ChordResult, Result, ResultGroup
from .task import Task, TaskWrapper, signature

if TYPE_CHECKING:  # pragma: no cover
    from .api import TaskQueue

Member = Union[Task, 'Chord']


def _members(items: tuple[Any, ...]) -> list[Member]:
    if len(items) == 1 and not isinstance(items[0], (Task, Chord)):
        items = tuple(items[0])
    for item in items:
        if isinstance(item, Group):
            raise TypeError('a group cannot be a chord member: use group(...).then(callback) '
                            'to make it a chord first')
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
        (a list, in member order) appended to ``args``."""
        return Chord(self.tasks, signature(callback, args, kwargs))

    def error(self, task: Task | TaskWrapper, *args: Any, **kwargs: Any) -> 'Group':
        """Add an error callback to every member; returns the group."""
        for member in self.tasks:
            member.error(task, *args, **kwargs)
        return self


class Chord:
    """Members plus a callback. A member's outcome is its value, an ``Error`` when it
    failed for good, or ``SKIPPED`` when it never ran (revoked, expired, canceled)."""

    def __init__(self, tasks: Iterable[Member], callback: Task | TaskWrapper,
                 *args: Any, **kwargs: Any) -> None:
        self.tasks = _members(tuple(tasks))
        self.callback = signature(callback, args, kwargs)

    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def id(self) -> str:
        """The callback's id, which is the chord's result key."""
        return self.callback.id

    def then(self, task: Task | TaskWrapper, *args: Any, **kwargs: Any) -> 'Chord':
        """Run ``task`` after the callback (a pipeline after the chord); returns the chord."""
        self.callback.then(task, *args, **kwargs)
        return self

    def error(self, task: Task | TaskWrapper, *args: Any, **kwargs: Any) -> 'Chord':
        """Add an error callback to the chord's callback; returns the chord."""
        self.callback.error(task, *args, **kwargs)
        return self


def group(*tasks: Any) -> Group:
    """Tasks to enqueue together: ``group([t1, t2])`` or ``group(t1, t2)``."""
    return Group(*tasks)


def chord(tasks: Iterable[Member], callback: Task | TaskWrapper, *args: Any,
          **kwargs: Any) -> Chord:
    """``callback`` runs with the list of the members' results once they have all finished."""
    return Chord(tasks, callback, *args, **kwargs)


def _tail(task: Task) -> Task:
    while task.on_complete is not None:
        task = task.on_complete
    return task


def enqueue_chord(queue: 'TaskQueue', item: Chord,
                  membership: dict[str, Any] | None = None) -> ChordResult | None:
    """Enqueue a chord's members (the callback waits in storage until the last one ends);
    an empty chord enqueues its callback at once with ``[]``."""
    callback = item.callback
    _tail(callback).chord = membership
    if not item.tasks:
        step = queue.copy_task(callback)  # a chord enqueued again must not gather arguments
        step.extend_data(([],))
        queue.enqueue(step)
        return _chord_handle(queue, callback, [])
    size = len(item.tasks)
    queue.storage.put_data('%s%s.cb' % (CHORD_PREFIX, callback.id),
                           queue.serialize_task(callback), ttl=CHORD_TTL)
    handles: list[Result] = []
    for index, member in enumerate(item.tasks):
        info = {'id': callback.id, 'index': index, 'size': size}
        if isinstance(member, Chord):
            enqueue_chord(queue, member, info)
            handles.append(Result(queue, _tail(member.callback)))
        else:
            _tail(member).chord = info
            queue.enqueue(member)
            handles.append(Result(queue, _tail(member)))
    return _chord_handle(queue, callback, handles)


def _chord_handle(queue: 'TaskQueue', callback: Task,
                  handles: list[Result]) -> ChordResult | None:
    if not queue.results:
        return None
    return ChordResult(queue, callback, ResultGroup(handles))
