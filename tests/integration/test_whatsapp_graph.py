"""Mitra's Graph API client against the local fake Graph server, over loopback."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import traceback
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mitra.whatsapp.graph import (
    GraphClient,
    GraphError,
    GraphUnavailable,
    InteractiveButtons,
    InteractiveList,
    ListRow,
    ListSection,
    MediaInfo,
    MediaMessage,
    OutboundMessage,
    ReplyButton,
    TemplateMedia,
    TemplateMessage,
    TextMessage,
    parse_retry_after,
)
from tests.support.fake_graph import FakeGraph, graph_error_body, serve_fake_graph

PHONE_NUMBER_ID = "106540352242922"
WABA_ID = "102290129340398"
TOKEN = "EAAGm0PX4ZCpsBAtestTOKENnever1ogged"
OTHER_TOKEN = "EAAGotherTENANTtoken0000"
VERSION = "v21.0"
CUSTOMER = "+919876543210"
FIXTURES = (
    Path(os.environ.get("MITRA_PROVIDER_FIXTURES", "/work/shared/fixtures/providers")) / "whatsapp"
)


@dataclass
class Graph:
    fake: FakeGraph
    client: GraphClient
    base_url: str
    session: aiohttp.ClientSession

    def client_with(self, **kwargs: Any) -> GraphClient:
        return GraphClient(self.session, self.base_url, VERSION, **kwargs)


@pytest.fixture
async def graph() -> AsyncIterator[Graph]:
    fake = FakeGraph(download_chunk_size=1000)
    fake.add_phone_number(PHONE_NUMBER_ID, TOKEN)
    fake.add_phone_number("106540352240000", OTHER_TOKEN)
    async with serve_fake_graph(fake) as base_url, aiohttp.ClientSession() as session:
        yield Graph(fake, GraphClient(session, base_url, VERSION), base_url, session)


# -- message bodies --------------------------------------------------------------------------

ENVELOPE = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "919876543210"}

BODIES: list[tuple[str, OutboundMessage, dict[str, Any]]] = [
    (
        "text",
        TextMessage(CUSTOMER, "Your premium of ₹12,500 is due on 5 March."),
        {
            "type": "text",
            "text": {"preview_url": False, "body": "Your premium of ₹12,500 is due on 5 March."},
        },
    ),
    (
        "text-with-preview",
        TextMessage(CUSTOMER, "Policy terms: https://example.com/terms", preview_url=True),
        {
            "type": "text",
            "text": {"preview_url": True, "body": "Policy terms: https://example.com/terms"},
        },
    ),
    (
        "template-bare",
        TemplateMessage(CUSTOMER, "hello_world", "en_US"),
        {"type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}},
    ),
    (
        "template-parameters",
        TemplateMessage(
            CUSTOMER,
            "premium_reminder",
            "hi",
            body_parameters=["Asha", "₹12,500", "5 March"],
            header_parameters=["LIC Jeevan Anand"],
        ),
        {
            "type": "template",
            "template": {
                "name": "premium_reminder",
                "language": {"code": "hi"},
                "components": [
                    {
                        "type": "header",
                        "parameters": [{"type": "text", "text": "LIC Jeevan Anand"}],
                    },
                    {
                        "type": "body",
                        "parameters": [
                            {"type": "text", "text": "Asha"},
                            {"type": "text", "text": "₹12,500"},
                            {"type": "text", "text": "5 March"},
                        ],
                    },
                ],
            },
        },
    ),
    (
        "template-document-header",
        TemplateMessage(
            CUSTOMER,
            "policy_document",
            "en",
            body_parameters=("Asha",),
            header_media=TemplateMedia("document", "https://files.example/p.pdf", "policy.pdf"),
        ),
        {
            "type": "template",
            "template": {
                "name": "policy_document",
                "language": {"code": "en"},
                "components": [
                    {
                        "type": "header",
                        "parameters": [
                            {
                                "type": "document",
                                "document": {
                                    "link": "https://files.example/p.pdf",
                                    "filename": "policy.pdf",
                                },
                            }
                        ],
                    },
                    {"type": "body", "parameters": [{"type": "text", "text": "Asha"}]},
                ],
            },
        },
    ),
    (
        "buttons",
        InteractiveButtons(
            CUSTOMER,
            "Shall I renew your policy?",
            [ReplyButton("renew-yes", "Yes, renew"), ReplyButton("renew-no", "Not now")],
            header="Renewal",
            footer="Reply any time",
        ),
        {
            "type": "interactive",
            "interactive": {
                "type": "button",
                "header": {"type": "text", "text": "Renewal"},
                "body": {"text": "Shall I renew your policy?"},
                "footer": {"text": "Reply any time"},
                "action": {
                    "buttons": [
                        {"type": "reply", "reply": {"id": "renew-yes", "title": "Yes, renew"}},
                        {"type": "reply", "reply": {"id": "renew-no", "title": "Not now"}},
                    ]
                },
            },
        },
    ),
    (
        "list",
        InteractiveList(
            CUSTOMER,
            "Which policy is this about?",
            "Choose",
            [
                ListSection([ListRow("p1", "Jeevan Anand", "Due 5 March")], title="Life"),
                ListSection(
                    [ListRow("p2", "Health Plus"), ListRow("p3", "Family Floater")], "Health"
                ),
            ],
        ),
        {
            "type": "interactive",
            "interactive": {
                "type": "list",
                "body": {"text": "Which policy is this about?"},
                "action": {
                    "button": "Choose",
                    "sections": [
                        {
                            "title": "Life",
                            "rows": [
                                {"id": "p1", "title": "Jeevan Anand", "description": "Due 5 March"}
                            ],
                        },
                        {
                            "title": "Health",
                            "rows": [
                                {"id": "p2", "title": "Health Plus"},
                                {"id": "p3", "title": "Family Floater"},
                            ],
                        },
                    ],
                },
            },
        },
    ),
    (
        "image",
        MediaMessage(CUSTOMER, "image", "https://files.example/card.jpg", caption="Your card"),
        {
            "type": "image",
            "image": {"link": "https://files.example/card.jpg", "caption": "Your card"},
        },
    ),
    (
        "document",
        MediaMessage(
            CUSTOMER, "document", "https://files.example/p.pdf", caption="Policy", filename="p.pdf"
        ),
        {
            "type": "document",
            "document": {
                "link": "https://files.example/p.pdf",
                "caption": "Policy",
                "filename": "p.pdf",
            },
        },
    ),
    (
        "audio",
        MediaMessage(CUSTOMER, "audio", "https://files.example/note.ogg"),
        {"type": "audio", "audio": {"link": "https://files.example/note.ogg"}},
    ),
    (
        "video",
        MediaMessage(CUSTOMER, "video", "https://files.example/how.mp4", caption="How to claim"),
        {
            "type": "video",
            "video": {"link": "https://files.example/how.mp4", "caption": "How to claim"},
        },
    ),
]


@pytest.mark.parametrize(
    ("message", "expected"), [b[1:] for b in BODIES], ids=[b[0] for b in BODIES]
)
async def test_each_message_type_posts_metas_exact_body_once(
    graph: Graph, message: OutboundMessage, expected: dict[str, Any]
) -> None:
    wamid = await graph.client.send(PHONE_NUMBER_ID, TOKEN, message)

    [post] = graph.fake.message_posts()
    assert post.path == f"/{VERSION}/{PHONE_NUMBER_ID}/messages"
    assert post.bearer_ok
    assert post.headers["Content-Type"].startswith("application/json")
    assert "Authorization" not in post.headers
    assert post.json == {**ENVELOPE, **expected}
    assert wamid == graph.fake.sent[0].wamid
    assert wamid.startswith("wamid.")


async def test_every_send_gets_its_own_wamid(graph: Graph) -> None:
    wamids = [
        await graph.client.send(PHONE_NUMBER_ID, TOKEN, TextMessage(CUSTOMER, f"message {n}"))
        for n in range(3)
    ]

    assert len(set(wamids)) == 3
    assert len(graph.fake.message_posts(PHONE_NUMBER_ID)) == 3


def _text(**overrides: Any) -> Callable[[], object]:
    return lambda: TextMessage(**{"to": CUSTOMER, "body": "hi", **overrides})


def _buttons(n: int, title: str = "Yes") -> Callable[[], object]:
    return lambda: InteractiveButtons(
        CUSTOMER, "Pick one", [ReplyButton(f"b{i}", f"{title}{i}") for i in range(n)]
    )


def _rows(per_section: list[int], title: str = "Row") -> Callable[[], object]:
    def build() -> object:
        sections = []
        count = 0
        for s, n in enumerate(per_section):
            rows = [ListRow(f"r{count + i}", f"{title}{count + i}") for i in range(n)]
            count += n
            sections.append(ListSection(rows, title=f"Section {s}"))
        return InteractiveList(CUSTOMER, "Pick one", "Choose", sections)

    return build


LIMITS: list[tuple[str, Callable[[], object], str]] = [
    ("to-not-e164", _text(to="98765 43210"), "to"),
    ("text-empty", _text(body="  "), "body"),
    ("text-too-long", _text(body="x" * 4097), "body"),
    ("no-buttons", _buttons(0), "buttons"),
    ("four-buttons", _buttons(4), "buttons"),
    ("button-title-21", _buttons(1, title="x" * 20), r"buttons\[0\]\.title"),
    (
        "duplicate-button-ids",
        lambda: InteractiveButtons(
            CUSTOMER, "Pick", [ReplyButton("a", "One"), ReplyButton("a", "Two")]
        ),
        "buttons",
    ),
    ("eleven-rows-across-sections", _rows([6, 5]), "sections"),
    ("row-title-25", _rows([1], title="x" * 24), r"sections\[0\]\.rows\[0\]\.title"),
    (
        "second-section-without-title",
        lambda: InteractiveList(
            CUSTOMER,
            "Pick",
            "Choose",
            [ListSection([ListRow("a", "A")]), ListSection([ListRow("b", "B")])],
        ),
        r"sections\[0\]\.title",
    ),
    (
        "list-button-21",
        lambda: InteractiveList(CUSTOMER, "Pick", "x" * 21, [ListSection([ListRow("a", "A")])]),
        "button",
    ),
    (
        "row-description-73",
        lambda: InteractiveList(
            CUSTOMER, "Pick", "Choose", [ListSection([ListRow("a", "A", "d" * 73)])]
        ),
        r"sections\[0\]\.rows\[0\]\.description",
    ),
    ("template-name", lambda: TemplateMessage(CUSTOMER, "Premium Reminder", "en"), "name"),
    ("template-language", lambda: TemplateMessage(CUSTOMER, "premium", "English"), "language"),
    (
        "template-parameter-newline",
        lambda: TemplateMessage(CUSTOMER, "premium", "en", body_parameters=["a\nb"]),
        r"body_parameters\[0\]",
    ),
    (
        "template-two-header-parameters",
        lambda: TemplateMessage(CUSTOMER, "premium", "en", header_parameters=["a", "b"]),
        "header_parameters",
    ),
    (
        "audio-caption",
        lambda: MediaMessage(CUSTOMER, "audio", "https://f.example/a", caption="c"),
        "caption",
    ),
    (
        "image-filename",
        lambda: MediaMessage(CUSTOMER, "image", "https://f.example/a", filename="a"),
        "filename",
    ),
    ("media-link", lambda: MediaMessage(CUSTOMER, "video", "ftp://f.example/a"), "link"),
    (
        "caption-too-long",
        lambda: MediaMessage(CUSTOMER, "image", "https://f.example/a", caption="c" * 1025),
        "caption",
    ),
]


@pytest.mark.parametrize(("build", "field"), [c[1:] for c in LIMITS], ids=[c[0] for c in LIMITS])
def test_metas_limits_are_refused_on_construction_naming_the_field(
    build: Callable[[], object], field: str
) -> None:
    with pytest.raises(ValueError, match=rf"^{field}:"):
        build()


def test_the_limits_themselves_are_allowed() -> None:
    _buttons(3, title="x" * 19)()
    _rows([5, 5], title="x" * 22)()
    InteractiveList(CUSTOMER, "Pick", "x" * 20, [ListSection([ListRow("a", "x" * 24, "d" * 72)])])
    TextMessage(CUSTOMER, "x" * 4096)
    MediaMessage(CUSTOMER, "image", "https://f.example/a", caption="c" * 1024)


async def test_a_bad_id_is_refused_before_any_request(graph: Graph) -> None:
    with pytest.raises(ValueError, match="phone_number_id"):
        await graph.client.send("../106540352242922", TOKEN, TextMessage(CUSTOMER, "hi"))
    with pytest.raises(ValueError, match="access_token"):
        await graph.client.send(PHONE_NUMBER_ID, "", TextMessage(CUSTOMER, "hi"))

    assert graph.fake.requests == []


# -- errors ----------------------------------------------------------------------------------


async def _send_error(
    graph: Graph, token: str = TOKEN, phone_number_id: str = PHONE_NUMBER_ID
) -> GraphError:
    with pytest.raises(GraphError) as caught:
        await graph.client.send(phone_number_id, token, TextMessage(CUSTOMER, "hi"))
    return caught.value


async def test_throughput_429_is_retryable_with_retry_after(graph: Graph) -> None:
    graph.fake.fail_next("rate_limited", retry_after="3")

    error = await _send_error(graph)

    assert (error.status, error.code, error.subcode) == (429, 130429, 2494055)
    assert error.retryable
    assert not error.outcome_unknown
    assert error.retry_after == 3.0
    assert error.details == "Cloud API message throughput has been reached."
    assert error.fbtrace_id
    assert len(graph.fake.message_posts()) == 1


async def test_a_500_is_retryable_and_the_next_call_succeeds(graph: Graph) -> None:
    graph.fake.fail_next("server_error")

    error = await _send_error(graph)
    wamid = await graph.client.send(PHONE_NUMBER_ID, TOKEN, TextMessage(CUSTOMER, "hi"))

    assert (error.status, error.code, error.retryable, error.retry_after) == (
        500,
        131000,
        True,
        None,
    )
    assert wamid.startswith("wamid.")


async def test_outside_the_24_hour_window_is_final(graph: Graph) -> None:
    graph.fake.fail_next("outside_window")

    error = await _send_error(graph)

    assert (error.status, error.code, error.retryable) == (400, 131047, False)
    assert "24 hours" in (error.details or "")


async def test_a_wrong_token_is_error_190_and_final(graph: Graph) -> None:
    error = await _send_error(graph, token="EAAGwrong")

    assert (error.status, error.code, error.error_type, error.retryable) == (
        401,
        190,
        "OAuthException",
        False,
    )
    [post] = graph.fake.message_posts()
    assert not post.bearer_ok


async def test_another_tenants_token_cannot_send_from_this_number(graph: Graph) -> None:
    error = await _send_error(graph, token=OTHER_TOKEN)

    assert (error.status, error.code, error.subcode, error.retryable) == (400, 100, 33, False)
    assert graph.fake.sent == []


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (400, 4, True),
        (400, 80007, True),
        (400, 131056, True),
        (503, 133004, True),
        (400, 131048, False),  # spam rate limit: quality, not throughput
        (400, 131026, False),
        (400, 131051, False),
        (400, 132000, False),
        (500, 3, False),  # code decides over status: a permission missing, answered with 500
        (400, 999999, False),  # an unknown code on a 400 is final
        (502, 999999, True),  # an unknown code on a 5xx is not
    ],
)
async def test_retryable_follows_metas_code_first(
    graph: Graph, status: int, code: int, retryable: bool
) -> None:
    graph.fake.fail_next_with(status, graph_error_body(code, f"(#{code}) something"))

    error = await _send_error(graph)

    assert (error.status, error.code, error.retryable) == (status, code, retryable)


async def test_graphs_is_transient_hint_makes_an_unknown_code_retryable(graph: Graph) -> None:
    body = graph_error_body(999998, "flaky")
    body["error"]["is_transient"] = True
    graph.fake.fail_next_with(400, body)

    assert (await _send_error(graph)).retryable


async def test_an_error_without_a_graph_body_is_judged_by_its_status(graph: Graph) -> None:
    graph.fake.fail_next_with(502, b"<html>Bad Gateway</html>")
    graph.fake.fail_next_with(404, b"")

    gateway = await _send_error(graph)
    missing = await _send_error(graph)

    assert (gateway.status, gateway.code, gateway.retryable) == (502, None, True)
    assert (missing.status, missing.code, missing.retryable) == (404, None, False)


async def test_an_accepted_send_without_a_wamid_is_an_unknown_outcome(graph: Graph) -> None:
    graph.fake.fail_next_with(200, {"messaging_product": "whatsapp", "messages": []})

    error = await _send_error(graph)

    assert error.outcome_unknown
    assert not error.retryable


async def test_a_send_that_times_out_is_unknown_not_retryable(graph: Graph) -> None:
    client = graph.client_with(timeout_seconds=0.3)
    graph.fake.fail_next("hang")

    with pytest.raises(GraphUnavailable) as caught:
        await client.send(PHONE_NUMBER_ID, TOKEN, TextMessage(CUSTOMER, "hi"))

    # The POST reached Meta's side; resending could deliver the message twice.
    assert caught.value.outcome_unknown
    assert not caught.value.retryable
    assert len(graph.fake.message_posts()) == 1


async def test_a_read_that_times_out_is_retryable(graph: Graph) -> None:
    graph.fake.add_business_account(WABA_ID, TOKEN, [])
    client = graph.client_with(timeout_seconds=0.3)
    graph.fake.fail_next("hang")

    with pytest.raises(GraphUnavailable) as caught:
        await client.list_templates(WABA_ID, TOKEN)

    assert caught.value.retryable
    assert not caught.value.outcome_unknown


async def test_a_refused_connection_is_retryable_even_for_a_send(graph: Graph) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = GraphClient(graph.session, f"http://127.0.0.1:{port}", VERSION)

    with pytest.raises(GraphUnavailable) as caught:
        await client.send(PHONE_NUMBER_ID, TOKEN, TextMessage(CUSTOMER, "hi"))

    assert caught.value.retryable
    assert not caught.value.outcome_unknown


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 3, 5, 10, 0, 0, tzinfo=UTC)

    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("1.5", now) == 1.5
    assert parse_retry_after("Thu, 05 Mar 2026 10:00:30 GMT", now) == 30.0
    assert parse_retry_after("Thu, 05 Mar 2026 09:00:00 GMT", now) == 0.0
    assert parse_retry_after("-3", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("nan", now) is None
    assert parse_retry_after(None, now) is None


async def test_the_token_appears_in_no_error_and_no_log_line(
    graph: Graph, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # A body that echoes the token, as a proxy or a future Meta message might.
    graph.fake.fail_next_with(
        400, graph_error_body(100, f"Bad token {TOKEN}", details=f"Authorization: Bearer {TOKEN}")
    )
    graph.fake.fail_next("rate_limited")
    graph.fake.fail_next("hang")
    errors = [await _send_error(graph), await _send_error(graph)]
    with pytest.raises(GraphUnavailable) as hung:
        await graph.client_with(timeout_seconds=0.3).send(
            PHONE_NUMBER_ID, TOKEN, TextMessage(CUSTOMER, "x")
        )
    errors.append(hung.value)
    errors.append(await _send_error(graph, token=TOKEN + "x"))

    for error in errors:
        rendered = [str(error), repr(error), error.message, error.details or ""]
        rendered.append("".join(traceback.format_exception(error)))
        assert all(TOKEN not in text for text in rendered)
    assert "[redacted]" in str(errors[0])
    graph_lines = [r for r in caplog.records if r.name == "mitra.whatsapp.graph"]
    assert len(graph_lines) == 4
    assert TOKEN not in caplog.text
    assert all(TOKEN not in json.dumps(getattr(r, "fields", {}), default=str) for r in graph_lines)


async def test_the_fake_refuses_a_malformed_body_naming_the_parameter(graph: Graph) -> None:
    async with graph.session.post(
        f"{graph.base_url}/{VERSION}/{PHONE_NUMBER_ID}/messages",
        json={
            **ENVELOPE,
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": "x"},
                "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "x" * 21}}]},
            },
        },
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as response:
        body = await response.json()

    assert response.status == 400
    assert body["error"]["code"] == 100
    assert "interactive.action.buttons[0].reply.title" in body["error"]["error_data"]["details"]
    assert graph.fake.sent == []


# -- templates -------------------------------------------------------------------------------


def _template_item(n: int, body: str, header: str | None = None) -> dict[str, Any]:
    components: list[dict[str, Any]] = [{"type": "BODY", "text": body}]
    if header is not None:
        components.insert(0, {"type": "HEADER", "format": "TEXT", "text": header})
    return {
        "name": f"template_{n}",
        "components": components,
        "language": "en_US" if n % 2 else "hi",
        "status": "APPROVED" if n != 3 else "REJECTED",
        "category": "UTILITY",
        "id": f"90000{n}",
    }


async def test_templates_follow_paging_next_to_the_last_page(graph: Graph) -> None:
    items = [
        _template_item(n, f"Dear {{{{1}}}}, policy {n} is due on {{{{2}}}}.") for n in range(7)
    ]
    items[4] = _template_item(
        4, "Hi {{1}}, {{1}} again, due {{2}} for {{3}}", header="Policy {{1}}"
    )
    items[5] = _template_item(5, "Hello {{ first_name }}, your {{policy}} renews", header="Welcome")
    items[6] = _template_item(6, "No variables at all")
    graph.fake.add_business_account(WABA_ID, TOKEN, items)
    graph.fake.template_page_size = 3

    templates = await graph.client.list_templates(WABA_ID, TOKEN)

    assert [t.name for t in templates] == [f"template_{n}" for n in range(7)]
    assert [t.body_parameter_count for t in templates] == [2, 2, 2, 2, 3, 2, 0]
    assert [t.header_parameter_count for t in templates] == [0, 0, 0, 0, 1, 0, 0]
    assert (templates[3].status, templates[3].language, templates[3].category) == (
        "REJECTED",
        "en_US",
        "UTILITY",
    )
    assert templates[0].id == "900000"
    gets = [r for r in graph.fake.requests if r.path.endswith("/message_templates")]
    assert len(gets) == 3
    assert all(r.bearer_ok for r in gets)
    assert "after" not in gets[0].query
    assert gets[1].query["after"] != gets[2].query["after"]


async def test_an_empty_account_has_no_templates(graph: Graph) -> None:
    graph.fake.add_business_account(WABA_ID, TOKEN, [])

    assert await graph.client.list_templates(WABA_ID, TOKEN) == []


async def test_a_paging_link_off_the_graph_api_is_not_followed(graph: Graph) -> None:
    graph.fake.fail_next_with(
        200, {"data": [], "paging": {"next": "http://127.0.0.2:9/v21.0/1/message_templates"}}
    )

    with pytest.raises(GraphError, match=r"paging\.next"):
        await graph.client.list_templates(WABA_ID, TOKEN)

    assert len(graph.fake.requests) == 1


# -- media -----------------------------------------------------------------------------------

MEDIA = bytes(range(256)) * 40 + b"tail"  # 10,244 bytes: several chunks, one short


async def test_media_metadata_and_bytes_stream_in_chunks(graph: Graph) -> None:
    graph.fake.add_media("1037543291543636", MEDIA, "application/pdf", TOKEN)

    info = await graph.client.media("1037543291543636", TOKEN)
    async with aclosing(graph.client.stream_media(info, TOKEN, chunk_size=1000)) as stream:
        chunks = [chunk async for chunk in stream]

    assert (info.id, info.mime_type, info.file_size) == (
        "1037543291543636",
        "application/pdf",
        len(MEDIA),
    )
    assert info.sha256 == hashlib.sha256(MEDIA).hexdigest()
    assert b"".join(chunks) == MEDIA
    assert len(chunks) >= 10
    assert all(len(chunk) <= 1000 for chunk in chunks)
    download = graph.fake.requests[-1]
    assert download.path == "/whatsapp_business/attachments/"
    assert download.bearer_ok


async def test_a_stream_stopped_early_frees_its_connection(graph: Graph) -> None:
    graph.fake.add_media("1037543291543636", MEDIA, "image/jpeg", TOKEN)
    info = await graph.client.media("1037543291543636", TOKEN)

    async with aclosing(graph.client.stream_media(info, TOKEN, chunk_size=1000)) as stream:
        async for _ in stream:
            break
    # The session still serves calls afterwards: nothing is left holding the connection.
    assert (await graph.client.media("1037543291543636", TOKEN)).file_size == len(MEDIA)


async def test_unknown_media_and_a_wrong_token_are_graph_errors(graph: Graph) -> None:
    graph.fake.add_media("1037543291543636", MEDIA, "image/jpeg", TOKEN)
    info = await graph.client.media("1037543291543636", TOKEN)

    with pytest.raises(GraphError) as unknown:
        await graph.client.media("404404404", TOKEN)
    with pytest.raises(GraphError) as wrong:
        async with aclosing(graph.client.stream_media(info, "EAAGwrong")) as stream:
            [chunk async for chunk in stream]

    assert (unknown.value.code, unknown.value.subcode, unknown.value.retryable) == (100, 33, False)
    assert (wrong.value.status, wrong.value.code) == (401, 190)


async def test_the_token_is_not_sent_to_a_cleartext_media_url_elsewhere(graph: Graph) -> None:
    info = MediaInfo(
        "1", "http://127.0.0.2:9/whatsapp_business/attachments/?mid=1", "image/jpeg", None, 1
    )

    with pytest.raises(GraphError, match="https"):
        async with aclosing(graph.client.stream_media(info, TOKEN)) as stream:
            [chunk async for chunk in stream]

    assert graph.fake.requests == []


# -- real provider payloads ------------------------------------------------------------------

needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"provider fixtures not found at {FIXTURES}"
)


@needs_fixtures
@pytest.mark.parametrize(
    ("name", "status", "retryable"),
    [
        ("graph_error_130429_docs_example.json", 429, True),
        ("graph_error_190_expired_token.json", 401, False),
        ("graph_error_100_unsupported_get.json", 400, False),
        ("graph_error_nonascii_user_msg.json", 400, False),
    ],
)
async def test_real_graph_error_bodies_are_parsed(
    graph: Graph, name: str, status: int, retryable: bool
) -> None:
    raw = (FIXTURES / name).read_bytes()
    expected = json.loads(raw)["error"]
    graph.fake.fail_next_with(status, raw)

    error = await _send_error(graph)

    assert error.status == status
    assert error.code == expected["code"]
    assert error.subcode == expected.get("error_subcode")
    assert error.message == expected["message"]
    assert error.error_type == expected["type"]
    assert error.fbtrace_id == expected["fbtrace_id"]
    assert error.details == expected.get("error_data", {}).get("details")
    assert error.retryable is retryable
    assert expected["fbtrace_id"] in str(error)


@needs_fixtures
async def test_a_real_send_success_body_yields_its_wamid(graph: Graph) -> None:
    raw = (FIXTURES / "send_message_success.json").read_bytes()
    graph.fake.fail_next_with(200, raw)

    wamid = await graph.client.send(PHONE_NUMBER_ID, TOKEN, TextMessage(CUSTOMER, "hi"))

    assert wamid == json.loads(raw)["messages"][0]["id"]
