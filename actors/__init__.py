"""Mitra's actor runtime: pykka actors bridged to asyncio, supervised, pooled and measured.

Import from here; the modules behind it are private to the package's layout.

Wiring (the app factory)::

    system = ActorSystem(registry=prometheus_registry)
    app.cleanup_ctx.append(system.cleanup_ctx)         # start with the app, stop with it

    # after start (e.g. in on_startup, or a later cleanup_ctx entry):
    conversations = system.pool(
        "conversation", ConversationActor.activate, idle_timeout_seconds=300, max_live=5000
    )
    await system.spawn(ChildSpec("payments", lambda ctx: PaymentSaga.start(runtime=ctx.runtime)))

    ack = await conversations.ask(conversation_id, AcceptMessage(...), timeout=5)

An actor subclasses `BridgedActor`, takes `runtime=` (and, when pooled, `start_after=`) and
passes them to `super().__init__()`; it loads its state in `on_start` (its own thread), does
async I/O with `self.run_on_loop(coro, timeout)`, and reports upward with `tell`.
"""

from __future__ import annotations

from actors.directory import Directory
from actors.errors import ActorStopped, ActorTimeout, ActorUnavailable, RestartIntensityExceeded
from actors.future import BridgeFuture
from actors.loop_monitor import LoopLagMonitor
from actors.mailbox import Mailbox, Termination
from actors.metrics import ActorMetrics
from actors.pool import Activation, ActorPool
from actors.runtime import (
    DEFAULT_ASK_TIMEOUT,
    BridgedActor,
    Runtime,
    ask,
    mailbox_of,
    run_on_loop,
    stop,
    wait_concurrent,
)
from actors.supervisor import (
    ChildContext,
    ChildSpec,
    RestartStrategy,
    Strategy,
    Supervisor,
    lookup,
    supervisor_spec,
)
from actors.system import ActorSystem

__all__ = [
    "DEFAULT_ASK_TIMEOUT",
    "Activation",
    "ActorMetrics",
    "ActorPool",
    "ActorStopped",
    "ActorSystem",
    "ActorTimeout",
    "ActorUnavailable",
    "BridgeFuture",
    "BridgedActor",
    "ChildContext",
    "ChildSpec",
    "Directory",
    "LoopLagMonitor",
    "Mailbox",
    "RestartIntensityExceeded",
    "RestartStrategy",
    "Runtime",
    "Strategy",
    "Supervisor",
    "Termination",
    "ask",
    "lookup",
    "mailbox_of",
    "run_on_loop",
    "stop",
    "supervisor_spec",
    "wait_concurrent",
]
