"""The agent console in a real browser: sign-in, two people chatting live, a network cut and
its recovery, sign-in with a one-time code, and screenshots of the inbox and the dashboard."""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import Server
from tests.support import razorpay_fake

pytestmark = pytest.mark.slow
WAIT_MS = 15_000
# The conversation the demo book opens between the agent and the demo policyholder's customer.
HOLDER_CUSTOMER = "Priya Sharma"


def _page(browser: Any, server: Server) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    page.goto(f"{server.base}/")
    return page


def _sign_in(page: Any, email: str, password: str) -> None:
    page.get_by_label("Email or phone").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def _signed_in_connected(page: Any, email: str, password: str) -> list[str]:
    """Sign in and wait for the socket; returns the access tokens the console was given."""
    tokens: list[str] = []
    page.on(
        "response",
        lambda response: (
            tokens.append(response.json()["data"]["access_token"])
            if response.url.endswith("/auth/login") and response.ok
            else None
        ),
    )
    _sign_in(page, email, password)
    page.locator(".conn[data-state=connected]").wait_for()
    return tokens


def _open(page: Any, name: str) -> None:
    page.locator(".row", has_text=name).click()
    page.locator(".conversation h2", has_text=name).wait_for()


def _send(page: Any, body: str) -> None:
    page.get_by_label("Message", exact=True).fill(body)
    page.get_by_label("Message", exact=True).press("Enter")


def _bodies(page: Any) -> list[str]:
    """The conversation's messages on screen, stored and pending, in display order."""
    return [text.strip() for text in page.locator(".messages .msg .body").all_inner_texts()]


def _stored(page: Any, body: str) -> Any:
    return page.locator(".msg[data-state=stored]", has=page.locator(".body", has_text=body))


@pytest.fixture
def agent_and_holder(browser: Any, server: Server) -> Iterator[tuple[Any, Any]]:
    agent, holder = _page(browser, server), _page(browser, server)
    _sign_in(agent, *server.logins["senior_agent"])
    _sign_in(holder, *server.logins["policyholder"])
    for page in (agent, holder):
        page.locator(".conn[data-state=connected]").wait_for()
        _open(page, HOLDER_CUSTOMER)
    yield agent, holder
    for page in (agent, holder):
        assert page.errors == [], page.errors
        page.context.close()


def test_agent_and_policyholder_chat_both_ways_and_recover_after_a_network_cut(
    agent_and_holder: tuple[Any, Any], screenshots: Path
) -> None:
    agent, holder = agent_and_holder
    tag = uuid.uuid4().hex[:6]
    # The seeded history is there for both, oldest first.
    _stored(holder, "Great, I will pay this week.").wait_for()

    # Each sees the other here, typing, and having read what was sent.
    agent.locator(".presence[data-online=true]").wait_for()
    _send(agent, f"agent says hello {tag}")
    _stored(holder, f"agent says hello {tag}").wait_for()
    agent.locator(".msg.mine .read").wait_for()
    holder.get_by_label("Message", exact=True).press_sequentially("hol")
    expect(agent.locator(".typing")).to_have_text("typing…")
    _send(holder, f"holder answers {tag}")
    _stored(agent, f"holder answers {tag}").wait_for()

    # The policyholder's network goes: the console says so, and a send waits visibly.
    holder.context.set_offline(True)
    holder.locator(".conn[data-state=offline]").wait_for()
    missed = [f"while you were away {tag} #{n}" for n in range(1, 4)]
    for body in missed:
        _send(agent, body)
        _stored(agent, body).wait_for()
    _send(holder, f"sent offline {tag}")
    holder.locator(".msg[data-state=pending]", has_text=f"sent offline {tag}").wait_for()

    # Back online: it reconnects by itself, gets what it missed once and in order, and its own
    # waiting message is stored (once) and reaches the agent.
    holder.context.set_offline(False)
    holder.locator(".conn[data-state=connected]").wait_for()
    _stored(holder, missed[-1]).wait_for()
    _stored(holder, f"sent offline {tag}").wait_for()
    _stored(agent, f"sent offline {tag}").wait_for()
    time.sleep(0.5)  # any duplicate delivery would have arrived by now
    for page in (agent, holder):
        bodies = _bodies(page)
        for body in [f"agent says hello {tag}", f"holder answers {tag}", *missed]:
            assert bodies.count(body) == 1, (body, bodies)
        assert bodies.count(f"sent offline {tag}") == 1, bodies
        positions = [bodies.index(body) for body in missed]
        assert positions == sorted(positions), bodies
        seqs = _seqs(page)
        assert seqs == sorted(set(seqs)), seqs

    # The agent's inbox, its customer panel and the dashboard, as a user sees them.
    agent.locator(".panel.customer .policies li").first.wait_for()
    agent.screenshot(path=screenshots / "inbox.png")
    agent.get_by_role("link", name="Dashboard").click()
    agent.locator(".due tbody tr").first.wait_for()
    agent.locator(".grace tbody tr").first.wait_for()
    agent.locator(".dashboard canvas").first.wait_for()
    agent.screenshot(path=screenshots / "dashboard.png", full_page=True)
    assert (screenshots / "inbox.png").stat().st_size > 10_000
    assert (screenshots / "dashboard.png").stat().st_size > 10_000

    # Hindi is one switch away, and the navigation says so.
    agent.get_by_label("Language").select_option("hi")
    agent.get_by_role("link", name="इनबॉक्स").wait_for()


def test_inbox_search_and_a_policy_status_change(browser: Any, server: Server) -> None:
    page = _page(browser, server)
    _sign_in(page, *server.logins["senior_agent"])
    search = page.get_by_label("Search by customer name or phone")
    search.fill("Meera")
    page.locator(".row").filter(has_text="Meera Nair").wait_for()
    # A string predicate would need 'unsafe-eval', which the console's CSP refuses.
    expect(page.locator(".row")).to_have_count(1)
    _open(page, "Meera Nair")
    # The assistant's mode, from its plugin: an agent's message takes the conversation over,
    # and the hand-back button gives it back.
    _send(page, "I will take this one")
    header = page.locator(".conversation header")
    header.locator("[data-mode=agent]").wait_for()
    page.get_by_role("button", name="Hand back to the assistant").click()
    header.locator("[data-mode=bot]").wait_for()
    policy = page.locator(".policies li", has=page.locator("[data-status=active]")).first
    number = policy.locator("strong").inner_text()
    policy.get_by_label(f"Change status to {number}").select_option("grace")
    page.locator(f".policies li[data-policy='{number}'] [data-status=grace]").wait_for()
    assert page.errors == [], page.errors
    page.context.close()


def test_sign_in_with_a_one_time_code_and_sign_out_revokes_the_session(
    browser: Any, server: Server
) -> None:
    email = f"mfa-{uuid.uuid4().hex[:8]}@example.com"
    password = "a long passphrase for mfa"
    server.api("POST", "/auth/register", {
        "tenant": "demo", "email": email, "password": password,
        "first_name": "Mala", "last_name": "Iyer",
    })  # fmt: skip
    server.api("PATCH", "/users/me", {"mfa_enabled": True}, token=server.token(email, password))

    page = _page(browser, server)
    tokens: list[str] = []

    def keep_tokens(response: Any) -> None:
        if response.url.endswith("/auth/verify-otp") and response.ok:
            tokens.append(response.json()["data"]["access_token"])

    page.on("response", keep_tokens)
    _sign_in(page, email, password)
    page.get_by_label("Code").wait_for()
    page.get_by_label("Code").fill(_sign_in_code(server, email))
    page.get_by_role("button", name="Verify").click()
    page.locator(".conn[data-state=connected]").wait_for()
    assert tokens
    assert server.api("GET", "/users/me", token=tokens[0])["email"] == email

    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Email or phone").wait_for()
    deadline = time.monotonic() + 10
    # The logout is sent as the page goes back to sign-in; the revocation follows at once.
    while server.status("GET", "/users/me", tokens[0]) != 401:
        assert time.monotonic() < deadline, "the session outlived the sign-out"
        time.sleep(0.2)
    assert page.errors == [], page.errors
    page.context.close()


def _sign_in_code(server: Server, email: str) -> str:
    """The code the development notifier logged for `email` (masked there as its first letter)."""
    masked = f"{email[0]}***@{email.split('@')[1]}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in reversed(server.log.read_text().splitlines()):
            if "login_otp" in line and masked in line:
                found = re.search(r"\bsecret=(\d{6})\b", line)
                if found:
                    return found.group(1)
        time.sleep(0.2)
    raise AssertionError("no sign-in code in the server's log")


def test_history_loads_backwards_as_the_agent_scrolls_up(browser: Any, server: Server) -> None:
    token = server.token(*server.logins["senior_agent"])
    (chat,) = server.api("GET", "/conversations?q=Vikram", token=token)["items"]
    for n in range(40):
        body = {"client_msg_id": f"history-{n}", "body": f"note {n}"}
        server.api("POST", f"/conversations/{chat['id']}/messages", body, token=token)
    # The last seq as the server has it: the assistant may have added a notice of its own.
    (chat,) = server.api("GET", "/conversations?q=Vikram", token=token)["items"]
    last = chat["last_seq"]
    assert last > 40

    page = _page(browser, server)
    _sign_in(page, *server.logins["senior_agent"])
    _open(page, "Vikram Singh")
    page.locator(f".msg[data-seq='{last}']").wait_for()
    seqs = _seqs(page)
    assert seqs[-1] == last
    assert seqs[0] > 1  # one page, not the whole history
    page.locator(".messages").evaluate("list => { list.scrollTop = 0; }")
    page.locator(".msg[data-seq='1']").wait_for()
    assert _seqs(page) == list(range(1, last + 1))
    assert page.errors == [], page.errors
    page.context.close()


def test_a_session_ended_elsewhere_returns_the_console_to_sign_in(
    browser: Any, server: Server
) -> None:
    page = _page(browser, server)
    tokens = _signed_in_connected(page, *server.logins["super_admin"])
    # Signed out from elsewhere: the server closes the socket with 4401 and the refresh token
    # is dead too, so the console asks to sign in again.
    server.api("POST", "/auth/logout", {}, token=tokens[0])
    page.get_by_label("Email or phone").wait_for()
    assert page.errors == [], page.errors
    page.context.close()


def _seqs(page: Any) -> list[int]:
    return [int(s) for s in page.locator(".msg[data-seq]").evaluate_all(
        "items => items.map(i => i.dataset.seq)")]  # fmt: skip


def test_the_inbox_works_from_the_keyboard(browser: Any, server: Server) -> None:
    page = _page(browser, server)
    _sign_in(page, *server.logins["senior_agent"])
    rows = page.locator(".row")
    expect(rows).to_have_count(3)
    rows.first.focus()
    page.keyboard.press("ArrowDown")
    second = rows.nth(1)
    expect(second).to_be_focused()
    name = second.locator(".name").inner_text()
    page.keyboard.press("Enter")
    page.locator(".conversation h2", has_text=name).wait_for()
    # In the composer Enter sends, and the message is stored once.
    page.get_by_label("Message", exact=True).focus()
    page.keyboard.type("typed without a mouse")
    page.keyboard.press("Enter")
    _stored(page, "typed without a mouse").wait_for()
    assert _bodies(page).count("typed without a mouse") == 1
    assert page.errors == [], page.errors
    page.context.close()


def test_an_import_is_followed_live_to_its_counts_and_its_failed_rows_download(
    browser: Any, server: Server
) -> None:
    page = _page(browser, server)
    _sign_in(page, *server.logins["senior_agent"])
    page.get_by_role("link", name="Import").click()
    # Two good rows and one whose phone is no phone number.
    book = "".join(
        f"{row}\n"
        for row in (
            "Customer Name,Mobile,Email",
            "Anil Browser,9876500001,",
            "Bela Browser,9876500002,",
            "No Phone,12345,",
        )
    )
    page.get_by_label("What the file holds").select_option("customers")
    page.get_by_label("File", exact=True).set_input_files(
        {"name": "book.csv", "mimeType": "text/csv", "buffer": book.encode()}
    )
    page.get_by_role("button", name="Upload").click()
    done = page.locator(".import[data-status=completed_with_errors]", has_text="book.csv")
    done.wait_for()
    counts = {
        name: done.locator(f"[data-count={name}] dd").inner_text()
        for name in ("created", "failed", "processed")
    }
    assert counts == {"created": "2", "failed": "1", "processed": "3"}
    with page.expect_download() as caught:
        done.get_by_role("button", name="Download the failed rows").click()
    download = caught.value
    assert download.suggested_filename.endswith("-failed-rows.csv")
    rows = Path(download.path()).read_text(encoding="utf-8-sig").splitlines()
    assert rows[0] == "Customer Name,Mobile,Email,Row,Error"
    assert rows[1].startswith("No Phone,12345,,4,")
    # The imported customers are in the agent's book.
    token = server.token(*server.logins["senior_agent"])
    assert server.api("GET", "/customers?q=Browser", token=token)["pagination"]["total"] == 2
    assert page.errors == [], page.errors
    page.context.close()


def test_an_import_that_finished_while_the_agent_was_away_waits_as_a_notice(
    browser: Any, server: Server
) -> None:
    email, password = server.logins["senior_agent"]
    token = server.token(email, password)
    # Uploaded and finished with no console open (from another device, say).
    uploaded = requests.post(
        f"{server.base}/api/v1/imports",
        data={"import_type": "customers"},
        files={
            "file": ("away.csv", b"Customer Name,Mobile\nAway Customer,9876500077\n", "text/csv")
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert uploaded.status_code == 202, uploaded.text
    import_id = uploaded.json()["data"]["import_id"]
    for _ in range(100):
        if server.api("GET", f"/imports/{import_id}", token=token)["status"] == "completed":
            break
        time.sleep(0.1)
    unseen = server.api("GET", "/imports?unseen=true", token=token)
    assert import_id in [item["id"] for item in unseen["items"]]
    page = _page(browser, server)
    _sign_in(page, email, password)
    # The navigation says how many finished imports wait, before the page is opened.
    badge = page.locator("nav a[href='#/imports'] [data-unseen]")
    expect(badge).to_have_text(str(unseen["pagination"]["total"]))
    page.get_by_role("link", name="Import").click()
    page.locator(".import[data-status=completed]", has_text="away.csv").wait_for()
    # Opening the page is seeing them: the badge goes, and the server keeps no notice.
    expect(badge).to_have_count(0)
    assert server.api("GET", "/imports?unseen=true", token=token)["pagination"]["total"] == 0
    assert page.errors == [], page.errors
    page.context.close()


def test_the_agent_sends_a_payment_link_and_sees_the_premium_paid(
    browser: Any, server: Server
) -> None:
    admin = server.token(*server.logins["super_admin"])
    server.api("PUT", "/integrations/razorpay", {
        "key_id": razorpay_fake.KEY_ID, "key_secret": razorpay_fake.KEY_SECRET,
        "webhook_secret": razorpay_fake.WEBHOOK_SECRET,
    }, token=admin)  # fmt: skip
    page = _page(browser, server)
    _sign_in(page, *server.logins["senior_agent"])
    _open(page, HOLDER_CUSTOMER)
    send = page.get_by_role("button", name=re.compile("^Send payment link "))
    send.first.wait_for()
    number = send.first.get_attribute("aria-label").removeprefix("Send payment link ")
    policy = page.locator(f".policies li[data-policy='{number}']")
    expect(policy.locator(".payment")).to_have_attribute("data-payment-status", "none")

    policy.get_by_role("button", name=f"Send payment link {number}").click()
    policy.get_by_text("Payment link sent to the chat").wait_for()
    _stored(page, "Pay securely here").wait_for()
    expect(policy.locator(".payment")).to_have_attribute("data-payment-status", "order_placed")

    # The customer pays at Razorpay, which tells Mitra by its webhooks: the receipt reaches the
    # chat and the policy's payment state follows, with no reload.
    agent = server.token(*server.logins["senior_agent"])
    (made,) = server.api("GET", "/payments?limit=5", token=agent)["items"]
    link, order, paid = server.gateways.razorpay.pay_link(made["gateway_order_id"])
    tenant_id = server.api("GET", "/users/me", token=admin)["tenant_id"]
    for raw in (
        razorpay_fake.webhook_body(
            "payment_link.paid", payment_link=link, order=order, payment=paid
        ),
        razorpay_fake.webhook_body("payment.captured", payment=paid),
    ):
        request = urllib.request.Request(  # noqa: S310 - the test's own loopback server
            f"{server.base}/api/v1/webhooks/razorpay/{tenant_id}",
            data=raw,
            headers=razorpay_fake.signed_headers(raw),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            assert answer.status == 200
    _stored(page, "Payment received").wait_for()
    expect(policy.locator(".payment")).to_have_attribute(
        "data-payment-status", "receipt_sent", timeout=WAIT_MS
    )
    expect(policy.locator(".payment .status")).to_have_text("paid, receipt sent")
    assert page.errors == [], page.errors
    page.context.close()


def test_a_whatsapp_reply_outside_the_24_hour_window_says_why_in_both_languages(
    browser: Any, server: Server
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(WAIT_MS)

    def on_whatsapp(ws: Any) -> None:
        # The console's sends go out as WhatsApp replies; this customer has never written on
        # WhatsApp, so the server itself refuses them with `outside_window`.
        upstream = ws.connect_to_server()

        def outgoing(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "send":
                frame["channel"] = "whatsapp"
            upstream.send(json.dumps(frame))

        ws.on_message(outgoing)

    context.route_web_socket(re.compile(r"/ws$"), on_whatsapp)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server.base}/")
    _sign_in(page, *server.logins["senior_agent"])
    _open(page, "Vikram Singh")
    _send(page, "a free-text reply")
    refused = page.locator(".msg[data-state=failed] [data-code=outside_window]")
    expect(refused).to_have_text(
        "The customer last wrote more than 24 hours ago; WhatsApp only allows a template now"
    )
    page.get_by_label("Language").select_option("hi")
    expect(refused).to_contain_text("24 घंटे")
    assert errors == [], errors
    context.close()


def test_sign_out_with_an_expired_access_token_still_revokes_the_session(
    browser: Any, server: Server
) -> None:
    page = _page(browser, server)
    tokens = _signed_in_connected(page, *server.logins["senior_agent"])
    logouts: list[int] = []

    def expired_first(route: Any) -> None:
        # The first logout carries a token the server no longer takes, as one that expired
        # while the console sat open would be; the server answers 401 for it.
        logouts.append(1)
        headers = dict(route.request.headers)
        if len(logouts) == 1:
            headers["authorization"] = "Bearer expired"
        route.continue_(headers=headers)

    page.route("**/api/v1/auth/logout", expired_first)
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Email or phone").wait_for()
    deadline = time.monotonic() + 10
    while server.status("GET", "/users/me", tokens[0]) != 401:
        assert time.monotonic() < deadline, "an expired token's sign-out left the session alive"
        page.wait_for_timeout(200)  # the route above runs while Playwright is waited on
    assert len(logouts) == 2
    assert page.errors == [], page.errors
    page.context.close()
