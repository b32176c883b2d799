"""`docker run --rm busybox true` latency: pydockd against bare `runc run`.

Absolute times depend on the machine, so the result is a ratio measured side
by side in one run: the same rootfs is started by `runc run` directly and by
the docker CLI through a private pydockd (and through dockerd, when one
answers on /var/run/docker.sock). Runs are interleaved so that machine noise
hits every contender alike, and medians keep the odd slow run out.

pydockd runs three ways: `pydockd` on the default bridge network (what
`docker run` gets: a network namespace, veth, address, NAT rules),
`pd-none` with `--network none` (the cost without networking) and `pd-user`
on a user-defined bridge network (plus its embedded DNS), so the price of
networking shows as the difference between the rows.

With `--rootless-user USER` two more rows run as that user, interleaved with
the others: `rl-pydockd`, the user's own (rootless) pydockd on its default
bridge, against `rl-runc`, bare rootless `runc run` of the same rootfs (a
`runc spec --rootless` bundle), so rootless mode gets its own ratio. The user
needs subordinate IDs, and `--rootless-python` (with PYTHONPATH, passed on)
must import this checkout's engine as that user.

    python3 bench/run_latency.py [--runs 25] [--warmup 3] [--rootless-user USER [--rootless-python PY]]
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))

from busybox_rootfs import build_busybox_tar

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
RUNC = shutil.which("runc") or "/usr/sbin/runc"
DOCKERD_SOCK = "/var/run/docker.sock"
DOCKERD_IMAGE = "pydock-bench/busybox:latest"  # private tag: never touch the user's own busybox
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


def start_pydockd(root: str, stack: ExitStack, repo: str = REPO) -> str:
    """A private daemon (of `repo`'s checkout) on temporary data/exec roots; returns its DOCKER_HOST."""
    sock = os.path.join(root, "pydock.sock")
    with open(os.path.join(root, "pydockd.log"), "ab") as log:  # the daemon keeps its own copy
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine.pydockd", "--data-root", os.path.join(root, "data"),
             "--exec-root", os.path.join(root, "run"), "-H", f"unix://{sock}", "--log-level", "warning"],
            cwd=repo, stdout=log, stderr=log, start_new_session=True)
    stack.callback(stop_process, proc)
    deadline = time.monotonic() + START_TIMEOUT
    while not docker_answers(sock):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("pydockd did not start; see " + log.name)
        time.sleep(0.05)
    return f"unix://{sock}"


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


def make_runc_bundle(bundle: str, rootfs_tar: str, user: RootlessUser | None = None) -> None:
    """The busybox rootfs with `runc spec`'s defaults, running `true` without a terminal; for `user`, that
    user's own bundle with `runc spec --rootless` (whose ID maps name the user who runs it)."""
    rootfs = os.path.join(bundle, "rootfs")
    os.makedirs(rootfs)
    with tarfile.open(rootfs_tar) as tar:
        tar.extractall(rootfs, filter="fully_trusted")  # our own tar, built just now
    if user is None:
        subprocess.run([RUNC, "spec"], cwd=bundle, check=True)
    else:
        user.own(bundle)
        subprocess.run(user.argv(RUNC, "spec", "--rootless"), cwd=bundle, check=True)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        spec = json.load(f)
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["true"]
    with open(path, "w") as f:
        json.dump(spec, f)


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, check=False, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode().strip()}")
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


def report(samples: dict[str, list[float]]) -> None:
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, med in medians.items():
        print(f"{name:10s} median {med * 1000:8.1f} ms  over {len(samples[name])} runs")
    for name, med in medians.items():
        base = "rl-runc" if name.startswith("rl-") else "runc"  # rootless rows against rootless runc
        if name != base:
            print(f"{name}/{base} ratio: {med / medians[base]:.2f}x")
    if "dockerd" in medians:
        print(f"pydockd/dockerd ratio: {medians['pydockd'] / medians['dockerd']:.2f}x")


def runc_contender(root: str, rootfs_tar: str, stack: ExitStack) -> Callable[[], float]:
    bundle = os.path.join(root, "bundle")
    make_runc_bundle(bundle, rootfs_tar)
    runc_root = os.path.join(root, "runc")
    runc_id = f"pydock-bench-{os.getpid()}"
    stack.callback(subprocess.run, [RUNC, "--root", runc_root, "delete", "--force", runc_id],
                   check=False, capture_output=True)
    argv = [RUNC, "--root", runc_root, "run", "--bundle", bundle, runc_id]
    return lambda: timed(argv)


def docker_contender(env: dict[str, str], image: str, network: str = "") -> Callable[[], float]:
    argv = [DOCKER, "run", "--rm", *(["--network", network] if network else []), image, "true"]
    return lambda: timed(argv, env)


def scratch(stack: ExitStack, prefix: str = "pydock-bench-") -> tuple[str, str, str]:
    """A temporary root the stack removes (mounts first), a busybox rootfs tar in it, and a docker config dir."""
    root = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    stack.callback(shutil.rmtree, root, True)
    stack.callback(unmount_under, root)
    return root, build_busybox_tar(os.path.join(root, "busybox.tar")), os.path.join(root, "docker-config")


@dataclass
class RootlessUser:
    """The user the rootless rows run as, and the Python its pydockd runs with."""

    name: str
    python: str

    def argv(self, *args: str) -> list[str]:
        pw = pwd.getpwnam(self.name)
        return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", *args]

    def own(self, path: str) -> None:
        pw = pwd.getpwnam(self.name)
        subprocess.run(["chown", "-R", f"{pw.pw_uid}:{pw.pw_gid}", path], check=True)

    def env(self, **extra: str) -> dict[str, str]:
        return {"HOME": pwd.getpwnam(self.name).pw_dir, "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "PYTHONPATH": os.environ.get("PYTHONPATH", REPO), **extra}


def rootless_contenders(user: RootlessUser, rootfs_tar: str, stack: ExitStack) -> dict[str, Callable[[], float]]:
    """rl-runc and rl-pydockd, both run by `user` in a scratch root of its own."""
    root = tempfile.mkdtemp(prefix="pydock-bench-rl-", dir="/tmp")
    stack.callback(shutil.rmtree, root, True)
    user.own(root)
    bundle = os.path.join(root, "bundle")
    make_runc_bundle(bundle, rootfs_tar, user)
    runc_id = f"pydock-bench-rl-{os.getpid()}"
    runc_root = os.path.join(root, "runc")
    stack.callback(subprocess.run, user.argv(RUNC, "--root", runc_root, "delete", "--force", runc_id),
                   check=False, capture_output=True)
    runc_argv = user.argv(RUNC, "--root", runc_root, "run", "--bundle", bundle, runc_id)
    sock = os.path.join(root, "pydock.sock")
    exec_root = os.path.join(root, "run")
    with open(os.path.join(root, "pydockd.log"), "ab") as log:
        proc = subprocess.Popen(user.argv(user.python, "-m", "engine.pydockd", "--data-root", os.path.join(root, "data"),
                                          "--exec-root", exec_root, "-H", f"unix://{sock}", "--log-level", "warning"),
                                cwd=root, env=user.env(), stdout=log, stderr=log, start_new_session=True)
    # last in, first out: the daemon stops, then what rootless mode leaves running for the next daemon
    stack.callback(stop_holder, exec_root)
    stack.callback(stop_process, proc)
    deadline = time.monotonic() + START_TIMEOUT
    while not docker_answers(sock):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the rootless pydockd did not start; see " + log.name)
        time.sleep(0.05)
    env = user.env(DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=os.path.join(root, "docker-config"))
    subprocess.run(user.argv(DOCKER, "import", rootfs_tar, "busybox:latest"), env=env, check=True,
                   capture_output=True, timeout=120)
    docker_argv = user.argv(DOCKER, "run", "--rm", "busybox:latest", "true")
    return {"rl-runc": lambda: timed(runc_argv), "rl-pydockd": lambda: timed(docker_argv, env)}


def stop_holder(exec_root: str) -> None:
    """End the namespace holder and slirp4netns a rootless daemon leaves for its successor (none will come)."""
    for name in ("slirp4netns.pid", "holder.pid"):
        try:
            with open(os.path.join(exec_root, name)) as f:
                os.kill(int(f.read().strip()), signal.SIGKILL)
        except (OSError, ValueError):
            continue


def run(runs: int, warmup: int, rootless: RootlessUser | None = None) -> None:
    with ExitStack() as stack:
        root, rootfs_tar, config_dir = scratch(stack)
        contenders = {"runc": runc_contender(root, rootfs_tar, stack)}
        env = docker_env(start_pydockd(root, stack), config_dir)
        stack.callback(remove_all_containers, env)
        docker(env, "import", rootfs_tar, "busybox:latest")
        contenders["pydockd"] = docker_contender(env, "busybox:latest")
        contenders["pd-none"] = docker_contender(env, "busybox:latest", "none")
        docker(env, "network", "create", "pydock-bench")
        contenders["pd-user"] = docker_contender(env, "busybox:latest", "pydock-bench")
        if docker_answers(DOCKERD_SOCK):
            denv = docker_env(f"unix://{DOCKERD_SOCK}", config_dir)
            docker(denv, "import", rootfs_tar, DOCKERD_IMAGE)
            stack.callback(docker, denv, "rmi", DOCKERD_IMAGE)
            contenders["dockerd"] = docker_contender(denv, DOCKERD_IMAGE)
        if rootless is not None:
            os.chmod(rootfs_tar, 0o644)
            os.chmod(root, 0o755)  # the user reads the rootfs tar from here
            contenders.update(rootless_contenders(rootless, rootfs_tar, stack))
        report(measure(contenders, runs, warmup))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=25, help="measured runs per contender (default 25)")
    p.add_argument("--warmup", type=int, default=3, help="unmeasured runs per contender first (default 3)")
    p.add_argument("--rootless-user", metavar="USER", help="also measure rootless mode, as USER")
    p.add_argument("--rootless-python", metavar="PY", default=sys.executable,
                   help="the Python the rootless pydockd runs with (it must import this checkout as USER)")
    args = p.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        p.error("--runs must be >= 1 and --warmup >= 0")
    rootless = RootlessUser(args.rootless_user, args.rootless_python) if args.rootless_user else None
    run(args.runs, args.warmup, rootless)


if __name__ == "__main__":
    main()
