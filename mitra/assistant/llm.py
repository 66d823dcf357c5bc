"""The LLM fallback through the official `openai` SDK: masked, time-limited, retried, guarded
by a circuit breaker and a per-tenant daily token budget.

Used only when no rule or article answers. What leaves the server has the asker's personal
data replaced by placeholders (`pii`); the reply gets the asker's own values back. When the
provider is slow, down, refusing, or the budget is spent, `reply` returns None and the
assistant answers with its plain localised fallback instead.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import openai
from openai import AsyncOpenAI
from sqlalchemy import select

from mitra.assistant.intents import EN, HI, HI_LATN
from mitra.assistant.metrics import AssistantMetrics
from mitra.assistant.pii import Masker
from mitra.db import Database, Scope, utcnow
from mitra.db._upsert import ConflictInsert, prebuilt_upsert
from mitra.integrations import IntegrationService, ProviderSpec
from mitra.models import AssistantUsage
from mitra.records import india_today
from mitra.settings import ChatbotSettings

if TYPE_CHECKING:
    from mitra.assistant.service import ConversationContext

log = logging.getLogger("mitra.assistant.llm")

HANDOFF = "HANDOFF"
"""What the model is told to answer when it cannot: the assistant then hands over."""
MAX_TOKENS = 300
MAX_TENANT_BREAKERS = 1000
_LANGUAGE_NAMES = {
    EN: "English",
    HI: "Hindi in Devanagari script",
    HI_LATN: "Hindi in Latin letters",
}

OPENAI = ProviderSpec("openai", config_fields=("model",), secret_fields=("api_key",))
"""A tenant's own key and model (`PUT /api/v1/integrations/openai`), sealed like WhatsApp's."""
TenantKey = Callable[[uuid.UUID], Awaitable[tuple[str, str] | None]]


def tenant_keys(integrations: IntegrationService, default_model: str) -> TenantKey:
    async def key(tenant_id: uuid.UUID) -> tuple[str, str] | None:
        found = await integrations.credentials(tenant_id, OPENAI.name)
        if found is None or not found.secrets.get("api_key"):
            return None
        return found.secrets["api_key"], str(found.config.get("model") or default_model)

    return key


@dataclass(frozen=True)
class LlmQuestion:
    tenant_id: uuid.UUID
    text: str
    language: str
    context: list[tuple[str, str]]  # knowledge-base articles: (question, answer)
    own: ConversationContext
    own_policies: tuple[str, ...] = ()


class CircuitBreaker:
    """After `failures` failures within `window` seconds, open for `cooldown` seconds; then let
    one call through (half open): its success closes the breaker, its failure opens it again."""

    def __init__(
        self,
        failures: int,
        window: float,
        cooldown: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self._failures = failures
        self._window = window
        self._cooldown = cooldown
        self._clock = clock
        self._on_change = on_change
        self._recent: deque[float] = deque()
        self._open_until: float | None = None
        self._trial = False
        self.state = "closed"

    def allow(self) -> bool:
        if self._open_until is None:
            return True
        if self._clock() < self._open_until or self._trial:
            return False
        self._trial = True  # one call tries the provider again
        self._set("half_open")
        return True

    def released(self) -> None:
        """The allowed call ended without telling whether the provider is up (the request's
        own fault, a cancellation, a bug): a held trial is handed back for the next call."""
        self._trial = False

    def succeeded(self) -> None:
        self._recent.clear()
        self._open_until = None
        self._trial = False
        self._set("closed")

    def failed(self) -> None:
        now = self._clock()
        if self._trial:
            self._trip(now)
            return
        self._recent.append(now)
        while self._recent and now - self._recent[0] > self._window:
            self._recent.popleft()
        if len(self._recent) >= self._failures:
            self._trip(now)

    def _trip(self, now: float) -> None:
        self._open_until = now + self._cooldown
        self._trial = False
        self._recent.clear()
        self._set("open")

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            log.warning("LLM circuit breaker %s", state)
            if self._on_change is not None:
                self._on_change(state)


class TokenBudget:
    """Tokens each tenant used today (India's day), in the database: shared by all instances."""

    def __init__(self, database: Database, daily: int) -> None:
        self._db = database
        self.daily = daily

    async def used(self, tenant_id: uuid.UUID) -> int:
        async with self._db.session(Scope.tenant(tenant_id)) as session:
            tokens = await session.scalar(
                select(AssistantUsage.tokens).where(AssistantUsage.day == india_today())
            )
        return int(tokens or 0)

    async def spend(self, tenant_id: uuid.UUID, tokens: int) -> None:
        if tokens <= 0:
            return
        table = AssistantUsage.__table__
        now = utcnow()
        async with self._db.transaction(Scope.tenant(tenant_id)) as session:
            await session.execute(
                prebuilt_upsert(session, table, _add_tokens),  # type: ignore[arg-type]
                {"id": uuid.uuid4(), "tenant_id": tenant_id, "day": india_today(),
                 "tokens": tokens, "created_at": now, "updated_at": now},
            )  # fmt: skip


def _add_tokens(insert: ConflictInsert) -> ConflictInsert:
    table = insert.table
    return insert.on_conflict_do_update(
        index_elements=["tenant_id", "day"],
        set_={
            "tokens": table.c.tokens + insert.excluded.tokens,
            "updated_at": insert.excluded.updated_at,
        },
    )


class LlmFallback:
    """Answers what no rule or article does, through the SDK. `reply` answers None rather than
    raise, whatever goes wrong: the assistant then answers plainly instead of not at all."""

    def __init__(
        self,
        settings: ChatbotSettings,
        budget: TokenBudget,
        metrics: AssistantMetrics,
        tenant_key: TenantKey | None = None,
    ) -> None:
        self._settings = settings
        self._budget = budget
        self._metrics = metrics
        self._tenant_key = tenant_key
        self.breaker = self._new_breaker(on_change=metrics.breaker_state)
        """The server key's breaker: every tenant without its own key depends on it, and
        `/metrics` shows it."""
        # A breaker per tenant key: a tenant's spent quota or revoked key is that tenant's
        # outage, not everyone's.
        self._tenant_breakers: OrderedDict[str, CircuitBreaker] = OrderedDict()
        self._clients: dict[tuple[str, str], AsyncOpenAI] = {}

    @property
    def total_timeout(self) -> float:
        """How long one `reply` may take: every attempt, the SDK's backoff between them (at
        most 8 s each, or a Retry-After up to 60 s), and the budget's reads."""
        attempts = self._settings.max_retries + 1
        return attempts * self._settings.timeout_seconds + self._settings.max_retries * 10 + 5

    async def reply(self, question: LlmQuestion) -> str | None:
        """The model's answer with the asker's own details put back, HANDOFF, or None."""
        try:
            return await self._reply(question)
        except Exception as exc:  # a bug or a broken stored key must not leave the customer
            # unanswered; the type only: the message may quote a credential.
            self._metrics.llm_calls.inc({"outcome": "error"})
            log.error("LLM call failed outside the provider: %s", type(exc).__name__)
            return None

    async def _reply(self, question: LlmQuestion) -> str | None:  # noqa: PLR0911
        key = await self._key(question.tenant_id)
        if key is None:
            return None
        api_key, model = key
        # The budget before the breaker: a question that is not sent must not hold the
        # breaker's one trial call.
        if await self._budget.used(question.tenant_id) >= self._budget.daily:
            self._metrics.llm_calls.inc({"outcome": "skipped_budget"})
            return None
        own = question.own
        masker = Masker(
            own_names=[own.customer_name, own.agent_name],
            own_phones=[own.customer_phone],
            own_emails=[own.customer_email or ""],
            own_policies=question.own_policies,
        )
        breaker = self._breaker(api_key)
        if not breaker.allow():
            self._metrics.llm_calls.inc({"outcome": "skipped_open"})
            return None
        outcome = "unknown"
        started = time.monotonic()
        try:
            completion = await self._client(api_key).chat.completions.create(
                model=model,
                messages=[
                    {"role": "system", "content": self._system_prompt(question, masker)},
                    {"role": "user", "content": masker.mask(question.text)},
                ],
                max_tokens=MAX_TOKENS,
                temperature=0.2,
            )
            outcome = "ok"
        except (
            openai.APIConnectionError,
            openai.RateLimitError,
            openai.InternalServerError,
        ) as exc:
            # APITimeoutError is an APIConnectionError: slow counts as down.
            outcome = "failed"
            self._metrics.llm_calls.inc({"outcome": "failed"})
            log.warning("LLM unavailable: %s", type(exc).__name__)
            return None
        except openai.APIError as exc:
            # The request's fault (400, 401, …): no outage, but no answer either.
            self._metrics.llm_calls.inc({"outcome": "refused"})
            log.warning("LLM refused the request: %s", type(exc).__name__)
            return None
        finally:
            self._metrics.llm_latency.observe({}, time.monotonic() - started)
            # Settled whatever happened (a refusal, a cancellation, a failure outside the
            # SDK): an unsettled trial would keep the breaker half open for good.
            if outcome == "ok":
                breaker.succeeded()
            elif outcome == "failed":
                breaker.failed()
            else:
                breaker.released()
        self._metrics.llm_calls.inc({"outcome": "ok"})
        usage = completion.usage
        if usage is not None:
            self._metrics.llm_tokens.add({"kind": "prompt"}, usage.prompt_tokens)
            self._metrics.llm_tokens.add({"kind": "completion"}, usage.completion_tokens)
            await self._budget.spend(question.tenant_id, usage.total_tokens)
        choice = completion.choices[0] if completion.choices else None
        content = (choice.message.content or "").strip() if choice is not None else ""
        if not content:
            return None  # a refusal, or nothing: the plain fallback says it better
        if content.upper().startswith(HANDOFF):
            return HANDOFF
        return masker.restore(content)

    def _breaker(self, api_key: str) -> CircuitBreaker:
        if api_key == self._settings.openai_api_key:
            return self.breaker
        breaker = self._tenant_breakers.get(api_key)
        if breaker is None:
            if len(self._tenant_breakers) >= MAX_TENANT_BREAKERS:
                self._tenant_breakers.popitem(last=False)  # the longest unused forgets
            breaker = self._tenant_breakers[api_key] = self._new_breaker()
        else:
            self._tenant_breakers.move_to_end(api_key)
        return breaker

    def _new_breaker(self, on_change: Callable[[str], None] | None = None) -> CircuitBreaker:
        return CircuitBreaker(
            self._settings.breaker_failures,
            self._settings.breaker_window_seconds,
            self._settings.breaker_cooldown_seconds,
            on_change=on_change,
        )

    def _system_prompt(self, question: LlmQuestion, masker: Masker) -> str:
        lines = [
            "You answer customers of an insurance agency in India on behalf of their agent.",
            f"Reply in {_LANGUAGE_NAMES.get(question.language, 'English')}, in at most "
            f"{self._settings.max_reply_chars} characters, plainly.",
            "Never invent policy numbers, amounts, dates, statuses or any policy data; you have "
            "none. If the answer needs the customer's own policy data, or the notes below do not "
            f"answer it, or you are not sure, reply with exactly {HANDOFF}.",
            "Placeholders such as [NAME_1] or [PHONE_1] stand for hidden details: keep them.",
        ]
        if question.context:
            lines.append("Notes from the agency's knowledge base:")
            for asked, answered in question.context:
                lines.append(f"Q: {masker.mask(asked)}\nA: {masker.mask(answered)}")
        return "\n".join(lines)

    async def _key(self, tenant_id: uuid.UUID) -> tuple[str, str] | None:
        if self._tenant_key is not None:
            own = await self._tenant_key(tenant_id)
            if own is not None:
                return own
        if self._settings.openai_api_key:
            return self._settings.openai_api_key, self._settings.model
        return None

    def _client(self, api_key: str) -> AsyncOpenAI:
        key = (api_key, self._settings.openai_base_url)
        client = self._clients.get(key)
        if client is None:
            if len(self._clients) > 1000:
                self._clients.clear()  # old clients close when collected
            client = AsyncOpenAI(
                base_url=self._settings.openai_base_url,
                api_key=api_key,
                timeout=self._settings.timeout_seconds,
                max_retries=self._settings.max_retries,
            )
            self._clients[key] = client
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
