"""Mitra's client of Meta's WhatsApp Cloud (Graph) API: send, list templates, fetch media.

One `GraphClient` serves every tenant over one shared `aiohttp.ClientSession`; each call takes
the tenant's access token, which never reaches an error message or a log line.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from mitra.whatsapp.graph_messages import (
    InteractiveButtons,
    InteractiveList,
    ListRow,
    ListSection,
    MediaMessage,
    OutboundMessage,
    ReplyButton,
    TemplateMedia,
    TemplateMessage,
    TextMessage,
)

__all__ = [
    "GraphClient",
    "GraphError",
    "GraphUnavailable",
    "InteractiveButtons",
    "InteractiveList",
    "ListRow",
    "ListSection",
    "MediaInfo",
    "MediaMessage",
    "OutboundMessage",
    "ReplyButton",
    "Template",
    "TemplateMedia",
    "TemplateMessage",
    "TextMessage",
    "parse_retry_after",
]

log = logging.getLogger("mitra.whatsapp.graph")

# Meta asks clients to decide on `code`, not on the HTTP status, so codes come first and the
# status only decides for a code that is in neither set.
RETRYABLE_CODES = frozenset(
    {
        2,  # API Service: "temporary due to downtime or due to being overloaded"
        4,  # API Too Many Calls: the app's call rate limit, a rolling window
        80007,  # the WhatsApp Business Account's rate limit, also a rolling window
        130429,  # throughput of the number reached (80/s by default): back off and resend
        131000,  # "Something went wrong ... Try again"
        131016,  # service unavailable
        # Pair rate limit: too many messages to the same customer in a short time. Meta's
        # advice is to wait and retry, and the backoff's growing delays are that wait.
        131056,
        133004,  # server temporarily unavailable
    }
)
PERMANENT_CODES = frozenset(
    {
        0,  # AuthException: the token is no longer good
        3,  # API Method: a capability or permission missing, although Meta answers it with 500
        10,  # permission denied
        100,  # invalid parameter
        190,  # access token expired or invalid: only a new token helps
        368,  # temporarily blocked for policy violations: days, not seconds
        131008,  # required parameter missing
        131009,  # parameter value not valid
        131026,  # undeliverable: not a WhatsApp number, old client, terms not accepted
        131031,  # business account locked
        131047,  # re-engagement: 24 hours since the customer last wrote; only a template goes
        # Spam rate limit: the number's quality rating restricts it. It reads like a rate
        # limit, but Meta's remedy is to fix quality in WhatsApp Manager; resending soon only
        # adds to the blocked messages that caused it.
        131048,
        131051,  # unsupported message type
        132000,  # template parameter count does not match the template
        132001,  # template does not exist in that language
        133010,  # the business number is not registered
    }
)

# A WhatsApp Business Account has a few hundred templates; a `next` link that never ends is a
# fault, not a reason to loop forever.
MAX_TEMPLATE_PAGES = 100
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
_VERSION = re.compile(r"v[0-9]+\.[0-9]+")
_NODE_ID = re.compile(r"[A-Za-z0-9_]{1,64}")
_STREAM_CHUNK = 64 * 1024


class GraphError(Exception):
    """A call to the Graph API failed; `retryable` says whether the same call may succeed later.

    `outcome_unknown` is true when Meta may have acted on a send although no answer says so:
    resending could deliver the message twice, so the caller records it as unknown instead.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        subcode: int | None = None,
        details: str | None = None,
        error_type: str | None = None,
        fbtrace_id: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        self.message = message
        self.status = status
        self.code = code
        self.subcode = subcode
        self.details = details
        self.error_type = error_type
        self.fbtrace_id = fbtrace_id
        self.retryable = retryable
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown
        super().__init__(message)

    def __str__(self) -> str:
        parts = ["Graph API error"]
        if self.code is not None:
            parts.append(f" {self.code}")
        if self.status is not None:
            parts.append(f" (HTTP {self.status})")
        parts.append(f": {self.message}")
        if self.details:
            parts.append(f" - {self.details}")
        if self.fbtrace_id:
            parts.append(f" [fbtrace_id {self.fbtrace_id}]")
        return "".join(parts)


class GraphUnavailable(GraphError):
    """No answer from the Graph API: the connection failed, broke or timed out."""


@dataclass(frozen=True)
class Template:
    """A message template as the WhatsApp Business Account holds it."""

    id: str
    name: str
    language: str
    status: str
    category: str
    body_parameter_count: int
    header_parameter_count: int = 0


@dataclass(frozen=True)
class MediaInfo:
    """Where an inbound media file can be fetched; Meta's `url` is good for about five minutes."""

    id: str
    url: str
    mime_type: str
    sha256: str | None
    file_size: int | None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header, in either of its forms (seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _scrub(text: str | None, secret: str) -> str | None:
    # Meta does not echo tokens today; a proxy or a future message might, and the token must
    # not ride along into a log line or an error frame.
    if text is None or not secret:
        return text
    return text.replace(secret, "[redacted]")


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _error_from_response(
    status: int, body: bytes, headers: Mapping[str, str], access_token: str
) -> GraphError:
    """The GraphError of an error answer: from Meta's `error` object, else from the status."""
    retry_after = parse_retry_after(headers.get("Retry-After"))
    error: dict[str, Any] = {}
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        error = payload["error"]
    code = _as_int(error.get("code"))
    error_data = error.get("error_data")
    details = _as_str(error_data.get("details")) if isinstance(error_data, dict) else None
    if code in RETRYABLE_CODES:
        retryable = True
    elif code in PERMANENT_CODES or (code is not None and 200 <= code <= 299):
        retryable = False
    else:
        # Graph's own hint for codes this table does not know.
        retryable = status == 429 or status >= 500 or error.get("is_transient") is True
    message = _as_str(error.get("message")) or f"HTTP {status} without a Graph error body"
    return GraphError(
        _scrub(message, access_token) or "",
        status=status,
        code=code,
        subcode=_as_int(error.get("error_subcode")),
        details=_scrub(details, access_token),
        error_type=_as_str(error.get("type")),
        fbtrace_id=_as_str(error.get("fbtrace_id")),
        retryable=retryable,
        retry_after=retry_after,
    )


def _template(item: Mapping[str, Any]) -> Template:
    body_text = header_text = ""
    for component in item.get("components") or []:
        if not isinstance(component, dict):
            continue
        kind = str(component.get("type", "")).upper()
        if kind == "BODY":
            body_text = str(component.get("text") or "")
        elif kind == "HEADER" and str(component.get("format", "TEXT")).upper() == "TEXT":
            header_text = str(component.get("text") or "")
    return Template(
        id=str(item.get("id", "")),
        name=str(item.get("name", "")),
        language=str(item.get("language", "")),
        status=str(item.get("status", "")),
        category=str(item.get("category", "")),
        # Distinct names: a body may use {{1}} twice, and the sender still fills it once.
        body_parameter_count=len(set(_PLACEHOLDER.findall(body_text))),
        header_parameter_count=len(set(_PLACEHOLDER.findall(header_text))),
    )


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


def _node(name: str, value: str) -> str:
    # Ids become path segments; anything but Meta's plain ids could point the call elsewhere.
    if not isinstance(value, str) or not _NODE_ID.fullmatch(value):
        raise ValueError(f"{name}: not a Graph API id")
    return value


def _bearer(access_token: str) -> dict[str, str]:
    if (
        not isinstance(access_token, str)
        or not access_token
        or any(c.isspace() for c in access_token)
    ):
        raise ValueError("access_token: must be a non-empty token without spaces")
    return {"Authorization": f"Bearer {access_token}"}


class GraphClient:
    """Calls Meta's Graph API for any tenant; the caller paces and retries (see `pacing`)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        version: str,
        *,
        timeout_seconds: float = 10.0,
    ) -> None:
        if not _VERSION.fullmatch(version):
            raise ValueError("version: a Graph API version such as v21.0")
        if not base_url.startswith(("https://", "http://")):
            raise ValueError("base_url: must be an http(s) URL")
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds: must be positive")
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._api = f"{self._base_url}/{version}"
        self._timeout_seconds = timeout_seconds
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)

    async def send(self, phone_number_id: str, access_token: str, message: OutboundMessage) -> str:
        """POST one message from the business number; returns its wamid.

        A timeout or a broken connection after the request was written raises GraphUnavailable
        with `outcome_unknown` (and not `retryable`): the Cloud API has no idempotency key, so
        only a failure to connect at all is safe to send again.
        """
        url = f"{self._api}/{_node('phone_number_id', phone_number_id)}/messages"
        answer = await self._call(
            "POST", url, access_token, "messages", json_body=message.wire_body(), idempotent=False
        )
        messages = answer.get("messages") if isinstance(answer, dict) else None
        if isinstance(messages, list) and messages and isinstance(messages[0], dict):
            wamid = messages[0].get("id")
            if isinstance(wamid, str) and wamid:
                return wamid
        # Meta said yes but gave no id: the message may be on its way, so never resend it.
        raise GraphError(
            "the Graph API accepted the message but returned no message id",
            status=200,
            outcome_unknown=True,
        )

    async def list_templates(self, business_account_id: str, access_token: str) -> list[Template]:
        """Every template of the WhatsApp Business Account, following `paging.next`."""
        url = f"{self._api}/{_node('business_account_id', business_account_id)}/message_templates"
        params: dict[str, str] | None = {
            "fields": "id,name,language,status,category,components",
            "limit": "100",
        }
        templates: list[Template] = []
        for _ in range(MAX_TEMPLATE_PAGES):
            page = await self._call(
                "GET", url, access_token, "message_templates", params=params, idempotent=True
            )
            data = page.get("data") if isinstance(page, dict) else None
            if not isinstance(data, list):
                raise GraphError("templates page without a data list", status=200)
            templates.extend(_template(item) for item in data if isinstance(item, dict))
            paging = page.get("paging")
            next_url = paging.get("next") if isinstance(paging, dict) else None
            if not isinstance(next_url, str) or not next_url:
                return templates
            # The bearer token follows the link, so the link must stay on the Graph API.
            if _origin(next_url) != _origin(self._base_url):
                raise GraphError("paging.next points away from the Graph API", status=200)
            url, params = next_url, None
        raise GraphError(f"more than {MAX_TEMPLATE_PAGES} pages of templates", status=200)

    async def media(self, media_id: str, access_token: str) -> MediaInfo:
        """Where to download an inbound media file, with its type, size and checksum."""
        url = f"{self._api}/{_node('media_id', media_id)}"
        answer = await self._call("GET", url, access_token, "media", idempotent=True)
        if not isinstance(answer, dict) or not isinstance(answer.get("url"), str):
            raise GraphError("media answer without a url", status=200)
        return MediaInfo(
            id=str(answer.get("id") or media_id),
            url=answer["url"],
            mime_type=str(answer.get("mime_type") or "application/octet-stream"),
            sha256=_as_str(answer.get("sha256")),
            file_size=_as_int(answer.get("file_size")),
        )

    async def stream_media(
        self, info: MediaInfo, access_token: str, *, chunk_size: int = _STREAM_CHUNK
    ) -> AsyncGenerator[bytes, None]:
        """The media file's bytes as they arrive, so a file is never held whole in memory.

        Close the iterator (`contextlib.aclosing`) when stopping early, to free the connection.
        """
        self._check_media_url(info.url)
        headers = _bearer(access_token)
        # A large video takes longer than any total limit fit for an API call; what must not
        # happen is a connection that stops sending, so the limit is per read.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._timeout_seconds, sock_read=self._timeout_seconds
        )
        started = False
        try:
            async with self._session.get(
                info.url, headers=headers, timeout=timeout, raise_for_status=False
            ) as response:
                if response.status >= 400:
                    body = await response.read()
                    raise self._logged(
                        _error_from_response(response.status, body, response.headers, access_token),
                        "media_download",
                    )
                async for chunk in response.content.iter_chunked(chunk_size):
                    started = True
                    yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Bytes already handed on cannot be taken back: only a download that never started
            # is worth starting again.
            raise self._logged(
                self._unavailable(exc, access_token, retryable=not started),
                "media_download",
            ) from None

    def _check_media_url(self, url: str) -> None:
        # The bearer token goes with the download: only over TLS, or to the Graph API's own
        # origin (a local test server).
        if not isinstance(url, str):
            raise ValueError("info.url: not a URL")
        if _origin(url)[0] != "https" and _origin(url) != _origin(self._base_url):
            raise GraphError("media url is neither https nor on the Graph API", status=200)

    async def _call(
        self,
        method: str,
        url: str,
        access_token: str,
        route: str,
        *,
        json_body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        idempotent: bool,
    ) -> Any:
        headers = _bearer(access_token)
        try:
            # raise_for_status=False: the shared session may have been built to raise, and the
            # error body is what says whether to retry.
            async with self._session.request(
                method,
                url,
                json=json_body,
                params=params,
                headers=headers,
                timeout=self._timeout,
                raise_for_status=False,
            ) as response:
                status = response.status
                body = await response.read()
                response_headers = response.headers
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # Nothing reached Meta, so even a send may go again.
            raise self._logged(
                self._unavailable(exc, access_token, retryable=True), route
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = self._unavailable(exc, access_token, retryable=idempotent)
            error.outcome_unknown = not idempotent
            raise self._logged(error, route) from None
        if status >= 400:
            raise self._logged(
                _error_from_response(status, body, response_headers, access_token), route
            )
        try:
            return json.loads(body)
        except ValueError:
            raise self._logged(
                GraphError(
                    f"HTTP {status} with a body that is not JSON",
                    status=status,
                    outcome_unknown=not idempotent,
                ),
                route,
            ) from None

    @staticmethod
    def _unavailable(exc: BaseException, access_token: str, *, retryable: bool) -> GraphUnavailable:
        # The aiohttp exception is not chained: its request_info holds the request's headers,
        # Authorization among them.
        reason = _scrub(str(exc), access_token) or ""
        text = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
        return GraphUnavailable(f"no answer from the Graph API ({text})", retryable=retryable)

    @staticmethod
    def _logged(error: GraphError, route: str) -> GraphError:
        log.info(
            "graph call failed",
            extra={
                "fields": {
                    "route": route,
                    "status": error.status,
                    "code": error.code,
                    "retryable": error.retryable,
                    "outcome_unknown": error.outcome_unknown,
                    "fbtrace_id": error.fbtrace_id,
                    "error": str(error),
                }
            },
        )
        return error
