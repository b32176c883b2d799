"""The OCI runtime boundary: runc invocations and the per-container shim.

Everything that touches runc or a shim goes through here, so the container
service deals in container IDs and never in processes or sockets' wire form.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from typing import Any

from .config import EngineConfig
from .errors import Conflict, EngineError
from .store import atomic_write

SHIM_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim.py")


class OCIRuntimeError(EngineError):
    """runc refused: Docker reports these as 500 unless they are about the command."""


def classify_runc_error(message: str) -> EngineError:
    """Docker answers 400 for a missing/non-executable command so the CLI can exit 127/126."""
    text = f"OCI runtime create failed: {message}: unknown"
    err = OCIRuntimeError(text)
    if "executable file not found" in message or "no such file or directory" in message \
            or "permission denied" in message:
        err.status = 400
    return err


class Runtime:
    def __init__(self, cfg: EngineConfig) -> None:
        self.cfg = cfg

    def state_dir(self, cid: str) -> str:
        # Short on purpose: unix socket paths inside it must stay under 108 bytes.
        return os.path.join(self.cfg.shims_dir, cid[:16])

    def _runc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run([self.cfg.runc, "--root", self.cfg.runc_root, *args],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        if check and proc.returncode != 0:
            msg = proc.stderr.decode(errors="replace").strip() or f"runc {args[0]} failed"
            raise OCIRuntimeError(msg)
        return proc

    # ---- shim ---------------------------------------------------------
    def launch(self, cid: str, bundle: str, *, tty: bool, stdin: bool, log_path: str,
               console_size: tuple[int, int] | None, cgroup_path: str) -> int:
        """Start the shim and have it `runc create` the container; returns the init PID."""
        sdir = self.state_dir(cid)
        shutil.rmtree(sdir, ignore_errors=True)
        os.makedirs(sdir, mode=0o700)
        atomic_write(os.path.join(sdir, "shim.json"), json.dumps({
            "id": cid, "bundle": bundle, "runc": self.cfg.runc, "runc_root": self.cfg.runc_root,
            "tty": tty, "stdin": stdin, "log_path": log_path, "cgroup_path": cgroup_path,
            "console_size": list(console_size) if console_size else None,
        }).encode())
        r, w = os.pipe()
        try:
            proc = subprocess.Popen([sys.executable, "-I", "-S", SHIM_SCRIPT, sdir],
                                    env={"PYDOCK_SHIM_READY": str(w), "PATH": os.environ.get("PATH", "")},
                                    pass_fds=(w,), stdin=subprocess.DEVNULL, close_fds=True)
            os.close(w)
            w = -1
            with os.fdopen(r, "rb") as ready:
                r = -1
                line = ready.readline()
            proc.wait()
        finally:
            for fd in (r, w):
                if fd >= 0:
                    os.close(fd)
        try:
            msg = json.loads(line or b"{}")
        except ValueError:
            msg = {}
        if "pid" not in msg:
            shutil.rmtree(sdir, ignore_errors=True)
            raise classify_runc_error(msg.get("error") or self._shim_log(sdir) or "shim failed to start")
        return int(msg["pid"])

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

    @staticmethod
    def read_line(sock: socket.socket) -> dict[str, Any] | None:
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(1)
            if not chunk:
                return None
            buf += chunk
        return json.loads(buf)

    def request(self, cid: str, op: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        try:
            sock = self.connect(cid, op, timeout)
        except OSError as e:
            raise Conflict(f"container {cid[:12]} is not running") from e
        with sock:
            reply = self.read_line(sock)
        if reply is None:
            raise Conflict(f"container {cid[:12]} is not running")
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
        """Forget runtime state of a stopped container (runc state and shim files)."""
        self._runc("delete", "--force", cid, check=False)
        shutil.rmtree(self.state_dir(cid), ignore_errors=True)

    # ---- runc ---------------------------------------------------------
    def kill(self, cid: str, signal: int) -> None:
        self._runc("kill", cid, str(signal))

    def pause(self, cid: str) -> None:
        self._runc("pause", cid)

    def resume(self, cid: str) -> None:
        self._runc("resume", cid)

    def pids(self, cid: str) -> list[int]:
        out = self._runc("ps", "--format", "json", cid).stdout
        return [int(p) for p in json.loads(out or b"[]") or []]
