"""WhatsApp across two `mitra serve` processes over PostgreSQL and Kafka (tansu): a webhook taken
by one instance reaches the agent's socket on the other, the reply reaches Meta once, and Meta's
status, taken by either, moves it forward on the socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
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
from tests.support.fake_graph import FakeGraph
from tests.support.whatsapp import (
    ACCESS_TOKEN,
    APP_SECRET,
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    text,
    webhook_body,
)

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.postgres]
CUSTOMER_WA_ID = "919876543210"


@pytest.fixture
async def whatsapp_service(
    postgres_url: str, private_tansu: str, tmp_path: Path, graph: tuple[FakeGraph, str]
) -> AsyncIterator[tuple[Instance, Instance, dict[str, str]]]:
    await truncate_all(postgres_url)
    env = {**service_env(postgres_url, private_tansu), "MITRA_WHATSAPP_GRAPH_BASE_URL": graph[1]}
    async with two_instances(env, tmp_path) as running:
        yield running


async def post_signed(http: aiohttp.ClientSession, url: str, body: dict[str, object]) -> int:
    from mitra.whatsapp.webhook import SIGNATURE_HEADER, sign

    data = orjson.dumps(body)
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(data, APP_SECRET)}
    async with http.post(url, data=data, headers=headers) as response:
        return response.status


async def test_whatsapp_in_and_out_across_two_instances(
    whatsapp_service: tuple[Instance, Instance, dict[str, str]],
    graph: tuple[FakeGraph, str],
) -> None:
    first, second, env = whatsapp_service
    fake, _ = graph
    slug, admin_email = await create_tenant(env, "wa")
    async with aiohttp.ClientSession() as http:
        login = {"identifier": admin_email, "password": PASSWORD}
        admin = (await call(http, "POST", f"{first.base}/api/v1/auth/login", json=login))["data"]
        me = await call(http, "GET", f"{first.base}/api/v1/users/me", admin["access_token"])
        tenant_id = me["data"]["tenant_id"]
        agent_email = f"agent@{slug}.example.com"
        created = await call(
            http, "POST", f"{first.base}/api/v1/users", admin["access_token"],
            json={"email": agent_email, "password": PASSWORD, "first_name": "A",
                  "last_name": "B", "role": "senior_agent"},
        )  # fmt: skip
        await call(
            http, "PUT", f"{first.base}/api/v1/integrations/whatsapp", admin["access_token"],
            json={"phone_number_id": PHONE_NUMBER_ID, "business_number": "+919820000001",
                  "default_agent_id": created["data"]["id"], "access_token": ACCESS_TOKEN,
                  "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN},
        )  # fmt: skip
        login = {"identifier": agent_email, "password": PASSWORD}
        agent = (await call(http, "POST", f"{second.base}/api/v1/auth/login", json=login))["data"]
        customer = await call(
            http, "POST", f"{second.base}/api/v1/customers", agent["access_token"],
            json={"full_name": "Ravi Kumar", "phone": "+91 98765 43210"},
        )  # fmt: skip
        opened = await call(
            http, "POST", f"{second.base}/api/v1/conversations", agent["access_token"],
            json={"customer_id": customer["data"]["id"]},
        )  # fmt: skip
        cid = opened["data"]["id"]
        socket = await Member.connect(http, second.base, agent["access_token"], cid)

        webhook = f"/api/v1/webhooks/whatsapp/{tenant_id}"
        body = webhook_body([text("wamid.TWO1", CUSTOMER_WA_ID, "is my premium paid?")])
        assert await post_signed(http, first.base + webhook, body) == 200
        assert await post_signed(http, first.base + webhook, body) == 200  # redelivered

        def messages() -> list[dict[str, object]]:
            return [f for f in socket.frames if f["type"] == "message"]

        await socket.until(lambda: len(messages()) >= 1, within=60)
        assert messages()[0]["channel"] == "whatsapp"
        assert messages()[0]["sender_type"] == "customer"

        await socket.say(cid, "reply-two")
        await socket.until(lambda: len(fake.sent) >= 1, within=60)
        wamid = fake.sent[0].wamid
        assert fake.sent[0].body["to"] == CUSTOMER_WA_ID
        delivered = {"id": wamid, "status": "delivered", "timestamp": "1760000100",
                     "recipient_id": CUSTOMER_WA_ID}  # fmt: skip
        assert await post_signed(http, second.base + webhook, webhook_body(statuses=[delivered]))

        def statuses() -> list[object]:
            return [f["status"] for f in socket.frames if f["type"] == "status"]

        await socket.until(lambda: "delivered" in statuses(), within=60)
        assert statuses() == ["accepted", "delivered"]
        assert len(fake.message_posts(PHONE_NUMBER_ID)) == 1
        assert len(messages()) == 2  # the customer's message once, and the reply
        await socket.close()
