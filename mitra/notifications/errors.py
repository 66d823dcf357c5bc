"""How a delivery failed, without the message (it may carry a code)."""

from __future__ import annotations


class DeliveryFailed(Exception):
    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
