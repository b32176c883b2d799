"""The rootless engine's namespaces: made once by a holder process, joined by every daemon.

Podman's model. The first pydockd of a user starts the holder (pause.py),
which unshares a user, a mount and a network namespace; the daemon maps the
user's IDs into it with `newuidmap`/`newgidmap` and records its pid under the
exec root. It also starts a network relay on the holder's network
namespace: a tap device there whose traffic the relay passes through
ordinary sockets of the user on the host, so containers behind the engine's
bridges get outbound network without any privilege. The relay is
`slirp4netns` (a user-mode TCP/IP stack, libslirp) or `pasta` (passt's
namespace mode, which maps connections to host sockets without a TCP/IP
stack of its own); either configures the tap as 10.0.2.100/24 with gateway
10.0.2.2, and neither lets containers reach the host's loopback.

Every daemon (the first and each later one) then joins the holder's user and
mount namespaces with setns(2), where it is root: it can mount overlays,
chown layer files to the mapped IDs and run runc. It keeps the host's network
namespace, as Podman does, so that pulls and pushes reach registries on the
host's loopback and the API can listen on TCP; the network code enters the
holder's network namespace per operation (see EngineConfig.engine_netns).
Containers and their monitors are started from inside the namespaces, so they
survive the daemon as in root mode; a daemon started later finds them again.

setns(CLONE_NEWUSER) is refused to a process with more than one thread, so
`join` must run before anything starts a thread: pydockd calls it first.
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from engine.linux.mounts import is_mountpoint, mount
from engine.linux.proc import running
from engine.rootless import idmap

HOLDER_TAG = "pydock-holder"
HOLDER_PID = "holder.pid"
HOLDER_LOCK = "holder.lock"
SLIRP = "slirp4netns"
PASTA = "pasta"
RELAYS = (SLIRP, PASTA)
SLIRP_PID = "slirp4netns.pid"
SLIRP_LOG = "slirp4netns.log"
PASTA_PID = "pasta.pid"
PASTA_LOG = "pasta.log"
TAP = "tap0"
# the tap's address, prefix and gateway (slirp4netns' defaults, given to pasta too)
TAP_ADDRESS, TAP_PREFIX, TAP_GATEWAY = "10.0.2.100", "24", "10.0.2.2"
ENGINE_NETNS = "engine.netns"  # the holder's network namespace, bind-mounted inside the mount namespace
PAUSE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pause.py")
SETUP_TIMEOUT = 20.0
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_BIND = 4096


class RootlessSetupError(Exception):
    """The namespaces could not be made or joined; the message says what the system lacks."""


@dataclass
class Namespaces:
    """The holder a daemon joined, and what the user should know about it."""

    holder_pid: int
    engine_netns: str
    warnings: list[str] = field(default_factory=list)


def enter(exec_root: str, user: str, relay: str = SLIRP) -> Namespaces:
    """Join the user's holder (starting it and the network relay first if need be); the caller is root afterwards.

    `exec_root` must exist and be private to the user; `user` names it in
    /etc/subuid and /etc/subgid; `relay` is one of RELAYS.
    """
    # two daemons starting at once must not each make a holder (the loser of the data root's lock
    # would leave the winner's namespaces unrecorded): one of them at a time looks and starts
    lock = os.open(os.path.join(exec_root, HOLDER_LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        pid = _running_holder(exec_root) or _start_holder(exec_root, user)
        warnings = _mapping_warnings(pid) + ensure_relay(exec_root, pid, relay)
    finally:
        os.close(lock)
    join(pid)
    netns_path = os.path.join(exec_root, ENGINE_NETNS)
    _bind_netns(pid, netns_path)
    return Namespaces(pid, netns_path, warnings)


# ---- processes we left behind -----------------------------------------------
def _read_pid(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def _write_pid(path: str, pid: int) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{pid}\n")
    os.replace(tmp, path)


def _own_process(pid: int, program: str, *args: str) -> bool:
    """`pid` is a live process of this user running `program` with every one of `args` (a pid file may be
    stale, and its number reused by anything since)."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        if os.stat(f"/proc/{pid}").st_uid != os.getuid():
            return False
    except OSError:
        return False
    return bool(argv) and any(os.path.basename(a) == program for a in argv[:4]) and all(a in argv for a in args)


def _running_holder(exec_root: str) -> int:
    pid = _read_pid(os.path.join(exec_root, HOLDER_PID))
    return pid if _own_process(pid, "pause.py", HOLDER_TAG, exec_root) else 0


# ---- the holder ----------------------------------------------------------------
def _start_holder(exec_root: str, user: str) -> int:
    proc = subprocess.Popen([sys.executable, "-I", "-S", PAUSE_SCRIPT, HOLDER_TAG, exec_root],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            cwd="/", start_new_session=True, close_fds=True, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        said = _read_line(proc.stdout.fileno(), proc)
        if said != "unshared":
            raise RootlessSetupError(
                f"cannot create a user namespace ({said or 'the holder exited'}): unprivileged user namespaces "
                "may be disabled (sysctl kernel.unprivileged_userns_clone, user.max_user_namespaces)")
        _map_ids(proc.pid, user)
        proc.stdin.write("mapped\n")
        proc.stdin.flush()
        if _read_line(proc.stdout.fileno(), proc) != "ready":
            raise RootlessSetupError("the namespace holder exited during setup")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    proc.stdin.close()
    proc.stdout.close()
    _write_pid(os.path.join(exec_root, HOLDER_PID), proc.pid)
    return proc.pid


def _read_line(fd: int, proc: subprocess.Popen[str]) -> str:
    """One line from the holder within the setup timeout ("" if it exits or stays silent)."""
    data = b""
    while not data.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], SETUP_TIMEOUT)
        chunk = os.read(fd, 256) if ready else b""
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


def _map_ids(pid: int, user: str) -> None:
    """Write the holder's uid and gid maps: subordinate ranges through the setuid helpers, else the
    user's own IDs, which a namespace's owner may map itself (gids only once setgroups is denied)."""
    for kind, own, table, helper in (("uid", os.getuid(), idmap.SUBUID, "newuidmap"),
                                     ("gid", os.getgid(), idmap.SUBGID, "newgidmap")):
        ranges = idmap.subordinate_ranges(table, user, os.getuid())
        mappings = idmap.namespace_map(own, ranges)
        if ranges:
            binary = shutil.which(helper)
            if binary is None:
                raise RootlessSetupError(f"{helper} is missing (Debian package uidmap): it maps {table}'s ranges "
                                         "into the user namespace")
            proc = subprocess.run([binary, str(pid), *idmap.helper_args(mappings)], capture_output=True,
                                  text=True, check=False, timeout=SETUP_TIMEOUT)
            if proc.returncode != 0:
                raise RootlessSetupError(f"{helper} failed: {proc.stderr.strip() or proc.returncode}")
            continue
        if kind == "gid":
            with open(f"/proc/{pid}/setgroups", "w") as f:
                f.write("deny")
        with open(f"/proc/{pid}/{kind}_map", "w") as f:
            f.write(f"0 {own} 1\n")


def _mapping_warnings(pid: int) -> list[str]:
    """A warning for each of the holder's maps that holds the user's own ID alone."""
    out = []
    for kind, table in (("uid", idmap.SUBUID), ("gid", idmap.SUBGID)):
        try:
            with open(f"/proc/{pid}/{kind}_map") as f:
                mappings = [idmap.Mapping(*map(int, line.split())) for line in f if line.strip()]
        except (OSError, ValueError, TypeError):
            continue
        if idmap.single_id(mappings):
            out.append(f"rootless: no subordinate {kind}s for this user in {table}: only one {kind} is mapped, so "
                       f"image files owned by other users become root's and containers cannot switch to another "
                       f"user (add a range, e.g. `usermod --add-sub{kind}s 100000-165535 <user>`)")
    return out


# ---- outbound network --------------------------------------------------------------
def ensure_relay(exec_root: str, holder_pid: int, relay: str) -> list[str]:
    """`relay` serving the holder's network namespace (started when missing, one of another kind or serving a
    holder that is gone ended first); warnings when it cannot be started."""
    for kind, pid_name in ((SLIRP, SLIRP_PID), (PASTA, PASTA_PID)):
        old = _read_pid(os.path.join(exec_root, pid_name))
        if kind == relay and _own_process(old, kind, str(holder_pid), TAP):
            return []
        if _own_process(old, kind):
            os.kill(old, signal.SIGTERM)
            _wait_gone(old)  # its tap device goes with it, before the new relay makes one of the same name
    return _start_pasta(exec_root, holder_pid) if relay == PASTA else _start_slirp(exec_root, holder_pid)


def _wait_gone(pid: int) -> None:
    """Until `pid` has exited (a zombie whose reaper is init counts as exited), for at most the setup timeout."""
    deadline = time.monotonic() + SETUP_TIMEOUT
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def _start_pasta(exec_root: str, holder_pid: int) -> list[str]:
    """pasta on the holder's namespaces: it returns once the tap is configured, leaving its daemon running,
    whose pid it writes. No port is forwarded either way (-t/-u/-T/-U none: published ports have their own
    relay) and the gateway is not mapped to the host's loopback (--no-map-gw)."""
    binary = shutil.which(PASTA)
    if binary is None:
        return ["rootless: pasta is missing (Debian package passt): containers have no outbound network"]
    pid_file, log_path = os.path.join(exec_root, PASTA_PID), os.path.join(exec_root, PASTA_LOG)
    argv = [binary, "--config-net", "-4", "-a", TAP_ADDRESS, "-n", TAP_PREFIX, "-g", TAP_GATEWAY, "--no-map-gw",
            "-I", TAP, "-m", "65520", "-t", "none", "-u", "none", "-T", "none", "-U", "none", "-q",
            "-l", log_path, "-P", pid_file, str(holder_pid)]
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True, cwd="/", timeout=SETUP_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        proc = subprocess.CompletedProcess(argv, -1)
    if proc.returncode != 0 or not _own_process(_read_pid(pid_file), PASTA, str(holder_pid), TAP):
        return [f"rootless: pasta did not start (see {log_path}): containers have no outbound network"]
    return []


def _start_slirp(exec_root: str, holder_pid: int) -> list[str]:
    """slirp4netns on the holder's network namespace, ready once it says so on its ready fd."""
    pid_file = os.path.join(exec_root, SLIRP_PID)
    binary = shutil.which(SLIRP)
    if binary is None:
        return ["rootless: slirp4netns is missing (Debian package slirp4netns): containers have no outbound network"]
    ready_r, ready_w = os.pipe()
    try:
        with open(os.path.join(exec_root, SLIRP_LOG), "ab") as log:
            proc = subprocess.Popen([binary, "--configure", "--mtu=65520", "--disable-host-loopback",
                                     f"--ready-fd={ready_w}", str(holder_pid), TAP],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(ready_w,),
                                    start_new_session=True, cwd="/")
        os.close(ready_w)
        ready_w = -1
        ready, _, _ = select.select([ready_r], [], [], SETUP_TIMEOUT)
        if not ready or os.read(ready_r, 1) != b"1":
            proc.kill()
            proc.wait()
            where = os.path.join(exec_root, SLIRP_LOG)
            return [f"rootless: slirp4netns did not start (see {where}): containers have no outbound network"]
    finally:
        os.close(ready_r)
        if ready_w >= 0:
            os.close(ready_w)
    _write_pid(pid_file, proc.pid)
    return []


# ---- joining -------------------------------------------------------------------------
def join(pid: int) -> None:
    """setns(2) into the holder's user, then mount namespace; afterwards this process is root there."""
    if threading.active_count() != 1:
        raise RootlessSetupError("joining the user namespace needs a single-threaded process")
    libc = ctypes.CDLL(None, use_errno=True)
    for ns, flag in (("user", CLONE_NEWUSER), ("mnt", CLONE_NEWNS)):
        fd = os.open(f"/proc/{pid}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.setns(fd, flag) != 0:
                err = ctypes.get_errno()
                raise RootlessSetupError(f"joining the holder's {ns} namespace: {os.strerror(err)}")
        finally:
            os.close(fd)


def _bind_netns(pid: int, path: str) -> None:
    """The holder's network namespace at a fixed path for the network code (a bind mount in the holder's
    mount namespace, so it lasts as long as the namespaces, whatever the holder's pid)."""
    if is_mountpoint(path):
        return
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT, 0o444))
    mount(f"/proc/{pid}/ns/net", path, "none", MS_BIND)
