"""The record of each WhatsApp send: written before and after every POST, so a crash between the
two is seen on restart and the message is never sent twice; and Meta's statuses, applied forward
only, each change told to the conversation's members through `chat.events` in the same
transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from mitra.analytics import MESSAGE_FAILED, AnalyticsFact, emit_analytics
from mitra.db import Database, Scope, UnitOfWork, utcnow
from mitra.errors import NotFound
from mitra.models import Conversation, Customer, WhatsAppSend
from mitra.records import CHAT_EVENTS_TOPIC

STATUS_EVENT = "status"

# Meta's statuses in the order a message lives them; a later webhook about an earlier state
# (a `sent` arriving after `read`) changes nothing.
_RANK = {"pending": 0, "accepted": 1, "sent": 2, "delivered": 3, "read": 4}
# A send whose outcome is unknown (a crash while its POST was in flight) is reported so.
UNKNOWN = "unknown"

# What a status of Meta's did (`apply_status`).
APPLIED = "applied"
STALE = "stale"  # the message is there already, or further: nothing changes
NOT_OURS = "not_ours"  # no send of the tenant has this wamid, and none is in flight to them
IN_FLIGHT = "in_flight"  # no send has this wamid yet, but one to this recipient awaits its answer
# Meta may report `sent` before its answer to the POST reaches the sender and is recorded. A send
# still `posting` after this long is not awaiting an answer (the client's timeout is shorter):
# its instance died, and the redelivered event will call it `unknown`.
IN_FLIGHT_FOR = timedelta(seconds=30)


def moves_forward(current: str, new: str) -> bool:
    if current in ("failed", UNKNOWN):
        return False
    if new == "failed":
        # Meta fails a message it had only accepted or sent; one the customer read stays read.
        return current != "read"
    return new in _RANK and _RANK[new] > _RANK.get(current, 0)


@dataclass(frozen=True)
class Claim:
    send_id: uuid.UUID
    state: str
    attempts: int
    new: bool


class SendLedger:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def customer_phone(self, tenant_id: uuid.UUID, conversation_id: uuid.UUID) -> str:
        async with self._db.session(Scope.tenant(tenant_id)) as session:
            phone = await session.scalar(
                select(Customer.phone)
                .join(Conversation, Conversation.customer_id == Customer.id)
                .where(Conversation.id == conversation_id)
            )
        if phone is None:
            raise NotFound("the conversation has no customer to write to")
        return str(phone)

    async def claim(self, tenant_id: uuid.UUID, message: dict[str, Any], to_phone: str) -> Claim:
        """This message's send record: made now (state `posting` not yet set), or as left by an
        earlier delivery of the same event."""
        message_id = uuid.UUID(message["message_id"])
        try:
            async with self._db.transaction(Scope.tenant(tenant_id)) as session:
                row = WhatsAppSend(
                    tenant_id=tenant_id,
                    message_id=message_id,
                    conversation_id=uuid.UUID(message["conversation_id"]),
                    seq=int(message["seq"]),
                    to_phone=to_phone,
                    state="queued",
                    status="pending",
                    attempts=0,
                )
                session.add(row)
            return Claim(row.id, "queued", 0, new=True)
        except IntegrityError:
            async with self._db.session(Scope.tenant(tenant_id)) as session:
                found = await session.scalar(
                    select(WhatsAppSend).where(WhatsAppSend.message_id == message_id)
                )
                if found is None:
                    raise
                return Claim(found.id, found.state, found.attempts, new=False)

    async def posting(self, tenant_id: uuid.UUID, send_id: uuid.UUID, attempt: int) -> None:
        """Recorded (committed) before the POST leaves."""
        await self._update(tenant_id, send_id, state="posting", attempts=attempt)

    async def retrying(self, tenant_id: uuid.UUID, send_id: uuid.UUID) -> None:
        """Meta answered that it did not take it (429, 5xx): posting again is safe."""
        await self._update(tenant_id, send_id, state="retrying")

    async def sent(self, tenant_id: uuid.UUID, send_id: uuid.UUID, wamid: str) -> None:
        await self._finish(tenant_id, send_id, state="sent", status="accepted", wamid=wamid)

    async def failed(
        self, tenant_id: uuid.UUID, send_id: uuid.UUID, code: int | None, title: str
    ) -> None:
        await self._finish(
            tenant_id, send_id, state="failed", status="failed", error_code=code,
            error_title=title[:200],
        )  # fmt: skip

    async def unknown(self, tenant_id: uuid.UUID, send_id: uuid.UUID) -> None:
        await self._finish(tenant_id, send_id, state=UNKNOWN, status=UNKNOWN)

    async def apply_status(
        self,
        tenant_id: uuid.UUID,
        wamid: str,
        status: str,
        error: dict[str, Any] | None,
        recipient: str,
    ) -> str:
        """Meta's status for a sent message, applied if it moves it forward. Returns APPLIED,
        STALE (repeated or late), IN_FLIGHT (its wamid is not recorded yet, but a send to
        `recipient`, Meta's wa_id, awaits its answer: worth trying again shortly) or NOT_OURS."""
        async with self._db.unit_of_work(Scope.tenant(tenant_id)) as uow:
            row = await uow.session.scalar(
                select(WhatsAppSend).where(WhatsAppSend.wamid == wamid).with_for_update()
            )
            if row is None:
                in_flight = await uow.session.scalar(
                    select(WhatsAppSend.id)
                    .where(
                        WhatsAppSend.state == "posting",
                        WhatsAppSend.to_phone == "+" + recipient.lstrip("+"),
                        WhatsAppSend.updated_at > utcnow() - IN_FLIGHT_FOR,
                    )
                    .limit(1)
                )
                return IN_FLIGHT if in_flight is not None else NOT_OURS
            if not moves_forward(row.status, status):
                return STALE
            row.status = status
            if status == "failed" and error:
                row.error_code = _int(error.get("code"))
                row.error_title = str(error.get("title") or error.get("message") or "")[:200]
            _announce(uow, row)
            if status == "failed":
                _count_failure(uow, row)
        return APPLIED

    async def _update(self, tenant_id: uuid.UUID, send_id: uuid.UUID, **values: Any) -> None:
        async with self._db.transaction(Scope.tenant(tenant_id)) as session:
            row = await session.get(WhatsAppSend, send_id)
            if row is None:
                raise NotFound("no such send")
            for name, value in values.items():
                setattr(row, name, value)

    async def _finish(self, tenant_id: uuid.UUID, send_id: uuid.UUID, **values: Any) -> None:
        async with self._db.unit_of_work(Scope.tenant(tenant_id)) as uow:
            row = await uow.session.get(WhatsAppSend, send_id)
            if row is None:
                raise NotFound("no such send")
            for name, value in values.items():
                setattr(row, name, value)
            _announce(uow, row)
            if row.status == "failed":
                _count_failure(uow, row)


def _count_failure(uow: UnitOfWork, row: WhatsAppSend) -> None:
    fact = AnalyticsFact(channel="whatsapp", direction="outbound", error_code=row.error_code)
    emit_analytics(uow, MESSAGE_FAILED, fact)


def _announce(uow: UnitOfWork, row: WhatsAppSend) -> None:
    error = None
    if row.status == "failed":
        error = {"code": row.error_code, "title": row.error_title}
    uow.emit(
        CHAT_EVENTS_TOPIC,
        key=str(row.conversation_id),
        event_type=STATUS_EVENT,
        payload={
            "conversation_id": str(row.conversation_id),
            "seq": row.seq,
            "message_id": str(row.message_id),
            "status": row.status,
            "error": error,
        },
    )


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
