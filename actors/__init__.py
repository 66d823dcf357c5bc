"""Mitra's actor runtime: pykka actors bridged to asyncio, supervised, pooled and measured.

Import from here; the modules behind it are private to the package's layout.
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
]
