"""`ImportPipelineActor`: one supervised actor per running import, and the manager that starts
them (on upload, and for imports whose instance died, found by their expired lease).

The pipeline's parse and validation run on the actor's thread; its database work goes to the
loop with `run_on_loop`, one batch per call, so the loop never parses a cell.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from actors.errors import ActorUnavailable
from actors.runtime import BridgedActor, Runtime
from actors.supervisor import ChildSpec
from actors.system import ActorSystem
from mitra.imports import ImportWriter, JobStore, Pipeline
from mitra.settings import ImportsSettings

log = logging.getLogger("mitra.imports")

SendFrames = Callable[[uuid.UUID, list[uuid.UUID], dict[str, Any]], Coroutine[Any, Any, None]]
"""Push one JSON frame to every open socket of some users of a tenant (best-effort)."""

# One batch, or one lease renewal, on the loop: generous, because a busy PostgreSQL or a
# SQLite file shared with the chat writer can take a while.
_LOOP_TIMEOUT = 120.0


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
        writer: ImportWriter,
        settings: ImportsSettings,
        owner: str,
        send_frames: SendFrames | None,
        stopping: threading.Event,
        runtime: Runtime | None = None,
    ) -> None:
        super().__init__(runtime=runtime)
        self._send_frames = send_frames
        self._pipeline = Pipeline(
            tenant_id,
            import_id,
            store=store,
            writer=writer,
            settings=settings,
            owner=owner,
            run=lambda coro: self.run_on_loop(coro, _LOOP_TIMEOUT),
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
        *,
        store: JobStore,
        writer: ImportWriter,
        settings: ImportsSettings,
        send_frames: SendFrames | None = None,
        owner: str | None = None,
    ) -> None:
        self._system = system
        self._store = store
        self._writer = writer
        self._settings = settings
        self._send_frames = send_frames
        self.owner = owner or uuid.uuid4().hex
        self._stopping = threading.Event()
        self._scanner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._scanner = asyncio.get_running_loop().create_task(
            self._scan_forever(), name="imports-resume"
        )

    async def stop(self) -> None:
        """Running pipelines hand their imports on at their next batch; the actors stop with
        the actor system after this."""
        self._stopping.set()
        if self._scanner is not None:
            self._scanner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scanner

    async def run(self, tenant_id: uuid.UUID, import_id: uuid.UUID) -> None:
        """Start the import's actor here (it claims the import itself, so a second start of the
        same import, here or elsewhere, does nothing)."""
        store, writer, settings = self._store, self._writer, self._settings
        owner, send, stopping = self.owner, self._send_frames, self._stopping

        def factory(ctx: Any) -> Any:
            return ImportPipelineActor.start(
                tenant_id,
                import_id,
                store=store,
                writer=writer,
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
