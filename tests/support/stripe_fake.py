"""A local server speaking Stripe's REST API as its docs describe it, for `stripe.StripeClient`.

Bearer auth with the secret key (401 and Stripe's error body otherwise), form-encoded bodies
with bracketed nesting (`metadata[payment_id]=…`), `Idempotency-Key` replays, PaymentIntents
(create, retrieve, cancel, list with `starting_after`/`has_more`), Checkout Sessions (create,
retrieve, expire) and refunds. Tests pay with `succeed()` / `complete_session()` and sign
webhooks as Stripe signs them: `t=…,v1=HMAC-SHA256("{t}.{body}")` (`signed_headers`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import Any

import orjson
from aiohttp import web

SECRET_KEY = "sk_test_51Mitra0123456789abcdef"
PUBLISHABLE_KEY = "pk_test_51Mitra0123456789abcdef"
WEBHOOK_SECRET = "whsec_mitra_test_0123456789"

_KEY = re.compile(r"[^\[\]]+")


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _error(status: int, kind: str, message: str, param: str | None = None) -> web.Response:
    error: dict[str, Any] = {"type": kind, "message": message}
    if param:
        error["param"] = param
    return web.json_response({"error": error}, status=status)


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """`a[b][0][c]=v` into nested dicts and lists, as Stripe reads its form bodies."""
    root: dict[str, Any] = {}
    for name, value in pairs:
        keys = _KEY.findall(name)
        node: Any = root
        for key, following in zip(keys, [*keys[1:], None], strict=True):
            last = following is None
            if isinstance(node, list):
                index = int(key)
                while len(node) <= index:
                    node.append({} if not last else None)
                if last:
                    node[index] = value
                else:
                    if not isinstance(node[index], dict | list) or node[index] == {}:
                        node[index] = [] if following.isdigit() else {}
                    node = node[index]
            elif last:
                node[key] = value
            else:
                node = node.setdefault(key, [] if following.isdigit() else {})
    return root


class StripeFake:
    def __init__(self, secret_key: str = SECRET_KEY) -> None:
        self.secret_key = secret_key
        self.intents: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self._replays: dict[str, tuple[int, bytes]] = {}
        self.calls: list[tuple[str, str]] = []

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_post("/v1/payment_intents", self._create_intent)
        app.router.add_get("/v1/payment_intents", self._list_intents)
        app.router.add_get("/v1/payment_intents/{id}", self._retrieve_intent)
        app.router.add_post("/v1/payment_intents/{id}/cancel", self._cancel_intent)
        app.router.add_post("/v1/checkout/sessions", self._create_session)
        app.router.add_get("/v1/checkout/sessions/{id}", self._retrieve_session)
        app.router.add_post("/v1/checkout/sessions/{id}/expire", self._expire_session)
        app.router.add_post("/v1/refunds", self._create_refund)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.calls.append((request.method, request.path))
        if request.headers.get("Authorization") != f"Bearer {self.secret_key}":
            return _error(401, "invalid_request_error", "Invalid API Key provided: sk_***")
        key = request.headers.get("Idempotency-Key")
        if request.method == "POST" and key and key in self._replays:
            status, body = self._replays[key]
            return web.Response(
                body=body, status=status, content_type="application/json",
                headers={"Idempotent-Replayed": "true"},
            )  # fmt: skip
        response = await handler(request)
        if request.method == "POST" and key and isinstance(response, web.Response):
            assert isinstance(response.body, bytes)
            self._replays[key] = (response.status, response.body)
        return response  # type: ignore[no-any-return]

    async def _form(self, request: web.Request) -> dict[str, Any]:
        data = await request.post()
        return decode_form([(k, str(v)) for k, v in data.items()])

    # ---- what a customer does --------------------------------------------------------------

    def succeed(self, intent_id: str, *, amount: int | None = None) -> dict[str, Any]:
        intent = self.intents[intent_id]
        intent.update(
            status="succeeded",
            amount_received=amount if amount is not None else intent["amount"],
            latest_charge=_id("ch"),
        )
        return intent

    def complete_session(self, session_id: str) -> dict[str, Any]:
        session = self.sessions[session_id]
        intent = self._intent(
            session["amount_total"], session["currency"], session["intent_metadata"]
        )
        self.succeed(intent["id"])
        session.update(status="complete", payment_status="paid", payment_intent=intent["id"])
        return session

    # ---- the API -----------------------------------------------------------------------------

    def _intent(self, amount: int, currency: str, metadata: dict[str, Any]) -> dict[str, Any]:
        intent_id = _id("pi")
        intent = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_received": 0,
            "currency": currency,
            "status": "requires_payment_method",
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(8)}",
            "metadata": metadata,
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "created": int(time.time()),
        }
        self.intents[intent_id] = intent
        return intent

    async def _create_intent(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        try:
            amount = int(form.get("amount", ""))
        except ValueError:
            return _error(400, "invalid_request_error", "Missing required param: amount.", "amount")
        if amount < 50:
            return _error(
                400, "invalid_request_error", "Amount must be at least 50 cents", "amount"
            )
        if not form.get("currency"):
            return _error(
                400, "invalid_request_error", "Missing required param: currency.", "currency"
            )
        return web.json_response(self._intent(amount, form["currency"], form.get("metadata", {})))

    async def _retrieve_intent(self, request: web.Request) -> web.Response:
        intent = self.intents.get(request.match_info["id"])
        if intent is None:
            return _error(404, "invalid_request_error", "No such payment_intent", "intent")
        return web.json_response(intent)

    async def _cancel_intent(self, request: web.Request) -> web.Response:
        intent = self.intents.get(request.match_info["id"])
        if intent is None:
            return _error(404, "invalid_request_error", "No such payment_intent", "intent")
        if intent["status"] == "succeeded":
            return _error(400, "invalid_request_error", "This PaymentIntent has succeeded")
        intent["status"] = "canceled"
        return web.json_response(intent)

    async def _list_intents(self, request: web.Request) -> web.Response:
        query = decode_form(list(request.query.items()))
        created = query.get("created", {})
        start = int(created.get("gte", 0))
        end = int(created.get("lte", 2**40))
        limit = min(int(query.get("limit", 10)), 100)
        ordered = sorted(
            (i for i in self.intents.values() if start <= i["created"] <= end),
            key=lambda i: (-i["created"], i["id"]),
        )
        after = query.get("starting_after")
        if after:
            ids = [i["id"] for i in ordered]
            ordered = ordered[ids.index(after) + 1 :] if after in ids else []
        page = ordered[:limit]
        return web.json_response(
            {
                "object": "list",
                "url": "/v1/payment_intents",
                "has_more": len(ordered) > limit,
                "data": page,
            }
        )

    async def _create_session(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        if form.get("mode") != "payment" or not form.get("line_items"):
            return _error(400, "invalid_request_error", "Missing required param: line_items.")
        if not form.get("success_url"):
            return _error(400, "invalid_request_error", "Missing required param: success_url.")
        expires_at = int(form.get("expires_at", time.time() + 86400))
        if not time.time() + 1800 <= expires_at <= time.time() + 86400:
            return _error(
                400, "invalid_request_error",
                "The `expires_at` timestamp must be between 30 minutes and 24 hours from now.",
                "expires_at",
            )  # fmt: skip
        item = form["line_items"][0]
        price = item["price_data"]
        amount = int(price["unit_amount"]) * int(item.get("quantity", 1))
        session_id = f"cs_test_{secrets.token_hex(16)}"
        session = {
            "id": session_id,
            "object": "checkout.session",
            "amount_total": amount,
            "currency": price["currency"],
            "status": "open",
            "payment_status": "unpaid",
            "payment_intent": None,
            "metadata": form.get("metadata", {}),
            "intent_metadata": form.get("payment_intent_data", {}).get("metadata", {}),
            "client_reference_id": form.get("client_reference_id"),
            "expires_at": expires_at,
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
            "mode": "payment",
        }
        self.sessions[session_id] = session
        return web.json_response(session)

    async def _retrieve_session(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.match_info["id"])
        if session is None:
            return _error(404, "invalid_request_error", "No such checkout.session")
        return web.json_response(session)

    async def _expire_session(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.match_info["id"])
        if session is None:
            return _error(404, "invalid_request_error", "No such checkout.session")
        if session["status"] != "open":
            return _error(400, "invalid_request_error", "Only open sessions can be expired")
        session["status"] = "expired"
        return web.json_response(session)

    async def _create_refund(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        intent = self.intents.get(str(form.get("payment_intent")))
        if intent is None or intent["status"] != "succeeded":
            return _error(
                400, "invalid_request_error", "This PaymentIntent has no charge to refund"
            )
        refunded = sum(
            r["amount"] for r in self.refunds.values() if r["payment_intent"] == intent["id"]
        )
        amount = int(form.get("amount", intent["amount_received"] - refunded))
        if amount > intent["amount_received"] - refunded:
            return _error(
                400, "invalid_request_error",
                "Refund amount is greater than unrefunded amount on charge", "amount",
            )  # fmt: skip
        refund = {
            "id": _id("re"),
            "object": "refund",
            "amount": amount,
            "currency": intent["currency"],
            "payment_intent": intent["id"],
            "charge": intent["latest_charge"],
            "metadata": form.get("metadata", {}),
            "status": "pending",
            "created": int(time.time()),
        }
        self.refunds[refund["id"]] = refund
        return web.json_response(refund)


# ---- webhooks, signed as Stripe signs them -----------------------------------------------------


def event_body(event_type: str, obj: dict[str, Any], event_id: str | None = None) -> bytes:
    body = {
        "id": event_id or _id("evt"),
        "object": "event",
        "api_version": "2025-04-30.basil",
        "created": int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    return orjson.dumps(body)


def signed_headers(
    body: bytes, secret: str = WEBHOOK_SECRET, at: int | None = None
) -> dict[str, str]:
    timestamp = int(time.time()) if at is None else at
    signed = f"{timestamp}.".encode() + body
    signature = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "Stripe-Signature": f"t={timestamp},v1={signature}"}
