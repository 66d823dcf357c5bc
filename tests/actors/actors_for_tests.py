"""Small actors shared by the tests."""

from __future__ import annotations

import threading
import time
from typing import Any

import pykka

from actors import BridgedActor, Runtime


class Echo(BridgedActor):
    """Answers every message with itself; 'crash' raises (fatal when told)."""

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crash requested")
        if isinstance(message, Exception):
            raise message
        return message

    def fail(self, text: str) -> None:
        raise ValueError(text)

    def echo(self, value: Any) -> Any:
        return value


class Sleeper(BridgedActor):
    """Sleeps the given number of seconds inside the handler (blocking its own thread only)."""

    def on_receive(self, message: Any) -> Any:
        time.sleep(float(message))
        return "slept"


class PlainSleeper(pykka.ThreadingActor):
    """The same with pykka's own futures, to show what the bridge fixes."""

    def on_receive(self, message: Any) -> Any:
        time.sleep(float(message))
        return "slept"


class Gated(BridgedActor):
    """'wait' blocks until the gate opens; 'crash' raises; anything else is echoed."""

    def __init__(self, gate: threading.Event, *, runtime: Runtime | None = None) -> None:
        super().__init__(runtime=runtime)
        self.gate = gate

    def on_receive(self, message: Any) -> Any:
        if message == "wait":
            self.gate.wait(10)
            return "opened"
        if message == "crash":
            raise RuntimeError("crash requested")
        return message
