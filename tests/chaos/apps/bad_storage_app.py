"""A queue whose storage URL is wrong (not a port number)."""
from queue_core import TaskQueue

q = TaskQueue('badinput', storage='redis://127.0.0.1:sixthousand/0')
