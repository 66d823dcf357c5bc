"""A server killed with SIGKILL after a payment's capture is recorded and before the policy is
credited: after a restart the saga resumes and credits the policy exactly once.

The kill point is made deterministic by `payments.test_pause_after_captured_seconds` (a
test-only setting, refused in production): the saga sleeps after recording `captured`, and the
test kills the process while the payment shows that step."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.test_serve import serve_env
from tests.e2e.test_sigkill import database_env, login, start
from tests.streams.conftest import eventually
from tests.support import razorpay_fake
from tests.support.book import customer_body, policy_body
from tests.support.payments import quarter_after
from tests.support.razorpay_fake import RazorpayFake, serve

pytestmark = pytest.mark.slow
__all__ = ["database_env"]  # the SIGKILL test's fixture: SQLite and PostgreSQL


async def call(
    http: aiohttp.ClientSession, method: str, url: str, token: str, **kwargs: Any
) -> Any:
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    async with http.request(method, url, headers=headers, **kwargs) as response:
        body = await response.json()
        assert response.status < 300, (response.status, body)
        return body["data"]


async def test_a_capture_before_a_sigkill_is_credited_once_after_the_restart(
    tmp_path: Path, database_env: dict[str, str]
) -> None:
    fake = RazorpayFake()
    async with serve(fake.app()) as razorpay_url:
        database = database_env
        base_env = serve_env(
            MITRA_LOGGING_LEVEL="WARNING", MITRA_PAYMENTS_RAZORPAY_BASE_URL=razorpay_url, **database
        )
        paused = {**base_env, "MITRA_PAYMENTS_TEST_PAUSE_AFTER_CAPTURED_SECONDS": "60"}
        (context, process), base, accounts = await start(tmp_path, paused)
        async with aiohttp.ClientSession() as http:
            admin = await login(http, base, accounts["super_admin"])
            agent = await login(http, base, accounts["senior_agent"])
            me = await call(http, "GET", f"{base}/api/v1/users/me", admin)
            await call(
                http, "PUT", f"{base}/api/v1/integrations/razorpay", admin,
                json={"key_id": razorpay_fake.KEY_ID, "key_secret": razorpay_fake.KEY_SECRET,
                      "webhook_secret": razorpay_fake.WEBHOOK_SECRET},
            )  # fmt: skip
            customer = await call(
                http, "POST", f"{base}/api/v1/customers", agent, json=customer_body()
            )
            policy = await call(
                http, "POST", f"{base}/api/v1/policies", agent, json=policy_body(customer)
            )
            placed = await call(
                http, "POST", f"{base}/api/v1/payments/orders", agent,
                json={"policy_id": policy["id"], "gateway": "razorpay"},
            )  # fmt: skip
            paid = fake.pay(placed["order_id"])
            body = razorpay_fake.webhook_body("payment.captured", payment=paid)
            webhook = f"/api/v1/webhooks/razorpay/{me['tenant_id']}"
            headers = razorpay_fake.signed_headers(body, event_id="evt_before_kill")
            async with http.post(base + webhook, data=body, headers=headers) as response:
                assert response.status == 200
            shown = f"{base}/api/v1/payments/{placed['payment_id']}"

            async def captured() -> bool:
                data = await call(http, "GET", shown, agent)
                return bool(data["status"] == "captured")

            await eventually(captured, within=30)
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            await context.__aexit__(None, None, None)

        (context, process), base, accounts = await start(tmp_path, base_env)
        try:
            async with aiohttp.ClientSession() as http:
                agent = await login(http, base, accounts["senior_agent"])
                shown = f"{base}/api/v1/payments/{placed['payment_id']}"

                async def receipted() -> bool:
                    data = await call(http, "GET", shown, agent)
                    return bool(data["status"] == "receipt_sent")

                await eventually(receipted, within=30)
                # The gateway redelivers the capture after the restart: still credited once.
                async with http.post(base + webhook, data=body, headers=headers) as response:
                    assert response.status == 200
                    assert (await response.json())["data"]["outcome"] == "duplicate"
                data = await call(http, "GET", shown, agent)
                steps = [s["step"] for s in data["steps"]]
                assert steps.count("captured") == 1
                assert steps.count("policy_credited") == 1
                now = await call(http, "GET", f"{base}/api/v1/policies/{policy['id']}", agent)
                assert now["next_due_date"] == quarter_after(policy["next_due_date"])
        finally:
            await context.__aexit__(None, None, None)
