"""The agency's knowledge base: articles, and search with the database's own full-text index.

SQLite searches an FTS5 table the service keeps in step with the articles, in the same
transaction; PostgreSQL a GIN index over a `tsvector` expression of the article itself. Both
rank; the top three go to the assistant, which answers with the first when it matches the
question strongly and hands the rest to the LLM as context.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, MetaData, String, Table, delete, func, insert, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnClause

from mitra.assistant.intents import INTENTS, LANGUAGES, normalise
from mitra.auth.principal import Principal
from mitra.db import Database, Scope
from mitra.errors import Forbidden, InvalidInput, NotFound
from mitra.models import KbArticle
from mitra.models.assistant import KB_FTS_TABLE
from mitra.records import UNSET, Unset

TOP = 3
MAX_TERMS = 12

# The expression the migration indexes, word for word: PostgreSQL uses a GIN index on an
# expression only for a query that repeats it.
_TSVECTOR: ColumnClause[Any] = literal_column(
    "to_tsvector('simple', kb_articles.question || ' ' || kb_articles.answer || ' ' || "
    "coalesce(kb_articles.tags_text, ''))"
)
# Not mapped (it is no table SQLAlchemy could create); described for Core statements only.
_FTS = Table(
    KB_FTS_TABLE,
    MetaData(),
    Column("article_id", String),
    Column("tenant_id", String),
    Column("question", String),
    Column("answer", String),
    Column("tags", String),
)
_STOPWORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "is",
        "are",
        "am",
        "was",
        "my",
        "i",
        "me",
        "what",
        "when",
        "where",
        "how",
        "do",
        "does",
        "did",
        "to",
        "of",
        "for",
        "in",
        "on",
        "and",
        "or",
        "it",
        "you",
        "your",
        "can",
        "could",
        "please",
        "tell",
        "about",
        "with",
        "this",
        "that",
        "be",
        "will",
        "would",
        "should",
        "there",
        "ka",
        "ki",
        "ke",
        "ko",
        "hai",
        "hain",
        "kya",
        "mera",
        "meri",
        "mere",
        "se",
        "me",
        "mein",
        "aap",
        "है",
        "हैं",
        "का",
        "की",
        "के",
        "को",
        "में",
        "मेरा",
        "मेरी",
        "मेरे",
        "क्या",
        "से",
        "आप",
    ]
)


@dataclass(frozen=True)
class Article:
    id: uuid.UUID
    question: str
    answer: str
    intent: str | None
    language: str
    tags: list[str]
    created_at: datetime
    updated_at: datetime


def terms(text: str) -> list[str]:
    """The words of `text` that say what it is about (no stopwords), at most `MAX_TERMS`."""
    words = [w for w in normalise(text).split() if w not in _STOPWORDS and len(w) > 1]
    return list(dict.fromkeys(words))[:MAX_TERMS]


def strong_match(question: str, article: Article, threshold: float) -> bool:
    """True when at least `threshold` of the question's words are in the article's question
    or tags: a measure both databases give the same answer to, unlike their ranks."""
    asked = terms(question)
    if not asked:
        return False
    known = set(terms(article.question + " " + " ".join(article.tags)))
    return sum(word in known for word in asked) / len(asked) >= threshold


class KnowledgeBase:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def create(self, principal: Principal, fields: dict[str, Any]) -> Article:
        _require_admin(principal)
        _check(fields)
        async with self._db.transaction(Scope.tenant(principal.tenant_id)) as session:
            row = KbArticle(
                tenant_id=principal.tenant_id,
                question=fields["question"],
                answer=fields["answer"],
                intent=fields.get("intent"),
                language=fields.get("language") or "en",
                tags=list(fields.get("tags") or []),
                tags_text=" ".join(fields.get("tags") or []),
                created_by=principal.user_id,
                updated_by=principal.user_id,
            )
            session.add(row)
            await session.flush()
            await self._index(session, row)
            return _article(row)

    async def get(self, principal: Principal, article_id: uuid.UUID) -> Article:
        _require_staff(principal)
        async with self._db.session(Scope.tenant(principal.tenant_id)) as session:
            return _article(await _row(session, article_id))

    async def listing(
        self, principal: Principal, *, q: str | None = None, limit: int = 100
    ) -> list[Article]:
        _require_staff(principal)
        if q:
            return await self.search(principal.tenant_id, q)
        async with self._db.session(Scope.tenant(principal.tenant_id)) as session:
            rows = await session.scalars(
                select(KbArticle).order_by(KbArticle.created_at, KbArticle.id).limit(limit)
            )
            return [_article(row) for row in rows]

    async def update(
        self, principal: Principal, article_id: uuid.UUID, changes: dict[str, Any | Unset]
    ) -> Article:
        _require_admin(principal)
        given = {k: v for k, v in changes.items() if v is not UNSET}
        _check(given, partial=True)
        async with self._db.transaction(Scope.tenant(principal.tenant_id)) as session:
            row = await _row(session, article_id)
            for name, value in given.items():
                setattr(row, name, list(value or []) if name == "tags" else value)
            if "tags" in given:
                row.tags_text = " ".join(given["tags"] or [])
            row.updated_by = principal.user_id
            await session.flush()
            await self._index(session, row)
            return _article(row)

    async def delete(self, principal: Principal, article_id: uuid.UUID) -> None:
        _require_admin(principal)
        async with self._db.transaction(Scope.tenant(principal.tenant_id)) as session:
            row = await _row(session, article_id)
            await session.delete(row)
            if self._db.is_sqlite:
                await session.execute(delete(_FTS).where(_FTS.c.article_id == article_id.hex))

    async def search(
        self,
        tenant_id: uuid.UUID,
        text: str,
        *,
        language: str | None = None,
        limit: int = TOP,
    ) -> list[Article]:
        """The best-ranked articles for `text` (the tenant's own only), best first; those in
        `language`, when given, ahead of the others (ranks stay in order within each)."""
        words = terms(text)
        if not words:
            return []
        async with self._db.session(Scope.tenant(tenant_id)) as session:
            if self._db.is_sqlite:
                ids = await self._sqlite_ranked(session, tenant_id, words, limit)
                if not ids:
                    return []
                rows = {
                    row.id: row
                    for row in await session.scalars(select(KbArticle).where(KbArticle.id.in_(ids)))
                }
                found = [_article(rows[i]) for i in ids if i in rows]
                return _preferring(found, language)
            query = func.to_tsquery("simple", " | ".join(_tsquery_word(w) for w in words))
            ranked = await session.scalars(
                select(KbArticle)
                .where(_TSVECTOR.op("@@")(query))
                .order_by(func.ts_rank(_TSVECTOR, query).desc(), KbArticle.id)
                .limit(limit)
            )
            return _preferring([_article(row) for row in ranked], language)

    async def _sqlite_ranked(
        self, session: AsyncSession, tenant_id: uuid.UUID, words: Sequence[str], limit: int
    ) -> list[uuid.UUID]:
        match = " OR ".join(f'"{w}"' for w in words)
        fts: ColumnClause[Any] = literal_column(KB_FTS_TABLE)
        rank = func.bm25(fts)
        rows = await session.execute(
            select(_FTS.c.article_id)
            .where(_FTS.c.tenant_id == tenant_id.hex, fts.op("MATCH")(match))
            .order_by(rank)
            .limit(limit)
        )
        return [uuid.UUID(hex=article_id) for (article_id,) in rows]

    async def _index(self, session: AsyncSession, row: KbArticle) -> None:
        """SQLite: the article's words in the FTS table (PostgreSQL indexes the row itself)."""
        if not self._db.is_sqlite:
            return
        await session.execute(delete(_FTS).where(_FTS.c.article_id == row.id.hex))
        await session.execute(
            insert(_FTS).values(
                article_id=row.id.hex,
                tenant_id=row.tenant_id.hex,
                question=row.question,
                answer=row.answer,
                tags=row.tags_text or "",
            )
        )


def _preferring(articles: list[Article], language: str | None) -> list[Article]:
    if language is None:
        return articles
    return sorted(articles, key=lambda article: article.language != language)


def _tsquery_word(word: str) -> str:
    # normalise() leaves letters, digits and underscores only: nothing tsquery would parse.
    return word.replace("'", "")


async def _row(session: AsyncSession, article_id: uuid.UUID) -> KbArticle:
    row = await session.get(KbArticle, article_id)
    if row is None:
        raise NotFound("article not found")
    return row


def _article(row: KbArticle) -> Article:
    return Article(
        id=row.id,
        question=row.question,
        answer=row.answer,
        intent=row.intent,
        language=row.language,
        tags=list(row.tags or []),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _check(fields: dict[str, Any], *, partial: bool = False) -> None:
    intent = fields.get("intent")
    if intent is not None and intent not in INTENTS:
        raise InvalidInput.for_field("intent", f"one of {', '.join(INTENTS)}")
    language = fields.get("language")
    if language is not None and language not in LANGUAGES:
        raise InvalidInput.for_field("language", f"one of {', '.join(LANGUAGES)}")
    for name in ("question", "answer"):
        if (not partial or name in fields) and not (fields.get(name) or "").strip():
            raise InvalidInput.for_field(name, "must not be empty")


def _require_staff(principal: Principal) -> None:
    if not principal.role.is_staff:
        raise Forbidden("only the agency's staff read its knowledge base")


def _require_admin(principal: Principal) -> None:
    if not principal.role.is_admin:
        raise Forbidden("only the agency's admins edit its knowledge base")
