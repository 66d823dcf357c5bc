"""Server frames are built once as complete WebSocket frames (RFC 6455 section 5.2)."""

from __future__ import annotations

import struct

import orjson

from handlers.chat_frames import encode


def test_length_forms_follow_rfc_6455() -> None:
    wrapper = len(orjson.dumps({"body": ""}))
    for length_of_payload, header_length in (
        (20, 2),
        (125, 2),
        (126, 4),
        (65_535, 4),
        (65_536, 10),
        (200_000, 10),
    ):
        data = {"body": "x" * (length_of_payload - wrapper)}
        frame = encode(data)
        payload = orjson.dumps(data)
        assert frame.payload == payload
        assert len(payload) == length_of_payload
        assert frame.wire[0] == 0x81  # FIN, text; unmasked as server frames are
        assert frame.wire[header_length:] == payload
        length = frame.wire[1]
        if header_length == 2:
            assert length == len(payload)
        elif header_length == 4:
            assert length == 126
            assert struct.unpack("!H", frame.wire[2:4])[0] == len(payload)
        else:
            assert length == 127
            assert struct.unpack("!Q", frame.wire[2:10])[0] == len(payload)
