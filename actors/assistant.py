"""The assistant's actors: one per tenant on each instance, answering customers' messages.

Rules and the knowledge-base match run on the actor's thread; database reads and the LLM call
(async, through the SDK) run on the event loop while the actor waits on its own thread. A reply
is an ordinary message through the `ChatRouter` (`sender_type` "bot"), so it is numbered by the
conversation's actor, stored, delivered, and sent on WhatsApp when the customer wrote there.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from actors.assistant_links import PremiumLinks
from actors.conversation import AUTO_CHANNEL, SendMessage
from actors.pool import Activation
from actors.runtime import BridgedActor
from mitra.assistant import intents, replies
from mitra.assistant.kb import KnowledgeBase, strong_match
from mitra.assistant.llm import HANDOFF, LlmFallback, LlmQuestion
from mitra.assistant.metrics import AssistantMetrics
from mitra.assistant.service import AGENT, BOT, AssistantService, ConversationContext
from mitra.chat import StoredMessage
from mitra.db import utcnow
from mitra.errors import MitraError
from mitra.settings import ChatbotSettings

log = logging.getLogger("mitra.actors.assistant")

RULES_SECONDS = 30.0

Send = Callable[[uuid.UUID, uuid.UUID, SendMessage], Coroutine[Any, Any, StoredMessage]]
Frames = Callable[[uuid.UUID, Collection[uuid.UUID], dict[str, Any]], Coroutine[Any, Any, None]]
T = TypeVar("T")
NO_CUSTOMER = "no_customer"


@dataclass(frozen=True)
class CustomerMessage:
    """A message accepted into a conversation (anyone's: an agent's switches the mode)."""

    tenant_id: uuid.UUID
    message: StoredMessage


@dataclass(frozen=True)
class Answer:
    body: str
    source: str  # rule, kb, llm, fallback
    intent: str | None
    language: str
    handoff: str | None = None  # the reason, when the customer goes to their agent


@dataclass
class AssistantParts:
    """What every assistant actor shares; passed in, never looked up."""

    service: AssistantService
    settings: ChatbotSettings
    send: Send
    metrics: AssistantMetrics
    knowledge: KnowledgeBase | None = None
    llm: LlmFallback | None = None
    frames: Frames | None = None
    links: PremiumLinks | None = None
    """Payment links for premium_payment answers; None: the agent is named for them."""
    io_timeout: float = 10.0
    rules: intents.Rules = field(default_factory=intents.Rules)


class ModeAnnouncer:
    """Tells a conversation its mode changed: a system message in the log and a frame to every
    member's sockets. Runs on the loop (the actor submits it; the hand-back handler awaits it)."""

    def __init__(self, send: Send, frames: Frames | None) -> None:
        self._send = send
        self._frames = frames

    async def announce(
        self,
        tenant_id: uuid.UUID,
        conversation_id: uuid.UUID,
        members: Collection[uuid.UUID],
        *,
        mode: str,
        cause: str,
        language: str = intents.EN,
    ) -> None:
        body = replies.text(language, "to_agent" if mode == AGENT else "to_bot")
        try:
            await self._send(
                tenant_id,
                conversation_id,
                SendMessage(
                    None, f"mode-{cause}-{mode}"[:64], body, "app", "outbound",
                    sender_type="system", meta={"mode": mode},
                ),
            )  # fmt: skip
        except MitraError as exc:
            log.warning("mode message in %s not stored: %s", conversation_id, exc.code)
        frame = {"type": "mode", "conversation_id": str(conversation_id), "mode": mode}
        await self.push(tenant_id, members, frame)

    async def push(
        self, tenant_id: uuid.UUID, users: Collection[uuid.UUID], frame: dict[str, Any]
    ) -> None:
        if self._frames is not None and users:
            try:
                await self._frames(tenant_id, list(users), frame)
            except Exception:  # best-effort by design: the durable fact is in the database
                log.exception("%s frame not pushed", frame.get("type"))


class AssistantActor(BridgedActor):
    """Answers the customers of one tenant's conversations, one message at a time."""

    kind = "assistant"

    def __init__(self, activation: Activation[uuid.UUID], *, parts: AssistantParts) -> None:
        super().__init__(runtime=activation.runtime, start_after=activation.predecessor)
        self.tenant_id = activation.key
        self._parts = parts
        self._announcer = ModeAnnouncer(parts.send, parts.frames)
        self._rules = parts.rules
        self._rules_read_at: float | None = None

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, CustomerMessage):
            return self._handle(message.message)
        raise TypeError(f"assistant actor got {type(message).__name__}")

    def _io(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self.run_on_loop(coro, timeout or self._parts.io_timeout)

    def _handle(self, message: StoredMessage) -> str | None:  # noqa: PLR0911 - one per outcome
        """What was done: None, NO_CUSTOMER, "agent", a source, "handoff"."""
        parts = self._parts
        context = self._io(parts.service.context(self.tenant_id, message.conversation_id))
        if context is None:
            return NO_CUSTOMER
        if not context.is_customer(message.sender_type, message.sender_id):
            # The first message of a person of the agency takes over from the assistant.
            staff = message.sender_type == "user" and message.sender_id in context.staff_ids
            if staff and context.mode == BOT:
                changed = self._io(
                    parts.service.set_mode(self.tenant_id, message.conversation_id, AGENT)
                )
                if changed:
                    self._announce(context, AGENT, f"{message.message_id}", intents.EN)
                    return AGENT
            return None
        language = intents.language_of(message.body)
        if context.mode == AGENT:
            quiet = context.agent_quiet_since()
            idle = timedelta(minutes=parts.settings.agent_idle_minutes)
            if quiet is None or utcnow() - quiet < idle:
                return None
            if not self._io(parts.service.set_mode(self.tenant_id, message.conversation_id, BOT)):
                return None
            self._announce(context, BOT, f"{message.message_id}", language)
        answer = self._answer(context, message.body)
        if answer.handoff is not None:
            self._hand_off(context, message, answer)
            return "handoff"
        self._reply(context, message, answer)
        return answer.source

    def _answer(self, context: ConversationContext, body: str) -> Answer:  # noqa: PLR0911
        parts = self._parts
        match = intents.classify(body, self._tenant_rules())
        language = match.language
        if match.intent in replies.HANDOFF_INTENTS:
            return Answer(replies.text(language, "handoff"), "rule", match.intent, language,
                          handoff="asked_for_agent")  # fmt: skip
        if match.intent in replies.DATA_INTENTS:
            policies = self._io(parts.service.own_policies(self.tenant_id, context.customer_id))
            links = {}
            if match.intent == intents.PREMIUM_PAYMENT:
                links = self._payment_links(context, policies)
            text = replies.about_policies(language, match.intent or "", policies, links)
            return Answer(text, "rule", match.intent, language)
        articles = []
        if parts.knowledge is not None:
            articles = self._io(parts.knowledge.search(self.tenant_id, body, language=language))
        if match.intent is not None:
            # The agency's own article on the subject, when it wrote one, beats the stock text.
            own = [a for a in articles if a.intent == match.intent]
            if own:
                return Answer(own[0].answer, "kb", match.intent, language)
            fixed = replies.fixed(language, match.intent)
            if fixed is not None:
                return Answer(fixed, "rule", match.intent, language)
        if articles and strong_match(body, articles[0], parts.settings.kb_strong_match):
            return Answer(articles[0].answer, "kb", articles[0].intent, language)
        if parts.llm is not None:
            mine = self._io(parts.service.own_policies(self.tenant_id, context.customer_id))
            question = LlmQuestion(
                tenant_id=self.tenant_id,
                text=body,
                language=language,
                context=[(a.question, a.answer) for a in articles],
                own=context,
                own_policies=tuple(p.number for p in mine),
            )
            try:
                reply = self._io(parts.llm.reply(question), parts.llm.total_timeout)
            except Exception as exc:  # late, or broken: the customer still gets the plain answer
                log.warning("LLM answer in %s lost: %s", context.conversation_id,
                            type(exc).__name__)  # fmt: skip
                reply = None
            if reply == HANDOFF:
                return Answer(replies.text(language, "handoff"), "llm", None, language,
                              handoff="low_confidence")  # fmt: skip
            if reply is not None:
                text = replies.cut_at_sentence(reply, parts.settings.max_reply_chars)
                return Answer(text, "llm", None, language)
        return Answer(replies.text(language, "fallback"), "fallback", None, language)

    def _payment_links(
        self, context: ConversationContext, policies: list[replies.OwnPolicy]
    ) -> dict[uuid.UUID, str]:
        """Links for the listed policies with a premium due (the conversation's customer's own:
        `policies` are theirs only); empty when there is no gateway or making them failed."""
        links = self._parts.links
        due = [p.id for p in replies.payable(policies)]
        if links is None or not due:
            return {}
        try:
            return self._io(
                links.for_customer(self.tenant_id, context.customer_id, due),
                links.timeout + self._parts.io_timeout,
            )
        except Exception:  # the reply goes out without links rather than not at all
            log.warning("payment links for %s not made", context.conversation_id, exc_info=True)
            self._parts.metrics.payment_link("failed")
            return {}

    def _tenant_rules(self) -> intents.Rules:
        """The built-in rules with the tenant's own phrases, read again now and then (an
        admin's change reaches every instance within `RULES_SECONDS`)."""
        now = time.monotonic()
        if self._rules_read_at is None or now - self._rules_read_at > RULES_SECONDS:
            own = self._io(self._parts.service.tenant_settings(self.tenant_id))
            self._rules = self._parts.rules.extended(own.phrases)
            self._rules_read_at = now
        return self._rules

    def _reply(self, context: ConversationContext, message: StoredMessage, answer: Answer) -> None:
        try:
            self._io(
                self._parts.send(
                    self.tenant_id,
                    context.conversation_id,
                    SendMessage(
                        None,
                        f"bot-{message.message_id}",
                        answer.body,
                        AUTO_CHANNEL,
                        "outbound",
                        sender_type="bot",
                        meta={"bot": {"source": answer.source, "intent": answer.intent}},
                    ),
                )
            )
        except MitraError as exc:
            # Outside WhatsApp's window, or the conversation is gone: nothing to retry.
            log.warning("bot reply in %s not stored: %s", context.conversation_id, exc.code)
            return
        self._parts.metrics.replied(answer.source)
        self._io(self._parts.service.replied(context, answer.source))

    def _hand_off(
        self, context: ConversationContext, message: StoredMessage, answer: Answer
    ) -> None:
        parts = self._parts
        reason = answer.handoff or "asked_for_agent"
        last = self._io(parts.service.recent_messages(self.tenant_id, context.conversation_id))
        callback_id, changed = self._io(parts.service.escalate(context, reason, last))
        parts.metrics.handed_off(reason)
        self._reply(context, message, answer)
        if changed:
            self._announce(context, AGENT, f"{message.message_id}", answer.language)
        frame = {
            "type": "escalation",
            "conversation_id": str(context.conversation_id),
            "reason": reason,
            "callback_id": str(callback_id),
        }
        self._io(
            self._announcer.push(self.tenant_id, {context.agent_id, *context.staff_ids}, frame)
        )

    def _announce(self, context: ConversationContext, mode: str, cause: str, language: str) -> None:
        self._io(
            self._announcer.announce(
                self.tenant_id,
                context.conversation_id,
                context.member_ids,
                mode=mode,
                cause=cause,
                language=language,
            )
        )
