"""Contract fuzzing: schemathesis generates requests from `/api/v1/openapi.json` and sends them
to a real `mitra serve` as an admin, a policyholder and anonymously. Any 5xx, or an answer the
document does not describe (status, body, content type), fails the suite.

Bounded to fit the suite: a few examples per operation and persona, no deadline. Operations
that end the caller's own session are left out, or every later case would only test a 401.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import urllib.request
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.test_serve import SERVING, mitra_serve, serve_env
from tests.support.payments import gateways_in_thread

pytestmark = pytest.mark.slow
EXAMPLES_PER_OPERATION = 8
# Signing out, the socket upgrade (not HTTP), and static assets named by hash.
LEFT_OUT = r"^/api/v1/auth/logout$|^/ws$|^/docs/"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A server on the laptop defaults with its demo tenant: (base URL, email -> password)."""
    workdir = tmp_path_factory.mktemp("fuzz")
    # The gateways' SDKs reach local fakes, not the providers (the fuzzer may set keys up).
    gateways = gateways_in_thread()
    payments = gateways.__enter__().settings
    env = serve_env(
        MITRA_PAYMENTS_RAZORPAY_BASE_URL=payments["razorpay_base_url"],
        MITRA_PAYMENTS_STRIPE_BASE_URL=payments["stripe_base_url"],
        MITRA_LOGGING_LEVEL="ERROR",
        # Thousands of requests from one address in seconds, many of them logins.
        MITRA_AUTH_RATE_LIMIT_PER_IP="1000000",
        MITRA_AUTH_RATE_LIMIT_PER_ACCOUNT="1000000",
        MITRA_AUTH_ARGON2_TIME_COST="1",
        MITRA_AUTH_ARGON2_MEMORY_KIB="8",
        MITRA_AUTH_ARGON2_PARALLELISM="1",
        MITRA_CHAT_RATE_LIMIT_MESSAGES="1000000",
    )
    with (workdir / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            mitra_serve("--port", "0"),
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
        )
        try:
            assert process.stdout is not None
            banner: list[str] = []
            while not banner or not banner[-1].startswith("Try: curl"):
                line = process.stdout.readline().decode()
                assert line, f"the server exited: {banner}"
                banner.append(line.rstrip())
            serving = SERVING.match(banner[0])
            assert serving is not None, banner
            logins = dict(re.findall(r"^\s+\w+\s+(\S+)\s+/\s+(\S+)$", "\n".join(banner), re.M))
            yield f"http://127.0.0.1:{serving.group(1)}", logins
        finally:
            os.killpg(process.pid, signal.SIGINT)
            process.wait(30)
            gateways.__exit__(None, None, None)
    errors = (workdir / "stderr.log").read_text()
    assert "Traceback" not in errors, errors[-4000:]


def token(base: str, email: str, password: str) -> str:
    request = urllib.request.Request(  # noqa: S310 - a loopback http URL the test made
        f"{base}/api/v1/auth/login",
        data=json.dumps({"identifier": email, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - see above
        answer: str = json.load(response)["data"]["access_token"]
        return answer


_TOKENS: dict[tuple[str, str], str] = {}


def headers_for(persona: str, server: tuple[str, dict[str, str]]) -> dict[str, str]:
    """The persona's bearer header; one login per persona and server."""
    base, logins = server
    if persona == "anonymous":
        return {}
    if (base, persona) not in _TOKENS:
        email = next(e for e in logins if e.startswith(PERSONAS[persona]))
        _TOKENS[(base, persona)] = token(base, email, logins[email])
    return {"Authorization": f"Bearer {_TOKENS[(base, persona)]}"}


PERSONAS = {"admin": "admin@", "policyholder": "customer@", "anonymous": ""}


BOUNDED = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    # On a laptop every run draws new cases and may find a new bug; CI draws the same cases
    # for the same schema, so main's gate fails on a change, never on the luck of a draw.
    derandomize=os.environ.get("CI") == "true",
)


@pytest.mark.parametrize("persona", list(PERSONAS))
def test_every_generated_request_gets_a_documented_answer(
    persona: str, server: tuple[str, dict[str, str]]
) -> None:
    base, _ = server
    headers = headers_for(persona, server)
    schema = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json").exclude(
        path_regex=LEFT_OUT
    )
    failures = []
    tested = 0
    for loaded in schema.get_all_operations():
        operation = loaded.ok()  # type: ignore[union-attr] # a schema error fails here
        tested += 1

        @BOUNDED
        @given(case=operation.as_strategy())
        def answer_as_documented(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            answer_as_documented()
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{operation.label}: {exc}")
    assert tested >= 40, f"only {tested} operations reached"
    assert not failures, "\n\n".join(failures)
