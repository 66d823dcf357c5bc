"""Server frames of the chat socket, encoded once: JSON text and the WebSocket frame around it.

A message goes to every member's socket; its JSON is serialised once and its WebSocket frame
(header and payload, unmasked as server frames are) is built once, and the same bytes object is
written to every socket's transport.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import orjson

from mitra.chat import StoredMessage

_TEXT_FIN = 0x81  # FIN bit and opcode 1 (text)
_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")


@dataclass(frozen=True, slots=True)
class Frame:
    """One server frame: `payload` is its JSON, `wire` the complete WebSocket text frame.

    `accepted_at` (epoch seconds) marks message frames, whose delivery latency is measured.
    """

    payload: bytes
    wire: bytes
    accepted_at: float | None = None


def encode(data: dict[str, Any], accepted_at: float | None = None) -> Frame:
    payload = orjson.dumps(data)
    return Frame(payload, _header(len(payload)) + payload, accepted_at)


def _header(length: int) -> bytes:
    # RFC 6455 section 5.2: 7-bit length, or 126 + 16-bit, or 127 + 64-bit.
    if length < 126:
        return _SHORT.pack(_TEXT_FIN, length)
    if length < 65536:
        return _MEDIUM.pack(_TEXT_FIN, 126, length)
    return _LONG.pack(_TEXT_FIN, 127, length)


def message_frame(stored: StoredMessage) -> Frame:
    return encode({"type": "message", **stored.as_payload()}, stored.sent_at.timestamp())


def ack_frame(stored: StoredMessage) -> Frame:
    return encode(
        {
            "type": "ack",
            "conversation_id": str(stored.conversation_id),
            "client_msg_id": stored.client_msg_id,
            "seq": stored.seq,
            "message_id": str(stored.message_id),
        }
    )
