"""`ImportPipelineActor`: one supervised actor per running import, and the manager that starts
them (on upload, and for imports whose instance died, found by their expired lease), with this
instance's part of the writing stage.

The pipeline's parse and validation run in a worker process; the actor's thread relays each
batch of validated rows to `imports.rows` (keyed by the import, so its batches stay in order). Every
instance is a member of the `imports-writers` group, so the instance that consumes the import's
partition writes it, wherever the pipeline runs. The pipeline hears that a batch was written
from its own instance's writer, or from `imports.results` (every instance reads all of it), and
then reads the import's row: the loop never parses a cell.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import orjson

from actors.errors import ActorUnavailable
from actors.runtime import BridgedActor, Runtime
from actors.supervisor import ChildSpec
from actors.system import ActorSystem
from mitra.imports import ImportWriter, JobStore, Pipeline
from mitra.imports.writing import BatchWriting
from mitra.settings import ImportsSettings
from streams.base import RetryPolicy, Streams, Subscription
from streams.broadcast import Broadcast
from streams.envelope import Event
from streams.errors import StreamsUnavailable
from streams.topics import IMPORTS_RESULTS, IMPORTS_ROWS

log = logging.getLogger("mitra.imports")

SendFrames = Callable[[uuid.UUID, list[uuid.UUID], dict[str, Any]], Coroutine[Any, Any, None]]
"""Push one JSON frame to every open socket of some users of a tenant (best-effort)."""

# One batch, or one lease renewal, on the loop: generous, because a busy PostgreSQL or a
# SQLite file shared with the chat writer can take a while.
_LOOP_TIMEOUT = 120.0


ROWS_EVENT = "imports.rows"
WRITERS_GROUP = "imports-writers"
# A failing batch was already retried, then written row by row, by the writing stage itself:
# what still fails is the database being away. A payload that is not one is given up at once.
_WRITERS_RETRY = RetryPolicy(max_attempts=5, initial_backoff=0.5, max_backoff=5.0,
                             give_up_on=(ValueError,))  # fmt: skip
_PUBLISH_ATTEMPTS = 5


class Outcomes:
    """Word that a batch of an import was written, for the pipeline waiting on it here."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[uuid.UUID, threading.Event] = {}

    def watch(self, import_id: uuid.UUID) -> threading.Event:
        with self._lock:
            return self._waiting.setdefault(import_id, threading.Event())

    def forget(self, import_id: uuid.UUID) -> None:
        with self._lock:
            self._waiting.pop(import_id, None)

    def written(self, import_id: uuid.UUID) -> None:
        with self._lock:
            waiting = self._waiting.get(import_id)
        if waiting is not None:
            waiting.set()


class _StreamHandoff:
    """The pipeline's batches to `imports.rows`, from the actor's thread."""

    def __init__(
        self,
        streams: Streams,
        tenant_id: uuid.UUID,
        written: threading.Event,
        run: Callable[[Coroutine[Any, Any, Any]], Any],
    ) -> None:
        self._streams = streams
        self._tenant = str(tenant_id)
        self._written = written
        self._run = run

    def send(self, key: str, payloads: list[bytes]) -> None:
        items = [(IMPORTS_ROWS.name, key, rows_envelope(self._tenant, key, p)) for p in payloads]
        for attempt in range(1, _PUBLISH_ATTEMPTS + 1):
            try:
                self._run(self._streams.publish_batch(items))
                return
            except StreamsUnavailable:
                # Sent again whole: a batch that arrives twice, or after a later one, is
                # refused by the writer's guard, and the later one is sent again after it.
                if attempt == _PUBLISH_ATTEMPTS:
                    raise
                log.warning("import %s: rows not published (attempt %d)", key, attempt)
                time.sleep(min(0.2 * 2**attempt, 3.0))

    def wait(self, timeout: float) -> None:
        self._written.wait(timeout)
        self._written.clear()


def rows_envelope(tenant_id: str, key: str, payload: bytes) -> bytes:
    """The `Event` envelope (as `Event.encode` writes it) around an encoded batch, which is
    embedded as it is rather than parsed and written again."""
    return orjson.dumps(
        {
            "id": str(uuid.uuid4()),
            "type": ROWS_EVENT,
            "tenant_id": tenant_id,
            "key": key,
            "occurred_at": datetime.now(UTC),
            "version": 1,
            "payload": orjson.Fragment(payload),
        },
        option=orjson.OPT_UTC_Z,
    )


class ImportWriters:
    """This instance's member of `imports-writers`: writes the batches of the imports whose
    partitions it consumes, whichever instance's pipeline sent them."""

    def __init__(self, streams: Streams, writing: BatchWriting, outcomes: Outcomes) -> None:
        self._streams = streams
        self._writing = writing
        self._outcomes = outcomes
        self._subscription: Subscription | None = None
        self.batches = 0
        """Batches this member wrote (refused ones not counted)."""

    async def start(self) -> None:
        self._subscription = await self._streams.subscribe(
            [IMPORTS_ROWS.name], WRITERS_GROUP, self.handle, retry=_WRITERS_RETRY
        )

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.stop()

    @property
    def subscription(self) -> Subscription | None:
        return self._subscription

    async def handle(self, event: Event) -> None:
        written = await self._writing.receive(event.payload)
        if written.counts is not None:
            self.batches += 1
            self._outcomes.written(written.job.import_id)


class ImportResults(Broadcast):
    """This instance's reader of `imports.results`: wakes a pipeline here whose batch another
    instance wrote."""

    topic = IMPORTS_RESULTS.name
    group_prefix = "imports-results"

    def __init__(self, streams: Streams, instance_id: str, outcomes: Outcomes) -> None:
        super().__init__(streams, instance_id)
        self._outcomes = outcomes

    async def _handle(self, event: Event) -> None:
        try:
            import_id = uuid.UUID(str(event.payload["import_id"]))
        except (KeyError, ValueError):
            log.warning("an imports.results event without an import id: %s", event.id)
            return
        self._outcomes.written(import_id)


class _Run:
    """The message that makes the actor run its pipeline (told once, by `on_start`)."""


class ImportPipelineActor(BridgedActor):
    kind = "import"

    def __init__(
        self,
        tenant_id: uuid.UUID,
        import_id: uuid.UUID,
        *,
        store: JobStore,
        streams: Streams,
        outcomes: Outcomes,
        settings: ImportsSettings,
        owner: str,
        send_frames: SendFrames | None,
        stopping: threading.Event,
        runtime: Runtime | None = None,
    ) -> None:
        super().__init__(runtime=runtime)
        self._send_frames = send_frames
        self._import_id = import_id
        self._outcomes = outcomes

        def run(coro: Coroutine[Any, Any, Any]) -> Any:
            return self.run_on_loop(coro, _LOOP_TIMEOUT)

        self._pipeline = Pipeline(
            tenant_id,
            import_id,
            store=store,
            handoff=_StreamHandoff(streams, tenant_id, outcomes.watch(import_id), run),
            settings=settings,
            owner=owner,
            run=run,
            submit=self._submit,
            progress=self._progress if send_frames is not None else None,
            stopping=stopping,
        )

    def _submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        loop = self.runtime.loop if self.runtime is not None else None
        if loop is None or loop.is_closed():
            coro.close()
            raise ActorUnavailable("the event loop is not running")
        return asyncio.run_coroutine_threadsafe(coro, loop)

    def on_start(self) -> None:
        self.actor_ref.tell(_Run())

    def on_stop(self) -> None:
        self._outcomes.forget(self._import_id)

    def on_failure(self, *args: Any) -> None:
        self._outcomes.forget(self._import_id)
        super().on_failure(*args)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Run):
            self._pipeline.run()
            # Done (or handed on): a transient child that exits normally is not restarted.
            self.stop()
            return None
        return super().on_receive(message)

    def _progress(
        self, tenant_id: uuid.UUID, users: list[uuid.UUID], frame: dict[str, Any]
    ) -> None:
        send = self._send_frames
        loop = self.runtime.loop if self.runtime is not None else None
        if send is None or loop is None or loop.is_closed():
            return
        # Fire and forget: a slow socket never holds the import.
        asyncio.run_coroutine_threadsafe(send(tenant_id, users, frame), loop)


class ImportPipelines:
    """Starts pipeline actors under the actor system's root supervisor and resumes orphans."""

    def __init__(
        self,
        system: ActorSystem,
        streams: Streams,
        *,
        store: JobStore,
        writer: ImportWriter,
        settings: ImportsSettings,
        send_frames: SendFrames | None = None,
        owner: str | None = None,
    ) -> None:
        self._system = system
        self._streams = streams
        self._store = store
        self._settings = settings
        self._send_frames = send_frames
        self.owner = owner or uuid.uuid4().hex
        self._stopping = threading.Event()
        self._scanner: asyncio.Task[None] | None = None
        self._outcomes = Outcomes()
        self.writers = ImportWriters(streams, BatchWriting(writer, store, settings), self._outcomes)
        self._results = ImportResults(streams, self.owner, self._outcomes)

    async def start(self) -> None:
        """Join the writers and read the results (before any pipeline here sends a batch),
        then resume imports left by stopped instances."""
        await self._results.start()
        await self.writers.start()
        self._scanner = asyncio.get_running_loop().create_task(
            self._scan_forever(), name="imports-resume"
        )

    async def stop(self) -> None:
        """Running pipelines hand their imports on at their next batch (the actors stop with
        the actor system after this); this instance leaves the writers' group."""
        self._stopping.set()
        if self._scanner is not None:
            self._scanner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scanner
        await self.writers.stop()
        await self._results.stop()

    async def run(self, tenant_id: uuid.UUID, import_id: uuid.UUID) -> None:
        """Start the import's actor here (it claims the import itself, so a second start of the
        same import, here or elsewhere, does nothing)."""
        store, streams, outcomes, settings = (
            self._store,
            self._streams,
            self._outcomes,
            self._settings,
        )
        owner, send, stopping = self.owner, self._send_frames, self._stopping

        def factory(ctx: Any) -> Any:
            return ImportPipelineActor.start(
                tenant_id,
                import_id,
                store=store,
                streams=streams,
                outcomes=outcomes,
                settings=settings,
                owner=owner,
                send_frames=send,
                stopping=stopping,
                runtime=ctx.runtime,
            )

        name = f"import-{import_id}"
        try:
            await self._system.spawn(ChildSpec(name, factory, restart="transient"))
        except ValueError:
            log.debug("import %s already has an actor here", import_id)

    async def resume_orphans(self) -> int:
        """Start every running import whose lease ran out (its instance died); how many."""
        found = await self._store.orphans()
        for tenant_id, import_id in found:
            await self.run(tenant_id, import_id)
        return len(found)

    async def _scan_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                started = await self.resume_orphans()
                if started:
                    log.info("resumed %d import(s) left by a stopped instance", started)
            except Exception:
                log.exception("the scan for imports to resume failed")
            await asyncio.sleep(self._settings.resume_scan_seconds)
