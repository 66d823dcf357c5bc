"""`/api/v1/payments`: premium orders and links, Razorpay's Checkout callback, the payments'
sagas as their steps, refunds and reconciliation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import razorpay
from aiohttp import web
from razorpay.errors import SignatureVerificationError

from actors.payment_saga import Place, Refund, Verified
from handlers.envelope import ok
from handlers.keys import INTEGRATIONS, PAYMENT_GATEWAYS, PAYMENT_SAGAS, PAYMENTS, SETTINGS
from handlers.openapi import operation
from handlers.records import listing, page_request, path_id
from handlers.schemas.common import IdPath, PageOf
from handlers.schemas.payments import (
    LinkRequest,
    LinkResponse,
    OrderRequest,
    OrderResponse,
    PaymentDetailResponse,
    PaymentListQuery,
    PaymentResponse,
    ReconcileRequest,
    ReconcileResponse,
    RefundCreated,
    RefundRequest,
    VerifyRequest,
)
from handlers.security import authenticate
from handlers.validation import parse_body, parse_query
from mitra.errors import Forbidden, InvalidInput, NotFound, Unavailable
from mitra.payments import GatewayError, PaymentQuery, PaymentState, to_minor
from mitra.payments.gateway import GatewayRefused, configured_gateway
from mitra.payments.reconcile import reconcile_window

routes = web.RouteTableDef()
TAGS = ("payments",)
IDEMPOTENCY_HEADER = "Idempotency-Key"


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    key = key.strip()
    if not 1 <= len(key) <= 200 or not key.isprintable():
        raise InvalidInput.for_field(IDEMPOTENCY_HEADER, "must be 1 to 200 printable characters")
    return key


def payment_json(state: PaymentState) -> dict[str, Any]:
    return PaymentResponse.model_validate(
        {**state.__dict__, "link_url": state.checkout.get("url")}
    ).model_dump(mode="json")


@routes.post("/api/v1/payments/orders")
@operation(
    "Order the premium due on a policy, for the gateway's Checkout",
    description="The policyholder of the policy or its agent. The amount is the premium due. "
    f"An `{IDEMPOTENCY_HEADER}` header answers the same order when the request is retried. "
    "Razorpay answers `key_id` and `order_id`; Stripe a PaymentIntent's `client_secret`.",
    tags=TAGS,
    body=OrderRequest,
    response=OrderResponse,
    status=201,
    errors=(403, 404, 409, 503),
)
async def create_order(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    body = await parse_body(request, OrderRequest)
    settings = request.app[SETTINGS].payments
    gateway = await configured_gateway(request.app[INTEGRATIONS], principal.tenant_id, body.gateway)
    state, _ = await request.app[PAYMENTS].create(
        principal,
        body.policy_id,
        gateway,
        "order",
        idempotency_key=_idempotency_key(request),
        expires_in=timedelta(minutes=settings.order_expiry_minutes),
    )
    state = await request.app[PAYMENT_SAGAS].ask(state.tenant_id, state.id, Place())
    checkout = state.checkout
    data = OrderResponse(
        payment_id=state.id,
        gateway=state.gateway,
        order_id=state.gateway_order_id or "",
        amount=to_minor(state.amount),
        currency=state.currency,
        key_id=checkout.get("key_id"),
        client_secret=checkout.get("client_secret"),
        publishable_key=checkout.get("publishable_key"),
        status=state.status,
    )
    return ok(data, status=201, message="order placed")


@routes.post("/api/v1/payments/links")
@operation(
    "Make a payment link for the premium due on a policy",
    description="The policy's agent. A Razorpay Payment Link or a Stripe Checkout Session, "
    "expiring after `payments.link_expiry_minutes`; with `send_to_conversation` it is also "
    f"sent to the customer's conversation. `{IDEMPOTENCY_HEADER}` as for orders.",
    tags=TAGS,
    body=LinkRequest,
    response=LinkResponse,
    status=201,
    errors=(403, 404, 409, 503),
)
async def create_link(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    body = await parse_body(request, LinkRequest)
    settings = request.app[SETTINGS].payments
    gateway = await configured_gateway(request.app[INTEGRATIONS], principal.tenant_id, body.gateway)
    state, _ = await request.app[PAYMENTS].create(
        principal,
        body.policy_id,
        gateway,
        "link",
        idempotency_key=_idempotency_key(request),
        expires_in=timedelta(minutes=settings.link_expiry_minutes),
        send_to_conversation=body.send_to_conversation,
    )
    state = await request.app[PAYMENT_SAGAS].ask(state.tenant_id, state.id, Place())
    data = LinkResponse(
        payment_id=state.id,
        gateway=state.gateway,
        link_id=state.gateway_order_id or "",
        url=str(state.checkout.get("url") or ""),
        amount=to_minor(state.amount),
        currency=state.currency,
        expires_at=state.expires_at,
        sent_to_conversation=bool(state.checkout.get("send_to_conversation")),
    )
    return ok(data, status=201, message="payment link made")


@routes.post("/api/v1/payments/verify")
@operation(
    "Razorpay Checkout's callback",
    description="The signature is checked with the SDK's `utility.verify_payment_signature` "
    "and the tenant's key secret; a verified callback moves the saga to `authorised`. The "
    "policy is credited only on capture (the webhook, or a poll). A signature that does not "
    "verify is answered 422 naming `razorpay_signature` (400 is a body that is not JSON); an "
    "order that is not the caller's, 404.",
    tags=TAGS,
    body=VerifyRequest,
    response=PaymentResponse,
    errors=(404,),  # 400, 413 and 422 come with the body
)
async def verify(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    body = await parse_body(request, VerifyRequest)
    state = await request.app[PAYMENTS].by_order(principal, "razorpay", body.razorpay_order_id)
    credentials = await request.app[INTEGRATIONS].credentials(principal.tenant_id, "razorpay")
    if credentials is None:
        raise NotFound("payment not found")
    client = razorpay.Client(
        auth=(str(credentials.config["key_id"]), credentials.secrets["key_secret"])
    )
    if not _signature_holds(client, body):
        raise InvalidInput.for_field("razorpay_signature", "does not verify")
    state = await request.app[PAYMENT_SAGAS].ask(
        state.tenant_id, state.id, Verified(body.razorpay_payment_id)
    )
    return ok(payment_json(state))


def _signature_holds(client: razorpay.Client, body: VerifyRequest) -> bool:
    # A hex signature is ASCII; on anything else the SDK's compare_digest raises TypeError.
    if not body.razorpay_signature.isascii():
        return False
    try:
        client.utility.verify_payment_signature(body.model_dump())
    except SignatureVerificationError:
        return False
    return True


@routes.get("/api/v1/payments")
@operation(
    "List payments",
    description="Admins the agency's, agents their book's, policyholders their own.",
    tags=TAGS,
    query=PaymentListQuery,
    response=PageOf[PaymentResponse],
)
async def list_payments(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    query = parse_query(request, PaymentListQuery)
    page = await request.app[PAYMENTS].listing(
        principal,
        PaymentQuery(
            status=query.status,
            gateway=query.gateway,
            policy_id=query.policy_id,
            date_from=query.date_from,
            date_to=query.date_to,
            page=page_request(query.page, query.limit),
        ),
    )
    return ok(listing(page, payment_json))


@routes.get("/api/v1/payments/{id}")
@operation(
    "A payment with its saga's steps",
    tags=TAGS,
    path=IdPath,
    response=PaymentDetailResponse,
    errors=(404,),
)
async def get_payment(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    state = await request.app[PAYMENTS].get(principal, path_id(request, "payment"))
    data = PaymentDetailResponse.model_validate(
        {**state.__dict__, "link_url": state.checkout.get("url")}
    )
    return ok(data)


@routes.post("/api/v1/payments/{id}/refunds")
@operation(
    "Refund a captured payment, in full or in part",
    description="Tenant admins. Never more than captured minus refunded, however many requests "
    "run at once; asked of the gateway once (Razorpay `X-Refund-Idempotency`, Stripe "
    "`idempotency_key`); its state follows the refund webhooks. A refund the gateway could "
    "not answer (an outage) is `requested` and asked again automatically with the same key.",
    tags=TAGS,
    path=IdPath,
    body=RefundRequest,
    response=RefundCreated,
    status=201,
    errors=(403, 404, 409, 503),
)
async def refund(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    payment_id = path_id(request, "payment")
    body = await parse_body(request, RefundRequest)
    await request.app[PAYMENTS].get(principal, payment_id)  # 404 before 403 for others' payments
    state, refund_id, amount = await request.app[PAYMENTS].reserve_refund(
        principal, payment_id, body.amount, body.reason
    )
    answer = await request.app[PAYMENT_SAGAS].ask(
        state.tenant_id, state.id, Refund(refund_id, amount, body.reason)
    )
    data = RefundCreated(
        refund_id=refund_id,
        amount=amount,
        status=answer["status"],
        gateway_refund_id=answer["gateway_refund_id"],
    )
    if data.status == "requested":
        # Not a 503: asking again would set a second refund aside while this one is retried.
        message = "the gateway did not answer; the refund is asked again until it does"
        return ok(data, status=201, message=message)
    return ok(data, status=201, message="refund requested")


@routes.post("/api/v1/payments/reconcile")
@operation(
    "Compare the payments of a window with the gateway's list",
    description="Tenant admins. Answers matched, mismatched, and missing on either side, "
    "with details; nothing is repaired.",
    tags=TAGS,
    body=ReconcileRequest,
    response=ReconcileResponse,
    errors=(403, 404, 409, 503),
)
async def reconcile(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    body = await parse_body(request, ReconcileRequest)
    if not principal.role.is_admin:
        raise Forbidden("only the agency's admins reconcile payments")
    credentials = await request.app[INTEGRATIONS].credentials(principal.tenant_id, body.gateway)
    if credentials is None:
        raise NotFound(f"no {body.gateway} integration is set up")
    gateway = request.app[PAYMENT_GATEWAYS][body.gateway](credentials)
    try:
        report = await reconcile_window(
            request.app[PAYMENTS], principal, gateway, body.from_, body.to
        )
    except GatewayError as exc:
        raise (Unavailable(str(exc)) if exc.retryable else GatewayRefused(str(exc))) from None
    return ok(ReconcileResponse.model_validate({"gateway": body.gateway, **report.__dict__}))
