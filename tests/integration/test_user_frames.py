"""Frames addressed to people, not conversations: every socket of the user gets one, no one else."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from handlers.keys import USER_FRAMES
from mitra.models import Role
from tests.support.api import Api
from tests.support.chat import principal_of
from tests.support.ws import ChatClient


async def test_every_socket_of_the_user_gets_the_frame_and_nobody_else_does(api: Api) -> None:
    admin = await api.tenant()
    agent = await api.user(admin, Role.SENIOR_AGENT)
    agent_principal = await principal_of(api, agent)
    phone = await ChatClient.connect(api.client, agent.access_token)
    laptop = await ChatClient.connect(api.client, agent.access_token)
    boss = await ChatClient.connect(api.client, admin.access_token)

    frame = {"type": "import_progress", "import_id": "i-1", "processed": 10}
    await api.app[USER_FRAMES].send(agent_principal.tenant_id, [agent_principal.user_id], frame)

    assert await phone.expect("import_progress") == frame
    assert await laptop.expect("import_progress") == frame
    # The admin's socket is open in the same tenant: it must see nothing of it.
    await boss.send({"type": "ping"})
    await boss.expect("pong")
    assert not [f for f in boss.frames if f["type"] == "import_progress"]
    for socket in (phone, laptop, boss):
        await socket.close()


async def test_a_frame_named_for_another_tenant_reaches_no_socket(api: Api) -> None:
    admin = await api.tenant()
    principal = await principal_of(api, admin)
    socket = await ChatClient.connect(api.client, admin.access_token)
    await api.app[USER_FRAMES].send(uuid.uuid4(), [principal.user_id], {"type": "escalation"})
    await api.app[USER_FRAMES].send(principal.tenant_id, [principal.user_id], {"type": "marker"})
    await socket.expect("marker")
    assert not [f for f in socket.frames if f["type"] == "escalation"]
    await socket.close()


async def test_a_frame_without_a_type_is_refused_before_it_is_published(api: Api) -> None:
    with pytest.raises(ValueError, match="type"):
        await api.app[USER_FRAMES].send(uuid.uuid4(), [uuid.uuid4()], {"import_id": "x"})
    # Nobody addressed: nothing to publish, and no error either.
    await asyncio.wait_for(api.app[USER_FRAMES].send(uuid.uuid4(), [], {"type": "x"}), 5)
