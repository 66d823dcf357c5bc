"""Payment links for the assistant's premium_payment answers, made through the payment sagas.

Runs on the event loop (the assistant's actor submits it and waits on its own thread). The
gateway's SDK is called only by the payment's `PaymentSagaActor`, as for a link an agent asks
for; the assistant never talks to a gateway. Whatever goes wrong here (no gateway, a refusal, a
slow gateway) costs the answer its links, never the answer itself.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta

from actors.payment_saga import Place
from actors.payment_sagas import PaymentSagas
from mitra.errors import Conflict, MitraError, Unavailable
from mitra.integrations import IntegrationService
from mitra.payments import PaymentStore
from mitra.payments.gateway import GATEWAY_PREFERENCE, GatewayRefused
from mitra.payments.saga import CREATED

log = logging.getLogger("mitra.actors.assistant")

"""Razorpay first when a tenant has both: it is the one Indian customers pay through (UPI)."""


class PremiumLinks:
    """Links for the premium due on some of one customer's own policies."""

    def __init__(
        self,
        store: PaymentStore,
        sagas: PaymentSagas,
        integrations: IntegrationService,
        *,
        link_expiry: timedelta,
        timeout: float,
        outcome: Callable[[str], None] | None = None,
    ) -> None:
        self._store = store
        self._sagas = sagas
        self._integrations = integrations
        self._expiry = link_expiry
        self.timeout = timeout
        self._outcome = outcome or (lambda _: None)

    async def gateway(self, tenant_id: uuid.UUID) -> str | None:
        for name in GATEWAY_PREFERENCE:
            if await self._integrations.credentials(tenant_id, name) is not None:
                return name
        return None

    async def for_customer(
        self, tenant_id: uuid.UUID, customer_id: uuid.UUID, policy_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, str]:
        """{policy id: link URL} for those links made within `timeout`; the rest are left out
        (the answer then says the agent will send them)."""
        if not policy_ids:
            return {}
        gateway = await self.gateway(tenant_id)
        if gateway is None:
            self._outcome("no_gateway")
            return {}
        tasks = {
            asyncio.ensure_future(self._one(tenant_id, customer_id, policy_id, gateway)): policy_id
            for policy_id in policy_ids
        }
        # A task cut off here leaves its saga running on its own thread: the link it places
        # is reused the next time the customer asks.
        done, pending = await asyncio.wait(tasks, timeout=self.timeout)
        for task in pending:
            task.cancel()
            self._outcome("timeout")
            log.warning("payment link for policy %s: no answer in %ss", tasks[task], self.timeout)
        links: dict[uuid.UUID, str] = {}
        for task in done:
            url = task.result()
            if url:
                links[tasks[task]] = url
        return links

    async def _one(
        self, tenant_id: uuid.UUID, customer_id: uuid.UUID, policy_id: uuid.UUID, gateway: str
    ) -> str | None:
        try:
            state = await self._store.link_for_customer(
                tenant_id, customer_id, policy_id, gateway, expires_in=self._expiry
            )
            url = state.checkout.get("url")
            if state.status != CREATED and url:
                self._outcome("reused")  # open and placed: no saga step, no gateway call
                return str(url)
            state = await self._sagas.ask(tenant_id, state.id, Place())
        except (GatewayRefused, Conflict) as exc:
            outcome, code = "refused", exc.code
        except Unavailable as exc:
            outcome, code = "unavailable", exc.code
        except MitraError as exc:
            outcome, code = "failed", exc.code
        except Exception as exc:  # the answer goes out whatever happened here
            outcome, code = "failed", type(exc).__name__
        else:
            url = state.checkout.get("url")
            self._outcome("made" if url else "failed")
            return str(url) if url else None
        # The code only: a gateway's message may carry the customer's details.
        log.warning("payment link for policy %s not made (%s): %s", policy_id, outcome, code)
        self._outcome(outcome)
        return None
