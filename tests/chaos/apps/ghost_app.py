"""The same queue with a task the consumer of ``known_app`` does not know."""
import os

from queue_core import TaskQueue

q = TaskQueue('badinput', storage=os.environ['BAD_INPUT_STORAGE'])


@q.task()
def ghost():
    """Never importable by the consumer, which runs ``known_app``."""
    return 'boo'
