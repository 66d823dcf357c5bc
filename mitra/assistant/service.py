"""The assistant's view of a conversation, its mode, the asker's own policies, and hand-offs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mitra.analytics import BOT_ESCALATED, BOT_REPLIED, AnalyticsFact, emit_analytics
from mitra.assistant.replies import OwnPolicy
from mitra.auth.principal import Principal
from mitra.db import Database, Scope, utcnow
from mitra.errors import Forbidden, InvalidInput, NotFound
from mitra.models import (
    AssistantSettings,
    CallbackRequest,
    Conversation,
    ConversationMember,
    Customer,
    Message,
    Policy,
    User,
)

BOT = "bot"
AGENT = "agent"
MODES = (BOT, AGENT)
CALLBACK_STATUSES = ("open", "done")
LAST_MESSAGES = 6


@dataclass(frozen=True)
class ConversationContext:
    """Who the customer of a conversation is and who answers them now."""

    tenant_id: uuid.UUID
    conversation_id: uuid.UUID
    customer_id: uuid.UUID
    customer_user_id: uuid.UUID | None
    customer_name: str
    customer_phone: str
    customer_email: str | None
    agent_id: uuid.UUID
    agent_name: str
    member_ids: frozenset[uuid.UUID]
    mode: str
    mode_changed_at: datetime | None
    last_agent_at: datetime | None

    @property
    def staff_ids(self) -> frozenset[uuid.UUID]:
        return (
            self.member_ids - {self.customer_user_id}
            if self.customer_user_id
            else (self.member_ids)
        )

    def is_customer(self, sender_type: str, sender_id: uuid.UUID | None) -> bool:
        return sender_type == "customer" or (
            sender_id is not None and sender_id == self.customer_user_id
        )

    def agent_quiet_since(self) -> datetime | None:
        """Since when no agent has written, in agent mode (the later of the switch and the
        agent's last message)."""
        times = [t for t in (self.mode_changed_at, self.last_agent_at) if t is not None]
        return max(times) if times else None


@dataclass(frozen=True)
class TenantAssistant:
    default_mode: str
    phrases: dict[str, dict[str, list[str]]]
    own_default: bool


@dataclass(frozen=True)
class CallbackView:
    id: uuid.UUID
    conversation_id: uuid.UUID
    customer_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    reason: str
    last_messages: list[dict[str, Any]]
    status: str
    created_at: datetime
    done_at: datetime | None


class AssistantService:
    """Reads and writes the assistant needs; tenant scope comes from the database session."""

    def __init__(self, database: Database, default_mode: str) -> None:
        self._db = database
        self._default_mode = default_mode

    async def context(
        self, tenant_id: uuid.UUID, conversation_id: uuid.UUID
    ) -> ConversationContext | None:
        """The conversation as the assistant sees it; None when it has no customer."""
        async with self._db.session(Scope.tenant(tenant_id)) as session:
            conversation = await session.get(Conversation, conversation_id)
            if conversation is None or conversation.customer_id is None:
                return None
            customer = await session.get(Customer, conversation.customer_id)
            if customer is None or customer.deleted_at is not None:
                return None
            agent = await session.get(User, customer.agent_id)
            members = frozenset(
                await session.scalars(
                    select(ConversationMember.user_id).where(
                        ConversationMember.conversation_id == conversation_id
                    )
                )
            )
            staff = members - {customer.user_id} if customer.user_id else members
            last_agent_at = None
            if staff:
                last_agent_at = await session.scalar(
                    select(func.max(Message.sent_at)).where(
                        Message.conversation_id == conversation_id,
                        Message.sender_type == "user",
                        Message.sender_id.in_(staff),
                    )
                )
            return ConversationContext(
                tenant_id=tenant_id,
                conversation_id=conversation_id,
                customer_id=customer.id,
                customer_user_id=customer.user_id,
                customer_name=customer.full_name,
                customer_phone=customer.phone,
                customer_email=customer.email,
                agent_id=customer.agent_id,
                agent_name=f"{agent.first_name} {agent.last_name}".strip() if agent else "",
                member_ids=members,
                mode=conversation.mode or await self._tenant_default(session),
                mode_changed_at=conversation.mode_changed_at,
                last_agent_at=last_agent_at,
            )

    async def _tenant_default(self, session: AsyncSession) -> str:
        mode = await session.scalar(select(AssistantSettings.default_mode))
        return mode or self._default_mode

    async def tenant_settings(self, tenant_id: uuid.UUID) -> TenantAssistant:
        """The tenant's default mode (its own, else the setting) and its own phrases."""
        async with self._db.session(Scope.tenant(tenant_id)) as session:
            row = await session.scalar(select(AssistantSettings))
        if row is None:
            return TenantAssistant(self._default_mode, {}, own_default=False)
        return TenantAssistant(
            row.default_mode or self._default_mode, row.phrases or {},
            own_default=row.default_mode is not None,
        )  # fmt: skip

    async def put_settings(
        self,
        principal: Principal,
        default_mode: str | None,
        phrases: dict[str, dict[str, list[str]]],
    ) -> TenantAssistant:
        """Tenant admins: the agency's default mode (None: the deployment's) and phrases."""
        if not principal.role.is_admin:
            raise Forbidden("only the agency's admins change the assistant")
        async with self._db.transaction(Scope.tenant(principal.tenant_id)) as session:
            row = await session.scalar(select(AssistantSettings))
            if row is None:
                row = AssistantSettings(tenant_id=principal.tenant_id)
                session.add(row)
            row.default_mode = default_mode
            row.phrases = phrases
            row.updated_by = principal.user_id
        return await self.tenant_settings(principal.tenant_id)

    async def own_policies(self, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> list[OwnPolicy]:
        """The policies of this customer only: the one the conversation belongs to."""
        async with self._db.session(Scope.tenant(tenant_id)) as session:
            rows = await session.scalars(
                select(Policy)
                .where(Policy.customer_id == customer_id, Policy.deleted_at.is_(None))
                .order_by(Policy.next_due_date.is_(None), Policy.next_due_date, Policy.id)
            )
            return [
                OwnPolicy(
                    id=p.id,
                    number=p.policy_number,
                    plan=p.plan_name,
                    status=str(p.status),
                    next_due=p.next_due_date,
                    amount=p.premium_amount,
                    frequency=str(p.premium_frequency),
                )
                for p in rows
            ]

    async def set_mode(self, tenant_id: uuid.UUID, conversation_id: uuid.UUID, mode: str) -> bool:
        """Switch the conversation to `mode`; False when it was in that mode already (so two
        instances, or a redelivered event, announce a switch once)."""
        async with self._db.transaction(Scope.tenant(tenant_id)) as session:
            current = func.coalesce(Conversation.mode, await self._tenant_default(session))
            result = await session.execute(
                update(Conversation)
                .where(Conversation.id == conversation_id, current != mode)
                .values(mode=mode, mode_changed_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            return bool(getattr(result, "rowcount", 0))

    async def handback(self, principal: Principal, conversation_id: uuid.UUID) -> bool:
        """An agent gives the conversation back to the assistant; True if it was theirs."""
        if not principal.role.is_staff:
            raise Forbidden("only the agency's staff hand a conversation back")
        async with self._db.session(Scope.tenant(principal.tenant_id)) as session:
            conversation = await session.get(Conversation, conversation_id)
            member = await session.scalar(
                select(ConversationMember.id).where(
                    ConversationMember.conversation_id == conversation_id,
                    ConversationMember.user_id == principal.user_id,
                )
            )
            if conversation is None or (member is None and not principal.role.is_admin):
                raise NotFound("conversation not found")
            if conversation.customer_id is None:
                raise InvalidInput.for_field("id", "only a conversation with a customer has modes")
        return await self.set_mode(principal.tenant_id, conversation_id, BOT)

    async def escalate(
        self,
        context: ConversationContext,
        reason: str,
        last_messages: Sequence[dict[str, Any]],
    ) -> tuple[uuid.UUID, bool]:
        """Store a callback request and switch to agent mode, in one transaction; the analytics
        event goes with it. Returns the request's id and whether the mode changed."""
        async with self._db.unit_of_work(Scope.tenant(context.tenant_id)) as uow:
            current = func.coalesce(Conversation.mode, await self._tenant_default(uow.session))
            changed = await uow.session.execute(
                update(Conversation)
                .where(Conversation.id == context.conversation_id, current != AGENT)
                .values(mode=AGENT, mode_changed_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            request = CallbackRequest(
                tenant_id=context.tenant_id,
                conversation_id=context.conversation_id,
                customer_id=context.customer_id,
                agent_id=context.agent_id,
                reason=reason,
                last_messages=list(last_messages),
                status="open",
            )
            uow.session.add(request)
            await uow.session.flush()
            emit_analytics(
                uow, BOT_ESCALATED, AnalyticsFact(agent_id=context.agent_id, reason=reason)
            )
            return request.id, bool(getattr(changed, "rowcount", 0))

    async def replied(self, context: ConversationContext, source: str) -> None:
        """The analytics fact of one reply (the dashboard folds it by day and agent)."""
        async with self._db.unit_of_work(Scope.tenant(context.tenant_id)) as uow:
            emit_analytics(
                uow, BOT_REPLIED, AnalyticsFact(agent_id=context.agent_id, source=source)
            )

    async def recent_messages(
        self, tenant_id: uuid.UUID, conversation_id: uuid.UUID, limit: int = LAST_MESSAGES
    ) -> list[dict[str, Any]]:
        async with self._db.session(Scope.tenant(tenant_id)) as session:
            rows = list(
                await session.execute(
                    select(Message.seq, Message.sender_type, Message.sender_id, Message.body)
                    .where(Message.conversation_id == conversation_id)
                    .order_by(Message.seq.desc())
                    .limit(limit)
                )
            )
        return [
            {"seq": seq, "sender_type": kind, "sender_id": str(sender) if sender else None,
             "body": body[:500]}
            for seq, kind, sender, body in reversed(rows)
        ]  # fmt: skip

    async def callbacks(self, principal: Principal, status: str | None) -> list[CallbackView]:
        """Agents see the requests for them; admins the tenant's."""
        if not principal.role.is_staff:
            raise Forbidden("only the agency's staff see callback requests")
        query = select(CallbackRequest).order_by(
            CallbackRequest.created_at.desc(), CallbackRequest.id
        )
        if not principal.role.is_admin:
            query = query.where(CallbackRequest.agent_id == principal.user_id)
        if status is not None:
            query = query.where(CallbackRequest.status == status)
        async with self._db.session(Scope.tenant(principal.tenant_id)) as session:
            return [_view(row) for row in await session.scalars(query.limit(200))]

    async def update_callback(
        self, principal: Principal, callback_id: uuid.UUID, status: str
    ) -> CallbackView:
        if not principal.role.is_staff:
            raise Forbidden("only the agency's staff handle callback requests")
        async with self._db.transaction(Scope.tenant(principal.tenant_id)) as session:
            row = await session.get(CallbackRequest, callback_id)
            if row is None or (not principal.role.is_admin and row.agent_id != principal.user_id):
                raise NotFound("callback request not found")
            row.status = status
            row.done_at = utcnow() if status == "done" else None
            row.done_by = principal.user_id if status == "done" else None
            await session.flush()
            return _view(row)


def _view(row: CallbackRequest) -> CallbackView:
    return CallbackView(
        id=row.id,
        conversation_id=row.conversation_id,
        customer_id=row.customer_id,
        agent_id=row.agent_id,
        reason=row.reason,
        last_messages=row.last_messages,
        status=row.status,
        created_at=row.created_at,
        done_at=row.done_at,
    )
