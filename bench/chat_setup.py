"""Set-up for the chat benchmark: the server's environment, its database, and the users,
sessions and conversations in it.

Users and their sessions are made here, in the benchmark's own process, through the same services
the API uses (`AccountService`, `AuthService`, `ConversationService`) against the database the
server will open afterwards (a SQLite file, or a private PostgreSQL database made for the run and
dropped after it): thousands of logins over HTTP would measure password hashing and the login
rate limiter, not chat. The load itself comes from separate client processes over sockets.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import distinct, func, select
from sqlalchemy.engine import make_url

from bench.chat_client import SocketSpec
from mitra import migrate
from mitra.accounts import AccountService, NewUser
from mitra.auth import AuthService, LogNotifier, PasswordHasher, TokenCodec
from mitra.auth.service import ClientInfo, TokenPair
from mitra.chat import ConversationService
from mitra.db import Database
from mitra.models import Message, Role
from mitra.settings import DatabaseSettings, load_settings
from tests.support.databases import postgres_base_url, run_outside_transaction

PASSWORD = "bench passphrase 42"  # noqa: S105 - a throwaway account in a temporary database
TENANT = "bench"


def sqlite_url(workdir: Path) -> str:
    return f"sqlite+aiosqlite:///{workdir / 'bench.db'}"


def server_env(database_url: str) -> dict[str, str]:
    """The MITRA_* settings of the benchmarked server (and of this set-up, which shares its DB)."""
    return {
        "MITRA_DATABASE_URL": database_url,
        "MITRA_SERVER_SEED_DEMO": "false",
        "MITRA_LOGGING_LEVEL": "WARNING",
        # Cheap hashing and no login limits: set-up makes thousands of accounts and sessions.
        "MITRA_AUTH_ARGON2_TIME_COST": "1",
        "MITRA_AUTH_ARGON2_MEMORY_KIB": "8",
        "MITRA_AUTH_ARGON2_PARALLELISM": "1",
        "MITRA_AUTH_RATE_LIMIT_PER_IP": "1000000",
        "MITRA_AUTH_RATE_LIMIT_PER_ACCOUNT": "1000000",
        # Tokens are made before the first server starts; the whole run must fit in their life.
        "MITRA_AUTH_ACCESS_TOKEN_TTL_SECONDS": "7200",
        # The chat's per-socket limit (20 per 10 s) would turn saturation into rate_limited errors.
        "MITRA_CHAT_RATE_LIMIT_MESSAGES": "1000000",
        # Every conversation of the largest run stays live; passivation is not what is measured.
        "MITRA_ACTORS_MAX_LIVE_CONVERSATIONS": "20000",
    }


def kafka_env(bootstrap: str) -> dict[str, str]:
    """What makes several `mitra serve` processes one service: Kafka (here tansu) for streams."""
    return {
        "MITRA_STREAMS_URL": f"kafka://{bootstrap}",
        # tansu answers InitProducerId with an error; consumers de-duplicate by event id anyway.
        "MITRA_STREAMS_KAFKA_IDEMPOTENCE": "false",
        # The second instance joins `chat-owners` within seconds instead of the default's ten,
        # so the run waits less for a stable group before the load starts (as the e2e test).
        "MITRA_STREAMS_KAFKA_SESSION_TIMEOUT_MS": "2000",
        "MITRA_STREAMS_KAFKA_HEARTBEAT_INTERVAL_MS": "200",
    }


# ---- a private PostgreSQL database ---------------------------------------------------------


def postgres_database_url(label: str) -> str:
    """The URL of a new private database on the server (not made yet: create_postgres_database).

    Private, so a benchmark never touches the test suite's databases or another run's.
    """
    name = f"mitra_bench_{label}_{uuid.uuid4().hex[:10]}"
    return make_url(postgres_base_url()).set(database=name).render_as_string(hide_password=False)


async def create_postgres_database(url: str) -> None:
    """Create the database of `url` on its server and migrate it to the latest revision."""
    await run_outside_transaction(f'CREATE DATABASE "{make_url(url).database}"')
    database = Database(DatabaseSettings(url=url))
    try:
        await migrate.upgrade(database)
    finally:
        await database.dispose()


async def count_messages(database_url: str) -> tuple[int, int]:
    """Rows in `messages`, and their distinct `created_at`: what the server committed.

    The writer stamps every row of one group commit with the same `created_at`, so the second
    count is the number of write batches, to check `chat.write` commits against.
    """
    database = Database(DatabaseSettings(url=database_url))
    query = select(func.count(), func.count(distinct(Message.created_at)))
    try:
        async with database.engine.connect() as connection:
            rows, batches = (await connection.execute(query.select_from(Message))).one()
            return int(rows), int(batches)
    finally:
        await database.dispose()


def plan_groups(sockets: int, rng: random.Random, smallest: int, largest: int) -> list[int]:
    """Conversation sizes between `smallest` and `largest` adding up to exactly `sockets`."""
    sizes: list[int] = []
    left = sockets
    while left > 0:
        size = min(rng.randint(smallest, largest), left)
        if left - size and left - size < smallest:
            size = left - smallest  # leave a full group for the end
        if size < smallest:  # only when `sockets` itself is smaller than a group
            size = left
        sizes.append(size)
        left -= size
    return sizes


@dataclass(frozen=True)
class Member:
    user_id: str
    access_token: str


@dataclass(frozen=True)
class Group:
    conversation_id: str
    members: tuple[Member, ...]


def socket_specs(
    groups: list[Group], *, bare: bool, senders_per_group: int, instances: int = 1
) -> list[SocketSpec]:
    """One socket per member. The bare server takes the token as the user id, so pass the id.

    With several instances, a conversation's members alternate between them (member i on
    instance i % instances), so every conversation has members on more than one.
    """
    specs = []
    for group in groups:
        on = [position % instances for position in range(len(group.members))]
        for position, member in enumerate(group.members):
            specs.append(
                SocketSpec(
                    token=member.user_id if bare else member.access_token,
                    conversation_id=group.conversation_id,
                    members=len(group.members),
                    sat_sender=position < senders_per_group,
                    instance=on[position],
                    remote_members=sum(1 for where in on if where != on[position]),
                )
            )
    return specs


async def populate(
    env: dict[str, str], sizes: list[int], smallest: int, largest: int, seed: int
) -> dict[int, list[Group]]:
    """For each run size, its own users and conversations (disjoint, so no run replays another's
    history on join); returns the groups of each size.

    The plan depends only on the seed, so every database gets conversations of the same sizes.
    """
    settings = load_settings(environ=env)
    database = Database(settings.database)
    try:
        await migrate.upgrade(database)  # a no-op where create_postgres_database did it
        hasher = PasswordHasher(settings.auth)
        accounts = AccountService(database, settings.auth, hasher)
        auth = AuthService(
            database,
            settings.auth,
            hasher,
            TokenCodec(settings.auth),
            LogNotifier(production=False),
        )
        conversations = ConversationService(database)
        await accounts.create_tenant(
            TENANT,
            "Benchmark agency",
            NewUser(
                email="admin@bench.example.com",
                password=PASSWORD,
                first_name="Bench",
                last_name="Admin",
                role=Role.SUPER_ADMIN,
            ),
        )
        rng = random.Random(seed)  # noqa: S311 - a reproducible plan, not a secret
        made: dict[int, list[Group]] = {}
        serial = 0
        for size in sizes:
            groups: list[Group] = []
            for members in plan_groups(size, rng, smallest, largest):
                people: list[Member] = []
                for _ in range(members):
                    serial += 1
                    people.append(await _agent(accounts, auth, serial))
                first = await auth.authenticate(people[0].access_token)
                summary = await conversations.open_among_staff(
                    first, [uuid.UUID(m.user_id) for m in people[1:]], title=None
                )
                groups.append(Group(conversation_id=str(summary.id), members=tuple(people)))
            made[size] = groups
        return made
    finally:
        await database.dispose()


async def _agent(accounts: AccountService, auth: AuthService, serial: int) -> Member:
    email = f"agent{serial}@bench.example.com"
    user = await accounts.create_user_in(
        TENANT,
        NewUser(
            email=email,
            password=PASSWORD,
            first_name="Agent",
            last_name=str(serial),
            role=Role.SENIOR_AGENT,
        ),
    )
    pair = await auth.login(email, PASSWORD, ClientInfo(ip="127.0.0.1", user_agent="chat-bench"))
    assert isinstance(pair, TokenPair)  # no MFA on these accounts
    return Member(user_id=str(user.id), access_token=pair.access_token)
