"""Per-process monitor: owns a container's (or an exec's) stdio, logs and exit status.

The daemon starts `python3 -I -S shim.py` ahead of need (interpreter start-up
is most of a shim's cost) and later writes a state directory to its stdin.
It then detaches into its own session and becomes a child subreaper, so the
container's init process is its child and it alone can collect the exit
code. Nothing runs until the daemon's `start`, which runs `runc run
--detach` (one runc process where create then start took two), so clients
attach before the process exists; input they send before it does is kept
for it. The daemon holds the read end of the ready pipe until it has sent
`start`: if that end closes first, the daemon died mid-start and the monitor
gives up at once. Because it does not belong to the daemon, stopping or restarting pydockd (or Jupyter)
leaves the container running; a restarted daemon reconnects through
`STATE_DIR/shim.sock`. It holds a lock on `STATE_DIR/shim.lock` for its whole
life: it deletes its container in runc after answering the exit (so the
daemon's teardown overlaps that runc call), and the daemon's cleanup takes the
lock to know it has finished.

monitor.c is the same program compiled (the daemon's default, far smaller for
an idle container); the two speak the same protocol and write the same files,
so a change to one belongs in the other.

It is deliberately stdlib-only and self-contained (no engine imports): it
runs for the container's whole life and must start in milliseconds. That is
also why it is one module of some 600 lines: `python3 -I -S shim.py` cannot
import siblings.

`mode: "exec"` in shim.json makes it monitor a process started in a running
container (`docker exec`), as containerd's shim holds exec processes: the
process runs only at `start` (`runc exec --detach`), as a container does; it has no log (Docker does not log exec output) and
its exit neither deletes the container nor leaves state behind.

Socket protocol: a client sends one JSON line, then
  {"op": "start"}               -> runs `runc run` (container) or `runc exec` (exec), answers
                                   {"ok": true, "pid": n} or {"error": ...}; for an exec the
                                   connection then answers like "wait"
  {"op": "wait"}                -> answers {"ExitCode": n, ...} when the process exits
  {"op": "resize", "h", "w"}    -> sets the TTY size, answers {"ok": true}
  {"op": "kill", "signal"}      -> signals the process unless it has exited, answers {"ok": true}
                                   (an exec's: a container is signalled through runc)
  {"op": "attach", "stdin", "stdout", "stderr", "close_stdin"}
                                -> raw stream (TTY) or Docker's 8-byte-header multiplexed
                                   frames; bytes the client sends go to stdin, its EOF
                                   closes stdin when close_stdin is set.
"""
from __future__ import annotations

import ctypes
import fcntl
import gzip
import io
import json
import os
import selectors
import signal
import socket
import struct
import sys
import termios
import time

PR_SET_CHILD_SUBREAPER = 36
LOG_LINE_MAX = 16 * 1024
START_TIMEOUT = 120.0
EARLY_INPUT_MAX = 1 << 20  # input attached clients send before the process runs, kept for it
DRAIN_TIMEOUT = 2.0


def rfc3339_ns(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def atomic_write(path: str, data: bytes) -> None:
    """Readers see all or nothing. No fsync: this lives in the exec root, which
    does not outlive a reboot, and the page cache outlives a daemon crash."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def report(ready_fd: int, msg: dict) -> bool:
    """Send the ready line; False if the daemon is no longer there to read it."""
    try:
        os.write(ready_fd, json.dumps(msg).encode() + b"\n")
        return True
    except BrokenPipeError:
        return False


class LogWriter:
    """A container's json-lines log, rotated as dockerd's json-file and local drivers rotate.

    When the file has reached `max_size`, `name.1` .. `name.(max_file-1)` shift
    up one (the oldest falls off), the file becomes `name.1` (gzipped to
    `name.1.gz` with `compress`) and a new file is started; with one file it
    is truncated instead. Like dockerd, the check happens before each line,
    so a file exceeds `max_size` by at most one line. Compression runs in a
    forked child, so the container's output keeps flowing meanwhile; the next
    rotation (and the monitor's exit) waits for it.
    """

    def __init__(self, cfg: dict) -> None:
        self.path: str = cfg["path"]
        self.max_size: int = cfg.get("max_size") or 0
        self.max_file: int = cfg.get("max_file") or 1
        self.compress: bool = bool(cfg.get("compress"))
        self.compressor = 0  # pid of the child gzipping name.1
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.file = self.open("ab")
        self.size = self.file.tell()

    def write(self, lines: list[bytes]) -> None:
        if self.file.closed:  # a rotation that could not even reopen the file: try again
            self.file = self.open("ab")
            self.size = self.file.tell()
        pending: list[bytes] = []
        for line in lines:
            if self.max_size and self.size >= self.max_size:
                self.file.write(b"".join(pending))
                pending = []
                self.rotate()
            pending.append(line)
            self.size += len(line)
        self.file.write(b"".join(pending))

    def rotate(self) -> None:
        """Start a new file; whatever goes wrong on the way, the log stays open for writing."""
        self.file.close()
        try:
            if self.max_file >= 2:
                self.shift()
        finally:
            self.file = self.open("ab" if self.max_file >= 2 else "wb")
            self.size = self.file.tell()

    def shift(self) -> None:
        self.wait_compressor()
        for i in range(self.max_file - 1, 1, -1):
            older = f"{self.path}.{i - 1}"
            for suffix in ("", ".gz"):  # an uncompressed .1 left by a crash mid-compression
                if os.path.exists(older + suffix):
                    os.replace(older + suffix, f"{self.path}.{i}{suffix}")
        os.replace(self.path, f"{self.path}.1")
        if self.compress:
            self.compressor = self.spawn_gzip(f"{self.path}.1")

    def open(self, mode: str) -> io.FileIO:
        """Unbuffered, so each batch of lines reaches the file (and readers) in one write."""
        return io.FileIO(self.path, mode)  # kept open as long as the container runs

    @staticmethod
    def spawn_gzip(path: str) -> int:
        """Fork a child that turns `path` into `path.gz`; it first closes every inherited
        descriptor, so it holds no container pipe or client socket open."""
        pid = os.fork()
        if pid:
            return pid
        code = 1
        try:
            os.closerange(3, os.sysconf("SC_OPEN_MAX"))
            with open(path, "rb") as src, gzip.open(path + ".gz.tmp", "wb", compresslevel=1) as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            os.replace(path + ".gz.tmp", path + ".gz")
            os.unlink(path)
            code = 0
        finally:
            os._exit(code)

    def wait_compressor(self) -> None:
        if self.compressor:
            try:
                os.waitpid(self.compressor, 0)
            except ChildProcessError:
                pass
            self.compressor = 0

    def reaped(self, pid: int) -> None:
        """The monitor collected child `pid`: if it was the compressor, its pid may be reused now."""
        if pid == self.compressor:
            self.compressor = 0

    def close(self) -> None:
        self.wait_compressor()
        self.file.close()


class Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.header = b""
        self.op: dict | None = None

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def reply(self, obj: dict) -> bool:
        return self.send(json.dumps(obj).encode() + b"\n")


class Shim:
    def __init__(self, state_dir: str) -> None:
        self.dir = state_dir
        with open(os.path.join(state_dir, "shim.json")) as f:
            self.cfg = json.load(f)
        self.id: str = self.cfg["id"]
        self.tty: bool = self.cfg["tty"]
        self.exec_mode = self.cfg.get("mode") == "exec"
        self.sel = selectors.DefaultSelector()
        self.clients: list[Client] = []
        self.log = LogWriter(self.cfg["log"]) if self.cfg.get("log", {}).get("path") else None
        self.partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self.last_log_ns = 0
        self.stdin_w: int | None = None
        self.outputs: dict[int, str] = {}
        self.pty: int | None = None
        self.size: tuple[int, int] = tuple(self.cfg.get("console_size") or (24, 80))
        self.init_pid = 0
        self.exit_code: int | None = None
        self.drain_deadline = 0.0
        self.exit: dict | None = None
        self.started = False
        self.start_tried = False  # runc ran for the process: a container may need deleting
        self.start_deadline: float | None = time.monotonic() + START_TIMEOUT
        self.early_input = bytearray()  # stdin from attached clients before the process runs
        self.early_close = False  # and their EOF
        self.ready_fd: int | None = None

    # ---- runc ---------------------------------------------------------
    def runc(self, *args: str, stdio: tuple[int, int, int] | None = None) -> tuple[int, str]:
        log = os.path.join(self.dir, "runc.log")
        argv = [self.cfg["runc"], "--root", self.cfg["runc_root"], "--log", log, "--log-format", "json", *args]
        devnull = os.open(os.devnull, os.O_RDWR)
        fds = stdio or (devnull, devnull, devnull)
        actions = [(os.POSIX_SPAWN_DUP2, fd, i) for i, fd in enumerate(fds)]
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
        os.close(devnull)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        return code, self.last_runc_error(log) if code else ""

    @staticmethod
    def last_runc_error(log: str) -> str:
        msg = "runc failed"
        try:
            with open(log) as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if entry.get("level") in ("error", "fatal"):
                        msg = entry.get("msg", msg)
        except OSError:
            pass
        return msg

    def spawn(self, *args: str) -> None:
        """Run `runc run --detach` or `runc exec --detach` with the process's stdio held here."""
        args = (*args, "--pid-file", os.path.join(self.dir, "init.pid"))
        if self.tty:
            console_path = os.path.join(self.dir, "console.sock")
            console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            console.bind(console_path)
            console.listen(1)
            code, err = self.runc(*args, "--console-socket", console_path, self.id)
            if code == 0:
                console.settimeout(10)
                conn, _ = console.accept()
                _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
                conn.close()
                self.pty = fds[0]
                self.set_size(*self.size)
                self.add_output(self.pty, "stdout")
            console.close()
            os.unlink(console_path)
        else:
            stdin_r = os.open(os.devnull, os.O_RDONLY)
            if self.cfg["stdin"]:
                os.close(stdin_r)
                stdin_r, self.stdin_w = os.pipe()
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            code, err = self.runc(*args, self.id, stdio=(stdin_r, out_w, err_w))
            for fd in (stdin_r, out_w, err_w):
                os.close(fd)
            for fd, name in ((out_r, "stdout"), (err_r, "stderr")):
                if code == 0:
                    self.add_output(fd, name)
                else:
                    os.close(fd)
            if code != 0:
                self.close_stdin()
        if code != 0:
            raise RuntimeError(err)
        with open(os.path.join(self.dir, "init.pid")) as f:
            self.init_pid = int(f.read().strip())

    def add_output(self, fd: int, stream: str) -> None:
        os.set_blocking(fd, False)
        self.outputs[fd] = stream
        self.sel.register(fd, selectors.EVENT_READ, ("output", fd))

    def set_size(self, h: int, w: int) -> None:
        if not (0 <= h <= 65535 and 0 <= w <= 65535):  # checked now, not when an exec's terminal appears
            raise ValueError("ushort format requires 0 <= number <= 65535")
        self.size = (h, w)  # an exec's terminal only exists once it runs
        if self.pty is not None:
            fcntl.ioctl(self.pty, termios.TIOCSWINSZ, struct.pack("HHHH", h, w, 0, 0))

    # ---- output -------------------------------------------------------
    def on_output(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO from a pty whose other side closed
            data = b""
        stream = self.outputs[fd]
        if not data:
            self.sel.unregister(fd)
            del self.outputs[fd]
            os.close(fd)
            if fd == self.pty:
                self.pty = None
            return
        if self.log is not None:
            self.write_log(stream, data)
        frame = data if self.tty else struct.pack(">BxxxL", 1 if stream == "stdout" else 2, len(data)) + data
        for c in list(self.clients):
            if c.op and c.op.get("op") == "attach" and c.op.get(stream) and not c.send(frame):
                self.drop(c)

    def write_log(self, stream: str, data: bytes) -> None:
        # As dockerd: a line longer than 16 KiB becomes entries of 16 KiB, the last with its newline,
        # whether or not its end arrived in the same read.
        buf = self.partial[stream] + data
        lines = []
        while True:
            nl = buf.find(b"\n", 0, LOG_LINE_MAX)
            if nl >= 0:
                end = nl + 1
            elif len(buf) >= LOG_LINE_MAX:
                end = LOG_LINE_MAX
            else:
                break
            lines.append(buf[:end])
            buf = buf[end:]
        self.partial[stream] = buf
        self.emit(stream, lines)

    def emit(self, stream: str, lines: list[bytes]) -> None:
        if not lines or self.log is None:
            return
        entries = []
        for ln in lines:
            # each line its own time, strictly later than the last, even for lines read in one chunk:
            # readers (`docker logs --since`, merging stdout with stderr) order by it
            self.last_log_ns = max(time.time_ns(), self.last_log_ns + 1)
            # byte for byte what dockerd's json-file driver writes (compact, UTF-8 as is)
            entries.append(json.dumps({"log": ln.decode("utf-8", "replace"), "stream": stream,
                                       "time": rfc3339_ns(self.last_log_ns)},
                                      ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
        try:
            self.log.write(entries)
        except OSError as e:  # a full disk loses log lines, never the monitor (and its container's exit)
            print(f"writing the log failed: {e}", file=sys.stderr, flush=True)

    # ---- clients ------------------------------------------------------
    def on_accept(self, listener: socket.socket) -> None:
        sock, _ = listener.accept()
        c = Client(sock)
        self.clients.append(c)
        self.sel.register(sock, selectors.EVENT_READ, ("client", c))

    def drop(self, c: Client) -> None:
        if c in self.clients:
            self.clients.remove(c)
            try:
                self.sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
            c.sock.close()

    def on_client(self, c: Client) -> None:
        try:
            data = c.sock.recv(65536)
        except OSError:
            data = b""
        if c.op is None:
            if not data:
                self.drop(c)
                return
            c.header += data
            if b"\n" not in c.header:
                if len(c.header) > 65536:
                    self.drop(c)
                return
            line, rest = c.header.split(b"\n", 1)
            try:
                op = json.loads(line)
            except ValueError:
                op = None
            if not isinstance(op, dict):  # not an op line: a client that speaks no protocol of ours
                self.drop(c)
                return
            c.op = op
            self.handle_op(c)
            if rest and c in self.clients:
                self.to_stdin(c, rest)
            return
        if c.op.get("op") != "attach":
            if not data:
                self.drop(c)
            return
        if not data:
            try:
                self.sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
            if c.op.get("close_stdin"):
                self.client_stdin_eof()
            return
        self.to_stdin(c, data)

    def to_stdin(self, c: Client, data: bytes) -> None:
        if not c.op or not c.op.get("stdin"):
            return
        if not self.started:
            if len(self.early_input) + len(data) <= EARLY_INPUT_MAX:
                self.early_input += data
            return
        self.write_stdin(data)

    def write_stdin(self, data: bytes) -> None:
        fd = self.pty if self.tty else self.stdin_w
        if fd is None:
            return
        try:
            os.set_blocking(fd, True)
            os.write(fd, data)
        except OSError:
            pass
        finally:
            if fd == self.pty:
                os.set_blocking(fd, False)

    def client_stdin_eof(self) -> None:
        """An attached client's EOF: stdin closes, once the process runs."""
        if self.started:
            self.close_stdin()
        else:
            self.early_close = True

    def close_stdin(self) -> None:
        if self.stdin_w is not None:
            os.close(self.stdin_w)
            self.stdin_w = None

    def handle_op(self, c: Client) -> None:
        op = c.op or {}
        kind = op.get("op")
        if kind == "start":
            err = "" if self.started else self.start()
            if err:
                c.reply({"error": err})
                self.exited(255)  # nothing runs: the daemon reports the error, not this code
                return
            if not self.started:
                self.started = True
                self.release_ready()
                if self.early_input:
                    self.write_stdin(bytes(self.early_input))
                    self.early_input.clear()
                if self.early_close:
                    self.close_stdin()
            c.reply({"ok": True, "pid": self.init_pid})
            if self.exec_mode:
                # The exec's exit goes to the connection that started it: a separate
                # wait could come after a short-lived process and its shim are gone.
                c.op = {"op": "wait"}
        elif kind == "wait":
            if self.exit is not None:
                c.reply(self.exit)
        elif kind == "resize":
            try:
                self.set_size(int(op["h"]), int(op["w"]))
                c.reply({"ok": True})
            except (KeyError, ValueError, OverflowError, OSError) as e:
                c.reply({"error": str(e)})
        elif kind == "kill":
            if self.exit_code is None and self.init_pid:  # not reaped yet: the PID is still the process's
                try:
                    os.kill(self.init_pid, int(op.get("signal", signal.SIGKILL)))
                except (OSError, ValueError, OverflowError) as e:
                    c.reply({"error": str(e)})
                    return
            c.reply({"ok": True})
        elif kind == "attach":
            c.reply({"ok": True})
        else:
            c.reply({"error": f"unknown op {kind!r}"})

    # ---- lifecycle ----------------------------------------------------
    def start(self) -> str:
        """Start the process; '' when it runs, else runc's error."""
        self.start_tried = True
        try:
            if self.exec_mode:
                self.spawn("exec", "--detach", "--process", os.path.join(self.dir, "process.json"))
            else:
                self.spawn("run", "--detach", "--bundle", self.cfg["bundle"])
        except (RuntimeError, OSError) as e:
            return str(e) or type(e).__name__
        return ""

    def release_ready(self) -> None:
        """Stop watching the ready pipe: the daemon has started the process (or is gone)."""
        if self.ready_fd is not None:
            self.sel.unregister(self.ready_fd)
            os.close(self.ready_fd)
            self.ready_fd = None

    def exited(self, code: int) -> None:
        self.exit_code = code
        self.drain_deadline = time.monotonic() + DRAIN_TIMEOUT

    def reap(self) -> None:
        """Collect exited children, noting the monitored process's exit."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.log is not None:
                self.log.reaped(pid)
            if pid == self.init_pid:
                code = os.waitstatus_to_exitcode(status)
                self.exited(128 - code if code < 0 else code)

    def oom_killed(self) -> bool:
        cg = self.cfg.get("cgroup_path", "")
        if not cg:  # no cgroup of its own (rootless on cgroup v1): the kernel's counters would be someone else's
            return False
        for path, key in ((f"/sys/fs/cgroup/memory{cg}/memory.oom_control", "oom_kill"),
                          (f"/sys/fs/cgroup{cg}/memory.events", "oom_kill")):
            try:
                with open(path) as f:
                    for line in f:
                        name, _, value = line.partition(" ")
                        if name == key and int(value) > 0:
                            return True
            except (OSError, ValueError):
                continue
        return False

    def run(self, ready_fd: int) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock_path = os.path.join(self.dir, "shim.sock")
        try:
            listener.bind(sock_path)
        except OSError as e:
            os.write(ready_fd, json.dumps({"error": f"shim socket {sock_path}: {e}"}).encode() + b"\n")
            return
        listener.listen(64)
        # Held until exit (the kernel releases it however this ends): the daemon's cleanup takes it to
        # know this monitor is done with its container and its state directory.
        self.lock = os.open(os.path.join(self.dir, "shim.lock"), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        signal.set_wakeup_fd(wake_w.fileno())
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        with open(os.path.join(self.dir, "shim.pid"), "w") as f:
            f.write(str(os.getpid()))
        self.ready_fd = ready_fd
        # Its read end closes when the daemon has started the process, or died: only the latter
        # comes before `start`, and then nobody will start it.
        self.sel.register(ready_fd, selectors.EVENT_READ, ("ready", ready_fd))
        if not report(ready_fd, {"pid": 0}):  # the process runs at `start`
            self.start_deadline = time.monotonic()  # the daemon died already: give up now
        self.sel.register(listener, selectors.EVENT_READ, ("accept", listener))
        self.sel.register(wake_r, selectors.EVENT_READ, ("wake", wake_r))
        while True:
            if self.exit_code is None:
                self.reap()
            if self.exit_code is not None and (not self.outputs or time.monotonic() > self.drain_deadline):
                break
            if self.start_deadline and not self.started and time.monotonic() > self.start_deadline:
                self.start_deadline = None  # nobody started it: the daemon is gone, do not linger
                self.release_ready()
                self.exited(255)
            for key, _ in self.sel.select(timeout=0.5):
                kind, obj = key.data
                if kind == "accept":
                    self.on_accept(obj)
                elif kind == "wake":
                    try:
                        obj.recv(4096)
                    except BlockingIOError:
                        pass
                elif kind == "ready":  # the daemon closed its end (see run's comment)
                    self.release_ready()
                    if not self.started:
                        self.start_deadline = time.monotonic()
                elif kind == "output":
                    self.on_output(obj)
                elif kind == "client":
                    self.on_client(obj)
        self.finish(listener, sock_path)

    def finish(self, listener: socket.socket, sock_path: str) -> None:
        if self.log is not None:
            for stream, rest in self.partial.items():
                if rest:
                    self.emit(stream, [rest])
            self.log.close()
        oom = not self.exec_mode and self.oom_killed()
        self.exit = {"ExitCode": self.exit_code, "FinishedAt": rfc3339_ns(time.time_ns()), "OOMKilled": oom}
        if not self.exec_mode:  # an exec's exit must not delete its container
            atomic_write(os.path.join(self.dir, "exit.json"), json.dumps(self.exit).encode())
        self.sel.unregister(listener)
        listener.close()
        os.unlink(sock_path)
        waiters = [c for c in self.clients if c.op and c.op.get("op") == "wait"]
        for c in waiters:  # before attach streams end, whose clients then ask for the exit
            c.reply(self.exit)
        for c in list(self.clients):
            self.drop(c)
        # After the replies, so the daemon tears down network and mounts meanwhile; its cleanup
        # waits for shim.lock, which this process holds until it exits.
        if not self.exec_mode and self.start_tried:
            self.runc("delete", "--force", self.id)
        if self.exec_mode:
            # Only the daemon that started the exec wanted its state, and has just
            # been told; a restarted daemon has forgotten the exec, as Docker does.
            for name in os.listdir(self.dir):
                os.unlink(os.path.join(self.dir, name))
            os.rmdir(self.dir)


def main() -> None:
    # argv is how a daemon started before an upgrade to this file still launches shims
    state_dir = sys.argv[1] if len(sys.argv) > 1 else sys.stdin.buffer.readline().decode().rstrip("\n")
    if not state_dir:
        return  # a spare the daemon no longer needs (or a daemon that went away)
    ready_fd = int(os.environ["PYDOCK_SHIM_READY"])
    if os.fork() > 0:
        os._exit(0)  # the daemon reaps this parent at once; the monitor is orphaned to init
    os.setsid()
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    devnull = os.open(os.devnull, os.O_RDWR)
    err = os.open(os.path.join(state_dir, "shim.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.dup2(err, 2)
    os.close(devnull)
    os.close(err)
    os.chdir(state_dir)
    Shim(state_dir).run(ready_fd)


if __name__ == "__main__":
    main()
