"""``queue-consumer --bus EP --curve-server-key K --curve-keypair P``: a consumer publishes
to a CURVE broker that lists its key; a subscriber with a listed key sees the events."""
from __future__ import annotations

import os

import pytest

from scripts.support.polling import wait_until
from tests.end_to_end.consumer_harness import Run


signal_bus = pytest.importorskip('signal_bus')


def test_consumer_publishes_through_a_curve_broker(tmp_path, redis_url):
    from signal_bus import Broker, BrokerConfig, Subscriber
    from signal_bus.keys import generate_keypair

    keys = tmp_path / 'keys'
    _, broker_secret = generate_keypair(str(keys), 'broker')
    consumer_public, consumer_secret = generate_keypair(str(keys / 'consumer'), 'consumer')
    watcher_public, watcher_secret = generate_keypair(str(keys / 'watcher'), 'watcher')
    authorized = keys / 'authorized'
    authorized.mkdir()
    for public in (consumer_public, watcher_public):
        (authorized / os.path.basename(public)).write_bytes(open(public, 'rb').read())
    broker = Broker(BrokerConfig(ingest='tcp://127.0.0.1:*', publish='tcp://127.0.0.1:*',
                                 control='tcp://127.0.0.1:*', curve_secret_key=broker_secret,
                                 curve_authorized_keys=str(authorized))).start()
    run = Run(tmp_path, redis_url)
    sub = Subscriber(broker.endpoints.publish, control=broker.endpoints.control,
                     curve_server_key=str(keys / 'broker.key'), curve_keypair=watcher_secret)
    try:
        sub.wait_connected(timeout=20)
        run.consumer('-w', '1', '--bus', broker.endpoints.ingest,
                     '--curve-server-key', str(keys / 'broker.key'),
                     '--curve-keypair', consumer_secret)
        done = run.app.add(2, 3)
        assert done.get(blocking=True, timeout=60) == 5
        seen = []

        def completed():
            event = sub.receive(timeout=0.2)
            if event is not None and event.id == done.id:
                seen.append(event.signal)
            return 'complete' in seen

        wait_until(completed, 30, interval=0, message='the CURVE events\n' + run.logs())
        assert seen == ['executing', 'complete']
    finally:
        sub.close()
        run.close()
        broker.stop()
