"""Two `mitra serve` processes over PostgreSQL and the tansu Kafka broker form one service."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.e2e.test_serve import REPO_ROOT, free_port
from tests.streams.conftest import eventually
from tests.support.databases import truncate_all

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.postgres]
PASSWORD = "two instances passphrase"


def service_env(postgres_url: str, bootstrap: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MITRA_")}
    return {
        **environ,
        "PYTHONPATH": REPO_ROOT,
        "MITRA_DATABASE_URL": postgres_url,
        "MITRA_STREAMS_URL": f"kafka://{bootstrap}",
        # tansu answers InitProducerId with an error; consumers de-duplicate anyway.
        "MITRA_STREAMS_KAFKA_IDEMPOTENCE": "false",
        "MITRA_STREAMS_KAFKA_SESSION_TIMEOUT_MS": "2000",
        "MITRA_STREAMS_KAFKA_HEARTBEAT_INTERVAL_MS": "200",
        "MITRA_SERVER_SEED_DEMO": "false",
        "MITRA_LOGGING_LEVEL": "WARNING",
        "MITRA_AUTH_ARGON2_TIME_COST": "1",
        "MITRA_AUTH_ARGON2_MEMORY_KIB": "8",
        "MITRA_AUTH_ARGON2_PARALLELISM": "1",
        "MITRA_CHAT_RATE_LIMIT_MESSAGES": "1000",
        # These tests count a customer's conversation's messages and WhatsApp sends exactly;
        # the assistant's replies are tested on their own (tests/integration/test_assistant*).
        "MITRA_CHATBOT_ENABLED": "false",
        # Long enough that only the pushed revocation can explain a prompt 401 elsewhere.
        "MITRA_AUTH_SESSION_CACHE_SECONDS": "120",
    }


class Instance:
    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = (workdir / f"mitra-{self.port}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "handlers.cli", "serve", "--port", str(self.port)],
            cwd=workdir,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    async def wait_ready(self, http: aiohttp.ClientSession) -> None:
        async with asyncio.timeout(60):
            while True:
                if self.process.poll() is not None:
                    raise AssertionError(f"instance on {self.port} exited early")
                try:
                    async with http.get(f"{self.base}/ready") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)

    async def stop(self) -> int:
        """SIGINT, as an orchestrator stops an instance: it leaves its groups and drains."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                await asyncio.to_thread(self.process.wait, 30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                await asyncio.to_thread(self.process.wait)
        self.log.close()
        return self.process.returncode


@asynccontextmanager
async def two_instances(
    env: dict[str, str], workdir: Path
) -> AsyncIterator[tuple[Instance, Instance, dict[str, str]]]:
    """Two `mitra serve` processes on `env`, ready; stopped (unless already dead) at the end."""
    instances = [Instance(env, workdir), Instance(env, workdir)]
    try:
        async with aiohttp.ClientSession() as http:
            for instance in instances:
                await instance.wait_ready(http)
        yield instances[0], instances[1], env
    finally:
        for instance in instances:
            if instance.process.poll() is None:
                await instance.stop()


@pytest.fixture
async def service(
    postgres_url: str, tansu_broker: str, tmp_path: Path
) -> AsyncIterator[tuple[Instance, Instance, dict[str, str]]]:
    await truncate_all(postgres_url)
    async with two_instances(service_env(postgres_url, tansu_broker), tmp_path) as running:
        yield running


async def create_tenant(env: dict[str, str], prefix: str) -> tuple[str, str]:
    """A tenant made with the CLI, as an operator does; returns its slug and admin's email."""
    slug = f"{prefix}-{uuid.uuid4().hex[:6]}"
    admin_email = f"admin@{slug}.example.com"
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "handlers.cli", "tenant", "create", slug, "--name", prefix.title(),
        "--admin-email", admin_email, "--password-stdin", env=env,
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    await cli.communicate(f"{PASSWORD}\n".encode())
    assert cli.returncode == 0
    return slug, admin_email


async def call(http: aiohttp.ClientSession, method: str, url: str, token: str | None = None,
               **kwargs: Any) -> dict[str, Any]:  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, url, headers=headers, **kwargs) as response:
        body: dict[str, Any] = await response.json()
        assert response.status < 300, (response.status, body)
        return body


class Member:
    """One user's socket on one instance, reading into a list."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.frames.append(orjson.loads(message.data))

    @classmethod
    async def connect(
        cls, http: aiohttp.ClientSession, base: str, token: str, cid: str, since: int = 0
    ) -> Member:
        ws = await http.ws_connect(base.replace("http", "ws") + "/ws")
        member = cls(ws)
        await member.send({"type": "auth", "token": token})
        await member.send({"type": "join", "conversation_id": cid, "since_seq": since})
        await member.until(lambda: any(f["type"] == "joined" for f in member.frames))
        return member

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_str(orjson.dumps(frame).decode())

    async def until(self, condition: Any, within: float = 30) -> None:
        await eventually(condition, within=within)

    def seqs(self) -> list[int]:
        return [f["seq"] for f in self.frames if f["type"] == "message"]

    def acked(self, client_msg_id: str) -> bool:
        return any(f["type"] == "ack" and f["client_msg_id"] == client_msg_id for f in self.frames)

    async def say(self, cid: str, client_msg_id: str) -> None:
        """Send until acked, as a client does after an error or a lost ack."""
        async with asyncio.timeout(60):
            while not self.acked(client_msg_id):
                await self.send(
                    {"type": "send", "conversation_id": cid, "client_msg_id": client_msg_id,
                     "body": client_msg_id}
                )  # fmt: skip
                try:
                    await self.until(lambda: self.acked(client_msg_id), within=3)
                except TimeoutError:
                    continue

    async def close(self) -> None:
        await self.ws.close()
        self.task.cancel()


async def test_members_on_two_instances_share_one_order_and_survive_a_stop(
    service: tuple[Instance, Instance, dict[str, str]],
) -> None:
    first, second, env = service
    slug, admin_email = await create_tenant(env, "two")
    async with aiohttp.ClientSession() as http:
        login = {"identifier": admin_email, "password": PASSWORD}
        admin = (await call(http, "POST", f"{first.base}/api/v1/auth/login", json=login))["data"]
        agent_email = f"agent@{slug}.example.com"
        created = await call(
            http, "POST", f"{first.base}/api/v1/users", admin["access_token"],
            json={"email": agent_email, "password": PASSWORD, "first_name": "A",
                  "last_name": "B", "role": "senior_agent"},
        )  # fmt: skip
        agent_id = created["data"]["id"]
        login = {"identifier": agent_email, "password": PASSWORD}
        agent = (await call(http, "POST", f"{second.base}/api/v1/auth/login", json=login))["data"]
        opened = await call(
            http, "POST", f"{first.base}/api/v1/conversations", admin["access_token"],
            json={"participant_ids": [agent_id]},
        )  # fmt: skip
        cid = opened["data"]["id"]

        alice = await Member.connect(http, first.base, admin["access_token"], cid)
        bob = await Member.connect(http, second.base, agent["access_token"], cid)
        await asyncio.gather(
            *(alice.say(cid, f"a{n}") for n in range(10)),
            *(bob.say(cid, f"b{n}") for n in range(10)),
        )
        await alice.until(lambda: len(alice.seqs()) >= 20)
        await bob.until(lambda: len(bob.seqs()) >= 20)
        assert alice.seqs() == list(range(1, 21))
        assert bob.seqs() == alice.seqs()
        in_order = [(f["seq"], f["client_msg_id"]) for f in alice.frames if f["type"] == "message"]
        assert in_order == [
            (f["seq"], f["client_msg_id"]) for f in bob.frames if f["type"] == "message"
        ]
        forwarded = {}
        for instance in (first, second):
            async with http.get(f"{instance.base}/metrics") as response:
                for line in (await response.text()).splitlines():
                    if line.startswith("mitra_chat_forwarded_total"):
                        forwarded[instance.port] = int(float(line.split()[-1]))
        # The owner accepted its member's sends itself; the other forwarded its member's.
        owner, survivor = (first, second) if not forwarded.get(first.port) else (second, first)
        assert forwarded.get(survivor.port, 0) >= 10
        assert forwarded.get(owner.port, 0) == 0

        # The owning instance stops mid-conversation: the survivor takes the partition over,
        # and the member who was on the owner reconnects to the survivor with since_seq.
        stay, moving = (bob, alice) if owner is first else (alice, bob)
        moving_token = admin["access_token"] if moving is alice else agent["access_token"]
        await moving.close()
        assert await owner.stop() == 0
        await asyncio.gather(*(stay.say(cid, f"c{n}") for n in range(5)))
        moved = await Member.connect(http, survivor.base, moving_token, cid, since=20)
        await moved.until(lambda: len(moved.seqs()) >= 5)
        await moved.say(cid, "after-takeover")
        await stay.until(lambda: len(stay.seqs()) >= 26)
        await moved.until(lambda: len(moved.seqs()) >= 6)
        assert moved.seqs() == list(range(21, 27))
        assert stay.seqs() == list(range(1, 27))
        alice, bob = stay, moved
        await alice.close()
        await bob.close()


async def test_a_revocation_on_one_instance_refuses_the_session_on_the_other(
    service: tuple[Instance, Instance, dict[str, str]],
) -> None:
    first, second, env = service
    _, admin_email = await create_tenant(env, "rev")
    async with aiohttp.ClientSession() as http:
        login = {"identifier": admin_email, "password": PASSWORD}
        tokens = (await call(http, "POST", f"{first.base}/api/v1/auth/login", json=login))["data"]
        token = tokens["access_token"]
        me = f"{second.base}/api/v1/users/me"
        await call(http, "GET", me, token)  # now in the second instance's session cache
        socket = Member(await http.ws_connect(second.base.replace("http", "ws") + "/ws"))
        await socket.send({"type": "auth", "token": token})
        await socket.until(lambda: any(f["type"] == "auth_ok" for f in socket.frames))
        await call(http, "POST", f"{first.base}/api/v1/auth/logout", token)
        started = time.monotonic()
        # The session's socket on the other instance is closed as unauthenticated.
        async with asyncio.timeout(5):
            await socket.task
        assert socket.ws.close_code == 4401
        async with asyncio.timeout(5):
            while True:
                async with http.get(me, headers={"Authorization": f"Bearer {token}"}) as answer:
                    if answer.status == 401:
                        break
                    assert answer.status == 200
                await asyncio.sleep(0.05)
        assert time.monotonic() - started < 5
