"""SMS over an HTTP gateway in MSG91's style (`POST {base_url}/api/v5/flow/`, `authkey` header,
a template and a recipient with the message as a variable)."""

from __future__ import annotations

import aiohttp

from mitra.notifications.errors import DeliveryFailed

FLOW_PATH = "/api/v5/flow/"


class HttpSmsSender:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        auth_key: str,
        template_id: str,
        sender_id: str = "",
        timeout: float = 10.0,
    ) -> None:
        self._session = session
        self._url = base_url.rstrip("/") + FLOW_PATH
        self._auth_key = auth_key
        self._template_id = template_id
        self._sender_id = sender_id
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def send(self, to: str, text: str) -> None:
        body = {
            "template_id": self._template_id,
            "short_url": "0",
            "recipients": [{"mobiles": to.lstrip("+"), "message": text}],
        }
        if self._sender_id:
            body["sender"] = self._sender_id
        try:
            async with self._session.post(
                self._url,
                json=body,
                headers={"authkey": self._auth_key, "accept": "application/json"},
                timeout=self._timeout,
            ) as response:
                answer = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise DeliveryFailed(f"SMS gateway: {type(exc).__name__}", retryable=True) from None
        if status >= 500 or status == 429:
            raise DeliveryFailed(f"SMS gateway HTTP {status}", retryable=True)
        if status >= 400 or not isinstance(answer, dict) or answer.get("type") != "success":
            # Not its message: a gateway may quote the text back, and the text holds the code.
            raise DeliveryFailed(f"SMS gateway refused it (HTTP {status})", retryable=False)
