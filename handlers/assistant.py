"""The assistant's endpoints: hand-back, callback requests, the knowledge base, and the
tenant's own OpenAI key (sealed like every provider's credentials, never answered)."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

from aiohttp import web

from handlers.envelope import ok
from handlers.keys import ASSISTANT, ASSISTANT_ANNOUNCER, INTEGRATIONS, KNOWLEDGE_BASE
from handlers.openapi import operation
from handlers.records import path_id
from handlers.schemas.assistant import (
    ArticlePatch,
    ArticleQuery,
    ArticleRequest,
    ArticleResponse,
    AssistantSettingsRequest,
    AssistantSettingsResponse,
    CallbackPatch,
    CallbackQuery,
    CallbackResponse,
    ModeResponse,
    OpenAIIntegrationRequest,
    OpenAIIntegrationResponse,
)
from handlers.schemas.common import IdPath
from handlers.security import authenticate
from handlers.validation import parse_body, parse_query
from mitra.assistant import BOT
from mitra.assistant.llm import OPENAI
from mitra.errors import Forbidden
from mitra.records import UNSET

routes = web.RouteTableDef()
TAGS = ("assistant",)


@routes.post("/api/v1/conversations/{id}/handback")
@operation(
    "Give a customer's conversation back to the assistant",
    description="Staff members of the conversation (admins: any). The assistant answers the "
    "customer again; members get a `mode` frame and the log a system message.",
    tags=TAGS,
    path=IdPath,
    response=ModeResponse,
    errors=(403, 404, 422),
)
async def handback(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    conversation_id = path_id(request, "conversation")
    service = request.app[ASSISTANT]
    changed = await service.handback(principal, conversation_id)
    if changed:
        context = await service.context(principal.tenant_id, conversation_id)
        members = context.member_ids if context is not None else frozenset()
        await request.app[ASSISTANT_ANNOUNCER].announce(
            principal.tenant_id,
            conversation_id,
            members,
            mode=BOT,
            # Unique per hand-back: a later one must not be taken for a retry of this one.
            cause=f"handback-{uuid.uuid4().hex}",
        )
    shown = ModeResponse(conversation_id=conversation_id, mode=BOT, changed=changed)
    return ok(shown, message="handed back" if changed else "the assistant was answering already")


@routes.get("/api/v1/callbacks")
@operation(
    "Callback requests from the assistant's hand-offs",
    description="Agents: the requests for them; admins: the agency's. Newest first.",
    tags=TAGS,
    query=CallbackQuery,
    response=list[CallbackResponse],
    errors=(403,),
)
async def list_callbacks(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    query = parse_query(request, CallbackQuery)
    rows = await request.app[ASSISTANT].callbacks(principal, query.status)
    return ok([CallbackResponse.model_validate(asdict(row)) for row in rows])


@routes.patch("/api/v1/callbacks/{id}")
@operation(
    "Mark a callback request done (or open again)",
    tags=TAGS,
    path=IdPath,
    body=CallbackPatch,
    response=CallbackResponse,
    errors=(403, 404),
)
async def patch_callback(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    callback_id = path_id(request, "callback request")
    body = await parse_body(request, CallbackPatch)
    row = await request.app[ASSISTANT].update_callback(principal, callback_id, body.status)
    return ok(CallbackResponse.model_validate(asdict(row)), message="callback request updated")


@routes.post("/api/v1/kb/articles")
@operation(
    "Add a knowledge-base article",
    description="Tenant admins. The assistant answers with it when a question matches it well.",
    tags=TAGS,
    body=ArticleRequest,
    response=ArticleResponse,
    status=201,
    errors=(403,),
)
async def create_article(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    body = await parse_body(request, ArticleRequest)
    article = await request.app[KNOWLEDGE_BASE].create(principal, body.model_dump())
    return ok(ArticleResponse.model_validate(asdict(article)), message="created", status=201)


@routes.get("/api/v1/kb/articles")
@operation(
    "The knowledge base's articles",
    description="Staff. With `q`, the full-text search the assistant uses, best first (top 3).",
    tags=TAGS,
    query=ArticleQuery,
    response=list[ArticleResponse],
    errors=(403,),
)
async def list_articles(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    query = parse_query(request, ArticleQuery)
    rows = await request.app[KNOWLEDGE_BASE].listing(principal, q=query.q)
    return ok([ArticleResponse.model_validate(asdict(row)) for row in rows])


@routes.get("/api/v1/kb/articles/{id}")
@operation("One knowledge-base article", tags=TAGS, path=IdPath, response=ArticleResponse,
           errors=(403, 404))  # fmt: skip
async def get_article(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    article = await request.app[KNOWLEDGE_BASE].get(principal, path_id(request, "article"))
    return ok(ArticleResponse.model_validate(asdict(article)))


@routes.patch("/api/v1/kb/articles/{id}")
@operation(
    "Change a knowledge-base article",
    description="Tenant admins; fields left out stay as they are.",
    tags=TAGS,
    path=IdPath,
    body=ArticlePatch,
    response=ArticleResponse,
    errors=(403, 404),
)
async def patch_article(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    article_id = path_id(request, "article")
    body = await parse_body(request, ArticlePatch)
    changes: dict[str, Any] = {
        name: getattr(body, name) if name in body.model_fields_set else UNSET
        for name in ("question", "answer", "intent", "language", "tags")
    }
    article = await request.app[KNOWLEDGE_BASE].update(principal, article_id, changes)
    return ok(ArticleResponse.model_validate(asdict(article)), message="updated")


@routes.delete("/api/v1/kb/articles/{id}")
@operation("Delete a knowledge-base article", description="Tenant admins.", tags=TAGS,
           path=IdPath, errors=(403, 404))  # fmt: skip
async def delete_article(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    await request.app[KNOWLEDGE_BASE].delete(principal, path_id(request, "article"))
    return ok(message="article deleted")


def _openai_shape(shown: Any) -> OpenAIIntegrationResponse:
    return OpenAIIntegrationResponse.model_validate(
        {
            "provider": shown.provider,
            **shown.config,
            **shown.secrets,
            "updated_at": shown.updated_at,
        }
    )


@routes.put("/api/v1/integrations/openai")
@operation(
    "Use the agency's own OpenAI key for the assistant",
    description="Tenant admins. The key is stored encrypted and never answered (masked).",
    tags=("integrations",),
    body=OpenAIIntegrationRequest,
    response=OpenAIIntegrationResponse,
    errors=(403,),
)
async def put_openai(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    body = await parse_body(request, OpenAIIntegrationRequest)
    shown = await request.app[INTEGRATIONS].put(
        principal, OPENAI, {"model": body.model}, {"api_key": body.api_key}
    )
    return ok(_openai_shape(shown), message="openai integration saved")


@routes.get("/api/v1/integrations/openai")
@operation("The agency's OpenAI settings, key masked", tags=("integrations",),
           response=OpenAIIntegrationResponse, errors=(403, 404))  # fmt: skip
async def get_openai(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    return ok(_openai_shape(await request.app[INTEGRATIONS].get(principal, OPENAI)))


@routes.get("/api/v1/assistant/settings")
@operation("The agency's assistant: its default mode and own phrases", tags=TAGS,
           response=AssistantSettingsResponse, errors=(403,))  # fmt: skip
async def get_settings(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    if not principal.role.is_staff:
        raise Forbidden("only the agency's staff see the assistant's settings")
    shown = await request.app[ASSISTANT].tenant_settings(principal.tenant_id)
    return ok(AssistantSettingsResponse.model_validate(asdict(shown)))


@routes.put("/api/v1/assistant/settings")
@operation(
    "Set the agency's assistant: default mode and own phrases",
    description="Tenant admins. Phrases are added to the built-in rules per language and "
    "intent; the assistant uses them within half a minute on every instance.",
    tags=TAGS,
    body=AssistantSettingsRequest,
    response=AssistantSettingsResponse,
    errors=(403,),
)
async def put_settings(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    body = await parse_body(request, AssistantSettingsRequest)
    phrases: dict[str, dict[str, list[str]]] = {
        str(lang): {str(intent): list(p) for intent, p in by.items()}
        for lang, by in body.phrases.items()
    }
    shown = await request.app[ASSISTANT].put_settings(principal, body.default_mode, phrases)
    return ok(AssistantSettingsResponse.model_validate(asdict(shown)), message="saved")
