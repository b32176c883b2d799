"""Exec instances (`docker exec`): extra processes in a running container.

As in Docker, instances live in memory only. Each started process has a
monitor of its own (shim.py in exec mode), so it keeps running while the
daemon restarts; the restarted daemon has forgotten the instance, as Docker
does (its inspect answers 404). A finished instance stays inspectable for a
while, like Docker's exec garbage collection allows, then is dropped.
"""
from __future__ import annotations

import dataclasses
import json
import os
import secrets
import signal as _signal
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from engine.container.core import Attachment
from engine.container.probes import MAX_WAIT, LimitedOutput, ProbeTimeout
from engine.container.record import ContainerRecord
from engine.container.service import ContainerService
from engine.container.state import Op, check
from engine.errors import Conflict, EngineError, InternalError, InvalidParameter, NotFound
from engine.events import EventBus
from engine.linux.fsutil import resolve_user
from engine.runtime.base import ContainerRuntime
from engine.runtime.runc import UnusableCommand
from engine.runtime.security import group_add_gids
from engine.runtime.spec import host_caps, merge_env
from engine.types.container import ExecConfig, HostConfig
from pydock_common.stdcopy import demux

RETENTION = 600.0  # seconds a finished exec stays inspectable (Docker's GC: 5 to 10 minutes)
READY_TIMEOUT = 10.0  # Docker's wait for an exec to start before a resize gives up
PROBE_EXIT_WAIT = 5.0  # seconds a probe waits for its exit once its output ended, or once it was killed
# Docker's term.ToBytes names for control characters, by code
_CTRL = ["ctrl-@", *(f"ctrl-{c}" for c in "abcdefghijklmnopqrstuvwxyz"), "ctrl-[", "ctrl-\\", "ctrl-]", "ctrl-^",
         "ctrl-_"]


@dataclass
class ExecInstance:
    id: str
    container_id: str
    entrypoint: str
    args: list[str]
    env: list[str]
    user: str
    working_dir: str
    tty: bool
    privileged: bool
    open_stdin: bool
    open_stdout: bool
    open_stderr: bool
    detach_keys: bytes
    console_size: tuple[int, int] | None
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    finished_at: float = 0.0  # monotonic
    started: threading.Event = field(default_factory=threading.Event)  # start succeeded or failed

    @property
    def command(self) -> str:
        """Docker's event action suffix: entrypoint, a space, the arguments."""
        return f"{self.entrypoint} {' '.join(self.args)}"


def parse_detach_keys(keys: str) -> bytes:
    """Docker's term.ToBytes: comma-separated single characters or `ctrl-x` names."""
    out = bytearray()
    for key in keys.split(","):
        if len(key) == 1:
            out += key.encode()
        elif key.lower() in _CTRL:
            out.append(_CTRL.index(key.lower()))
        else:
            raise InternalError(f"Invalid escape keys ({keys}) provided")
    return bytes(out)


def parse_console_size(value: list[int] | None) -> tuple[int, int] | None:
    """An API `ConsoleSize` ([height, width]); anything else means none."""
    if value is not None and len(value) == 2 and all(v > 0 for v in value):
        return value[0], value[1]
    return None


class ExecService:
    def __init__(self, containers: ContainerService, runtime: ContainerRuntime, events: EventBus) -> None:
        self.containers = containers
        self.runtime = runtime
        self.events = events
        self._execs: dict[str, ExecInstance] = {}
        self._cond = threading.Condition()

    # ---- lookups ------------------------------------------------------
    def _active_container(self, ref: str) -> ContainerRecord:
        """Docker's getActiveContainer: exec needs a running, unpaused container."""
        c = self.containers.get(ref)
        check(Op.EXEC, c, ref)
        return c

    def _find(self, eid: str) -> ExecInstance:
        with self._cond:
            ec = self._execs.get(eid)
        if ec is None:
            raise NotFound(f"No such exec instance: {eid}")
        return ec

    def check(self, eid: str) -> ExecInstance:
        """Docker's getExecConfig: the instance, if its container can run it now."""
        return self._checked(eid)[0]

    def _checked(self, eid: str) -> tuple[ExecInstance, ContainerRecord]:
        ec = self._find(eid)
        try:
            return ec, self._active_container(ec.container_id)
        except NotFound:
            raise NotFound(f"No such container: {eid}") from None

    def live_ids(self, cid: str) -> list[str]:
        """A container's ExecIDs: instances created and not yet exited."""
        with self._cond:
            return [e.id for e in self._execs.values() if e.container_id == cid and e.exit_code is None]

    # ---- create -------------------------------------------------------
    def create(self, ref: str, req: ExecConfig) -> str:
        """A new exec instance in a running container; returns its ID."""
        cmd = req.cmd
        if not cmd:
            raise InvalidParameter("No exec command specified")
        c = self._active_container(ref)
        self.runtime.expect_start()  # its start usually follows within milliseconds (cgroupwarm.py)
        if req.user:  # fail early, as Docker does, rather than at start
            resolve_user(self._rootfs(c.id), req.user)
        cfg = c.config
        ec = ExecInstance(
            id=secrets.token_hex(32), container_id=c.id, entrypoint=cmd[0], args=cmd[1:],
            env=merge_env(self.containers.process_env(c, req.tty), req.env or []),
            user=req.user or cfg.user, working_dir=req.working_dir or cfg.working_dir, tty=req.tty,
            privileged=req.privileged, open_stdin=req.attach_stdin, open_stdout=req.attach_stdout,
            open_stderr=req.attach_stderr,
            detach_keys=parse_detach_keys(req.detach_keys) if req.detach_keys else b"",
            console_size=parse_console_size(req.console_size))
        with self._cond:
            self._collect()
            self._execs[ec.id] = ec
        self.containers.log_event(c, f"exec_create: {ec.command}", execID=ec.id)
        return ec.id

    def _collect(self) -> None:
        """Forget instances finished long ago (caller holds the lock)."""
        cutoff = time.monotonic() - RETENTION
        for eid in [e.id for e in self._execs.values() if e.exit_code is not None and e.finished_at < cutoff]:
            del self._execs[eid]

    # ---- start --------------------------------------------------------
    def start(self, eid: str, console_size: tuple[int, int] | None = None,
              attach: bool = False) -> Attachment | None:
        """Run the instance; with `attach`, returns its streams, connected before it runs."""
        ec, c = self._checked(eid)
        with self._cond:
            if ec.exit_code is not None:
                raise Conflict(f"Error: Exec command {ec.id} has already run")
            if ec.running:
                raise Conflict(f"Error: Exec command {ec.id} is already running")
            ec.running = True
        self.containers.log_event(c, f"exec_start: {ec.command}", execID=ec.id)
        att = None
        try:
            process = self._process(ec, c.host_config, console_size or ec.console_size)
            self.runtime.launch_exec(ec.id, ec.container_id, process, stdin=ec.open_stdin)
            if attach:
                att = Attachment(stdin=ec.open_stdin, stdout=ec.open_stdout, stderr=ec.open_stderr,
                                 close_stdin=True, tty=ec.tty)
                att.sock = self.runtime.attach(ec.id, stdin=att.stdin, stdout=att.stdout, stderr=att.stderr,
                                               close_stdin=True)
                att.ready.set()
            ec.pid, sock = self.runtime.start_exec(ec.id)
        except (EngineError, OSError) as e:
            if att is not None and att.sock is not None:
                att.sock.close()
            self.runtime.discard_exec(ec.id)  # launched but never started: its monitor need not wait
            # Docker records 126 when an exec fails to start, unless the command is missing (127)
            self._exited(ec, e.exit_code if isinstance(e, UnusableCommand) else 126)
            if isinstance(e, EngineError):
                raise
            raise InternalError(str(e)) from e
        finally:
            ec.started.set()
        threading.Thread(target=self._watch, args=(ec, c, sock), name=f"exec-{eid[:12]}", daemon=True).start()
        return att

    def _rootfs(self, cid: str) -> str:
        return os.path.join(self.containers.dir(cid), "merged")

    def _process(self, ec: ExecInstance, host: HostConfig, console_size: tuple[int, int] | None) -> dict[str, Any]:
        """The container's OCI process (capabilities, rlimits, ...) with the exec's command, env, cwd and user."""
        with open(os.path.join(self.containers.bundle(ec.container_id), "config.json")) as f:
            p: dict[str, Any] = json.load(f)["process"]
        p.update(args=[ec.entrypoint, *ec.args], env=ec.env, cwd=ec.working_dir or "/", terminal=ec.tty)
        p.pop("consoleSize", None)
        if ec.tty and console_size:
            p["consoleSize"] = {"height": console_size[0], "width": console_size[1]}
        if ec.user:
            rootfs = self._rootfs(ec.container_id)
            uid, gid, extra = resolve_user(rootfs, ec.user)
            gids = extra + group_add_gids(rootfs, host.group_add or [])
            p["user"] = {"uid": uid, "gid": gid, **({"additionalGids": gids} if gids else {})}
        if ec.privileged:
            caps = list(host_caps())
            p["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
        return p

    def _watch(self, ec: ExecInstance, c: ContainerRecord, sock: socket.socket) -> None:
        """Wait for the exit line on the start connection (see engine/runtime/shim.py)."""
        result = None
        with sock:
            try:
                result = self.runtime.read_line(sock)
            except (OSError, ValueError):
                pass
        code = int((result or {}).get("ExitCode", 255))
        self._exited(ec, code)
        self.containers.log_event(c, "exec_die", execID=ec.id, exitCode=str(code))

    def _exited(self, ec: ExecInstance, code: int) -> None:
        with self._cond:
            ec.running = False
            ec.exit_code = code
            ec.finished_at = time.monotonic()
            self._cond.notify_all()

    def wait(self, eid: str, timeout: float) -> None:
        """Block until the instance has exited (or `timeout`): its streams end only after."""
        ec = self._find(eid)
        with self._cond:
            self._cond.wait_for(lambda: ec.exit_code is not None, timeout)

    # ---- healthcheck probes ---------------------------------------------
    def probe(self, cid: str, cmd: list[str], timeout: float) -> tuple[int, str]:
        """Run a healthcheck probe as dockerd's cmdProbe does: an exec of `cmd` (events and all) with the
        container's user, working directory and environment, no stdin and no TTY; returns its exit code and
        output (stdout and stderr as they came, cut as dockerd cuts them).

        A probe still running after `timeout` seconds is killed, and ProbeTimeout raised once it has gone.
        The instance is forgotten afterwards: nobody inspects a probe's exec.
        """
        eid = self.create(cid, ExecConfig(cmd=cmd, attach_stdout=True, attach_stderr=True))
        try:
            return self._run_probe(eid, time.monotonic() + timeout)
        finally:
            with self._cond:
                self._execs.pop(eid, None)

    def _run_probe(self, eid: str, deadline: float) -> tuple[int, str]:
        att = self.start(eid, attach=True)
        assert att is not None and att.sock is not None
        sock, ec, output = att.sock, self._find(eid), LimitedOutput()

        def read(n: int) -> bytes:
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(min(left, MAX_WAIT))
                try:
                    return sock.recv(n)
                except TimeoutError:
                    continue  # a wait cut to MAX_WAIT: the deadline decides
            raise TimeoutError

        with sock:
            try:
                for _stream, data in demux(read):
                    output.write(data)
            except TimeoutError:
                end = time.time_ns()
                self._kill_probe(ec)
                raise ProbeTimeout(end) from None
            except OSError:
                pass  # the monitor went away: its exit (255 if none) tells the rest
        exit_deadline = max(deadline, time.monotonic() + PROBE_EXIT_WAIT)
        while ec.exit_code is None and (left := exit_deadline - time.monotonic()) > 0:
            self.wait(eid, min(left, MAX_WAIT))
        if ec.exit_code is None:
            end = time.time_ns()
            self._kill_probe(ec)
            raise ProbeTimeout(end)
        return ec.exit_code, output.text()

    def _kill_probe(self, ec: ExecInstance) -> None:
        """SIGKILL a probe that outlived its timeout, and give it a moment to go (dockerd waits for it)."""
        self.runtime.signal_exec(ec.id, _signal.SIGKILL)
        self.wait(ec.id, PROBE_EXIT_WAIT)

    # ---- resize / inspect ----------------------------------------------
    def resize(self, eid: str, h: int, w: int) -> None:
        ec = self.check(eid)
        if not ec.started.wait(READY_TIMEOUT):
            raise InternalError("timeout waiting for exec session ready")
        if not ec.pid:
            raise InvalidParameter("exec process is not started")
        try:
            self.runtime.request(ec.id, {"op": "resize", "h": h, "w": w})
        except Conflict:
            raise Conflict(f"exec {ec.id} is not running") from None

    def inspect(self, eid: str) -> ExecInstance:
        """A snapshot of the instance (its container must still exist)."""
        ec = self._find(eid)
        try:
            self.containers.resolve(ec.container_id)
        except NotFound:
            raise NotFound(f"No such exec instance: {eid}") from None
        with self._cond:
            return dataclasses.replace(ec)
