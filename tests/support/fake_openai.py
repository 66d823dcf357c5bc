"""A local server speaking OpenAI's Chat Completions wire format, for the real `openai` SDK.

`POST /v1/chat/completions` answers a completion with `usage`, or what the test scripts next:
an error status with OpenAI's error body (429 with `retry-after`, 500, 503, 400) or a slow
answer. It checks what OpenAI checks first (a bearer key, a model, messages) and records every
request, so a test can read exactly what left the server.

    fake = FakeOpenAI()
    async with serve_fake_openai(fake) as base_url:  # http://127.0.0.1:port/v1
        ...
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

_ERRORS = {
    429: ("Rate limit reached for gpt-4o-mini in organization org-test on requests per min. "
          "Limit: 3 / min. Please try again in 1s.", "requests"),
    500: ("The server had an error processing your request. Sorry about that!", "server_error"),
    503: ("That model is currently overloaded with other requests.", "server_error"),
    400: ("This model's maximum context length is 128000 tokens.", "invalid_request_error"),
}  # fmt: skip
# A 429 that waiting does not cure: the key's account has no credit left.
_QUOTA = (
    "You exceeded your current quota, please check your plan and billing details. For "
    "more information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors.",
    "insufficient_quota",
)


@dataclass
class Step:
    """What the next request gets: an answer (after `delay` seconds) or an error status."""

    status: int = 200
    content: str | None = None
    delay: float = 0.0
    retry_after: str | None = None
    usage: tuple[int, int] | None = None
    code: str | None = None
    """OpenAI's error code, e.g. "insufficient_quota" (a 429 with its own type and message)."""


@dataclass
class FakeOpenAI:
    reply: str = "Our office is open 10 am to 6 pm, Monday to Saturday."
    usage: tuple[int, int] = (40, 20)
    requests: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    script: deque[Step] = field(default_factory=deque)
    always: Step | None = None
    """When set, every request gets this (an outage), after any scripted steps."""
    by_key: dict[str, Step] = field(default_factory=dict)
    """Every request made with this API key gets this step, before any script (that key's
    account is out of quota, or revoked)."""
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def then(self, *steps: Step) -> None:
        self.script.extend(steps)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        return app

    async def _completions(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or len(auth) < 12:
            return _error(401, "Incorrect API key provided.", "invalid_request_error",
                          "invalid_api_key")  # fmt: skip
        body = await request.json()
        if not body.get("model") or not isinstance(body.get("messages"), list):
            return _error(400, "you must provide a model parameter", "invalid_request_error")
        key = auth.removeprefix("Bearer ")
        self.requests.append(body)
        self.keys.append(key)
        step = self.by_key.get(key) or (
            self.script.popleft() if self.script else (self.always or Step())
        )
        if step.delay:
            await asyncio.sleep(step.delay)
        if step.status != 200:
            message, kind = _ERRORS.get(step.status, ("error", "server_error"))
            if step.code == "insufficient_quota":
                message, kind = _QUOTA
            headers = {"retry-after": step.retry_after} if step.retry_after else {}
            return _error(step.status, message, kind, step.code, headers=headers)
        prompt, completion = step.usage or self.usage
        return web.json_response(
            {
                "id": f"chatcmpl-test{next(self._ids)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": step.content if step.content is not None else self.reply,
                            "refusal": None,
                        },
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                    "completion_tokens_details": {"reasoning_tokens": 0},
                },
                "system_fingerprint": "fp_test",
            }
        )

    def sent_text(self) -> str:
        """Everything the server sent in all requests' messages, joined."""
        return "\n".join(
            str(message.get("content")) for body in self.requests for message in body["messages"]
        )


def _error(
    status: int, message: str, kind: str, code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:  # fmt: skip
    return web.json_response(
        {"error": {"message": message, "type": kind, "param": None, "code": code}},
        status=status,
        headers=headers,
    )


@asynccontextmanager
async def serve_fake_openai(fake: FakeOpenAI) -> AsyncIterator[str]:
    """Runs the fake on 127.0.0.1 on a free port; yields the SDK's base URL (ending in /v1)."""
    runner = web.AppRunner(fake.app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/v1"
    finally:
        await runner.cleanup()
