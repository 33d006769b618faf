"""A queue named ``badinput`` on the storage in ``BAD_INPUT_STORAGE``, knowing one task."""
import os

from queue_core import TaskQueue

q = TaskQueue('badinput', storage=os.environ['BAD_INPUT_STORAGE'])


@q.task()
def add(a, b):
    """The one task this consumer knows."""
    return a + b
