"""A local server speaking Razorpay's REST API as its docs describe it, for the official SDK.

Basic auth with the key id and secret (401 and Razorpay's error body otherwise), orders and
their payments, payment links (fetch, cancel), refunds honouring `X-Refund-Idempotency`, and the
payments list paged by `count`/`skip`. Tests move money with `pay()` / `pay_link()` (what the
customer would do at Checkout) and sign webhooks as Razorpay signs them (`signed_webhook`).

    fake = RazorpayFake("rzp_test_abc123", "secret")
    async with serve(fake.app()) as base_url:
        ...
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from aiohttp import web

KEY_ID = "rzp_test_1DP5mmOlF5G5ag"
KEY_SECRET = "thisisasecretkey0123"
WEBHOOK_SECRET = "razorpay-webhook-secret-42"


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(7)}"


def _error(status: int, code: str, description: str, field: str | None = None) -> web.Response:
    body: dict[str, Any] = {
        "error": {
            "code": code,
            "description": description,
            "source": "business" if status == 400 else "NA",
            "step": "payment_initiation" if status == 400 else "NA",
            "reason": "input_validation_failed" if status == 400 else "NA",
            "metadata": {},
            "field": field,
        }
    }
    return web.json_response(body, status=status)


class RazorpayFake:
    def __init__(self, key_id: str = KEY_ID, key_secret: str = KEY_SECRET) -> None:
        self.key_id = key_id
        self.key_secret = key_secret
        self.orders: dict[str, dict[str, Any]] = {}
        self.links: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.refund_keys: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []
        self.refuse_links = False
        """True: Payment Links are refused as Razorpay refuses a bad request (a 400)."""
        self.link_delay = 0.0
        """Seconds a Payment Link takes to be made: a slow gateway."""
        self.lose_answers = False
        """True: each call is carried out but answered 503 as in an outage (the answer lost)."""

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_post("/v1/orders", self._create_order)
        app.router.add_get("/v1/orders", self._list_orders)
        app.router.add_get("/v1/orders/{id}", self._fetch_order)
        app.router.add_get("/v1/orders/{id}/payments", self._order_payments)
        app.router.add_post("/v1/payment_links", self._create_link)
        app.router.add_get("/v1/payment_links/{id}", self._fetch_link)
        app.router.add_post("/v1/payment_links/{id}/cancel", self._cancel_link)
        app.router.add_get("/v1/payments", self._list_payments)
        app.router.add_get("/v1/payments/{id}", self._fetch_payment)
        app.router.add_post("/v1/payments/{id}/refund", self._refund)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.calls.append((request.method, request.path))
        expected = base64.b64encode(f"{self.key_id}:{self.key_secret}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return _error(401, "BAD_REQUEST_ERROR", "Authentication failed")
        response: web.StreamResponse = await handler(request)
        if self.lose_answers:
            return _error(503, "SERVER_ERROR", "We are facing some trouble completing your request")
        return response

    # ---- what a customer does at Checkout ----------------------------------------------------

    def pay(
        self, order_id: str, *, amount: int | None = None, status: str = "captured"
    ) -> dict[str, Any]:
        order = self.orders[order_id]
        payment = {
            "id": _id("pay"),
            "entity": "payment",
            "amount": amount if amount is not None else order["amount"],
            "currency": order["currency"],
            "status": status,
            "order_id": order_id,
            "method": "upi",
            "captured": status == "captured",
            "amount_refunded": 0,
            "refund_status": None,
            "notes": order["notes"],
            "vpa": "gaurav.kumar@exampleupi",
            "email": "gaurav.kumar@example.com",
            "contact": "+919876543210",
            "error_code": None if status != "failed" else "BAD_REQUEST_ERROR",
            "created_at": int(time.time()),
        }
        self.payments[payment["id"]] = payment
        if status == "captured":
            order.update(status="paid", amount_paid=payment["amount"], amount_due=0)
        order["attempts"] += 1
        return payment

    def pay_link(self, link_id: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        link = self.links[link_id]
        order = self._order(link["amount"], link["currency"], link["reference_id"], link["notes"])
        order_id = str(order["id"])
        link["order_id"] = order_id
        payment = self.pay(order_id)
        link.update(status="paid", amount_paid=payment["amount"])
        link["payments"] = [
            {"payment_id": payment["id"], "amount": payment["amount"], "status": "captured"}
        ]
        return link, order, payment

    # ---- the API -----------------------------------------------------------------------------

    def _order(self, amount: int, currency: str, receipt: str, notes: Any) -> dict[str, Any]:
        order: dict[str, Any] = {
            "id": _id("order"),
            "entity": "order",
            "amount": amount,
            "amount_paid": 0,
            "amount_due": amount,
            "currency": currency,
            "receipt": receipt,
            "offer_id": None,
            "status": "created",
            "attempts": 0,
            "notes": notes or [],
            "created_at": int(time.time()),
        }
        self.orders[order["id"]] = order
        return order

    async def _create_order(self, request: web.Request) -> web.Response:
        body = await request.json()
        amount = body.get("amount")
        if not isinstance(amount, int) or amount < 100:
            return _error(400, "BAD_REQUEST_ERROR", "The amount must be atleast INR 1.00", "amount")
        if body.get("currency") not in ("INR", "USD"):
            return _error(400, "BAD_REQUEST_ERROR", "Currency is not supported", "currency")
        order = self._order(amount, body["currency"], body.get("receipt", ""), body.get("notes"))
        return web.json_response(order)

    async def _list_orders(self, request: web.Request) -> web.Response:
        receipt = request.query.get("receipt")
        items = [o for o in self.orders.values() if receipt is None or o["receipt"] == receipt]
        return web.json_response({"entity": "collection", "count": len(items), "items": items})

    async def _fetch_order(self, request: web.Request) -> web.Response:
        order = self.orders.get(request.match_info["id"])
        if order is None:
            return _error(400, "BAD_REQUEST_ERROR", "The id provided does not exist")
        return web.json_response(order)

    async def _order_payments(self, request: web.Request) -> web.Response:
        order_id = request.match_info["id"]
        if order_id not in self.orders:
            return _error(400, "BAD_REQUEST_ERROR", "The id provided does not exist")
        items = [p for p in self.payments.values() if p["order_id"] == order_id]
        return web.json_response({"entity": "collection", "count": len(items), "items": items})

    async def _create_link(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.refuse_links:
            return _error(400, "BAD_REQUEST_ERROR", "Payment Links are not enabled", "amount")
        if self.link_delay:
            await asyncio.sleep(self.link_delay)
        amount = body.get("amount")
        if not isinstance(amount, int) or amount < 100:
            return _error(400, "BAD_REQUEST_ERROR", "amount must be atleast INR 1.00", "amount")
        expire_by = body.get("expire_by")
        if expire_by is not None and expire_by < time.time() + 15 * 60:
            return _error(
                400, "BAD_REQUEST_ERROR",
                "expire_by should be at least 15 minutes after current time", "expire_by",
            )  # fmt: skip
        link_id = _id("plink")
        link = {
            "id": link_id,
            "amount": amount,
            "amount_paid": 0,
            "currency": body.get("currency", "INR"),
            "accept_partial": False,
            "description": body.get("description"),
            "customer": body.get("customer", {}),
            "notify": body.get("notify", {}),
            "reference_id": body.get("reference_id"),
            "notes": body.get("notes"),
            "expire_by": expire_by or 0,
            "status": "created",
            "order_id": None,
            "payments": None,
            "short_url": f"https://rzp.io/i/{link_id[6:]}",
            "created_at": int(time.time()),
        }
        self.links[link_id] = link
        return web.json_response(link)

    async def _fetch_link(self, request: web.Request) -> web.Response:
        link = self.links.get(request.match_info["id"])
        if link is None:
            return _error(400, "BAD_REQUEST_ERROR", "The id provided does not exist")
        return web.json_response(link)

    async def _cancel_link(self, request: web.Request) -> web.Response:
        link = self.links.get(request.match_info["id"])
        if link is None:
            return _error(400, "BAD_REQUEST_ERROR", "The id provided does not exist")
        if link["status"] != "created":
            return _error(400, "BAD_REQUEST_ERROR", f"Payment link is {link['status']}")
        link["status"] = "cancelled"
        return web.json_response(link)

    async def _fetch_payment(self, request: web.Request) -> web.Response:
        payment = self.payments.get(request.match_info["id"])
        if payment is None:
            return _error(400, "BAD_REQUEST_ERROR", "The id provided does not exist")
        return web.json_response(payment)

    async def _list_payments(self, request: web.Request) -> web.Response:
        query = request.query
        start = int(query.get("from", 0))
        end = int(query.get("to", 2**40))
        count = min(int(query.get("count", 10)), 100)
        skip = int(query.get("skip", 0))
        found = sorted(
            (p for p in self.payments.values() if start <= p["created_at"] <= end),
            key=lambda p: (-p["created_at"], p["id"]),
        )
        items = found[skip : skip + count]
        return web.json_response({"entity": "collection", "count": len(items), "items": items})

    async def _refund(self, request: web.Request) -> web.Response:
        payment = self.payments.get(request.match_info["id"])
        if payment is None:
            return _error(400, "BAD_REQUEST_ERROR", "The id provided does not exist")
        key = request.headers.get("X-Refund-Idempotency")
        if key and key in self.refund_keys:
            return web.json_response(self.refunds[self.refund_keys[key]])
        body = await request.json()
        amount = body.get("amount", payment["amount"] - payment["amount_refunded"])
        if payment["status"] != "captured" and payment["status"] != "refunded":
            return _error(400, "BAD_REQUEST_ERROR", "The payment has not been captured")
        if amount > payment["amount"] - payment["amount_refunded"]:
            return _error(
                400, "BAD_REQUEST_ERROR",
                "The refund amount provided is greater than amount captured", "amount",
            )  # fmt: skip
        refund = {
            "id": _id("rfnd"),
            "entity": "refund",
            "amount": amount,
            "currency": payment["currency"],
            "payment_id": payment["id"],
            "notes": body.get("notes", []),
            "receipt": None,
            "status": "pending",
            "speed_requested": "normal",
            "created_at": int(time.time()),
        }
        payment["amount_refunded"] += amount
        self.refunds[refund["id"]] = refund
        if key:
            self.refund_keys[key] = refund["id"]
        return web.json_response(refund)


# ---- webhooks, signed as Razorpay signs them ---------------------------------------------------


def webhook_body(event: str, **entities: dict[str, Any]) -> bytes:
    contains = list(entities)
    body = {
        "entity": "event",
        "account_id": "acc_BFQ7uQEaa7j2z7",
        "event": event,
        "contains": contains,
        "payload": {name: {"entity": entity} for name, entity in entities.items()},
        "created_at": int(time.time()),
    }
    return orjson.dumps(body)


def signed_headers(
    body: bytes, secret: str = WEBHOOK_SECRET, event_id: str | None = None
) -> dict[str, str]:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Razorpay-Signature": signature,
        "x-razorpay-event-id": event_id or f"evt_{uuid.uuid4().hex[:14]}",
    }


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Runs a fake on 127.0.0.1 on a free port; yields its base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
