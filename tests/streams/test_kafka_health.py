"""A broker that is down is reported by health() and retried, never raised."""

from __future__ import annotations

import pytest

from streams.envelope import Event
from streams.errors import BatchPublishFailed, StreamsUnavailable
from tests.streams._tansu import free_port
from tests.streams.conftest import eventually, make_kafka

pytest.importorskip("aiokafka")


async def test_health_reports_a_broker_that_is_down() -> None:
    closed = f"127.0.0.1:{free_port()}"  # nothing listens here
    streams = make_kafka(closed, publish_timeout=0.3)
    await streams.start()  # does not raise
    try:

        async def reported() -> bool:
            return "cannot reach" in (await streams.health())[1]

        await eventually(reported)
        ok, detail = await streams.health()
        assert not ok
        assert closed in detail

        with pytest.raises(StreamsUnavailable):
            await streams.publish("anything", "k", Event(type="t", tenant_id="x", key="k"))
        value = Event(type="t", tenant_id="x", key="k").encode()
        with pytest.raises(BatchPublishFailed) as failed:
            await streams.publish_batch([("anything", "k", value), ("other", "j", value)])
        assert failed.value.failed == {0, 1}, "nothing was acknowledged"
    finally:
        await streams.stop()
    assert (await streams.health()) == (False, "kafka: stopped")


async def test_subscription_waits_for_the_broker_instead_of_crashing() -> None:
    streams = make_kafka(f"127.0.0.1:{free_port()}")
    await streams.start()
    try:

        async def never(_: Event) -> None:
            raise AssertionError("no broker, no events")

        sub = await streams.subscribe(["anything"], "nobody", never)

        async def reported() -> bool:
            return "cannot join" in (await streams.health())[1]

        await eventually(reported)
        assert sub.running
    finally:
        await streams.stop()
