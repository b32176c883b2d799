"""Published ports relayed in user space (rootless mode): the listeners and the relay process of each container.

The daemon binds the host-side sockets itself, under the port publisher's
lock, so a port that cannot be had fails the start with a precise reason;
then it hands them to a relay process of the container's own (portproxy.py)
that outlives the daemon, found again through its pid file under the exec
root, and stopped when the container's network is torn down.
"""
from __future__ import annotations

import errno
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from engine.errors import InternalError, InvalidParameter

TAG = "pydock-ports"
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "portproxy.py")
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0


def unprivileged_port_start() -> int:
    """The lowest port a user may bind (net.ipv4.ip_unprivileged_port_start, per network namespace)."""
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1024


def privileged_port_error(port: int) -> InvalidParameter:
    """Docker's rootless wording, minus RootlessKit: the user may not bind `port` on the host."""
    start = unprivileged_port_start()
    return InvalidParameter(f"driver failed programming external connectivity: cannot expose privileged port "
                            f"{port} in rootless mode, you can add 'net.ipv4.ip_unprivileged_port_start={port}' "
                            f"to /etc/sysctl.conf (currently {start}), or choose a larger port number (>= {start})")


def _listen(rule: dict[str, Any]) -> socket.socket:
    tcp = rule["proto"] == "tcp"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
    try:
        if tcp:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((rule["host_ip"], rule["host_port"]))
        if tcp:
            sock.listen(128)
    except OSError as e:
        sock.close()
        if e.errno == errno.EACCES:
            raise privileged_port_error(rule["host_port"]) from None
        raise InternalError(f"driver failed programming external connectivity: Bind for {rule['host_ip']}:"
                            f"{rule['host_port']} failed: {e.strerror}") from None
    return sock


class UserlandProxy:
    def __init__(self, exec_root: str, netns_path: str) -> None:
        """`netns_path`: the network namespace where container addresses are reachable (the bridges')."""
        self.dir = os.path.join(exec_root, "ports")
        self.netns_path = netns_path
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def _pid_file(self, cid: str) -> str:
        return os.path.join(self.dir, cid)

    def open(self, cid: str, rules: list[dict[str, Any]]) -> None:
        """Bind every rule's host socket and start the container's relay with them."""
        self.close(cid)  # a crashed earlier start may have left one
        sockets: list[socket.socket] = []
        try:
            for rule in rules:
                sockets.append(_listen(rule))
            self._spawn(cid, rules, sockets)
        finally:
            for sock in sockets:
                sock.close()  # the relay holds its own copies

    def _spawn(self, cid: str, rules: list[dict[str, Any]], sockets: list[socket.socket]) -> None:
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        cfg = {"netns": self.netns_path, "ports": [
            {"fd": s.fileno(), "proto": r["proto"], "ip": r["container_ip"], "port": r["container_port"]}
            for r, s in zip(rules, sockets, strict=True)]}
        proc = subprocess.Popen([sys.executable, "-I", "-S", SCRIPT, TAG, cid], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, pass_fds=[s.fileno() for s in sockets],
                                start_new_session=True, cwd="/")
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(cfg).encode() + b"\n")
        proc.stdin.close()
        ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT)
        line = proc.stdout.readline() if ready else b""
        proc.stdout.close()
        if line.strip() != b"ready":
            proc.kill()
            proc.wait()
            raise InternalError("driver failed programming external connectivity: the port relay did not start")
        self._children[cid] = proc
        with open(self._pid_file(cid), "w") as f:  # exec-root state: no fsync needed
            f.write(f"{proc.pid}\n")

    def close(self, cid: str) -> None:
        """Stop the container's relay, if any, and wait until its ports are free again."""
        child = self._children.pop(cid, None)
        pid = child.pid if child is not None else self._recorded(cid)
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if child is not None:
                child.wait(timeout=STOP_TIMEOUT)
            else:  # a relay started by an earlier daemon: not our child to wait for
                deadline = time.monotonic() + STOP_TIMEOUT
                while _is_relay(pid, cid) and time.monotonic() < deadline:
                    time.sleep(0.02)
        try:
            os.unlink(self._pid_file(cid))
        except FileNotFoundError:
            pass

    def close_others(self, live: set[str]) -> None:
        """Stop the relays of containers whose network is gone (after a daemon restart)."""
        for cid in os.listdir(self.dir) if os.path.isdir(self.dir) else []:
            if cid not in live:
                self.close(cid)

    def _recorded(self, cid: str) -> int:
        try:
            with open(self._pid_file(cid)) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0
        return pid if _is_relay(pid, cid) else 0


def _is_relay(pid: int, cid: str) -> bool:
    """`pid` is (still) the relay of `cid`, not a process that reused the number."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return TAG.encode() in argv and cid.encode() in argv
