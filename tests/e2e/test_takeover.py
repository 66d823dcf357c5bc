"""SIGKILL of the instance that owns a conversation: the other instance takes it over and
acknowledges the next message within 10 seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.test_two_instances import (
    PASSWORD,
    Instance,
    Member,
    call,
    create_tenant,
    service_env,
    two_instances,
)
from tests.support.databases import truncate_all

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.postgres]
TAKEOVER_SECONDS = 10.0


@pytest.fixture
async def shipped_service(
    postgres_url: str, private_tansu: str, tmp_path: Path
) -> AsyncIterator[tuple[Instance, Instance, dict[str, str]]]:
    await truncate_all(postgres_url)
    env = service_env(postgres_url, private_tansu)
    # The shipped session timeout (6 s) and heartbeat, not the suite's shortened ones. tansu
    # holds every JoinGroup 3 s (Kafka does not hold a rejoin of a live group), so here a
    # takeover is the session + ~3.5 s: 9.2-9.5 s measured, against about 6.5 s on Kafka. The
    # session cannot ship shorter: a stock broker refuses a session under 6 s.
    del env["MITRA_STREAMS_KAFKA_SESSION_TIMEOUT_MS"]
    del env["MITRA_STREAMS_KAFKA_HEARTBEAT_INTERVAL_MS"]
    async with two_instances(env, tmp_path) as running:
        yield running


async def forwarded(http: aiohttp.ClientSession, instance: Instance) -> int:
    async with http.get(f"{instance.base}/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith("mitra_chat_forwarded_total"):
                return int(float(line.split()[-1]))
    return 0


async def test_the_survivor_acks_within_10_s_of_the_owner_being_killed(
    shipped_service: tuple[Instance, Instance, dict[str, str]],
) -> None:
    first, second, env = shipped_service
    _, admin_email = await create_tenant(env, "kill")
    async with aiohttp.ClientSession() as http:
        login = {"identifier": admin_email, "password": PASSWORD}
        admin = (await call(http, "POST", f"{first.base}/api/v1/auth/login", json=login))["data"]
        agent_email = admin_email.replace("admin@", "agent@")
        created = await call(
            http, "POST", f"{first.base}/api/v1/users", admin["access_token"],
            json={"email": agent_email, "password": PASSWORD, "first_name": "A",
                  "last_name": "B", "role": "senior_agent"},
        )  # fmt: skip
        login = {"identifier": agent_email, "password": PASSWORD}
        agent = (await call(http, "POST", f"{second.base}/api/v1/auth/login", json=login))["data"]
        opened = await call(
            http, "POST", f"{first.base}/api/v1/conversations", admin["access_token"],
            json={"participant_ids": [created["data"]["id"]]},
        )  # fmt: skip
        cid = opened["data"]["id"]
        on_first = await Member.connect(http, first.base, admin["access_token"], cid)
        on_second = await Member.connect(http, second.base, agent["access_token"], cid)
        await on_first.say(cid, "before-1")
        await on_second.say(cid, "before-2")
        owner_is_first = await forwarded(http, first) == 0
        owner, survivor = (first, second) if owner_is_first else (second, first)
        member = on_second if owner_is_first else on_first

        owner.process.kill()  # SIGKILL: no goodbye to the group
        killed_at = time.monotonic()
        # Sent once, as a client does: it waits on the owner's partition until the survivor
        # takes it over, and the ack comes back through the survivor.
        await member.send(
            {"type": "send", "conversation_id": cid, "client_msg_id": "after-kill",
             "body": "after the kill"}
        )  # fmt: skip
        await member.until(lambda: member.acked("after-kill"), within=30)
        took = time.monotonic() - killed_at
        assert took < TAKEOVER_SECONDS, f"the survivor acked after {took:.1f} s"
        await member.until(lambda: 3 in member.seqs())
        assert member.seqs() == [1, 2, 3]
        assert survivor.process.poll() is None
        await on_first.close()
        await on_second.close()
        await asyncio.to_thread(owner.process.wait)
