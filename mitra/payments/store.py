"""The payments' durable state: payments, their step log, gateway webhooks and refunds.

Every change of status is one conditional UPDATE (`WHERE status IN (...)`) with its step row and
its `payments.events` outbox row in the same transaction, so two instances, a redelivery or a
restart can never apply a step twice: the second UPDATE matches nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from mitra import access
from mitra.analytics import (
    PAYMENT_CAPTURED,
    PAYMENT_FAILED,
    PAYMENT_REFUNDED,
    AnalyticsFact,
    emit_analytics,
)
from mitra.auth.principal import Principal
from mitra.db import Database, Scope, UnitOfWork, utcnow
from mitra.errors import Conflict, Forbidden, InvalidInput, NotFound
from mitra.models import (
    Customer,
    Payment,
    PaymentRefund,
    PaymentStep,
    PaymentWebhook,
    Policy,
    PolicyStatus,
    Role,
    User,
)
from mitra.payments import saga
from mitra.payments.gateway import Charge
from mitra.payments.webhooks import GatewayEvent
from mitra.policies import check_transition, emit_policy_event
from mitra.records import INDIA, Page, PageRequest

TOPIC = "payments.events"
ASSISTANT_KEY = "assistant-link"
"""The prefix of the idempotency keys of the links the assistant makes."""
BEING_PAID = frozenset({saga.AUTHORISED, saga.FLAGGED, *saga.PAID})
"""A payment in one of these has the customer's money (or is about to): no new link for it."""
REUSE_MARGIN = timedelta(minutes=5)
"""A link about to expire is not given out again: the customer needs time to pay it."""
_NO_SESSION = uuid.UUID(int=0)
"""A Principal made for an agent without a request of theirs has no session."""
PAYABLE = frozenset(
    {PolicyStatus.PENDING, PolicyStatus.ACTIVE, PolicyStatus.GRACE, PolicyStatus.LAPSED}
)


@dataclass(frozen=True)
class PaymentState:
    """A payment as the saga and the API see it (a snapshot)."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    policy_id: uuid.UUID
    customer_id: uuid.UUID
    agent_id: uuid.UUID
    gateway: str
    kind: str
    status: str
    amount: Decimal
    currency: str
    gateway_order_id: str | None
    gateway_payment_id: str | None
    checkout: dict[str, Any]
    expires_at: datetime
    captured_amount: Decimal | None
    refunded_amount: Decimal
    flag: str | None
    conversation_id: uuid.UUID | None
    next_due_date: date | None
    last_heard_at: datetime
    created_at: datetime
    policy_number: str = ""
    send_to_conversation: bool = False
    steps: list[dict[str, Any]] = field(default_factory=list)
    refunds: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, row: Payment, **extra: Any) -> PaymentState:
        return cls(
            id=row.id, tenant_id=row.tenant_id, policy_id=row.policy_id,
            customer_id=row.customer_id, agent_id=row.agent_id, gateway=row.gateway,
            kind=row.kind, status=row.status, amount=row.amount, currency=row.currency,
            gateway_order_id=row.gateway_order_id, gateway_payment_id=row.gateway_payment_id,
            checkout=dict(row.checkout or {}), expires_at=row.expires_at,
            captured_amount=row.captured_amount, refunded_amount=row.refunded_amount,
            flag=row.flag, conversation_id=row.conversation_id, next_due_date=row.next_due_date,
            last_heard_at=row.last_heard_at, created_at=row.created_at, **extra,
        )  # fmt: skip


@dataclass(frozen=True)
class PaymentQuery:
    status: str | None = None
    gateway: str | None = None
    policy_id: uuid.UUID | None = None
    date_from: date | None = None
    date_to: date | None = None
    page: PageRequest = field(default_factory=PageRequest)


class PaymentStore:
    def __init__(self, database: Database, currency: str) -> None:
        self._db = database
        self._currency = currency

    # ---- creation ----------------------------------------------------------------------------

    async def create(
        self,
        principal: Principal,
        policy_id: uuid.UUID,
        gateway: str,
        kind: str,
        *,
        idempotency_key: str | None,
        expires_in: timedelta,
        send_to_conversation: bool = False,
    ) -> tuple[PaymentState, Charge]:
        """A new payment of the premium due on the policy (or the one this key made before)."""
        scope = Scope.tenant(principal.tenant_id)
        async with self._db.unit_of_work(scope) as uow:
            session = uow.session
            row = (
                await session.execute(
                    select(Policy, Customer)
                    .join(Customer, Customer.id == Policy.customer_id)
                    .where(
                        Policy.id == policy_id,
                        Policy.deleted_at.is_(None),
                        access.policies_visible(principal),
                    )
                )
            ).first()
            if row is None:
                raise NotFound("policy not found")
            policy, customer = row
            _may_collect(principal, policy, kind)
            if idempotency_key is not None:
                earlier = await session.scalar(
                    select(Payment).where(Payment.idempotency_key == idempotency_key)
                )
                if earlier is not None:
                    if earlier.policy_id != policy_id or earlier.gateway != gateway:
                        raise InvalidInput.for_field(
                            "Idempotency-Key", "already used for another payment"
                        )
                    state = PaymentState.of(earlier, policy_number=policy.policy_number)
                    return state, _charge(state, customer, policy.policy_number)
            if policy.status not in PAYABLE:
                raise Conflict(f"a {policy.status.value} policy takes no premiums")
            now = utcnow()
            payment = Payment(
                id=uuid.uuid4(),
                tenant_id=principal.tenant_id,
                policy_id=policy.id,
                customer_id=customer.id,
                agent_id=policy.agent_id,
                created_by=principal.user_id,
                gateway=gateway,
                kind=kind,
                status=saga.CREATED,
                amount=policy.premium_amount,
                currency=self._currency,
                due_date=policy.next_due_date or policy.start_date,
                idempotency_key=idempotency_key,
                checkout={"send_to_conversation": send_to_conversation},
                expires_at=now + expires_in,
                refunded_amount=Decimal(0),
                last_heard_at=now,
            )
            session.add(payment)
            try:
                await session.flush()
            except IntegrityError:
                raise Conflict("a payment with this Idempotency-Key is being made") from None
            _step(uow, payment, saga.CREATED, {"by": str(principal.user_id), "kind": kind})
            state = PaymentState.of(payment, policy_number=policy.policy_number)
        return state, _charge(state, customer, policy.policy_number)

    async def link_for_customer(
        self,
        tenant_id: uuid.UUID,
        customer_id: uuid.UUID,
        policy_id: uuid.UUID,
        gateway: str,
        *,
        expires_in: timedelta,
    ) -> PaymentState:
        """A payment link for the premium due on one of this customer's own policies, made on
        behalf of the policy's agent: the assistant asks for it while answering the customer.

        There is no caller's token here, so the rules are applied explicitly: the policy must
        be the customer's (the asker's) own, and the payment is the agent's exactly as if they
        had asked for it (`_may_collect` with the agent's role, and the agent's id recorded as
        its maker). The link of the same due date is reused while it is open and unexpired,
        so asking again makes no second payment and no second gateway call."""
        async with self._db.unit_of_work(Scope.tenant(tenant_id)) as uow:
            session = uow.session
            row = (
                await session.execute(
                    select(Policy, Customer, User)
                    .join(Customer, Customer.id == Policy.customer_id)
                    .join(User, User.id == Policy.agent_id)
                    .where(
                        Policy.id == policy_id,
                        Policy.customer_id == customer_id,
                        Policy.deleted_at.is_(None),
                        Customer.deleted_at.is_(None),
                    )
                )
            ).first()
            if row is None:
                raise NotFound("policy not found")
            policy, customer, agent_user = row
            if not agent_user.is_active:
                raise Forbidden("the policy's agent is not active")
            agent = Principal(
                agent_user.id, tenant_id, agent_user.role, _NO_SESSION, agent_user.email
            )
            _may_collect(agent, policy, "link")
            if policy.status not in PAYABLE:
                raise Conflict(f"a {policy.status.value} policy takes no premiums")
            if policy.next_due_date is None:
                raise Conflict("no premium is due on this policy")
            # One key per policy and due date, numbered: a new link only when the last one
            # for this premium can no longer be paid (expired, refused, another gateway).
            prefix = f"{ASSISTANT_KEY}:{policy.id}:{policy.next_due_date.isoformat()}"
            earlier = list(
                await session.scalars(
                    select(Payment)
                    .where(
                        Payment.policy_id == policy.id,
                        Payment.idempotency_key.like(f"{prefix}:%"),
                    )
                    .order_by(Payment.created_at.desc())
                )
            )
            now = utcnow()
            if earlier and _still_open(earlier[0], gateway, now):
                return PaymentState.of(earlier[0], policy_number=policy.policy_number)
            if any(p.status in BEING_PAID for p in earlier):
                # Paid (or authorised) but not credited yet: a second link could take the
                # same premium twice. The due date moves on once it is credited.
                raise Conflict("this premium is being paid")
            payment = Payment(
                id=uuid.uuid4(),
                tenant_id=tenant_id,
                policy_id=policy.id,
                customer_id=customer.id,
                agent_id=policy.agent_id,
                created_by=agent.user_id,
                gateway=gateway,
                kind="link",
                status=saga.CREATED,
                amount=policy.premium_amount,
                currency=self._currency,
                due_date=policy.next_due_date,
                idempotency_key=f"{prefix}:{len(earlier)}",
                checkout={"send_to_conversation": False, "by_assistant": True},
                expires_at=now + expires_in,
                refunded_amount=Decimal(0),
                last_heard_at=now,
            )
            session.add(payment)
            try:
                await session.flush()
            except IntegrityError:
                raise Conflict("this payment link is being made") from None
            _step(uow, payment, saga.CREATED, {"by": str(agent.user_id), "kind": "link",
                                               "for": "assistant"})  # fmt: skip
            return PaymentState.of(payment, policy_number=policy.policy_number)

    async def charge(self, tenant_id: uuid.UUID, payment_id: uuid.UUID) -> Charge:
        async with self._db.session(Scope.tenant(tenant_id)) as session:
            row = (
                await session.execute(
                    select(Payment, Policy.policy_number, Customer)
                    .join(Policy, Policy.id == Payment.policy_id)
                    .join(Customer, Customer.id == Payment.customer_id)
                    .where(Payment.id == payment_id)
                )
            ).first()
            if row is None:
                raise NotFound("payment not found")
            payment, number, customer = row
            return _charge(PaymentState.of(payment), customer, number)

    # ---- the saga's steps --------------------------------------------------------------------

    async def load(self, tenant_id: uuid.UUID, payment_id: uuid.UUID) -> PaymentState:
        async with self._db.session(Scope.tenant(tenant_id)) as session:
            payment = await session.get(Payment, payment_id)
            if payment is None:
                raise NotFound("payment not found")
            return PaymentState.of(payment)

    async def note(
        self, tenant_id: uuid.UUID, payment_id: uuid.UUID, step: str, detail: dict[str, Any]
    ) -> None:
        """A step in the log that changes no status: what the saga is about to do."""
        async with self._db.unit_of_work(Scope.tenant(tenant_id)) as uow:
            uow.session.add(
                PaymentStep(tenant_id=tenant_id, payment_id=payment_id, step=step, detail=detail)
            )

    async def has_step(self, tenant_id: uuid.UUID, payment_id: uuid.UUID, step: str) -> bool:
        """Whether the step log holds `step` (a noted step, such as the link sent)."""
        async with self._db.session(Scope.tenant(tenant_id)) as session:
            found = await session.scalar(
                select(PaymentStep.id)
                .where(PaymentStep.payment_id == payment_id, PaymentStep.step == step)
                .limit(1)
            )
            return found is not None

    async def advance(
        self,
        tenant_id: uuid.UUID,
        payment_id: uuid.UUID,
        to: str,
        detail: dict[str, Any] | None = None,
        **values: Any,
    ) -> bool:
        """Move the saga to `to` if it may go there from where it is; False if it may not."""
        async with self._db.unit_of_work(Scope.tenant(tenant_id)) as uow:
            moved = await _move(uow, payment_id, to, detail or {}, values)
        return moved is not None

    async def heard(self, tenant_id: uuid.UUID, payment_id: uuid.UUID) -> None:
        async with self._db.transaction(Scope.tenant(tenant_id)) as session:
            await session.execute(
                update(Payment)
                .where(Payment.tenant_id == tenant_id, Payment.id == payment_id)
                .values(last_heard_at=utcnow())
            )

    async def credit(self, tenant_id: uuid.UUID, payment_id: uuid.UUID) -> str | None:
        """Record the premium on the policy, once: the status change from `captured` and the
        policy's new due date (and reinstatement) commit together or not at all. A policy
        that takes no premiums any more (surrendered, matured since the order) is not
        credited: the payment is flagged for a refund instead. The status moved to, if any."""
        async with self._db.unit_of_work(Scope.tenant(tenant_id)) as uow:
            session = uow.session
            payment = await session.get(Payment, payment_id)
            if payment is None or payment.status != saga.CAPTURED:
                return None
            policy = await session.get(Policy, payment.policy_id, with_for_update=True)
            if policy is None:
                raise NotFound("the payment's policy is gone")
            if policy.status not in PAYABLE:
                # Asking again would fail the same way on every poll: a person decides.
                return await _not_credited(
                    uow, payment_id,
                    f"captured for a {policy.status.value} policy, which takes no premiums",
                    {"policy_status": policy.status.value},
                )  # fmt: skip
            before_status, before_due = policy.status, policy.next_due_date
            due = policy.next_due_date or policy.start_date
            if payment.due_date is not None and payment.due_date != due:
                # Another payment (a link and an order both paid) credited this premium first.
                paid_for = payment.due_date.isoformat()
                return await _not_credited(
                    uow, payment_id,
                    f"the premium due {paid_for} was already paid by another payment",
                    {"due_date": paid_for},
                )  # fmt: skip
            policy.next_due_date = saga.next_due(due, policy.premium_frequency)
            if policy.status != PolicyStatus.ACTIVE:
                check_transition(policy.status, PolicyStatus.ACTIVE)  # the lifecycle decides
                policy.status = PolicyStatus.ACTIVE
            detail = {
                "gateway_payment_id": payment.gateway_payment_id,
                "amount": str(payment.captured_amount),
                "due_date_paid": before_due.isoformat() if before_due else None,
                "next_due_date": policy.next_due_date.isoformat(),
                "status_from": before_status.value,
                "status_to": policy.status.value,
            }
            moved = await _move(
                uow,
                payment_id,
                saga.POLICY_CREDITED,
                detail,
                {"next_due_date": policy.next_due_date},
            )
            if moved is None:
                # Another instance credited it between our read and our UPDATE: undo ours.
                await session.rollback()
                return None
            if before_status != policy.status:
                # The saga credits on the agent's behalf: the status change is theirs.
                emit_policy_event(
                    uow,
                    "policy.status_changed",
                    policy,
                    policy.agent_id,
                    {"from_status": before_status.value, "to_status": policy.status.value},
                )
        return saga.POLICY_CREDITED

    async def unfinished(
        self, *, heard_before: datetime | None = None
    ) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """(tenant, payment) of every saga not at its end, and of every payment with a refund
        the gateway never answered (a crash, an outage: a paid saga's only unfinished work).
        With `heard_before`, only sagas that heard nothing since (the poller's), whose order
        has expired, or whose open refund was asked for before it (not one being asked now)."""
        conditions: list[ColumnElement[bool]] = [Payment.status.in_(sorted(saga.UNFINISHED))]
        refunds: list[ColumnElement[bool]] = [PaymentRefund.status == "requested"]
        if heard_before is not None:
            conditions.append(
                or_(Payment.last_heard_at < heard_before, Payment.expires_at < utcnow())
            )
            refunds.append(PaymentRefund.created_at < heard_before)
        async with self._db.session(Scope.system()) as session:
            rows = await session.execute(
                select(Payment.tenant_id, Payment.id)
                .where(*conditions)
                .order_by(Payment.created_at)
                .limit(10_000)
            )
            found = [(tenant, payment) for tenant, payment in rows]
            rows = await session.execute(
                select(PaymentRefund.tenant_id, PaymentRefund.payment_id)
                .where(*refunds)
                .distinct()
                .limit(10_000)
            )
            seen = set(found)
            found += [(t, p) for t, p in rows if (t, p) not in seen]
            return found

    async def count_by_status(self) -> dict[str, int]:
        """Every status with how many payments are in it (zeros included), all tenants."""
        async with self._db.session(Scope.system()) as session:
            rows = await session.execute(
                select(Payment.status, func.count()).group_by(Payment.status)
            )
            counts = dict.fromkeys(saga.STATUSES, 0)
            for status, count in rows:
                counts[status] = count
            return counts

    # ---- webhooks ----------------------------------------------------------------------------

    async def record_webhook(self, tenant_id: uuid.UUID, event: GatewayEvent) -> str:
        """Keep a verified event once and queue it for its saga on `payments.events`, in one
        transaction. Returns "recorded", "duplicate" or "unmatched" (no payment of ours)."""
        async with self._db.unit_of_work(Scope.tenant(tenant_id)) as uow:
            session = uow.session
            payment_id = await _match(session, event)
            row = PaymentWebhook(
                tenant_id=tenant_id,
                provider=event.provider,
                event_id=event.event_id,
                event_type=event.event_type,
                payment_id=payment_id,
                payload=event.as_payload(),
            )
            session.add(row)
            try:
                await session.flush()
            except IntegrityError:
                await session.rollback()
                return "duplicate"
            if payment_id is None or event.kind is None:
                return "unmatched" if payment_id is None else "recorded"
            uow.emit(
                TOPIC,
                key=str(payment_id),
                event_type="payment.webhook",
                payload={
                    "payment_id": str(payment_id),
                    "provider": event.provider,
                    "provider_event_id": event.event_id,
                    "status": event.kind,
                    "amount": str(event.amount_minor or 0),
                    "currency": event.currency or "",
                    "event": event.as_payload(),
                },
            )
        return "recorded"

    # ---- refunds -----------------------------------------------------------------------------

    async def reserve_refund(
        self, principal: Principal, payment_id: uuid.UUID, amount: Decimal | None, reason: str
    ) -> tuple[PaymentState, uuid.UUID, Decimal]:
        """Set `amount` (all that is left when None) aside for a refund, or refuse: one UPDATE
        whose condition is the balance, so concurrent requests can never over-refund."""
        if not principal.role.is_admin:
            raise Forbidden("only the agency's admins refund payments")
        async with self._db.unit_of_work(Scope.tenant(principal.tenant_id)) as uow:
            session = uow.session
            payment = await session.get(Payment, payment_id)
            if payment is None:
                raise NotFound("payment not found")
            # A flagged payment may hold the customer's money (a capture for a policy that
            # takes no premiums, or for another amount): staff refund it.
            refundable = payment.status in saga.PAID or payment.status == saga.FLAGGED
            if not refundable or payment.captured_amount is None:
                raise Conflict("only a captured payment can be refunded")
            wanted = (
                amount if amount is not None else payment.captured_amount - payment.refunded_amount
            )
            if wanted <= 0:
                raise Conflict("nothing is left to refund")
            result = await session.execute(
                update(Payment)
                .where(
                    Payment.tenant_id == principal.tenant_id,
                    Payment.id == payment_id,
                    Payment.captured_amount - Payment.refunded_amount >= wanted,
                )
                .values(refunded_amount=Payment.refunded_amount + wanted)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise InvalidInput.for_field("amount", "more than is left to refund")
            refund = PaymentRefund(
                id=uuid.uuid4(),
                tenant_id=principal.tenant_id,
                payment_id=payment_id,
                amount=wanted,
                reason=reason,
                status="requested",
                requested_by=principal.user_id,
            )
            session.add(refund)
            await session.flush()
            uow.session.add(
                PaymentStep(
                    tenant_id=principal.tenant_id, payment_id=payment_id, step="refund_requested",
                    detail={"refund_id": str(refund.id), "amount": str(wanted), "reason": reason},
                )
            )  # fmt: skip
            state = PaymentState.of(payment)
        return state, refund.id, wanted

    async def open_refunds(
        self, tenant_id: uuid.UUID, payment_id: uuid.UUID
    ) -> list[tuple[uuid.UUID, Decimal, str]]:
        """Refunds set aside but never answered by the gateway (a crash, an outage)."""
        async with self._db.session(Scope.tenant(tenant_id)) as session:
            rows = await session.execute(
                select(PaymentRefund.id, PaymentRefund.amount, PaymentRefund.reason)
                .where(PaymentRefund.payment_id == payment_id, PaymentRefund.status == "requested")
                .order_by(PaymentRefund.created_at)
            )
            return [(refund_id, amount, reason) for refund_id, amount, reason in rows]

    async def refund_state(
        self, tenant_id: uuid.UUID, refund_id: uuid.UUID
    ) -> tuple[str, str | None]:
        """A refund's status and the gateway's id for it (None before the gateway answered)."""
        async with self._db.session(Scope.tenant(tenant_id)) as session:
            refund = await session.get(PaymentRefund, refund_id)
            if refund is None:
                raise NotFound("refund not found")
            return refund.status, refund.gateway_refund_id

    async def refund_result(
        self,
        tenant_id: uuid.UUID,
        refund_id: uuid.UUID,
        status: str,
        gateway_refund_id: str | None,
        detail: str | None = None,
    ) -> None:
        """What the gateway answered; a refused refund gives its amount back to the balance."""
        async with self._db.unit_of_work(Scope.tenant(tenant_id)) as uow:
            refund = await uow.session.get(PaymentRefund, refund_id)
            if refund is None or refund.status in ("processed", "failed"):
                return
            await _settle_refund(uow, refund, status, gateway_refund_id, detail)

    async def apply_refund_event(self, tenant_id: uuid.UUID, event: GatewayEvent) -> int:
        """A refund webhook: the refunds it names (or, for Stripe's cumulative charge.refunded,
        the oldest still open up to the amount refunded) are settled. Returns how many."""
        status = "processed" if event.kind == "refund_processed" else "failed"
        async with self._db.unit_of_work(Scope.tenant(tenant_id)) as uow:
            session = uow.session
            payment_id = event.payment_id or await _match(session, event)
            if payment_id is None:
                return 0
            refunds = list(
                await session.scalars(
                    select(PaymentRefund)
                    .where(PaymentRefund.payment_id == payment_id)
                    .order_by(PaymentRefund.created_at)
                )
            )
            named = {event.refund_ref, *event.refund_ids} - {None}
            settled = 0
            if named and any(r.gateway_refund_id in named for r in refunds):
                targets = [r for r in refunds if r.gateway_refund_id in named]
            elif event.provider == "stripe" and event.amount_minor is not None:
                limit = Decimal(event.amount_minor) / 100
                done = sum((r.amount for r in refunds if r.status == "processed"), Decimal(0))
                targets = []
                for refund in refunds:
                    if refund.status in ("pending", "requested") and done + refund.amount <= limit:
                        done += refund.amount
                        targets.append(refund)
            else:
                targets = []
            for refund in targets:
                if refund.status not in ("processed", "failed"):
                    await _settle_refund(
                        uow, refund, status, refund.gateway_refund_id, event.event_id
                    )
                    settled += 1
        return settled

    # ---- reads -------------------------------------------------------------------------------

    async def get(self, principal: Principal, payment_id: uuid.UUID) -> PaymentState:
        async with self._db.session(Scope.tenant(principal.tenant_id)) as session:
            row = (
                await session.execute(
                    select(Payment, Policy.policy_number)
                    .join(Policy, Policy.id == Payment.policy_id)
                    .where(Payment.id == payment_id, access.policies_visible(principal))
                )
            ).first()
            if row is None:
                raise NotFound("payment not found")
            payment, number = row
            steps = await session.scalars(
                select(PaymentStep)
                .where(PaymentStep.payment_id == payment_id)
                .order_by(PaymentStep.created_at, PaymentStep.id)
            )
            refunds = await session.scalars(
                select(PaymentRefund)
                .where(PaymentRefund.payment_id == payment_id)
                .order_by(PaymentRefund.created_at)
            )
            return PaymentState.of(
                payment,
                policy_number=number,
                steps=[{"step": s.step, "at": s.created_at, "detail": s.detail} for s in steps],
                refunds=[
                    {
                        "id": r.id, "amount": r.amount, "reason": r.reason, "status": r.status,
                        "gateway_refund_id": r.gateway_refund_id, "created_at": r.created_at,
                    }
                    for r in refunds
                ],
            )  # fmt: skip

    async def by_order(self, principal: Principal, gateway: str, order_id: str) -> PaymentState:
        """The caller's payment whose gateway order is `order_id` (404 for anyone else's)."""
        async with self._db.session(Scope.tenant(principal.tenant_id)) as session:
            payment = await session.scalar(
                select(Payment)
                .join(Policy, Policy.id == Payment.policy_id)
                .where(
                    Payment.gateway == gateway,
                    Payment.gateway_order_id == order_id,
                    access.policies_visible(principal),
                )
            )
            if payment is None:
                raise NotFound("payment not found")
            return PaymentState.of(payment)

    async def listing(self, principal: Principal, query: PaymentQuery) -> Page[PaymentState]:
        conditions: list[ColumnElement[bool]] = [access.policies_visible(principal)]
        if query.status is not None:
            conditions.append(Payment.status == query.status)
        if query.gateway is not None:
            conditions.append(Payment.gateway == query.gateway)
        if query.policy_id is not None:
            conditions.append(Payment.policy_id == query.policy_id)
        if query.date_from and query.date_to and query.date_from > query.date_to:
            raise InvalidInput.for_field("date_to", "must not be before date_from")
        if query.date_from is not None:
            conditions.append(Payment.created_at >= _start_of(query.date_from))
        if query.date_to is not None:
            conditions.append(Payment.created_at < _start_of(query.date_to + timedelta(days=1)))
        base = (
            select(Payment, Policy.policy_number)
            .join(Policy, Policy.id == Payment.policy_id)
            .where(*conditions)
        )
        async with self._db.session(Scope.tenant(principal.tenant_id)) as session:
            rows = await session.execute(
                base.order_by(Payment.created_at.desc(), Payment.id)
                .limit(query.page.limit)
                .offset(query.page.offset)
            )
            items = [PaymentState.of(p, policy_number=n) for p, n in rows]
            total = await session.scalar(
                select(func.count()).select_from(
                    select(Payment.id)
                    .join(Policy, Policy.id == Payment.policy_id)
                    .where(*conditions)
                    .subquery()
                )
            )
        return Page(items, query.page.page, query.page.limit, int(total or 0))

    async def window(
        self, principal: Principal, gateway: str, start: datetime, end: datetime
    ) -> list[PaymentState]:
        """The tenant's payments of `gateway` made in [start, end] (reconciliation)."""
        if not principal.role.is_admin:
            raise Forbidden("only the agency's admins reconcile payments")
        async with self._db.session(Scope.tenant(principal.tenant_id)) as session:
            rows = await session.scalars(
                select(Payment).where(
                    Payment.gateway == gateway,
                    Payment.created_at >= start,
                    Payment.created_at <= end,
                )
            )
            return [PaymentState.of(p) for p in rows]


# ---- helpers -------------------------------------------------------------------------------------


def _may_collect(principal: Principal, policy: Policy, kind: str) -> None:
    """Orders: the policy's holder or its agent. Links (sent by staff): its agent."""
    if principal.role in (Role.SENIOR_AGENT, Role.JUNIOR_AGENT):
        if policy.agent_id != principal.user_id:
            raise Forbidden("only the policy's agent collects its premium")
        return
    if principal.role == Role.POLICYHOLDER and kind == "order":
        return  # visible to a policyholder means linked to their account
    raise Forbidden(
        "payment links are sent by the policy's agent"
        if kind == "link"
        else "a premium is paid by the policyholder or collected by their agent"
    )


def _still_open(payment: Payment, gateway: str, now: datetime) -> bool:
    """Whether the customer can still pay this link: not paid, not expired, and placed (or
    about to be placed again: CREATED after the gateway was unavailable)."""
    if payment.kind != "link" or payment.gateway != gateway:
        return False
    if payment.expires_at <= now + REUSE_MARGIN:
        return False
    if payment.status in (saga.CREATED, saga.ORDER_PLACED):
        return True
    # A failed attempt leaves the link payable; a refused placement left no link at all.
    return payment.status == saga.FAILED and bool((payment.checkout or {}).get("url"))


def _charge(state: PaymentState, customer: Customer, policy_number: str) -> Charge:
    return Charge(
        payment_id=state.id,
        tenant_id=state.tenant_id,
        policy_id=state.policy_id,
        policy_number=policy_number,
        amount=state.amount,
        currency=state.currency,
        expires_at=state.expires_at,
        customer_name=customer.full_name,
        customer_phone=customer.phone,
    )


def _step(uow: UnitOfWork, payment: Payment, step: str, detail: dict[str, Any]) -> None:
    uow.session.add(
        PaymentStep(tenant_id=payment.tenant_id, payment_id=payment.id, step=step, detail=detail)
    )
    uow.emit(
        TOPIC,
        key=str(payment.id),
        event_type=f"payment.{step}",
        payload={
            "payment_id": str(payment.id),
            "provider": payment.gateway,
            "provider_event_id": detail.get("provider_event_id"),
            "status": payment.status,
            "amount": str(payment.amount),
            "currency": payment.currency,
        },
    )


async def _not_credited(
    uow: UnitOfWork, payment_id: uuid.UUID, why: str, detail: dict[str, Any]
) -> str | None:
    """Flag a capture the policy must not be credited with, for staff to refund; the status
    moved to (None if another instance moved it first)."""
    flag = f"{why}: not credited; refund it"
    flagged = await _move(uow, payment_id, saga.FLAGGED, {"flag": flag, **detail}, {"flag": flag})
    return saga.FLAGGED if flagged is not None else None


async def _move(
    uow: UnitOfWork, payment_id: uuid.UUID, to: str, detail: dict[str, Any], values: dict[str, Any]
) -> Payment | None:
    tenant_id = uow.scope.tenant_id
    result = await uow.session.execute(
        update(Payment)
        .where(
            Payment.tenant_id == tenant_id,
            Payment.id == payment_id,
            Payment.status.in_(sorted(saga.FROM[to])),
        )
        .values(status=to, last_heard_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    payment = await uow.session.get(Payment, payment_id, populate_existing=True)
    assert payment is not None
    _step(uow, payment, to, detail)
    if to in (saga.CAPTURED, saga.FAILED):
        _analytics(uow, payment, to)
    return payment


def _analytics(uow: UnitOfWork, payment: Payment, to: str) -> None:
    """Captured and failed payments, by gateway, for the analytics dashboard."""
    event_type = PAYMENT_CAPTURED if to == saga.CAPTURED else PAYMENT_FAILED
    fact = AnalyticsFact(
        agent_id=payment.agent_id,
        amount=payment.captured_amount or payment.amount,
        currency=payment.currency,
        gateway=payment.gateway,
    )
    emit_analytics(uow, event_type, fact)


async def _match(session: Any, event: GatewayEvent) -> uuid.UUID | None:
    """Our payment for a gateway event: by the id in its notes, else by the gateway's refs."""
    refs = [ref for ref in (event.order_ref, event.payment_ref) if ref]
    if event.payment_id is not None:
        found = await session.scalar(
            select(Payment.id).where(
                Payment.id == event.payment_id, Payment.gateway == event.provider
            )
        )
        if found is not None:
            return found  # type: ignore[no-any-return]
    if not refs:
        return None
    found = await session.scalar(
        select(Payment.id)
        .where(
            Payment.gateway == event.provider,
            or_(Payment.gateway_order_id.in_(refs), Payment.gateway_payment_id.in_(refs)),
        )
        .limit(1)
    )
    return found  # type: ignore[no-any-return]


async def _settle_refund(
    uow: UnitOfWork,
    refund: PaymentRefund,
    status: str,
    gateway_refund_id: str | None,
    detail: str | None,
) -> None:
    refund.gateway_refund_id = gateway_refund_id or refund.gateway_refund_id
    if status == "failed":
        refund.status = "failed"
        await uow.session.execute(
            update(Payment)
            .where(Payment.tenant_id == refund.tenant_id, Payment.id == refund.payment_id)
            .values(refunded_amount=Payment.refunded_amount - refund.amount)
            .execution_options(synchronize_session=False)
        )
    else:
        refund.status = status
    payment = await uow.session.get(Payment, refund.payment_id)
    assert payment is not None  # refunds go with their payment (ON DELETE CASCADE)
    if refund.status == "processed":
        fact = AnalyticsFact(
            agent_id=payment.agent_id,
            amount=refund.amount,
            currency=payment.currency,
            gateway=payment.gateway,
        )
        emit_analytics(uow, PAYMENT_REFUNDED, fact)
    uow.session.add(
        PaymentStep(
            tenant_id=refund.tenant_id,
            payment_id=refund.payment_id,
            step=f"refund_{refund.status}",
            detail={
                "refund_id": str(refund.id),
                "amount": str(refund.amount),
                "gateway_refund_id": refund.gateway_refund_id,
                "detail": detail,
            },
        )
    )
    uow.emit(
        TOPIC,
        key=str(refund.payment_id),
        event_type=f"payment.refund_{refund.status}",
        payload={
            "payment_id": str(refund.payment_id),
            "provider": payment.gateway,
            "status": f"refund_{refund.status}",
            "amount": str(refund.amount),
            "currency": payment.currency,
            "refund_id": str(refund.id),
        },
    )


def _start_of(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=INDIA)
