"""The fault and bad-input campaign behind ``scripts/chaos.py``.

Modules: ``procs`` (the broker, subscribers and consumer as child processes in their own
process groups, on ``scripts.support``), ``workload_app`` (the queue the consumer runs),
``workload`` (the steady stream of tasks), ``subscriber`` (a subscriber process that logs
every event and every reported loss), ``flood`` (a publisher that sends faster than the
broker takes), ``frames`` (hostile frames), ``injectors`` (the faults), ``reconcile`` (the
final accounting) and ``campaign`` (the whole run).
"""
