"""Conversations: who may open one, who is in it, what it holds and how far each member read."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    Uuid,
    bindparam,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import Select
from sqlalchemy.sql.selectable import ScalarSelect

from mitra import access
from mitra.auth.principal import Principal
from mitra.chat.membership import add_member, agent_conversation
from mitra.customer_search import search_customers
from mitra.db import Database, Scope, UnitOfWork, tenant_scoped
from mitra.errors import Conflict, InvalidInput, NotFound
from mitra.models import Conversation, ConversationMember, Customer, Message, Role, User
from mitra.records import ANALYTICS_TOPIC, Page, PageRequest, escape_like
from mitra.whatsapp.window import customer_wrote_at

MAX_HISTORY_PAGE = 200
_JOINED: BindParameter[uuid.UUID] = bindparam("conversation_id")
# Built once, with its tenant scope: every socket's join asks it, and a statement built per
# call cost more CPU than the read itself (connect + auth + join at 5,000 sockets: 12 % of the
# loop). Without the scope attached here the session's hook attached it on every call, and a
# new statement needs a new cache key.
_MEMBER_AND_LAST_SEQ = tenant_scoped(
    select(
        select(ConversationMember.id)
        .where(
            ConversationMember.conversation_id == _JOINED,
            ConversationMember.user_id == bindparam("user_id"),
        )
        .scalar_subquery(),
        select(func.max(Message.seq)).where(Message.conversation_id == _JOINED).scalar_subquery(),
    )
)
# A client retrying a lost ack does so within moments; remembering the client ids of this many
# recent messages per conversation covers that without a read per message.
DEDUPE_WINDOW = 500


@dataclass(frozen=True)
class StoredMessage:
    """A message as members see it."""

    conversation_id: uuid.UUID
    seq: int
    message_id: uuid.UUID
    sender_id: uuid.UUID | None
    client_msg_id: str
    body: str
    channel: str
    sent_at: datetime
    sender_type: str = "user"
    external_id: str | None = None
    meta: dict[str, Any] | None = None

    def as_payload(self) -> dict[str, Any]:
        """The JSON form every path shares: the `chat.events` payload and the socket frame."""
        payload = {
            "conversation_id": str(self.conversation_id),
            "seq": self.seq,
            "message_id": str(self.message_id),
            "sender_id": str(self.sender_id) if self.sender_id else None,
            "sender_type": self.sender_type,
            "client_msg_id": self.client_msg_id,
            "body": self.body,
            "channel": self.channel,
            "sent_at": self.sent_at.isoformat(),
        }
        # Only a channel's messages carry these; app messages stay as small as they were.
        if self.external_id is not None:
            payload["external_id"] = self.external_id
        if self.meta is not None:
            payload["meta"] = self.meta
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> StoredMessage:
        sender = payload.get("sender_id")
        return cls(
            conversation_id=uuid.UUID(payload["conversation_id"]),
            seq=int(payload["seq"]),
            message_id=uuid.UUID(payload["message_id"]),
            sender_id=uuid.UUID(sender) if sender else None,
            client_msg_id=payload["client_msg_id"],
            body=payload["body"],
            channel=payload["channel"],
            sent_at=datetime.fromisoformat(payload["sent_at"]),
            sender_type=payload.get("sender_type", "user"),
            external_id=payload.get("external_id"),
            meta=payload.get("meta"),
        )


@dataclass(frozen=True)
class ConversationSummary:
    id: uuid.UUID
    customer_id: uuid.UUID | None
    title: str | None
    member_ids: tuple[uuid.UUID, ...]
    last_seq: int
    last_message_at: datetime | None
    unread: int
    created_at: datetime


@dataclass(frozen=True)
class ConversationState:
    """What a conversation actor needs to take over: members, the last seq, recent client ids."""

    conversation_id: uuid.UUID
    tenant_id: uuid.UUID
    member_ids: frozenset[uuid.UUID]
    last_seq: int
    recent: tuple[StoredMessage, ...]
    customer_id: uuid.UUID | None = None
    # The customer's own account, when they have one: their app messages are the customer's too.
    customer_user_id: uuid.UUID | None = None
    # Where the customer last wrote ("app" or "whatsapp"), and when they last did on WhatsApp.
    customer_channel: str | None = None
    customer_whatsapp_at: datetime | None = None


STAFF_ROLES = frozenset(role for role in Role if role.is_staff)


class ConversationService:
    """Opening conversations, membership checks, history, read positions and actor state."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def open_with_customer(
        self, principal: Principal, customer_id: uuid.UUID | None
    ) -> tuple[ConversationSummary, bool]:
        """The conversation with a customer (made on first call); True if new.

        Staff get their own conversation with the customer; the customer's linked policyholder
        account, when there is one, is a member, and so is the customer's agent when an admin
        opens it. A policyholder gets the customer's conversation with their agent, the same
        one the agent uses, and joins it if they were not in it yet; `customer_id` may be left
        out when exactly one customer is linked to their account.
        """
        async with self._db.unit_of_work(Scope.tenant(principal.tenant_id)) as uow:
            customer = await _customer_for(uow.session, principal, customer_id)
            if principal.role.is_staff:
                summary, created = await self._open_as_staff(uow, principal, customer)
            else:
                summary, created = await self._open_as_holder(uow, principal, customer)
        return summary, created

    async def _open_as_staff(
        self, uow: UnitOfWork, principal: Principal, customer: Customer
    ) -> tuple[ConversationSummary, bool]:
        session = uow.session
        existing = (
            await session.execute(
                select(Conversation.id)
                .join(ConversationMember, ConversationMember.conversation_id == Conversation.id)
                .where(
                    Conversation.customer_id == customer.id,
                    ConversationMember.user_id == principal.user_id,
                )
                .limit(1)
            )
        ).scalar_one_or_none()
        if existing is not None:
            return await self._summary(session, principal, existing), False
        members = {principal.user_id, customer.agent_id}
        if customer.user_id is not None:
            members.add(customer.user_id)
        conversation_id = await open_customer_conversation(
            uow, customer, members, created_by=principal.user_id
        )
        return await self._summary(session, principal, conversation_id), True

    async def _open_as_holder(
        self, uow: UnitOfWork, principal: Principal, customer: Customer
    ) -> tuple[ConversationSummary, bool]:
        session = uow.session
        existing = await agent_conversation(session, customer)
        if existing is not None:
            await add_member(uow, principal.tenant_id, [existing], principal.user_id)
            return await self._summary(session, principal, existing), False
        conversation_id = await open_customer_conversation(
            uow, customer, {principal.user_id, customer.agent_id}, created_by=principal.user_id
        )
        return await self._summary(session, principal, conversation_id), True

    async def open_among_staff(
        self, principal: Principal, participant_ids: Sequence[uuid.UUID], title: str | None
    ) -> ConversationSummary:
        if not principal.role.is_staff:
            raise InvalidInput.for_field("participant_ids", "only staff open staff chats")
        members = {principal.user_id, *participant_ids}
        if len(members) < 2:
            raise InvalidInput.for_field("participant_ids", "name at least one other person")
        if len(members) > 50:
            raise InvalidInput.for_field("participant_ids", "at most 50 members")
        async with self._db.unit_of_work(Scope.tenant(principal.tenant_id)) as uow:
            found = (
                await uow.session.execute(
                    select(User.id).where(
                        User.id.in_(members), User.is_active, User.role.in_(STAFF_ROLES)
                    )
                )
            ).scalars()
            missing = members - set(found)
            if missing:
                raise InvalidInput.for_field(
                    "participant_ids", f"{len(missing)} of them are not active staff of the agency"
                )
            conversation = await create_conversation(
                uow.session, principal.tenant_id, principal.user_id, members, title=title
            )
            emit_opened(
                uow,
                principal.tenant_id,
                conversation.id,
                principal.user_id,
                "staff",
                actor_id=principal.user_id,
            )
            return await self._summary(uow.session, principal, conversation.id)

    async def list_for(
        self, principal: Principal, query: ConversationQuery | None = None
    ) -> Page[ConversationSummary]:
        """A page of the caller's conversations, newest activity first, with unread counts.

        Two statements whatever the number of conversations (see `_summaries`), and a third
        for the total only when the page is full or not the first; in a read session: no
        transaction on PostgreSQL, and retried once on a dead connection.
        """
        query = query or ConversationQuery()
        return await self._db.read_sync(
            Scope.tenant(principal.tenant_id),
            lambda session: _listing(session, principal, query),
        )

    async def get(self, principal: Principal, conversation_id: uuid.UUID) -> ConversationSummary:
        async with self._db.session(Scope.tenant(principal.tenant_id)) as session:
            return await self._summary(session, principal, conversation_id)

    async def last_seq_for_member(self, principal: Principal, conversation_id: uuid.UUID) -> int:
        """The conversation's last seq, for a member joining it (404 for anyone else).

        A join needs only this, not the whole summary: one statement asks both whether the
        caller is a member and how far the conversation goes."""
        values = {"conversation_id": conversation_id, "user_id": principal.user_id}

        def read(session: Session) -> tuple[Any, Any]:
            found, last_seq = session.execute(_MEMBER_AND_LAST_SEQ, values).one()
            return found, last_seq

        found, last_seq = await self._db.read_sync(Scope.tenant(principal.tenant_id), read)
        if found is None:
            raise NotFound("conversation not found")
        return int(last_seq or 0)

    async def history(
        self,
        principal: Principal,
        conversation_id: uuid.UUID,
        *,
        before_seq: int | None = None,
        after_seq: int | None = None,
        limit: int = 50,
    ) -> list[StoredMessage]:
        """Messages in seq order: after `after_seq` (oldest first) or before `before_seq`."""
        if not 1 <= limit <= MAX_HISTORY_PAGE:
            raise InvalidInput.for_field("limit", f"must be between 1 and {MAX_HISTORY_PAGE}")
        async with self._db.session(Scope.tenant(principal.tenant_id)) as session:
            await self._require_member(session, principal, conversation_id)
            return await session.run_sync(
                lambda sync: _messages_in(
                    sync, conversation_id, before_seq=before_seq, after_seq=after_seq, limit=limit
                )
            )

    async def message_for_member(
        self, principal: Principal, message_id: uuid.UUID
    ) -> StoredMessage:
        """One message, for a member of its conversation (404 for anyone else)."""
        async with self._db.session(Scope.tenant(principal.tenant_id)) as session:
            row = await session.get(Message, message_id)
            if row is None:
                raise NotFound("message not found")
            try:
                await self._require_member(session, principal, row.conversation_id)
            except NotFound:
                raise NotFound("message not found") from None
            return stored(row)

    async def messages_since(
        self, tenant_id: uuid.UUID, conversation_id: uuid.UUID, since_seq: int, limit: int
    ) -> list[StoredMessage]:
        """What a reconnecting member missed (membership checked by the caller)."""
        return await self._db.read_sync(
            Scope.tenant(tenant_id),
            lambda session: _messages_in(
                session, conversation_id, after_seq=since_seq, limit=limit
            ),
        )

    async def mark_read(self, principal: Principal, conversation_id: uuid.UUID, seq: int) -> int:
        """Move the caller's read position forward (never back, never past the last message)."""
        async with self._db.transaction(Scope.tenant(principal.tenant_id)) as session:
            await self._require_member(session, principal, conversation_id)
            last = await _last_seq(session, conversation_id)
            position = max(0, min(seq, last))
            await session.execute(
                update(ConversationMember)
                .where(
                    ConversationMember.conversation_id == conversation_id,
                    ConversationMember.user_id == principal.user_id,
                    ConversationMember.last_read_seq < position,
                )
                .values(last_read_seq=position)
            )
            current = await session.scalar(
                select(ConversationMember.last_read_seq).where(
                    ConversationMember.conversation_id == conversation_id,
                    ConversationMember.user_id == principal.user_id,
                )
            )
        return int(current or 0)

    async def state(self, tenant_id: uuid.UUID, conversation_id: uuid.UUID) -> ConversationState:
        """Durable state a conversation actor rebuilds itself from when it activates.

        Through `read_sync`: a burst of activations (a thousand conversations waking at once)
        should cost the event loop one hop each, not one per statement."""

        def read(session: Session) -> ConversationState:
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                raise NotFound("conversation not found")
            members = frozenset(
                session.scalars(
                    select(ConversationMember.user_id).where(
                        ConversationMember.conversation_id == conversation_id
                    )
                )
            )
            recent = _messages_in(session, conversation_id, limit=DEDUPE_WINDOW)
            last_seq = recent[-1].seq if recent else 0
            customer = _customer_side(session, conversation)
            return ConversationState(
                conversation_id, tenant_id, members, last_seq, tuple(recent), *customer
            )

        return await self._db.read_sync(Scope.tenant(tenant_id), read)

    async def member_ids(
        self, tenant_id: uuid.UUID, conversation_id: uuid.UUID
    ) -> frozenset[uuid.UUID]:
        """Who is in the conversation now: what a live actor re-reads when membership changes."""
        statement = select(ConversationMember.user_id).where(
            ConversationMember.conversation_id == conversation_id
        )
        return await self._db.read_sync(
            Scope.tenant(tenant_id), lambda session: frozenset(session.scalars(statement))
        )

    async def _require_member(
        self, session: AsyncSession, principal: Principal, conversation_id: uuid.UUID
    ) -> None:
        member = await session.scalar(
            select(ConversationMember.id).where(
                ConversationMember.conversation_id == conversation_id,
                ConversationMember.user_id == principal.user_id,
            )
        )
        if member is None:
            raise NotFound("conversation not found")

    async def _summary(
        self, session: AsyncSession, principal: Principal, conversation_id: uuid.UUID
    ) -> ConversationSummary:
        await self._require_member(session, principal, conversation_id)
        (summary,) = await session.run_sync(_summaries, principal, [conversation_id])
        return summary


@dataclass(frozen=True)
class ConversationQuery:
    """`q`: part of the customer's name or phone number, or of the conversation's title."""

    q: str | None = None
    page: PageRequest = field(default_factory=PageRequest)


async def _customer_for(
    session: AsyncSession, principal: Principal, customer_id: uuid.UUID | None
) -> Customer:
    """The customer named, if the caller may see it; for a policyholder naming none, the one
    customer linked to their account."""
    visible = (Customer.deleted_at.is_(None), access.customers_visible(principal))
    if customer_id is not None:
        customer = await session.scalar(
            select(Customer).where(Customer.id == customer_id, *visible)
        )
        if customer is None:
            raise NotFound("customer not found")
        return customer
    if principal.role.is_staff:
        raise InvalidInput.for_field("customer_id", "give either customer_id or participant_ids")
    linked = list(
        await session.scalars(
            select(Customer).where(*visible).order_by(Customer.created_at).limit(2)
        )
    )
    if not linked:
        raise Conflict(
            "your account is not linked to a customer record yet: ask your agent to link it"
        )
    if len(linked) > 1:
        raise InvalidInput.for_field(
            "customer_id", "your account is linked to several customers: name one"
        )
    return linked[0]


def _listing(
    session: Session, principal: Principal, query: ConversationQuery
) -> Page[ConversationSummary]:
    request = query.page
    text = (query.q or "").strip()
    params: dict[str, Any] = {
        "viewer": principal.user_id,
        "limit": request.limit,
        "offset": request.offset,
    }
    if text:
        # The search's values are literals of a statement built per request; the plain listing
        # is built once and reused.
        matching = _matching(text)
        rows = session.execute(_page_statement(True).where(matching), params).all()
    else:
        rows = session.execute(_page_statement(False), params).all()
    if request.offset == 0 and len(rows) < request.limit:
        total = len(rows)  # the whole listing is on this page: nothing to count
    else:
        count = _count_statement(True).where(matching) if text else _count_statement(False)
        total = int(session.scalar(count, params) or 0)
    return Page(_summarised(session, rows), request.page, request.limit, total)


def _matching(text: str) -> ColumnElement[bool]:
    pattern = f"%{escape_like(text)}%"
    return or_(search_customers(text), Conversation.title.ilike(pattern, escape="\\"))


def _summaries(
    session: Session, principal: Principal, ids: Sequence[uuid.UUID] | None
) -> list[ConversationSummary]:
    """Summaries of the caller's conversations among `ids` (None: all of them).

    Two statements: the conversations with the caller's membership and, as correlated
    subqueries on the (conversation_id, seq) index, the last seq, the last message's time
    and the unread count; then the members of those conversations.
    """
    if ids is not None and not ids:
        return []
    params: dict[str, Any] = {"viewer": principal.user_id}
    if ids is not None:
        params["ids"] = list(ids)
    rows = session.execute(_summary_statement(ids is not None), params).all()
    return _summarised(session, rows)


def _summarised(session: Session, rows: Sequence[Sequence[Any]]) -> list[ConversationSummary]:
    """Rows of `_summary_statement` (in their order) with their members: one statement more."""
    if not rows:
        return []
    members: dict[uuid.UUID, list[uuid.UUID]] = {row[0]: [] for row in rows}
    for conversation_id, user_id in session.execute(_MEMBERS_OF, {"ids": list(members)}):
        members[conversation_id].append(user_id)
    return [
        ConversationSummary(
            id=row[0],
            customer_id=row[1],
            title=row[2],
            member_ids=tuple(sorted(members[row[0]])),
            last_seq=int(row[4] or 0),
            last_message_at=row[5],
            unread=int(row[6] or 0),
            created_at=row[3],
        )
        # A page's rows carry one column more, the activity they are ordered by.
        for row in rows
    ]


def _messages_in(
    session: Session,
    conversation_id: uuid.UUID,
    *,
    before_seq: int | None = None,
    after_seq: int | None = None,
    limit: int = 50,
) -> list[StoredMessage]:
    query = select(Message).where(Message.conversation_id == conversation_id)
    if after_seq is not None:
        query = query.where(Message.seq > after_seq)
    if before_seq is not None:
        query = query.where(Message.seq < before_seq)
    if after_seq is None:
        # Paging back from the newest: take the last `limit`, return them oldest first.
        rows = list(session.scalars(query.order_by(Message.seq.desc()).limit(limit)))
        rows.reverse()
    else:
        rows = list(session.scalars(query.order_by(Message.seq).limit(limit)))
    return [stored(row) for row in rows]


def _customer_side(
    session: Session, conversation: Conversation
) -> tuple[uuid.UUID | None, uuid.UUID | None, str | None, datetime | None]:
    """The conversation's customer, their account, the channel they last wrote on and when
    they last wrote on WhatsApp (for the 24-hour window)."""
    if conversation.customer_id is None:
        return None, None, None, None
    user_id = session.scalar(
        select(Customer.user_id).where(Customer.id == conversation.customer_id)
    )
    from_customer = Message.sender_type == "customer"
    if user_id is not None:
        from_customer = or_(from_customer, Message.sender_id == user_id)
    in_conversation = Message.conversation_id == conversation.id
    channel = session.scalar(
        select(Message.channel)
        .where(in_conversation, from_customer)
        .order_by(Message.seq.desc())
        .limit(1)
    )
    # Meta's time of each message, not when it was stored (`customer_wrote_at`). A redelivery
    # Meta retried for hours is numbered last but dated early: the newest few rows decide.
    wrote = session.execute(
        select(Message.sent_at, Message.meta)
        .where(in_conversation, Message.sender_type == "customer", Message.channel == "whatsapp")
        .order_by(Message.seq.desc())
        .limit(20)
    ).all()
    whatsapp_at = max((customer_wrote_at(at, meta) for at, meta in wrote), default=None)
    return conversation.customer_id, user_id, channel, whatsapp_at


def _last_at() -> ScalarSelect[Any]:
    # The newest message's time through the (conversation_id, seq) index: one row read, where
    # max(sent_at) would read every message of the conversation.
    return (
        select(Message.sent_at)
        .where(Message.conversation_id == Conversation.id)
        .order_by(Message.seq.desc())
        .limit(1)
        .scalar_subquery()
    )


@functools.cache
def _summary_statement(among_ids: bool) -> Select[*tuple[Any, ...]]:
    """The caller's (`:viewer`) conversations (among `:ids`, when asked) with the last seq, the
    last message's time and the unread count as correlated subqueries on the
    (conversation_id, seq) index. Built once and reused with bound parameters."""
    me = aliased(ConversationMember)
    viewer = bindparam("viewer", type_=Uuid)
    last_seq = (
        select(func.max(Message.seq))
        .where(Message.conversation_id == Conversation.id)
        .scalar_subquery()
    )
    # Unread: others' messages past my read position (my own are read by definition).
    unread = (
        select(func.count())
        .select_from(Message)
        .where(
            Message.conversation_id == Conversation.id,
            Message.seq > me.last_read_seq,
            Message.sender_id.is_distinct_from(viewer),
        )
        .scalar_subquery()
    )
    mine = [me.user_id == viewer]
    if among_ids:
        mine.append(me.conversation_id.in_(bindparam("ids", expanding=True)))
    return tenant_scoped(
        select(
            Conversation.id,
            Conversation.customer_id,
            Conversation.title,
            Conversation.created_at,
            last_seq,
            _last_at(),
            unread,
        )
        .join(me, me.conversation_id == Conversation.id)
        .where(*mine)
    )


@functools.cache
def _page_statement(searching: bool) -> Select[*tuple[Any, ...]]:
    """`_summary_statement` for a page (`:limit`, `:offset`), newest activity first; joined to
    the customer when a search will name their columns."""
    active = func.coalesce(_last_at(), Conversation.created_at).label("active_at")
    statement = _summary_statement(False).add_columns(active)
    if searching:
        statement = statement.outerjoin(Customer, Customer.id == Conversation.customer_id)
    return (
        statement.order_by(active.desc(), Conversation.created_at.desc(), Conversation.id.desc())
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )


@functools.cache
def _count_statement(searching: bool) -> Select[int]:
    me = aliased(ConversationMember)
    statement = (
        select(func.count())
        .select_from(Conversation)
        .join(me, me.conversation_id == Conversation.id)
        .where(me.user_id == bindparam("viewer", type_=Uuid))
    )
    if searching:
        statement = statement.outerjoin(Customer, Customer.id == Conversation.customer_id)
    return tenant_scoped(statement)


_MEMBERS_OF = tenant_scoped(
    select(ConversationMember.conversation_id, ConversationMember.user_id).where(
        ConversationMember.conversation_id.in_(bindparam("ids", expanding=True))
    )
)


async def _last_seq(session: AsyncSession, conversation_id: uuid.UUID) -> int:
    value = await session.scalar(
        select(func.max(Message.seq)).where(Message.conversation_id == conversation_id)
    )
    return int(value or 0)


def stored(row: Message) -> StoredMessage:
    return StoredMessage(
        conversation_id=row.conversation_id,
        seq=row.seq,
        message_id=row.id,
        sender_id=row.sender_id,
        client_msg_id=row.client_msg_id,
        body=row.body,
        channel=row.channel,
        sent_at=row.sent_at,
        sender_type=row.sender_type,
        external_id=row.external_id,
        meta=row.meta,
    )


async def create_conversation(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    created_by: uuid.UUID | None,
    members: set[uuid.UUID],
    *,
    customer_id: uuid.UUID | None = None,
    title: str | None = None,
) -> Conversation:
    conversation = Conversation(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        customer_id=customer_id,
        created_by=created_by,
        title=title,
    )
    session.add(conversation)
    session.add_all(
        ConversationMember(tenant_id=tenant_id, conversation_id=conversation.id, user_id=user_id)
        for user_id in sorted(members)
    )
    await session.flush()
    return conversation


async def open_customer_conversation(
    uow: UnitOfWork,
    customer: Customer,
    members: set[uuid.UUID],
    *,
    created_by: uuid.UUID | None,
) -> uuid.UUID:
    """A new conversation of the customer with their agent, counted as opened."""
    conversation = await create_conversation(
        uow.session, customer.tenant_id, created_by, members, customer_id=customer.id
    )
    emit_opened(
        uow, customer.tenant_id, conversation.id, customer.agent_id, "customer",
        actor_id=created_by,
    )  # fmt: skip
    return conversation.id


def emit_opened(
    uow: UnitOfWork,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    agent_id: uuid.UUID,
    kind: str,
    *,
    actor_id: uuid.UUID | None,
) -> None:
    uow.emit(
        ANALYTICS_TOPIC,
        key=str(tenant_id),
        event_type="conversation.opened",
        payload={
            "conversation_id": str(conversation_id),
            "agent_id": str(agent_id),
            "kind": kind,
            "actor_id": str(actor_id) if actor_id else None,
        },
    )
