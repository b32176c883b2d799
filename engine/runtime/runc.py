"""The OCI runtime boundary: runc invocations and the per-container shim.

Everything that touches runc or a shim goes through here, so the container
service deals in container IDs and never in processes or sockets' wire form.
"""
from __future__ import annotations

import array
import fcntl
import json
import logging
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol

from engine.config import EngineConfig
from engine.errors import Conflict, InternalError, InvalidParameter, Unsupported
from engine.linux.cgroupwarm import MigrationWarmer, own_procs_file
from engine.runtime.lines import open_attach, read_line, request
from engine.runtime.monitorbuild import MonitorBuildError, build
from engine.runtime.resources import cgroup_version
from engine.runtime.sealedexe import SealedExecutables, exe_path

log = logging.getLogger(__name__)

ABANDON_TIMEOUT = 10.0  # seconds a shim gets to see its killed container exit
# What runc says when the container it was asked to act on has exited or been deleted.
# the OCI runtimes' words for a container that exited or is gone (the last: crun's for one it does not have)
GONE = ("not running", "process already finished", "does not exist", "container not found", "no such process",
        "/status`: no such file or directory")
SHIM_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim.py")


# Fault injection for tests/test_crash.py, read once at daemon start:
# PYDOCK_CRASH_AT=<step> makes the daemon SIGKILL itself right after that step
# of a container start, so each window a crash can hit is tested every run
# instead of by luck of timing.
_CRASH_AT = os.environ.get("PYDOCK_CRASH_AT", "")


def crash_point(step: str) -> None:
    if step == _CRASH_AT:
        os.kill(os.getpid(), signal.SIGKILL)


class OCIRuntimeError(InternalError):
    """runc refused or failed."""


class UnusableCommand(InvalidParameter, OCIRuntimeError):
    """runc could not run the container's command: the client's mistake, so a 400 and a shell's exit code."""

    exit_code: int  # what Docker records for the process, as a shell would exit


class CommandNotFound(UnusableCommand):
    """The command (or a path it needs) does not exist."""

    exit_code = 127


class CommandNotExecutable(UnusableCommand):
    """The command exists but may not be run (not executable, a directory)."""

    exit_code = 126


# What runc's message says, in Docker's order of checks (moby's translateContainerdStartErr):
# a later match overrides an earlier one.
_COMMAND_ERRORS: tuple[tuple[tuple[str, ...], type[OCIRuntimeError]], ...] = (
    (("executable file not found", "no such file or directory"), CommandNotFound),
    (("permission denied",), CommandNotExecutable),
    (("not a directory",), CommandNotFound),
)

# crun's words for a command it cannot run. The docker CLI (its exit codes 127/126), scripts and the magics
# read runc's, so crun's are put as runc puts them; crun does not name the command when opening it fails.
_CRUN_NOT_FOUND = re.compile(r"executable file `(?P<cmd>[^`]*)` not found in \$PATH: No such file or directory")
_CRUN_OPEN = re.compile(r"open executable: (?P<why>[^:]*)$")
_RUNC_OPEN_WORDS = {"Permission denied": "permission denied", "Operation not permitted": "permission denied",
                    "Not a directory": "not a directory"}  # crun's words for a directory, runc's for it


def _in_runc_words(message: str, action: str) -> str:
    """crun's message about an unusable command as runc words it; any other message as it is."""
    found = _CRUN_NOT_FOUND.search(message)
    if found:
        cmd = found["cmd"]
        problem = f"stat {cmd}: no such file or directory" if "/" in cmd else "executable file not found in $PATH"
        text = f'exec: "{cmd}": {problem}'
    else:
        opened = _CRUN_OPEN.search(message)
        if opened is None:
            return message
        text = f"exec: {_RUNC_OPEN_WORDS.get(opened['why'], opened['why'].lower())}"
    return ("exec failed: " if action == "exec" else "") + "unable to start container process: " + text


def classify_runc_error(message: str, action: str = "create") -> OCIRuntimeError:
    """The error for the runtime's failure to create or exec a process, as dockerd words and classifies it.

    An unusable command is the client's mistake (Docker answers 400, and the
    CLI exits 127/126); anything else is the runtime's.
    """
    message = _in_runc_words(message, action)
    low = message.lower()
    kind: type[OCIRuntimeError] = OCIRuntimeError
    for needles, matched in _COMMAND_ERRORS:
        if any(s in low for s in needles):
            kind = matched
    return kind(f"OCI runtime {action} failed: {message}: unknown")


def _read_ready_line(fd: int) -> bytes:
    """The monitor's ready line from its pipe, which stays open (see Runtime._ready); b"" if the monitor
    closed it without one."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(fd, 4096)  # the monitor writes nothing after this line
        if not chunk:
            break
        line += chunk
    return line


def _schedule(pid: int, idle: bool) -> bool:
    """Move a process to SCHED_IDLE, or back to the daemon's own policy; False if that failed."""
    policy, param = (os.SCHED_IDLE, os.sched_param(0)) if idle else (os.sched_getscheduler(0), os.sched_getparam(0))
    try:
        os.sched_setscheduler(pid, policy, param)
        return True
    except OSError:  # exited already, or not permitted
        return False


class _Launch(Protocol):
    def hand_over(self, state_dir: str, runtime_fd: int | None) -> tuple[int, _Spare | None]:
        """Start monitoring `state_dir`, running the OCI runtime from sealed copy `runtime_fd` if given (see
        sealedexe.py); the read end of the monitor's ready pipe, and the next spare if it made one."""


@dataclass
class _Compiled:
    """The compiled monitor (monitor.c), started for one container when no spare is ready."""

    binary: str

    def hand_over(self, state_dir: str, runtime_fd: int | None) -> tuple[int, _Spare | None]:
        r, w = os.pipe()
        env = {"PYDOCK_SHIM_READY": str(w), "PATH": os.environ.get("PATH", "")}
        if runtime_fd is not None:
            env["PYDOCK_RUNTIME_FD"] = str(runtime_fd)
        try:
            proc = subprocess.Popen([self.binary, state_dir], env=env,
                                    pass_fds=(w,) if runtime_fd is None else (w, runtime_fd),
                                    stdin=subprocess.DEVNULL, close_fds=True)
        except OSError as e:
            os.close(r)
            raise OCIRuntimeError(f"starting the monitor {self.binary}: {e}") from e
        finally:
            os.close(w)
        proc.wait()  # it forks its monitor and exits
        crash_point("handed-over")
        return r, None


@dataclass
class _Spare:
    """A monitor started ahead of need, waiting for its state directory on stdin, a unix socket.

    The compiled one forks as it starts, so taking it costs a start one message; with the message comes
    the runtime's sealed copy (SCM_RIGHTS: a spare started before its container's runtime was known gets
    it as late as that), and the stdin and ready pipe of the next spare, which it forks as it takes its
    container (monitor.c, fork_next_spare): the daemon itself starts a compiled monitor only when it has
    no spare (the first, one that went, concurrent starts). shim.py forks once it has the line and runs
    the runtime by path."""

    proc: subprocess.Popen[bytes] | None  # None: forked by the monitor of the container before
    ready_r: int  # the monitor reports {"pid": n} or {"error": ...} here
    control: socket.socket  # the spare's stdin
    compiled: bool

    def alive(self) -> bool:
        """Whether it still waits: it never writes to its stdin, so a readable end means it has gone (or, for
        a next spare, that the monitor meant to fork it went first)."""
        try:
            return self.control.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False

    def hand_over(self, state_dir: str, runtime_fd: int | None) -> tuple[int, _Spare | None]:
        """Give the spare its container; returns the read end of its ready pipe, and the next spare."""
        fds = [runtime_fd] if runtime_fd is not None and self.compiled else []
        try:
            successor, theirs = _Spare._next() if self.compiled else (None, [])
        except OSError:  # no descriptors for a next spare: the daemon starts one when it wants one
            successor, theirs = None, []
        try:
            self.control.sendmsg([state_dir.encode() + b"\n"],
                                 [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds + theirs))]
                                 if fds or theirs else [])
        except OSError:
            pass  # it has gone: the ready line then never comes, which _confirm reports (the successor too)
        finally:
            for fd in theirs:
                os.close(fd)
        self.control.close()
        if self.proc is not None:
            self.proc.wait()  # shim.py forks its monitor now and exits
        crash_point("handed-over")
        return self.ready_r, successor

    @classmethod
    def _next(cls) -> tuple[_Spare, list[int]]:
        """A next spare as the daemon holds it, and its own ends (its stdin, its ready pipe's write end),
        which the caller sends to the monitor that forks it, then closes."""
        r, w = os.pipe()
        control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        return cls(None, r, control, compiled=True), [theirs.detach(), w]

    def discard(self) -> None:
        """An unused spare exits as soon as its stdin closes."""
        self.control.close()
        if self.proc is not None:
            self.proc.wait()
        os.close(self.ready_r)


class Runtime:
    def __init__(self, cfg: EngineConfig) -> None:
        self.cfg = cfg
        self._spare: _Spare | None = None
        self._spare_lock = threading.Lock()  # guards _keeper too
        self._spare_wanted = threading.Event()
        self._keeper: threading.Thread | None = None
        # The read ends of launched monitors' ready pipes, held until their `start` is sent: a monitor
        # whose end closes before that knows the daemon died and gives up (see shim.py). Those whose
        # ready line is still to be read (_confirm) are _unconfirmed.
        self._ready: dict[str, int] = {}
        self._unconfirmed: set[str] = set()
        self._ready_lock = threading.Lock()  # guards _runtime_of too
        # The OCI runtime of each container launched by this daemon until its cleanup (runtime_of).
        self._runtime_of: dict[str, str] = {}
        self._sealed = SealedExecutables()
        # where the runtime moves containers into cgroup v1 cgroups, each create and start of a container or
        # exec readies that (cgroupwarm.py)
        procs = own_procs_file() if cfg.cgroup_parent and cgroup_version() == "1" else None
        self._warmer = MigrationWarmer(procs) if procs else None
        self._closed = False
        # The compiled monitor is built (or found in its cache) in the background from the start, so
        # the first container rarely waits for the compiler; until then, and without one, launches wait.
        self._compiled: _Compiled | None = None
        self._monitor_chosen = threading.Event()
        if cfg.monitor == "c":
            threading.Thread(target=self._build_monitor, name="monitor-build", daemon=True).start()
        else:
            self._monitor_chosen.set()

    def _build_monitor(self) -> None:
        try:
            self._compiled = _Compiled(build(os.path.join(self.cfg.data_root, "monitor")))
            log.info("container monitor: %s", self._compiled.binary)
        except MonitorBuildError as e:
            log.warning("the compiled container monitor is unavailable, using the Python one: %s", e)
        finally:
            self._monitor_chosen.set()
        if self._compiled:
            self._want_spare()  # the first container's too (a Python spare, far dearer, waits for a first start)

    @property
    def monitor_kind(self) -> str:
        """"c" or "python": which monitor new containers get (waits for the compiled one's build)."""
        self._monitor_chosen.wait()
        return "c" if self._compiled else "python"

    def has_state(self, cid: str) -> bool:
        return os.path.exists(self.state_dir(cid))

    def state_dir(self, cid: str) -> str:
        # Short on purpose: unix socket paths inside it must stay under 108 bytes.
        return os.path.join(self.cfg.shims_dir, cid[:16])

    def runtime_of(self, cid: str) -> str:
        """The OCI runtime container `cid` runs under: the one it was launched with, or (for a container
        launched before this daemon started) the one whose state root holds it; the default else."""
        with self._ready_lock:
            name = self._runtime_of.get(cid)
        if name:
            return name
        for candidate in self.cfg.runtimes:
            if self._in_runtime(candidate, cid):
                return candidate
        return self.cfg.chosen_runtime

    def _in_runtime(self, runtime: str, cid: str) -> bool:
        """Whether OCI runtime `runtime` holds state for `cid` (created, running or stopped, not deleted)."""
        return os.path.exists(os.path.join(self.cfg.runtime_root(runtime), cid))

    def _oci(self, cid: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """Run `cid`'s OCI runtime (runc or crun: the same command line) with `args`."""
        name = self.runtime_of(cid)
        binary = self.cfg.runtimes[name]
        fd = self._sealed.fd(binary)
        proc = subprocess.run([binary, "--root", self.cfg.runtime_root(name), *args],
                              executable=None if fd is None else exe_path(fd), pass_fds=() if fd is None else (fd,),
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False)
        if check and proc.returncode != 0:
            msg = proc.stderr.decode(errors="replace").strip() or f"{name} {args[0]} failed"
            raise OCIRuntimeError(msg)
        return proc

    # ---- shim ---------------------------------------------------------
    def expect_start(self) -> None:
        if self._warmer is not None:
            self._warmer.poke()

    def launch(self, cid: str, bundle: str, *, tty: bool, stdin: bool, log: dict[str, Any],
               console_size: tuple[int, int] | None, cgroup_path: str, runtime: str) -> None:
        """Hand a state directory to a monitor; the container runs at `start`, under OCI runtime `runtime`.

        The monitor readies itself (its socket, log, lock) while the start goes on with the container's
        spec: its ready line is awaited by the first attach or the start (_confirm), not here."""
        with self._ready_lock:
            self._runtime_of[cid] = runtime
        self._hand_over(cid, runtime, {
            "id": cid, "bundle": bundle, "tty": tty, "stdin": stdin, "log": log,
            "cgroup_path": cgroup_path, "console_size": list(console_size) if console_size else None,
        }, {})

    def launch_exec(self, eid: str, cid: str, process: dict[str, Any], *, stdin: bool) -> None:
        """Hand an exec's OCI process to a shim of its own; it runs at `start_exec`, once attached."""
        self.expect_start()  # the runtime moves an exec into the container's cgroup too
        size = process.get("consoleSize")
        self._hand_over(eid, self.runtime_of(cid), {
            "mode": "exec", "id": cid, "tty": bool(process.get("terminal")), "stdin": stdin, "log": {},
            "console_size": [size["height"], size["width"]] if size else None,
        }, {"process.json": process})
        self._confirm(eid, "exec")

    def signal_exec(self, eid: str, signal: int) -> None:
        """Ask the exec's monitor, its parent, to signal it: only the monitor knows whether that PID is still
        the exec's. A monitor that is gone had nothing left to signal."""
        try:
            self.request(eid, {"op": "kill", "signal": signal})
        except Conflict:
            pass

    def discard_exec(self, eid: str) -> None:
        """Its monitor sees the ready pipe close before `start` and gives up, as after a daemon crash."""
        self._release(eid)

    def start(self, cid: str) -> int:
        """Run the launched container (`runc run --detach` in its monitor); its init PID."""
        try:
            self._confirm(cid, "create")
            reply = self.request(cid, {"op": "start"})
        finally:
            self._release(cid)
            self._want_spare()
        return int(reply["pid"])

    def _release(self, sid: str) -> None:
        """Close the ready pipe of `sid`'s monitor: its start was sent, or will never be."""
        with self._ready_lock:
            fd = self._ready.pop(sid, None)
            self._unconfirmed.discard(sid)
        if fd is not None:
            os.close(fd)

    def _hand_over(self, sid: str, runtime: str, shim_cfg: dict[str, Any], files: dict[str, Any]) -> None:
        sdir = self.state_dir(sid)
        shutil.rmtree(sdir, ignore_errors=True)
        os.makedirs(sdir, mode=0o700)
        binary = self.cfg.runtimes[runtime]
        oci_runtime = {"runc": binary, "runc_root": self.cfg.runtime_root(runtime)}
        for name, data in {"shim.json": {**shim_cfg, **oci_runtime},
                           **files}.items():
            with open(os.path.join(sdir, name), "w") as f:  # exec-root state: no fsync needed
                json.dump(data, f)
        ready, successor = self._take_monitor().hand_over(sdir, self._sealed.fd(binary))
        with self._ready_lock:
            self._ready[sid] = ready
            self._unconfirmed.add(sid)
        if successor is not None:
            self._keep(successor)

    def _confirm(self, sid: str, action: str) -> None:
        """Wait for the ready line of `sid`'s monitor unless it came already; raises the monitor's error
        (it has given up then) as the runtime's failure to `action`."""
        with self._ready_lock:
            if sid not in self._unconfirmed:
                return
            self._unconfirmed.discard(sid)
            ready = self._ready[sid]
        try:
            msg = json.loads(_read_ready_line(ready) or b"{}")
        except ValueError:
            msg = {}
        if "pid" not in msg:
            self._release(sid)
            sdir = self.state_dir(sid)
            error = msg.get("error") or self._shim_log(sdir) or "shim failed to start"
            shutil.rmtree(sdir, ignore_errors=True)
            raise classify_runc_error(error, action)
        crash_point("created")

    def start_exec(self, eid: str) -> tuple[int, socket.socket]:
        """Run a launched exec: its PID, and the connection its exit line will arrive on."""
        try:
            sock = self.connect(eid, {"op": "start"}, timeout=60)
        except OSError as e:
            self._release(eid)
            raise OCIRuntimeError(f"exec {eid} has no monitor: {e}") from e
        try:
            reply = self.read_line(sock) or {"error": "exec monitor exited"}
        except (OSError, ValueError) as e:
            reply = {"error": str(e)}
        finally:
            self._release(eid)
            self._want_spare()
        if "error" in reply:
            sock.close()
            raise classify_runc_error(reply["error"], "exec")
        sock.settimeout(None)
        return int(reply["pid"]), sock

    # A monitor is kept started ahead of need, so a start only hands it its state directory. A Python one
    # (shim.py, where no compiler built monitor.c) is a fresh interpreter: tens of milliseconds of start-up
    # and imports, which it does under SCHED_IDLE so it never competes with the start it follows, and it is
    # used only once it is back under the daemon's own policy, which the container inherits. A rootless
    # daemon could never take it back from SCHED_IDLE (that needs CAP_SYS_NICE of the host's user
    # namespace), so it would throw every spare away and start each afresh: its spares warm up under its
    # own policy. The compiled one starts in a millisecond, a millisecond still worth taking off a start.
    def _spawn_spare(self, idle: bool = False) -> _Spare:
        compiled = self._compiled
        argv = [compiled.binary, "-"] if compiled else [sys.executable, "-I", "-S", SHIM_SCRIPT]
        r, w = os.pipe()
        control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            proc = subprocess.Popen(argv, env={"PYDOCK_SHIM_READY": str(w), "PATH": os.environ.get("PATH", "")},
                                    pass_fds=(w,), stdin=theirs.fileno(), close_fds=True)
        except BaseException:
            os.close(r)
            control.close()
            raise
        finally:
            os.close(w)
            theirs.close()
        if compiled:
            proc.wait()  # it forks at once and exits
        elif idle:
            _schedule(proc.pid, idle=True)
        return _Spare(proc, r, control, compiled=compiled is not None)

    def _take_monitor(self) -> _Launch:
        self._monitor_chosen.wait()
        with self._spare_lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            if spare.alive() and (spare.compiled or (spare.proc is not None
                                                     and _schedule(spare.proc.pid, idle=False))):
                return spare
            spare.discard()
        return self._compiled or self._spawn_spare()

    def _want_spare(self) -> None:
        """Have a spare started, if none waits (after a compiled spare took a container, the one it forked
        waits already). Called once a start's runtime call has returned: started as
        the last spare was taken, a spare competed with the start's own work (the spec, the launch) for the
        interpreter, and during the runtime's call its fork and exit with the runtime's cgroup migration
        for the kernel's lock (cgroupwarm.py), which made that call slower."""
        with self._spare_lock:
            if self._spare is not None or self._closed:
                return
            if self._keeper is None:
                self._keeper = threading.Thread(target=self._keep_spare, name="monitor-spare", daemon=True)
                self._keeper.start()
        self._spare_wanted.set()

    def _keep_spare(self) -> None:
        while True:
            self._spare_wanted.wait()
            self._spare_wanted.clear()
            if self._closed:
                return
            try:
                self._refill()
            except OSError as e:
                log.warning("starting a spare container monitor failed: %s", e)

    def _refill(self) -> None:
        if self._spare is not None:
            return
        self._keep(self._spawn_spare(idle=not self.cfg.rootless))

    def _keep(self, spare: _Spare) -> None:
        """`spare` is the one waiting for the next start, unless one waits already."""
        kept: _Spare | None = spare
        with self._spare_lock:
            if self._spare is None and not self._closed:
                self._spare, kept = spare, None
        if kept is not None:
            kept.discard()

    def close(self) -> None:
        """Stop the idle spare monitor; running containers' monitors are not ours to stop."""
        with self._spare_lock:
            self._closed = True
            spare, self._spare = self._spare, None
        self._spare_wanted.set()  # the keeper sees _closed and ends
        if spare is not None:
            spare.discard()
        if self._warmer is not None:
            self._warmer.close()

    @staticmethod
    def _shim_log(sdir: str) -> str:
        try:
            with open(os.path.join(sdir, "shim.log")) as f:
                return f.read()[-2000:].strip()
        except OSError:
            return ""

    def connect(self, cid: str, op: dict[str, Any], timeout: float | None = 10.0) -> socket.socket:
        """Open a shim connection and send its op line; raises OSError if the shim is gone."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(os.path.join(self.state_dir(cid), "shim.sock"))
            sock.sendall(json.dumps(op).encode() + b"\n")
        except OSError:
            sock.close()
            raise
        return sock

    def attach(self, sid: str, *, stdin: bool, stdout: bool, stderr: bool, close_stdin: bool) -> socket.socket:
        """A connection carrying the process's output streams and, if `stdin`, its input."""
        self._confirm(sid, "create")  # a container's first attach, as it starts: its monitor listens then
        return open_attach(self.connect, sid, stdin=stdin, stdout=stdout, stderr=stderr, close_stdin=close_stdin)

    read_line = staticmethod(read_line)

    def request(self, cid: str, op: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        reply = request(self.connect, cid, op, timeout)
        if "error" in reply:
            raise classify_runc_error(reply["error"])
        return reply

    def alive(self, cid: str) -> bool:
        try:
            self.connect(cid, {"op": "ping"}, timeout=2).close()
            return True
        except OSError:
            return False

    def read_exit(self, cid: str) -> dict[str, Any] | None:
        try:
            with open(os.path.join(self.state_dir(cid), "exit.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def cleanup(self, cid: str) -> None:
        """Forget runtime state of a stopped container (runc state and shim files).

        A monitor deletes its container in runc once it has reported the
        exit; it is waited for (as is one whose start failed, or was never
        sent), so runc is called here only for a monitor that died first, and
        no monitor writes into a state directory about to go.
        """
        self._release(cid)
        self._wait_gone(cid)
        if self._in_runtime(self.runtime_of(cid), cid):
            self._oci(cid, "delete", "--force", cid, check=False)
        shutil.rmtree(self.state_dir(cid), ignore_errors=True)
        with self._ready_lock:
            self._runtime_of.pop(cid, None)

    def status(self, cid: str) -> tuple[str, int]:
        """runc's status of the container and its init PID; ("", 0) when runc does not know it."""
        proc = self._oci(cid, "state", cid, check=False)
        try:
            state = json.loads(proc.stdout) if proc.returncode == 0 else {}
        except ValueError:
            state = {}
        return str(state.get("status", "")), int(state.get("pid") or 0)

    def abandon(self, cid: str) -> None:
        """Undo a start a daemon crash interrupted: afterwards no process, runc state or shim is left.

        A container that runs is killed, and its monitor reaps it, deletes it
        in runc and exits; a monitor that was never sent `start` has given up
        already, as the crashed daemon's end of its ready pipe closed.
        """
        if self._in_runtime(self.runtime_of(cid), cid):
            self._oci(cid, "kill", cid, "KILL", check=False)
        self.cleanup(cid)

    def collect_orphans(self, known: Collection[str]) -> None:
        """The runtime's state of containers the store no longer holds is deleted, and their monitors'
        directories removed. A directory whose monitor still runs is left: an exec's (the restarted daemon
        forgot the exec; its monitor removes it), or that of a removal's monitor still finishing (the next
        boot's sweep takes it)."""
        for name in self.cfg.runtimes:
            for cid in _entries(self.cfg.runtime_root(name)):
                if cid not in known:
                    self._oci(cid, "delete", "--force", cid, check=False)
        theirs = {self.state_dir(cid) for cid in known}
        for name in _entries(self.cfg.shims_dir):
            path = os.path.join(self.cfg.shims_dir, name)
            if path not in theirs and monitor_gone(path, 0):
                shutil.rmtree(path, ignore_errors=True)

    def _wait_gone(self, cid: str) -> None:
        """Wait for `cid`'s monitor to exit (see monitor_gone)."""
        if not monitor_gone(self.state_dir(cid), ABANDON_TIMEOUT):
            log.warning("monitor of %s still running after %.0f s", cid[:12], ABANDON_TIMEOUT)

    # ---- runc ---------------------------------------------------------
    def _runc_on(self, cid: str, *args: str) -> subprocess.CompletedProcess[bytes]:
        """runc acting on a live container; one that exited meanwhile is Docker's 409, not runc's text."""
        try:
            return self._oci(cid, *args)
        except OCIRuntimeError as e:
            if any(s in e.message.lower() for s in GONE):
                raise Conflict(f"Container {cid} is not running") from e
            raise

    def kill(self, cid: str, signal: int) -> None:
        self._runc_on(cid, "kill", cid, str(signal))

    def pause(self, cid: str) -> None:
        self._need_cgroup("pause", cid)
        self._runc_on(cid, "pause", cid)

    def resume(self, cid: str) -> None:
        self._need_cgroup("unpause", cid)
        try:
            self._runc_on(cid, "resume", cid)
        except OCIRuntimeError as e:
            if "not paused" in e.message:
                raise Conflict(f"Container {cid} is not paused") from e
            raise

    def _need_cgroup(self, action: str, cid: str) -> None:
        """Pausing freezes the container's cgroup: one without a cgroup (rootless, cgroup v1) cannot be."""
        if not self.cfg.cgroup_parent:
            raise Unsupported(f"Cannot {action} container {cid}: it has no cgroup of its own to freeze (a rootless "
                              "daemon gets none without a cgroup v2 subtree delegated by systemd)")

    def update(self, cid: str, resources: dict[str, Any]) -> None:
        """Apply new cgroup limits to a running container (`runc update --resources`)."""
        path = os.path.join(self.state_dir(cid), "resources.json")
        with open(path, "w") as f:  # exec-root state, read once by runc right now
            json.dump(resources, f)
        self._runc_on(cid, "update", "--resources", path, cid)

    def pids(self, cid: str) -> list[int]:
        if not self.cfg.cgroup_parent:  # runc lists a cgroup's processes; without one, the pid namespace's
            _, init = self.status(cid)
            if not init:
                raise Conflict(f"Container {cid} is not running")
            return namespace_pids(init)
        out = self._runc_on(cid, "ps", "--format", "json", cid).stdout
        return [int(p) for p in json.loads(out or b"[]") or []]


def monitor_gone(state_dir: str, timeout: float) -> bool:
    """Wait up to `timeout` seconds for the monitor of `state_dir` to exit; False if it still runs.

    It holds shim.lock from before its ready line until it exits, deleting its
    container in the runtime after it has answered the exit. No lock file: it
    never ran. The lock says whether it is gone; the wait sleeps on the
    monitor's pidfd, which wakes at its exit (polling the lock added about a
    millisecond to every removal), and still looks at the lock now and then in
    case shim.pid names some other process.
    """
    try:
        fd = os.open(os.path.join(state_dir, "shim.lock"), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    # opened before the lock is first tried: if the monitor holds it then, the pidfd is the monitor's
    # (its pid cannot have been reused while it lived)
    pidfd = _pidfd_of(os.path.join(state_dir, "shim.pid"))
    try:
        deadline = time.monotonic() + timeout
        while not _lock_free(fd):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if pidfd is None:
                time.sleep(0.002)
            else:
                select.select([pidfd], [], [], min(left, 0.05))
        return True
    finally:
        os.close(fd)
        if pidfd is not None:
            os.close(pidfd)


def _entries(directory: str) -> list[str]:
    """The names in `directory`; none if it does not exist (yet)."""
    try:
        return os.listdir(directory)
    except FileNotFoundError:
        return []


def _lock_free(fd: int) -> bool:
    """Whether the lock on `fd`'s file can be shared now (its exclusive holder is gone)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _pidfd_of(pid_file: str) -> int | None:
    """A pidfd of the process `pid_file` names; None if it names none (not written yet, or gone)."""
    try:
        with open(pid_file) as f:
            return os.pidfd_open(int(f.read()))
    except (OSError, ValueError):
        return None


def namespace_pids(init: int) -> list[int]:
    """The processes (host pids) that share `init`'s pid namespace, from /proc."""
    try:
        st = os.stat(f"/proc/{init}/ns/pid")
    except OSError:
        return []
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            other = os.stat(f"/proc/{name}/ns/pid")
        except OSError:  # exited meanwhile, or not ours to look at
            continue
        if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
            out.append(int(name))
    return sorted(out)
