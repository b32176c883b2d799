"""The runtime boundary: what the container, exec and stats services need from an OCI runtime.

The services never run runc or talk to a monitor themselves; they ask this
Protocol, which `runc.Runtime` meets with runc plus the per-container monitor
(`shim.py`). The cut is drawn where a different runtime changes the answer
but not the question: a rootless runtime, `crun`, or an in-memory fake for
fast service tests each provide the same calls. Streams (attach, the wait
connection, a started exec) are sockets speaking the monitor's line
protocol, so a replacement serves them with socket pairs.
"""
from __future__ import annotations

import socket
from collections.abc import Collection
from typing import Any, Protocol


class ContainerRuntime(Protocol):
    # ---- starting processes -------------------------------------------
    def expect_start(self) -> None:
        """A container or exec is being created or started, so the runtime's call is coming: ready now what
        it will wait for (cgroupwarm.py)."""
        ...

    def launch(self, cid: str, bundle: str, *, tty: bool, stdin: bool, log: dict[str, Any],
               console_size: tuple[int, int] | None, cgroup_path: str, runtime: str) -> None:
        """Put the container of the OCI bundle under a new monitor, which clients may attach to; it runs at
        `start`, under the OCI runtime named `runtime` (engine/runtime/oci.py)."""
        ...

    def start(self, cid: str) -> int:
        """Run the launched container; its init PID."""
        ...

    def launch_exec(self, eid: str, cid: str, process: dict[str, Any], *, stdin: bool) -> None:
        """Prepare an exec's OCI process under a monitor of its own; it runs at `start_exec`."""
        ...

    def start_exec(self, eid: str) -> tuple[int, socket.socket]:
        """Run a launched exec: its PID and the connection its exit line arrives on."""
        ...

    def discard_exec(self, eid: str) -> None:
        """Give up a launched exec that will not be started (its attach failed); nothing if it was."""
        ...

    def signal_exec(self, eid: str, signal: int) -> None:
        """Signal a started exec's process (a healthcheck probe that timed out); nothing if it has ended."""
        ...

    # ---- talking to a monitor -----------------------------------------
    def connect(self, cid: str, op: dict[str, Any], timeout: float | None = 10.0) -> socket.socket:
        """A monitor connection with `op` sent; OSError if the monitor is gone."""
        ...

    def attach(self, sid: str, *, stdin: bool, stdout: bool, stderr: bool, close_stdin: bool) -> socket.socket:
        """A connection carrying the process's output streams and, if `stdin`, its input."""
        ...

    def read_line(self, sock: socket.socket) -> dict[str, Any] | None:
        """The next JSON line of a monitor connection; None when it closed."""
        ...

    def request(self, cid: str, op: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        """One request/answer with a running container's monitor (start, resize, ...)."""
        ...

    def alive(self, cid: str) -> bool:
        """Whether the container's monitor still answers."""
        ...

    def read_exit(self, cid: str) -> dict[str, Any] | None:
        """The exit the monitor recorded before it went away, if any."""
        ...

    # ---- runtime state --------------------------------------------------
    def has_state(self, cid: str) -> bool:
        """Whether a monitor or runtime state for the container exists (a start got that far)."""
        ...

    def status(self, cid: str) -> tuple[str, int]:
        """The runtime's status and init PID of the container; ("", 0) when it does not know it."""
        ...

    def cleanup(self, cid: str) -> None:
        """Forget the runtime state of a stopped container."""
        ...

    def abandon(self, cid: str) -> None:
        """Undo a start a daemon crash interrupted: no process, runtime state or monitor left."""
        ...

    def collect_orphans(self, known: Collection[str]) -> None:
        """At boot: forget the runtime state of containers not in `known`, the store's (a removal answers
        before the monitor of its exited container has finished, so a daemon that died then left some)."""
        ...

    def kill(self, cid: str, signal: int) -> None: ...
    def pause(self, cid: str) -> None: ...
    def resume(self, cid: str) -> None: ...

    def update(self, cid: str, resources: dict[str, Any]) -> None:
        """Apply new OCI `linux.resources` to a running container."""
        ...

    def pids(self, cid: str) -> list[int]:
        """Host PIDs of the container's processes."""
        ...

    def close(self) -> None:
        """Release what the runtime holds for future starts; running containers are left alone."""
        ...
