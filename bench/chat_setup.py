"""Set-up for the chat benchmark: the server's environment and the users, sessions, conversations.

Users and their sessions are made here, in the benchmark's own process, through the same services
the API uses (`AccountService`, `AuthService`, `ConversationService`) against the SQLite file the
server will open afterwards: thousands of logins over HTTP would measure password hashing and the
login rate limiter, not chat. The load itself comes from separate client processes over sockets.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.chat_client import SocketSpec
from mitra import migrate
from mitra.accounts import AccountService, NewUser
from mitra.auth import AuthService, LogNotifier, PasswordHasher, TokenCodec
from mitra.auth.service import ClientInfo, TokenPair
from mitra.chat import ConversationService
from mitra.db import Database
from mitra.models import Role
from mitra.settings import load_settings

PASSWORD = "bench passphrase 42"  # noqa: S105 - a throwaway account in a temporary database
TENANT = "bench"


def server_env(workdir: Path) -> dict[str, str]:
    """The MITRA_* settings of the benchmarked server (and of this set-up, which shares its DB)."""
    return {
        "MITRA_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
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


def socket_specs(groups: list[Group], *, bare: bool, senders_per_group: int) -> list[SocketSpec]:
    """One socket per member. The bare server takes the token as the user id, so pass the id."""
    return [
        SocketSpec(
            token=member.user_id if bare else member.access_token,
            conversation_id=group.conversation_id,
            members=len(group.members),
            sat_sender=position < senders_per_group,
        )
        for group in groups
        for position, member in enumerate(group.members)
    ]


async def populate(
    env: dict[str, str], sizes: list[int], smallest: int, largest: int, seed: int
) -> dict[int, list[Group]]:
    """For each run size, its own users and conversations (disjoint, so no run replays another's
    history on join); returns the groups of each size."""
    settings = load_settings(environ=env)
    database = Database(settings.database)
    try:
        await migrate.upgrade(database)
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
