"""A local server that speaks the WhatsApp Cloud (Graph) API's wire format, for Mitra's real client.

It checks bearer tokens per object, checks message bodies per type the way Meta answers (400,
code 100, `error_data.details` naming the parameter), answers with fresh wamids, lists templates
with cursor paging, serves media metadata and media bytes in chunks, and can be told to fail
the next calls as Meta does (429 + 130429 + Retry-After, 500, 131047, a hang). Every request it
receives is recorded, without its secrets, so a test can count the POSTs of one message.

    fake = FakeGraph()
    fake.add_phone_number("106540352242922", "token-a")
    async with serve_fake_graph(fake) as base_url:  # binds 127.0.0.1 on a free port
        ...
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

FailureKind = Literal["rate_limited", "server_error", "outside_window", "hang"]

_VERSION = re.compile(r"v[0-9]+\.[0-9]+")
_DIGITS = re.compile(r"[1-9][0-9]{6,14}")
_SECRET_HEADERS = {"authorization", "cookie", "proxy-authorization"}
_MEDIA_TYPES = ("image", "document", "audio", "video")
_MESSAGE_TYPES = ("text", "template", "interactive", *_MEDIA_TYPES)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake saw it: `headers` without secrets, `bearer_ok` if the token fit."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    bearer_ok: bool
    json: Any
    # When it arrived (monotonic seconds): a rate limit is seen in these.
    at: float = 0.0


@dataclass(frozen=True)
class SentMessage:
    """A message the fake accepted, with the wamid it answered."""

    phone_number_id: str
    body: dict[str, Any]
    wamid: str


@dataclass
class _Failure:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


@dataclass
class _Media:
    content: bytes
    mime_type: str
    access_token: str


class BadParameter(Exception):
    def __init__(self, parameter: str, reason: str) -> None:
        self.parameter = parameter
        self.reason = reason
        super().__init__(f"{parameter}: {reason}")


def graph_error_body(
    code: int,
    message: str,
    *,
    details: str | None = None,
    error_type: str = "OAuthException",
    subcode: int | None = None,
) -> dict[str, Any]:
    """An error body in Meta's shape: `error.{message,type,code,error_data,fbtrace_id}`."""
    error: dict[str, Any] = {"message": message, "type": error_type, "code": code}
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = "A" + secrets.token_urlsafe(16)
    return {"error": error}


def _bad_token_body() -> dict[str, Any]:
    return graph_error_body(190, "Invalid OAuth access token - Cannot parse access token")


def _missing_object_body(node: str, verb: str) -> dict[str, Any]:
    return graph_error_body(
        100,
        f"Unsupported {verb} request. Object with ID '{node}' does not exist, cannot be loaded "
        "due to missing permissions, or does not support this operation. Please read the "
        "Graph API documentation at https://developers.facebook.com/docs/graph-api",
        error_type="GraphMethodException",
        subcode=33,
    )


class FakeGraph:
    """The state behind the fake server: its app is `app()`, `serve_fake_graph` runs it."""

    def __init__(self, *, download_chunk_size: int = 1024) -> None:
        self.requests: list[RecordedRequest] = []
        self.sent: list[SentMessage] = []
        # Meta pages at `limit`; a test sets this lower to see several pages of a few templates.
        self.template_page_size: int | None = None
        self.download_chunk_size = download_chunk_size
        self._phone_numbers: dict[str, str] = {}
        self._accounts: dict[str, tuple[str, list[dict[str, Any]]]] = {}
        self._media: dict[str, _Media] = {}
        self._script: list[_Failure] = []
        self._released = asyncio.Event()
        self._answering = asyncio.Event()
        self._answering.set()

    # -- arranging ---------------------------------------------------------------------------

    def add_phone_number(self, phone_number_id: str, access_token: str) -> None:
        self._phone_numbers[phone_number_id] = access_token

    def add_business_account(
        self, business_account_id: str, access_token: str, templates: list[dict[str, Any]]
    ) -> None:
        """`templates` are items as Meta lists them (name, language, status, components...)."""
        self._accounts[business_account_id] = (access_token, list(templates))

    def add_media(self, media_id: str, content: bytes, mime_type: str, access_token: str) -> None:
        self._media[media_id] = _Media(content, mime_type, access_token)

    def fail_next(self, kind: FailureKind, times: int = 1, *, retry_after: str = "2") -> None:
        """The next `times` requests (any route) fail as Meta fails them."""
        failure: _Failure
        if kind == "rate_limited":
            failure = _Failure(
                429,
                graph_error_body(
                    130429,
                    "(#130429) Rate limit hit",
                    details="Cloud API message throughput has been reached.",
                    subcode=2494055,
                ),
                {"Retry-After": retry_after},
            )
        elif kind == "server_error":
            failure = _Failure(
                500,
                graph_error_body(
                    131000,
                    "(#131000) Something went wrong",
                    details="Message failed to send due to an unknown error.",
                ),
            )
        elif kind == "outside_window":
            failure = _Failure(
                400,
                graph_error_body(
                    131047,
                    "(#131047) Re-engagement message",
                    details="Message failed to send because more than 24 hours have passed "
                    "since the customer last replied to this number.",
                ),
            )
        else:
            failure = _Failure(503, None, hang=True)
        self._script.extend([failure] * times)

    def fail_next_with(
        self,
        status: int,
        body: dict[str, Any] | bytes | None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """The next request gets exactly this answer (a JSON object, raw bytes or nothing)."""
        if isinstance(body, bytes):
            self._script.append(_Failure(status, {"__raw__": body.decode()}, headers or {}))
        else:
            self._script.append(_Failure(status, body, headers or {}))

    def hold_answers(self) -> None:
        """Accepted messages get their wamid (in `sent`) but no answer until `answer_held()`:
        Meta's webhooks about a message can overtake its answer to the POST."""
        self._answering.clear()

    def answer_held(self) -> None:
        self._answering.set()

    def release(self) -> None:
        """Lets hung requests finish (with a 503), so the server can shut down at once."""
        self._released.set()
        self._answering.set()

    # -- reading -----------------------------------------------------------------------------

    def message_posts(self, phone_number_id: str | None = None) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if r.method == "POST"
            and r.path.endswith("/messages")
            and (phone_number_id is None or r.path.split("/")[2] == phone_number_id)
        ]

    # -- serving -----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/whatsapp_business/attachments/", self._download)
        app.router.add_post("/{version}/{phone_number_id}/messages", self._messages)
        app.router.add_get("/{version}/{account_id}/message_templates", self._templates)
        app.router.add_get("/{version}/{media_id}", self._media_info)
        return app

    async def _record(self, request: web.Request, expected_token: str | None) -> RecordedRequest:
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k: v for k, v in request.headers.items() if k.lower() not in _SECRET_HEADERS},
            bearer_ok=expected_token is not None
            and request.headers.get("Authorization") == f"Bearer {expected_token}",
            json=body,
            at=time.monotonic(),
        )
        self.requests.append(recorded)
        return recorded

    def _known_token(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
        known = set(self._phone_numbers.values())
        known |= {token for token, _ in self._accounts.values()}
        known |= {media.access_token for media in self._media.values()}
        return token is not None and token in known

    async def _scripted(self) -> web.StreamResponse | None:
        if not self._script:
            return None
        failure = self._script.pop(0)
        if failure.hang:
            await self._released.wait()
            return web.json_response(
                graph_error_body(2, "Service temporarily unavailable"), status=503
            )
        if failure.body is None:
            return web.Response(status=failure.status, headers=failure.headers)
        if "__raw__" in failure.body:
            return web.Response(
                status=failure.status, text=failure.body["__raw__"], headers=failure.headers
            )
        return web.json_response(failure.body, status=failure.status, headers=failure.headers)

    async def _guard(
        self, request: web.Request, owner_token: str | None, node: str, verb: str
    ) -> web.StreamResponse | None:
        """What Meta answers before it looks at the request: scripted failures, path, token."""
        scripted = await self._scripted()
        if scripted is not None:
            return scripted
        if not _VERSION.fullmatch(request.match_info.get("version", "v0.0")):
            return web.json_response(
                graph_error_body(2500, f"Unknown path components: {request.path}"), status=400
            )
        if not self._known_token(request):
            return web.json_response(_bad_token_body(), status=401)
        if owner_token is None or request.headers.get("Authorization") != f"Bearer {owner_token}":
            return web.json_response(_missing_object_body(node, verb), status=400)
        return None

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        phone_number_id = request.match_info["phone_number_id"]
        owner = self._phone_numbers.get(phone_number_id)
        recorded = await self._record(request, owner)
        refused = await self._guard(request, owner, phone_number_id, "post")
        if refused is not None:
            return refused
        try:
            _check_message(recorded.json)
        except BadParameter as bad:
            return web.json_response(
                graph_error_body(
                    100,
                    "(#100) Invalid parameter",
                    details=f"Parameter '{bad.parameter}' is invalid: {bad.reason}",
                ),
                status=400,
            )
        wamid = "wamid." + base64.b64encode(secrets.token_bytes(30)).decode().rstrip("=")
        self.sent.append(SentMessage(phone_number_id, recorded.json, wamid))
        await self._answering.wait()
        to = recorded.json["to"]
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": wamid}],
            }
        )

    async def _templates(self, request: web.Request) -> web.StreamResponse:
        account_id = request.match_info["account_id"]
        owner, templates = self._accounts.get(account_id, (None, []))
        await self._record(request, owner)
        refused = await self._guard(request, owner, account_id, "get")
        if refused is not None:
            return refused
        limit = int(request.query.get("limit", "25"))
        if self.template_page_size is not None:
            limit = min(limit, self.template_page_size)
        start = _cursor_index(request.query.get("after"))
        page = templates[start : start + limit]
        body: dict[str, Any] = {"data": page}
        if page:
            body["paging"] = {
                "cursors": {"before": _cursor(start), "after": _cursor(start + len(page))}
            }
            if start + len(page) < len(templates):
                query = {k: v for k, v in request.query.items() if k != "after"}
                query["after"] = _cursor(start + len(page))
                body["paging"]["next"] = str(request.url.with_query(query))
        return web.json_response(body)

    async def _media_info(self, request: web.Request) -> web.StreamResponse:
        media_id = request.match_info["media_id"]
        media = self._media.get(media_id)
        await self._record(request, media.access_token if media else None)
        refused = await self._guard(request, media.access_token if media else None, media_id, "get")
        if refused is not None or media is None:
            assert refused is not None
            return refused
        origin = request.url.origin()
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "url": str(
                    origin.with_path("/whatsapp_business/attachments/").with_query(
                        {"mid": media_id, "ext": "1700000000", "hash": "ATtest"}
                    )
                ),
                "mime_type": media.mime_type,
                "sha256": hashlib.sha256(media.content).hexdigest(),
                # Meta documents file_size as a string in some versions and a number in others.
                "file_size": str(len(media.content)),
                "id": media_id,
            }
        )

    async def _download(self, request: web.Request) -> web.StreamResponse:
        media = self._media.get(request.query.get("mid", ""))
        await self._record(request, media.access_token if media else None)
        scripted = await self._scripted()
        if scripted is not None:
            return scripted
        if media is None:
            return web.Response(status=404)
        if request.headers.get("Authorization") != f"Bearer {media.access_token}":
            return web.json_response(_bad_token_body(), status=401)
        response = web.StreamResponse(
            headers={"Content-Type": media.mime_type, "Content-Length": str(len(media.content))}
        )
        await response.prepare(request)
        for offset in range(0, len(media.content), self.download_chunk_size):
            await response.write(media.content[offset : offset + self.download_chunk_size])
        await response.write_eof()
        return response


def _cursor(index: int) -> str:
    return base64.urlsafe_b64encode(f"index:{index}".encode()).decode()


def _cursor_index(cursor: str | None) -> int:
    if not cursor:
        return 0
    return int(base64.urlsafe_b64decode(cursor.encode()).decode().removeprefix("index:"))


@asynccontextmanager
async def serve_fake_graph(fake: FakeGraph) -> AsyncIterator[str]:
    """Runs the fake on 127.0.0.1 on a free port; yields its base URL, e.g. http://127.0.0.1:41234."""
    runner = web.AppRunner(fake.app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        fake.release()
        await runner.cleanup()


# -- what Meta accepts in POST /{phone_number_id}/messages ---------------------------------------


def _object(value: Any, path: str, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadParameter(path, "must be an object")
    for key in value:
        if key not in allowed:
            raise BadParameter(f"{path}.{key}" if path else key, "is not a valid parameter")
    for key in required:
        if key not in value:
            raise BadParameter(f"{path}.{key}" if path else key, "is required")
    return value


def _string(value: Any, path: str, limit: int) -> None:
    if not isinstance(value, str) or not value:
        raise BadParameter(path, "must be a non-empty string")
    if len(value) > limit:
        raise BadParameter(path, f"must be at most {limit} characters")


def _list(value: Any, path: str, low: int, high: int) -> list[Any]:
    if not isinstance(value, list) or not low <= len(value) <= high:
        raise BadParameter(path, f"must be a list of {low} to {high} items")
    return value


def _check_message(body: Any) -> None:
    envelope = {"messaging_product", "recipient_type", "to", "type", "context"}
    message = _object(body, "", envelope | set(_MESSAGE_TYPES), {"messaging_product", "to", "type"})
    if message["messaging_product"] != "whatsapp":
        raise BadParameter("messaging_product", "must be whatsapp")
    if message.get("recipient_type", "individual") != "individual":
        raise BadParameter("recipient_type", "must be individual")
    # Meta tolerates a leading +; Mitra promises digits only, and the fake holds it to that.
    if not isinstance(message["to"], str) or not _DIGITS.fullmatch(message["to"]):
        raise BadParameter("to", "must be a phone number in digits")
    kind = message["type"]
    if kind not in _MESSAGE_TYPES:
        raise BadParameter("type", f"must be one of {', '.join(_MESSAGE_TYPES)}")
    for other in _MESSAGE_TYPES:
        if other != kind and other in message:
            raise BadParameter(other, f"does not belong to a message of type {kind}")
    if kind not in message:
        raise BadParameter(kind, "is required")
    content = message[kind]
    if kind == "text":
        text = _object(content, "text", {"body", "preview_url"}, {"body"})
        _string(text["body"], "text.body", 4096)
        if not isinstance(text.get("preview_url", False), bool):
            raise BadParameter("text.preview_url", "must be a boolean")
    elif kind == "template":
        _check_template(content)
    elif kind == "interactive":
        _check_interactive(content)
    else:
        _check_media(kind, content, kind)


def _check_media(kind: str, content: Any, path: str) -> None:
    allowed = {"link", "id", "caption", "filename"}
    if kind == "audio":
        allowed = {"link", "id"}
    elif kind != "document":
        allowed.discard("filename")
    media = _object(content, path, allowed, set())
    if "link" not in media and "id" not in media:
        raise BadParameter(f"{path}.link", "is required")
    if "link" in media:
        _string(media["link"], f"{path}.link", 2048)
    if "caption" in media:
        _string(media["caption"], f"{path}.caption", 1024)


def _check_template(content: Any) -> None:
    template = _object(
        content, "template", {"name", "language", "components"}, {"name", "language"}
    )
    _string(template["name"], "template.name", 512)
    language = _object(template["language"], "template.language", {"code", "policy"}, {"code"})
    _string(language["code"], "template.language.code", 15)
    for c, component in enumerate(
        _list(template.get("components", []), "template.components", 0, 10)
    ):
        path = f"template.components[{c}]"
        _object(component, path, {"type", "parameters", "sub_type", "index"}, {"type"})
        if component["type"] not in ("header", "body", "button"):
            raise BadParameter(f"{path}.type", "must be header, body or button")
        for p, parameter in enumerate(
            _list(component.get("parameters", []), f"{path}.parameters", 0, 100)
        ):
            ppath = f"{path}.parameters[{p}]"
            kind = parameter.get("type") if isinstance(parameter, dict) else None
            if kind == "text":
                _object(parameter, ppath, {"type", "text", "parameter_name"}, {"text"})
                _string(parameter["text"], f"{ppath}.text", 32768)
            elif kind in ("image", "document", "video"):
                _object(parameter, ppath, {"type", kind}, {kind})
                _check_media(kind, parameter[kind], f"{ppath}.{kind}")
            else:
                raise BadParameter(f"{ppath}.type", "must be text, image, document or video")


def _check_interactive(content: Any) -> None:
    interactive = _object(
        content,
        "interactive",
        {"type", "header", "body", "footer", "action"},
        {"type", "body", "action"},
    )
    kind = interactive["type"]
    if kind not in ("button", "list"):
        raise BadParameter("interactive.type", "must be button or list")
    body = _object(interactive["body"], "interactive.body", {"text"}, {"text"})
    _string(body["text"], "interactive.body.text", 1024 if kind == "button" else 4096)
    if "header" in interactive:
        header = _object(
            interactive["header"], "interactive.header", {"type", "text"}, {"type", "text"}
        )
        if header["type"] != "text":
            raise BadParameter("interactive.header.type", "must be text")
        _string(header["text"], "interactive.header.text", 60)
    if "footer" in interactive:
        footer = _object(interactive["footer"], "interactive.footer", {"text"}, {"text"})
        _string(footer["text"], "interactive.footer.text", 60)
    if kind == "button":
        action = _object(interactive["action"], "interactive.action", {"buttons"}, {"buttons"})
        for b, button in enumerate(_list(action["buttons"], "interactive.action.buttons", 1, 3)):
            path = f"interactive.action.buttons[{b}]"
            _object(button, path, {"type", "reply"}, {"type", "reply"})
            if button["type"] != "reply":
                raise BadParameter(f"{path}.type", "must be reply")
            reply = _object(button["reply"], f"{path}.reply", {"id", "title"}, {"id", "title"})
            _string(reply["id"], f"{path}.reply.id", 256)
            _string(reply["title"], f"{path}.reply.title", 20)
        return
    action = _object(
        interactive["action"], "interactive.action", {"button", "sections"}, {"button", "sections"}
    )
    _string(action["button"], "interactive.action.button", 20)
    sections = _list(action["sections"], "interactive.action.sections", 1, 10)
    rows = 0
    for s, section in enumerate(sections):
        path = f"interactive.action.sections[{s}]"
        _object(
            section, path, {"title", "rows"}, {"rows"} | ({"title"} if len(sections) > 1 else set())
        )
        if "title" in section:
            _string(section["title"], f"{path}.title", 24)
        for r, row in enumerate(_list(section["rows"], f"{path}.rows", 1, 10)):
            rpath = f"{path}.rows[{r}]"
            _object(row, rpath, {"id", "title", "description"}, {"id", "title"})
            _string(row["id"], f"{rpath}.id", 200)
            _string(row["title"], f"{rpath}.title", 24)
            if "description" in row:
                _string(row["description"], f"{rpath}.description", 72)
            rows += 1
    if rows > 10:
        raise BadParameter("interactive.action.sections", "must hold at most 10 rows in all")
