"""Batches of an import travel as `imports.rows` events: the instance that consumes them writes
them, whichever instance validated them, and a batch that arrives twice, late, after a gap or
from an owner that lost the lease writes nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from actors.imports import rows_envelope
from handlers.app import create_app
from handlers.keys import DATABASE, IMPORT_PIPELINES
from mitra.db import Database, Scope, utcnow
from mitra.imports import wire
from mitra.imports.rows import CleanRow, RowError, SourceRow
from mitra.imports.writer import Batch, JobRef
from mitra.models import Customer, ImportJob, ImportRowError, ImportType, Role, User
from mitra.settings import Settings
from streams import create_streams
from streams.envelope import Event
from streams.murmur2 import partition_for
from streams.topics import IMPORTS_ROWS
from tests.conftest import SettingsFactory
from tests.e2e.conftest import private_tansu, tansu_broker
from tests.support.api import Account, Api
from tests.support.imports import csv_bytes, import_file
from tests.support.notifier import RecordingNotifier

OWNER = "instance-a"
__all__ = ["private_tansu", "tansu_broker"]


@pytest.fixture
def settings(make_settings: SettingsFactory, tmp_path: Path) -> Settings:
    return make_settings(
        imports={
            "directory": str(tmp_path / "imports"),
            "batch_size": 100,
            "progress_interval_seconds": 0.2,
        }
    )


async def customers_count(api: Api, agent: Account) -> int:
    _, body = await api.call("GET", "/api/v1/customers?limit=1", token=agent.access_token)
    return int(body["data"]["pagination"]["total"])


async def test_a_batch_validated_on_one_instance_is_written_by_another(
    settings: Settings, aiohttp_client: Any
) -> None:
    streams = create_streams("memory://")
    await streams.start()
    try:
        await written_elsewhere(settings, aiohttp_client, streams)
    finally:
        await streams.stop()


@pytest.mark.kafka
async def test_on_kafka_a_batch_validated_on_one_instance_is_written_by_another(
    private_tansu: str, make_settings: SettingsFactory, tmp_path: Path, aiohttp_client: Any
) -> None:
    # The broker first: it stops after the instances, which leave their groups through it.
    settings = make_settings(
        imports={"directory": str(tmp_path / "imports"), "batch_size": 100},
        streams={
            "url": f"kafka://{private_tansu}",
            # tansu answers InitProducerId with an error; the writers' guard de-duplicates.
            "kafka_idempotence": "false",
            "kafka_session_timeout_ms": 2000,
            "kafka_heartbeat_interval_ms": 200,
        },
    )
    notifier = RecordingNotifier()
    first_app = create_app(settings, notifier=notifier)
    second_app = create_app(settings, notifier=notifier)
    first = Api(await aiohttp_client(first_app), first_app, notifier)
    await aiohttp_client(second_app)
    writers = [app[IMPORT_PIPELINES].writers for app in (first_app, second_app)]
    parts = [w.subscription for w in writers]
    assert parts[0] is not None
    assert parts[1] is not None
    for _ in range(300):  # until the group settled: the partitions split between the two
        mine, others = parts[0].assignment(), parts[1].assignment()
        if mine and others and len(mine | others) == IMPORTS_ROWS.partitions:
            break
        await asyncio.sleep(0.1)
    theirs = {partition for _, partition in parts[1].assignment()}
    assert theirs
    assert not theirs & {partition for _, partition in parts[0].assignment()}
    admin = await first.tenant()
    agent = await first.user(admin, Role.SENIOR_AGENT)
    # Imports uploaded to the first instance until one's partition is the second one's.
    for attempt in range(12):
        rows = [["Name", "Mobile"]] + [[f"C {n}", f"6{attempt}{n:08d}"] for n in range(300)]
        before = [w.batches for w in writers]
        result = await import_file(first, agent, f"book-{attempt}.csv", csv_bytes(rows))
        assert (result["status"], result["created"]) == ("completed", 300)
        if partition_for(result["id"].encode(), IMPORTS_ROWS.partitions) in theirs:
            assert writers[1].batches - before[1] >= 3
            assert writers[0].batches == before[0]
            return
    raise AssertionError("no import landed on the second instance's partitions")


async def written_elsewhere(settings: Settings, aiohttp_client: Any, streams: Any) -> None:
    """Two instances (apps over one database and one streams backend); the first one's writer
    leaves the group, so every batch the first one validates is written by the second."""
    notifier = RecordingNotifier()
    first_app = create_app(settings, notifier=notifier, streams=streams)
    second_app = create_app(settings, notifier=notifier, streams=streams)
    first = Api(await aiohttp_client(first_app), first_app, notifier)
    await aiohttp_client(second_app)
    await first_app[IMPORT_PIPELINES].writers.stop()
    admin = await first.tenant()
    agent = await first.user(admin, Role.SENIOR_AGENT)
    rows = [["Name", "Mobile"]] + [[f"C {n}", f"6{n:09d}"] for n in range(1_000)]
    result = await import_file(first, agent, "book.csv", csv_bytes(rows))
    assert (result["status"], result["created"], result["processed"]) == (
        "completed",
        1_000,
        1_000,
    )
    assert second_app[IMPORT_PIPELINES].writers.batches >= 10
    assert first_app[IMPORT_PIPELINES].writers.batches == 0
    assert await customers_count(first, agent) == 1_000


class Running:
    """An import that is running for `OWNER`, fed batches by hand."""

    def __init__(self, api: Api, agent_id: uuid.UUID, tenant_id: uuid.UUID) -> None:
        self.api = api
        self.db: Database = api.app[DATABASE]
        self.job = JobRef(uuid.uuid4(), tenant_id, agent_id, agent_id, ImportType.CUSTOMERS)

    async def start(self, committed_row: int = 1) -> None:
        async with self.db.transaction(Scope.tenant(self.job.tenant_id)) as session:
            session.add(
                ImportJob(
                    id=self.job.import_id,
                    tenant_id=self.job.tenant_id,
                    agent_id=self.job.agent_id,
                    uploaded_by=self.job.uploaded_by,
                    import_type=ImportType.CUSTOMERS.value,
                    status="writing",
                    file_format="csv",
                    stored_name=uuid.uuid4().hex,
                    original_name="book.csv",
                    content_hash=uuid.uuid4().hex,
                    header=["Name", "Mobile"],
                    processed=0,
                    created=0,
                    updated=0,
                    unchanged=0,
                    failed=0,
                    committed_row=committed_row,
                    retries=0,
                    lease_owner=OWNER,
                    lease_until=utcnow(),
                )
            )

    def event(
        self, after: int, last: int, *, owner: str = OWNER, retries: int = 0, bad: int = 0
    ) -> Event:
        """Rows after..last, each a customer named by its row; `bad` fails validation."""
        batch = Batch(after_row=after, last_row=last)
        for number in range(after + 1, last + 1):
            cells = [f"Row {number}", f"98{number:08d}"]
            batch.sources[number] = SourceRow(number, cells)
            if number == bad:
                batch.errors.append(RowError(number, "Mobile", "1", "not a phone number"))
            else:
                fields = {"full_name": cells[0], "phone": f"+9198{number:08d}"}
                batch.rows.append(CleanRow(number, fields))
        job = dataclasses.replace(self.job, retries=retries)
        payloads = wire.encode(job, batch, owner=owner)
        assert len(payloads) == 1
        key = str(self.job.import_id)
        return Event.decode(rows_envelope(str(self.job.tenant_id), key, payloads[0]))

    async def deliver(self, event: Event) -> None:
        await self.api.app[IMPORT_PIPELINES].writers.handle(event)

    async def state(self) -> tuple[int, int, int, int]:
        """(committed_row, processed, customers in the book, error rows)"""
        async with self.db.session(Scope.tenant(self.job.tenant_id)) as session:
            job = await session.get(ImportJob, self.job.import_id)
            assert job is not None
            customers = await session.scalar(
                select(func.count())
                .select_from(Customer)
                .where(Customer.agent_id == self.job.agent_id)
            )
            errors = await session.scalar(
                select(func.count())
                .select_from(ImportRowError)
                .where(ImportRowError.import_id == self.job.import_id)
            )
            return job.committed_row, job.processed, int(customers or 0), int(errors or 0)

    async def set(self, **values: Any) -> None:
        async with self.db.transaction(Scope.tenant(self.job.tenant_id)) as session:
            job = await session.get(ImportJob, self.job.import_id)
            assert job is not None
            for name, value in values.items():
                setattr(job, name, value)


async def running_import(api: Api) -> Running:
    admin = await api.tenant()
    agent = await api.user(admin, Role.SENIOR_AGENT)
    agent_id = uuid.UUID(agent.user_id)
    async with api.app[DATABASE].session(Scope.system()) as session:
        tenant_id = await session.scalar(select(User.tenant_id).where(User.id == agent_id))
    assert tenant_id is not None
    running = Running(api, agent_id, tenant_id)
    await running.start()
    return running


async def test_a_batch_delivered_twice_is_written_once(api: Api) -> None:
    running = await running_import(api)
    first = running.event(1, 4, bad=3)
    await running.deliver(first)
    assert await running.state() == (4, 3, 2, 1)
    await running.deliver(first)  # redelivered, as after a rebalance
    assert await running.state() == (4, 3, 2, 1)
    await running.deliver(running.event(4, 6))
    await running.deliver(first)  # a late copy, after the next batch
    assert await running.state() == (6, 5, 4, 1)


async def test_a_batch_of_an_owner_that_lost_the_lease_or_an_earlier_run_writes_nothing(
    api: Api,
) -> None:
    running = await running_import(api)
    await running.deliver(running.event(1, 3, owner="instance-b"))
    await running.deliver(running.event(1, 3, retries=1))
    await running.deliver(running.event(5, 7))  # after a gap: row 2..5 never came
    assert await running.state() == (1, 0, 0, 0)
    await running.set(lease_owner="instance-b")  # taken over: the old owner's batch is late
    await running.deliver(running.event(1, 3))
    assert await running.state() == (1, 0, 0, 0)
    await running.deliver(running.event(1, 3, owner="instance-b"))
    assert await running.state() == (3, 2, 2, 0)
    await running.set(status="cancelled")
    await running.deliver(running.event(3, 5, owner="instance-b"))
    assert await running.state() == (3, 2, 2, 0)


async def test_a_batch_partly_written_row_by_row_goes_on_after_its_last_written_row(
    api: Api,
) -> None:
    running = await running_import(api)
    batch = running.event(1, 6)
    # As if the writer had written rows 2..3 one by one, then its instance died.
    await running.deliver(running.event(1, 3))
    await running.deliver(batch)  # delivered again to the writer that took over
    assert await running.state() == (6, 5, 5, 0)
