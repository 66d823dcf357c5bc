"""Who is in a customer's conversation: finding the one conversation and adding an account to it.

A membership change is written with an outbox event on `chat.events`
(`conversation.members_changed`), so every instance hears of it: the one whose actor holds the
conversation reloads its members (see `actors.chat_router.ChatRouter.on_event`).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mitra.db import UnitOfWork
from mitra.models import Conversation, ConversationMember, Customer
from mitra.records import CHAT_EVENTS_TOPIC

MEMBERS_CHANGED = "conversation.members_changed"


async def agent_conversation(session: AsyncSession, customer: Customer) -> uuid.UUID | None:
    """The customer's conversation with their agent, the oldest if several: the one every
    channel and the customer's own account share."""
    found: uuid.UUID | None = await session.scalar(
        select(Conversation.id)
        .join(ConversationMember, ConversationMember.conversation_id == Conversation.id)
        .where(
            Conversation.customer_id == customer.id,
            ConversationMember.user_id == customer.agent_id,
        )
        .order_by(Conversation.created_at, Conversation.id)
        .limit(1)
    )
    return found


async def add_member(
    uow: UnitOfWork,
    tenant_id: uuid.UUID,
    conversation_ids: Collection[uuid.UUID],
    user_id: uuid.UUID,
) -> list[uuid.UUID]:
    """Make `user_id` a member of each conversation it is not in yet; returns those it joined.

    Each change is announced in the same transaction, so no live actor keeps the old members.
    """
    if not conversation_ids:
        return []
    already = set(
        await uow.session.scalars(
            select(ConversationMember.conversation_id).where(
                ConversationMember.conversation_id.in_(conversation_ids),
                ConversationMember.user_id == user_id,
            )
        )
    )
    joined = sorted(set(conversation_ids) - already)
    uow.session.add_all(
        ConversationMember(tenant_id=tenant_id, conversation_id=conversation_id, user_id=user_id)
        for conversation_id in joined
    )
    await uow.session.flush()
    for conversation_id in joined:
        uow.emit(
            CHAT_EVENTS_TOPIC,
            key=str(conversation_id),
            event_type=MEMBERS_CHANGED,
            payload={"conversation_id": str(conversation_id), "added": [str(user_id)]},
        )
    return joined


async def link_account(uow: UnitOfWork, customer: Customer, user_id: uuid.UUID) -> list[uuid.UUID]:
    """A policyholder account now speaks for `customer`: it joins the customer's conversations
    (the agent's, and any other staff member's with this customer)."""
    conversation_ids = list(
        await uow.session.scalars(
            select(Conversation.id).where(Conversation.customer_id == customer.id)
        )
    )
    return await add_member(uow, customer.tenant_id, conversation_ids, user_id)
