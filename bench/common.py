"""What every benchmark shares: the docker CLI, private daemons on scratch roots, timing and interleaving.

Absolute times depend on the machine, so each benchmark measures its
contenders side by side in one run, interleaved (`measure`), and prints
ratios. `start_pydockd` starts this checkout's daemon on a scratch root;
bench/dockerd.py starts a private dockerd the same way.
"""
from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
sys.path.insert(1, REPO)  # this checkout's engine (e.g. its seccomp profile), not an installed one

from busybox_rootfs import build_busybox_tar

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
START_TIMEOUT = 30.0


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def docker_answers(sock_path: str) -> bool:
    """True if a Docker API server answers `_ping` on this socket."""
    conn = UnixHTTPConnection(sock_path, timeout=2)
    try:
        conn.request("GET", "/_ping")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def docker_env(host: str, config_dir: str) -> dict[str, str]:
    env = {**os.environ, "DOCKER_HOST": host, "DOCKER_CONFIG": config_dir}
    env.pop("DOCKER_CONTEXT", None)
    return env


def docker(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run([DOCKER, *args], check=False, env=env, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def start_pydockd(root: str, stack: ExitStack, repo: str = REPO, args: tuple[str, ...] = ()) -> str:
    """A private daemon (of `repo`'s checkout, with more options `args`) on temporary data/exec roots; returns
    its DOCKER_HOST."""
    sock = os.path.join(root, "pydock.sock")
    with open(os.path.join(root, "pydockd.log"), "ab") as log:  # the daemon keeps its own copy
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine.pydockd", "--data-root", os.path.join(root, "data"),
             "--exec-root", os.path.join(root, "run"), "-H", f"unix://{sock}", "--log-level", "warning", *args],
            cwd=repo, stdout=log, stderr=log, start_new_session=True)
    stack.callback(stop_process, proc)
    wait_until_answering(proc, sock, "pydockd did not start; see " + log.name)
    return f"unix://{sock}"


def wait_until_answering(proc: subprocess.Popen[bytes], sock: str, failure: str) -> None:
    """Returns once the daemon `proc` answers /_ping on `sock`; raises `failure` if it exits or takes too long."""
    deadline = time.monotonic() + START_TIMEOUT
    while not docker_answers(sock):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(failure)
        time.sleep(0.05)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def remove_all_containers(env: dict[str, str]) -> None:
    ids = docker(env, "ps", "-aq").split()
    if ids:
        docker(env, "rm", "-f", *ids)


def unmount_under(root: str) -> None:
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f]
    for m in sorted((m for m in mounts if m.startswith(root + "/")), reverse=True):
        subprocess.run(["umount", "-l", m], check=False)


def timed(argv: list[str], env: dict[str, str] | None = None, capture: bool = True,
          pass_fds: tuple[int, ...] = ()) -> float:
    """Seconds `argv` takes, to its exit; `capture=False` sends its output to /dev/null, for a command
    that leaves a process holding its stdio (runc run --detach).

    subprocess's own timeout is not used: its wait polls with sleeps that double up to 50 ms, which
    added up to 30 ms to a command whose pipes do not tell its end (measured: `runc run --detach` then
    `delete`, 45 ms, timed 73 ms). A timer kills a hung command instead, and the wait blocks.
    """
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    t0 = time.perf_counter()
    with subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out, pass_fds=pass_fds) as proc:
        watchdog = threading.Timer(120, proc.kill)
        watchdog.start()
        try:
            _, err = proc.communicate()
        finally:
            watchdog.cancel()
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {(err or b'').decode().strip()}")
    return elapsed


def measure(contenders: dict[str, Callable[[], float]], runs: int, warmup: int) -> dict[str, list[float]]:
    """Round-robin the contenders, rotating who goes first, so drift affects all alike."""
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(runs):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            samples[name].append(contenders[name]())
    return samples


def scratch(stack: ExitStack, prefix: str = "pydock-bench-") -> tuple[str, str, str]:
    """A temporary root the stack removes (mounts first), a busybox rootfs tar in it, and a docker config dir."""
    root = tempfile.mkdtemp(prefix=prefix)  # in $TMPDIR, else /tmp
    stack.callback(shutil.rmtree, root, True)
    stack.callback(unmount_under, root)
    return root, build_busybox_tar(os.path.join(root, "busybox.tar")), os.path.join(root, "docker-config")


def daemon_pids(env: dict[str, str], with_children: bool) -> list[int]:
    """The processes of the daemon `env` talks to: the one listening on its socket and, `with_children`, that
    one's children (for dockerd: its containerd, which shares its work; pydockd's only child is the spare
    interpreter that becomes the next container's monitor, which is no part of the daemon)."""
    sock = env["DOCKER_HOST"].removeprefix("unix://")
    with open("/proc/net/unix") as f:
        inodes = {line.split()[6] for line in f if line.rstrip().endswith(" " + sock)}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1] in inodes for fd in fds):
                return [int(pid), *(children(int(pid)) if with_children else [])]
        except OSError:
            continue
    raise RuntimeError(f"no process listens on {sock}")


def children(pid: int) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out += [int(c) for c in f.read().split()]
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time the processes have used so far (0 for one that is gone)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            continue
    return total / os.sysconf("SC_CLK_TCK")
