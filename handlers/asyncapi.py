"""`GET /api/v1/asyncapi.json`: the socket contract as an AsyncAPI 3 document.

Built from the models that validate the client's frames (`handlers.schemas.chat`) and describe
the server's (`handlers.schemas.chat_server`), with every error code and close code, so the
document cannot say something the server does not do.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from handlers.chat_hub import CLOSE_SLOW_CONSUMER, CLOSE_UNAUTHENTICATED
from handlers.openapi import RawResponse, operation
from handlers.schemas.chat import (
    AuthFrame,
    JoinFrame,
    PingFrame,
    ReadFrame,
    SendFrame,
    TypingFrame,
)
from handlers.schemas.chat_server import SERVER_FRAMES

routes = web.RouteTableDef()

CLIENT_FRAMES: dict[str, type[BaseModel]] = {
    "auth": AuthFrame,
    "join": JoinFrame,
    "send": SendFrame,
    "typing": TypingFrame,
    "read": ReadFrame,
    "ping": PingFrame,
}

ERROR_CODES: dict[str, str] = {
    "bad_json": "the frame is not JSON",
    "bad_frame": "the frame is not a JSON object",
    "unsupported": "a binary frame: frames are JSON text",
    "unknown_type": "no such frame type",
    "invalid_frame": "a field is missing or out of range (the message names it)",
    "already_authenticated": "an auth frame on an authenticated socket",
    "not_member": "no such conversation, or the caller is not a member",
    "body_too_long": "the body is longer than chat.max_body_chars",
    "rate_limited": "too many frames; the message says when to retry",
    "message_refused": "the database refused this message as it is: change it",
    "outside_window": "a WhatsApp reply more than 24 hours after the customer last wrote",
    "invalid_input": "the request was refused for its content (the message says why)",
    "not_stored": "the message was not stored: send the same client_msg_id again",
    "actor_timeout": "the conversation did not answer in time: send again",
    "actor_unavailable": "the conversation is restarting: send again",
    "unavailable": "a dependency is down for now: send again",
    "streams_unavailable": "the message broker is unavailable: send again",
    "internal_error": "a bug: quote the request id; a send may be repeated safely",
}

CLOSE_CODES: dict[int, str] = {
    1001: "the server is shutting down: reconnect (to another instance)",
    1007: "a text frame that is not UTF-8",
    1009: "a frame larger than the server accepts",
    1011: "an unexpected error on the server",
    CLOSE_SLOW_CONSUMER: "the client fell behind: reconnect and join with the last seq seen",
    CLOSE_UNAUTHENTICATED: "no valid session (auth frame missing, wrong, or the session "
    "ended): sign in again",
}


def build_document() -> dict[str, Any]:
    models = [*CLIENT_FRAMES.values(), *SERVER_FRAMES.values()]
    payload_refs, schema = models_json_schema(
        [(model, "validation") for model in models],
        ref_template="#/components/schemas/{model}",
    )
    messages: dict[str, Any] = {}
    for prefix, frames in (("client", CLIENT_FRAMES), ("server", SERVER_FRAMES)):
        for kind, model in frames.items():
            messages[f"{prefix}.{kind}"] = {
                "name": kind,
                "title": model.__name__,
                "summary": (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else kind,
                "contentType": "application/json",
                "payload": payload_refs[(model, "validation")],
            }
    channel_messages = {name: {"$ref": f"#/components/messages/{name}"} for name in messages}

    def refs(prefix: str) -> list[dict[str, str]]:
        return [
            {"$ref": f"#/channels/chat/messages/{name}"}
            for name in messages
            if name.startswith(prefix + ".")
        ]

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Mitra chat socket",
            "version": "1",
            "description": "JSON text frames on /ws. The first frame is `auth` with an access "
            "token; then `join` each conversation with the last seq seen, and `send` with a "
            "client_msg_id (the same id again returns the first ack and stores nothing).",
        },
        "servers": {
            "local": {"host": "127.0.0.1:8080", "protocol": "ws", "pathname": "/ws"},
        },
        "channels": {"chat": {"address": "/ws", "messages": channel_messages}},
        "operations": {
            "clientFrames": {
                "action": "receive",
                "channel": {"$ref": "#/channels/chat"},
                "messages": refs("client"),
            },
            "serverFrames": {
                "action": "send",
                "channel": {"$ref": "#/channels/chat"},
                "messages": refs("server"),
            },
        },
        "components": {"schemas": schema.get("$defs", {}), "messages": messages},
        "x-error-codes": ERROR_CODES,
        "x-close-codes": {str(code): meaning for code, meaning in CLOSE_CODES.items()},
    }


@routes.get("/api/v1/asyncapi.json")
@operation(
    "The WebSocket contract (AsyncAPI 3)",
    tags=("docs",),
    auth=False,
    raw=RawResponse("application/json", {"type": "object"}, "the AsyncAPI document"),
)
async def asyncapi(request: web.Request) -> web.Response:
    return web.Response(body=_document(), content_type="application/json")


@functools.cache
def _document() -> bytes:
    # The same for every app and request: built once, on first ask.
    return orjson.dumps(build_document())
