"""An in-memory `ContainerRuntime`: scripted "processes" instead of runc and a monitor.

It exists so the services and API routes can be tested in-process, without
root, runc or a kernel, in seconds (httpx's MockTransport plays the same part
for its transports). A process runs a tiny script chosen by its command:
`echo ARGS...` prints ARGS and exits 0, `sleep N` runs N seconds (or until a
signal), `cat` copies its stdin to stdout until stdin ends (or a signal),
`sh -c "exit N"` exits N, `true`/`false` exit 0/1, anything else
exits 127 like a shell that cannot find the command. Output goes to the
container's json-file log in the monitor's exact format, so the logs service
reads it unchanged, and streams (wait, attach, a started exec) are socket
pairs speaking the monitor's line protocol (see shim.py's docstring).
"""
from __future__ import annotations

import itertools
import json
import os
import queue
import shlex
import signal as _signal
import socket
import struct
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from engine.errors import Conflict, NotFound
from engine.runtime.lines import open_attach, read_line, request
from engine.timeutil import rfc3339_ns

Script = Callable[["FakeProcess"], int]


def _echo(p: FakeProcess) -> int:
    p.output("stdout", " ".join(p.args[1:]) + "\n")
    return 0


def _sleep(p: FakeProcess) -> int:
    signalled = p.killed.wait(float(p.args[1]) if len(p.args) > 1 else 0.0)
    return 128 + p.signal if signalled else 0


def _cat(p: FakeProcess) -> int:
    while data := p.read_stdin():
        p.output("stdout", data.decode(errors="replace"))
    return 128 + p.signal if p.killed.is_set() else 0


def _sh(p: FakeProcess) -> int:
    words = shlex.split(p.args[2]) if len(p.args) > 2 and p.args[1] == "-c" else []
    if len(words) == 2 and words[0] == "exit" and words[1].isdigit():
        return int(words[1])
    return 127 if words else 0


SCRIPTS: dict[str, Script] = {
    "echo": _echo, "sleep": _sleep, "cat": _cat, "sh": _sh, "true": lambda p: 0, "false": lambda p: 1,
}


@dataclass
class FakeProcess:
    """One scripted process and the connections waiting on or attached to it."""

    args: list[str]
    pid: int
    tty: bool
    log_path: str
    killed: threading.Event = field(default_factory=threading.Event)
    signal: int = 0
    paused: bool = False
    exit: dict[str, Any] | None = None
    waiters: list[socket.socket] = field(default_factory=list)
    attached: list[tuple[socket.socket, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # what attach connections send, b"" once stdin is closed; None: the process has no stdin (reads end at once)
    stdin: queue.SimpleQueue[bytes] | None = None
    bundle: str = ""  # a container's OCI bundle, whose command `start` reads; "" for an exec (args given)

    def read_stdin(self) -> bytes:
        """The next chunk of stdin; b"" at its end or when the process is killed."""
        return self.stdin.get() if self.stdin is not None and not self.killed.is_set() else b""

    def feed(self, sock: socket.socket, close_stdin: bool) -> None:
        """Pass what an attach connection sends to stdin; its EOF closes stdin if `close_stdin`, as the monitor."""
        assert self.stdin is not None
        try:
            while data := sock.recv(65536):
                self.stdin.put(data)
        except OSError:
            return  # the process ended and closed the connection
        if close_stdin:
            self.stdin.put(b"")

    def kill(self, signal: int) -> None:
        self.signal = signal
        self.killed.set()
        if self.stdin is not None:
            self.stdin.put(b"")  # wakes a read

    def output(self, stream: str, text: str) -> None:
        if self.log_path:
            line = {"log": text, "stream": stream, "time": rfc3339_ns()}
            with open(self.log_path, "a") as f:
                f.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
        data = text.encode()
        frame = data if self.tty else struct.pack(">BxxxL", 1 if stream == "stdout" else 2, len(data)) + data
        with self.lock:
            for sock, op in self.attached:
                if op.get(stream):
                    sock.sendall(frame)

    def run(self) -> None:
        script = SCRIPTS.get(os.path.basename(self.args[0]) if self.args else "")
        code = script(self) if script else 127
        with self.lock:
            self.exit = {"ExitCode": code, "FinishedAt": rfc3339_ns(), "OOMKilled": False}
            for sock in self.waiters:  # before attach streams end, as the monitor does
                _send(sock, self.exit)
                sock.close()
            for sock, _ in self.attached:
                _hang_up(sock)
            self.waiters.clear()
            self.attached.clear()


def _hang_up(sock: socket.socket) -> None:
    """Shut before closing: a thread blocked reading the socket (`feed`) wakes, as close alone does not wake it."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def _send(sock: socket.socket, msg: dict[str, Any]) -> None:
    try:
        sock.sendall(json.dumps(msg).encode() + b"\n")
    except OSError:
        pass  # the client went away, as with a real monitor


class FakeRuntime:
    """Meets `engine.runtime.base.ContainerRuntime` with threads and socket pairs."""

    def __init__(self) -> None:
        self._procs: dict[str, FakeProcess] = {}
        self._started: set[str] = set()
        self._pids = itertools.count(1000)

    def _proc(self, sid: str) -> FakeProcess:
        p = self._procs.get(sid)
        if p is None:
            raise NotFound(f"no such process {sid}")
        return p

    # ---- starting processes -------------------------------------------
    def expect_start(self) -> None:
        """Nothing to ready in memory."""

    def launch(self, cid: str, bundle: str, *, tty: bool, stdin: bool, log: dict[str, Any],
               console_size: tuple[int, int] | None, cgroup_path: str, runtime: str) -> None:
        """The process's command is read from the bundle at `start`, as the OCI runtime reads it then: a
        start launches the monitor while it writes the bundle's config.json."""
        self._procs[cid] = FakeProcess([], next(self._pids), tty, log.get("path", ""),
                                       stdin=queue.SimpleQueue() if stdin else None, bundle=bundle)
        self._started.discard(cid)

    def start(self, cid: str) -> int:
        return int(self.request(cid, {"op": "start"})["pid"])

    def launch_exec(self, eid: str, cid: str, process: dict[str, Any], *, stdin: bool) -> None:
        self._procs[eid] = FakeProcess(list(process["args"]), next(self._pids), bool(process.get("terminal")), "",
                                       stdin=queue.SimpleQueue() if stdin else None)

    def start_exec(self, eid: str) -> tuple[int, socket.socket]:
        p = self._proc(eid)
        ours, theirs = socket.socketpair()
        p.waiters.append(ours)
        self._run(eid)
        return p.pid, theirs

    def discard_exec(self, eid: str) -> None:
        if eid not in self._started:
            self._procs.pop(eid, None)

    def signal_exec(self, eid: str, signal: int) -> None:
        p = self._procs.get(eid)
        if p is not None and p.exit is None:
            p.signal = signal
            p.killed.set()

    def _run(self, sid: str) -> None:
        self._started.add(sid)
        threading.Thread(target=self._procs[sid].run, name=f"fake-{sid[:12]}", daemon=True).start()

    # ---- talking to a "monitor" ---------------------------------------
    def connect(self, cid: str, op: dict[str, Any], timeout: float | None = 10.0) -> socket.socket:
        p = self._procs.get(cid)
        if p is None:
            raise ConnectionRefusedError(f"no monitor for {cid}")
        ours, theirs = socket.socketpair()
        theirs.settimeout(timeout)
        with p.lock:  # the exit is checked under the lock that `run` records it with: no waiter is left behind
            if p.exit is not None:
                ours.close()
                theirs.close()
                raise ConnectionRefusedError(f"no monitor for {cid}")
            kind = op.get("op")
            if kind == "wait":
                p.waiters.append(ours)
                return theirs
            if kind == "attach":
                _send(ours, {"ok": True})
                p.attached.append((ours, op))
                if op.get("stdin") and p.stdin is not None:
                    threading.Thread(target=p.feed, args=(ours, bool(op.get("close_stdin"))), daemon=True,
                                     name=f"fake-stdin-{cid[:12]}").start()
                return theirs
        if kind == "start":
            if cid not in self._started and p.bundle:
                with open(os.path.join(p.bundle, "config.json")) as f:
                    p.args = list(json.load(f)["process"]["args"])
            _send(ours, {"ok": True, "pid": p.pid})
            if cid not in self._started:
                self._run(cid)
        elif kind == "resize":
            _send(ours, {"ok": True})
        ours.close()
        return theirs

    def attach(self, sid: str, *, stdin: bool, stdout: bool, stderr: bool, close_stdin: bool) -> socket.socket:
        """A connection carrying the process's output streams and, if `stdin`, its input."""
        return open_attach(self.connect, sid, stdin=stdin, stdout=stdout, stderr=stderr, close_stdin=close_stdin)

    read_line = staticmethod(read_line)

    def request(self, cid: str, op: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        return request(self.connect, cid, op, timeout)

    def alive(self, cid: str) -> bool:
        p = self._procs.get(cid)
        return p is not None and p.exit is None

    def read_exit(self, cid: str) -> dict[str, Any] | None:
        p = self._procs.get(cid)
        return p.exit if p else None

    # ---- runtime state --------------------------------------------------
    def has_state(self, cid: str) -> bool:
        return cid in self._procs

    def status(self, cid: str) -> tuple[str, int]:
        p = self._procs.get(cid)
        if p is None or p.exit is not None:
            return "", 0
        if p.paused:
            return "paused", p.pid
        return ("running" if cid in self._started else "created"), p.pid

    def cleanup(self, cid: str) -> None:
        self._procs.pop(cid, None)
        self._started.discard(cid)

    def collect_orphans(self, known: Collection[str]) -> None:
        for cid in [c for c in self._procs if c not in known]:
            self.cleanup(cid)

    def abandon(self, cid: str) -> None:
        p = self._procs.get(cid)
        if p is not None:
            self.kill(cid, _signal.SIGKILL)
        self.cleanup(cid)

    def kill(self, cid: str, signal: int) -> None:
        p = self._procs.get(cid)
        if p is None or p.exit is not None:
            raise Conflict(f"container {cid[:12]} is not running")
        p.kill(signal)

    def pause(self, cid: str) -> None:
        self._proc(cid).paused = True

    def resume(self, cid: str) -> None:
        self._proc(cid).paused = False

    def update(self, cid: str, resources: dict[str, Any]) -> None:
        self._proc(cid)  # the fake has no resources to change, only a container to require

    def pids(self, cid: str) -> list[int]:
        p = self._procs.get(cid)
        return [p.pid] if p and p.exit is None else []

    def close(self) -> None:
        """Nothing is held for future starts; running fake processes end with the test process."""

