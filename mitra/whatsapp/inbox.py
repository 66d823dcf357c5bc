"""Where a WhatsApp sender's message goes: their customer record and its conversation.

One conversation per customer across channels: a number that matches a customer of the tenant
(by E.164) lands in the conversation that customer already has with their agent; an unknown
number becomes a customer of the integration's default agent.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import select

from mitra.chat.conversations import open_customer_conversation
from mitra.chat.membership import agent_conversation
from mitra.db import Database, Scope
from mitra.models import Customer, Message
from mitra.phones import to_e164

log = logging.getLogger("mitra.whatsapp.inbox")


@dataclass(frozen=True)
class Destination:
    customer_id: uuid.UUID
    agent_id: uuid.UUID
    conversation_id: uuid.UUID
    new_customer: bool


def wa_phone(wa_id: str) -> str | None:
    """The E.164 number of a WhatsApp id, or None when it is not a valid phone number (Meta's
    test payloads and some business-scoped ids are not): such a sender cannot be a customer."""
    try:
        return to_e164("+" + wa_id.lstrip("+"))
    except ValueError:
        return None


class WhatsAppInbox:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def already_stored(self, tenant_id: uuid.UUID, wamid: str) -> bool:
        """Whether this wamid is a message of the tenant already (Meta redelivers)."""
        async with self._db.session(Scope.tenant(tenant_id)) as session:
            found = await session.scalar(
                select(Message.id).where(Message.external_id == wamid).limit(1)
            )
        return found is not None

    async def destination(
        self,
        tenant_id: uuid.UUID,
        phone: str,
        profile_name: str | None,
        default_agent_id: uuid.UUID,
    ) -> Destination:
        """The customer with this E.164 number (`wa_phone`) and their conversation, made if
        missing."""
        async with self._db.unit_of_work(Scope.tenant(tenant_id)) as uow:
            session = uow.session
            customer = await session.scalar(
                select(Customer)
                .where(Customer.phone == phone, Customer.deleted_at.is_(None))
                .order_by(Customer.created_at)
                .limit(1)
            )
            new_customer = customer is None
            if customer is None:
                customer = Customer(
                    tenant_id=tenant_id,
                    full_name=(profile_name or "").strip()[:200] or phone,
                    phone=phone,
                    agent_id=default_agent_id,
                )
                session.add(customer)
                await session.flush()
                log.info("WhatsApp number of a new customer %s", customer.id)
            conversation_id = await agent_conversation(session, customer)
            if conversation_id is None:
                members = {customer.agent_id}
                if customer.user_id is not None:
                    members.add(customer.user_id)
                conversation_id = await open_customer_conversation(
                    uow, customer, members, created_by=None
                )
            return Destination(customer.id, customer.agent_id, conversation_id, new_customer)
