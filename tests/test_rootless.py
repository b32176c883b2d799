"""Rootless mode end to end: pydockd started by unprivileged users, driven by the docker CLI as those users.

The tests create throwaway users (with /etc/subuid and /etc/subgid ranges,
one without), give them a Python environment they can read (the system
interpreter, copies of the third-party packages and of the engine's own
packages, since the checkout and root's site-packages may be root-only), and
start `pydockd` as each user with nothing but their own environment: the
daemon must choose rootless mode and the user's paths by itself. Every
process the users leave behind (holders, slirp4netns, monitors, containers)
is killed by pid and the users are deleted afterwards.
"""
from __future__ import annotations

import contextlib
import http.server
import importlib.metadata
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import DOCKER, REPO

from engine.linux.proc import running as process_running

SYSTEM_PYTHON = "/usr/bin/python3"
# what pydockd and a Jupyter server with the extension import (pyproject's dependencies that they use)
DISTRIBUTIONS = ["tornado", "uvloop", "requests", "zstandard", "dockerfile-parse", "pyroute2", "jupyter_server"]
TOOLS = ("setpriv", "useradd", "userdel", "newuidmap", "newgidmap", "slirp4netns")

pytestmark = [
    pytest.mark.rootless,
    pytest.mark.skipif(os.geteuid() != 0, reason="creating users needs root"),
    pytest.mark.skipif(not all(shutil.which(t) for t in TOOLS) or not os.path.exists(SYSTEM_PYTHON),
                       reason=f"needs {', '.join(TOOLS)} and {SYSTEM_PYTHON}"),
]


def _cgroup_v1() -> bool:
    return not os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def _host_address() -> str:
    """An address of this machine other than loopback: what slirp4netns lets containers reach."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True,
                         check=False).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 3 and not fields[1].startswith(("pd", "pydock", "br-", "docker")):
            return fields[3].split("/")[0]
    return ""


@dataclass
class User:
    """An unprivileged user and the pydockd it runs."""

    name: str
    env_root: str  # the readable Python environment
    runtime_dir: str = ""  # its $XDG_RUNTIME_DIR, "" for none (the /tmp fallback)
    proc: subprocess.Popen[bytes] | None = None
    log: str = ""
    pw: pwd.struct_passwd = field(init=False)

    def __post_init__(self) -> None:
        self.pw = pwd.getpwnam(self.name)
        self.log = os.path.join(self.env_root, f"{self.name}-pydockd.log")

    @property
    def uid(self) -> int:
        return self.pw.pw_uid

    @property
    def socket(self) -> str:
        return os.path.join(self.runtime_dir or f"/tmp/pydock-{self.uid}", "pydock.sock")

    @property
    def data_root(self) -> str:
        return os.path.join(self.pw.pw_dir, ".local", "share", "pydock")

    def env(self, **extra: str) -> dict[str, str]:
        """Only what a login would give the user (plus where Python finds its packages)."""
        env = {"HOME": self.pw.pw_dir, "USER": self.name, "LOGNAME": self.name, "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
               "PYTHONPATH": f"{self.env_root}/site:{self.env_root}/src", **extra}
        if self.runtime_dir:
            env["XDG_RUNTIME_DIR"] = self.runtime_dir
        return env

    def argv(self, *args: str) -> list[str]:
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.pw.pw_gid}", "--init-groups", *args]

    def start(self, *options: str) -> None:
        """pydockd with no option but `options`: rootless mode and every path are its own choice."""
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv(SYSTEM_PYTHON, "-m", "engine.pydockd", "--log-level", "info",
                                                   *options),
                                         env=self.env(), cwd=self.pw.pw_dir, stdout=log, stderr=log,
                                         start_new_session=True)
        deadline = time.time() + 30
        while not os.path.exists(self.socket):
            assert self.proc.poll() is None and time.time() < deadline, Path(self.log).read_text()[-3000:]
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.proc = None

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 60, check: bool = False,
               host: str = "") -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.argv(DOCKER, *args), input=input, capture_output=True, timeout=timeout,
                              env=self.env(DOCKER_HOST=host or f"unix://{self.socket}",
                                           DOCKER_CONFIG=os.path.join(self.pw.pw_dir, ".docker")),
                              cwd=self.pw.pw_dir, check=False)
        out = subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(errors="replace"),
                                          proc.stderr.decode(errors="replace"))
        if check and out.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} as {self.name} failed ({out.returncode}): {out.stderr}"
                                 f"\n--- pydockd log:\n{Path(self.log).read_text()[-3000:]}")
        return out

    def processes(self) -> list[int]:
        """Every process of this user (they are all ours: the user exists only for these tests)."""
        out = []
        for name in os.listdir("/proc"):
            try:
                if name.isdigit() and os.stat(f"/proc/{name}").st_uid == self.uid:
                    out.append(int(name))
            except OSError:
                continue
        return out


def _distributions(names: list[str]) -> list[importlib.metadata.Distribution]:
    """The installed distributions `names` need, with their requirements (extras left out), recursively."""
    found: dict[str, importlib.metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in found:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an optional requirement for another platform or Python
        found[name] = dist
        todo += [m.group(0) for r in dist.requires or [] if "extra ==" not in r
                 if (m := re.match(r"[A-Za-z0-9_.\-]+", r))]
    return list(found.values())


def _readable_environment(root: Path, distributions: list[str] = DISTRIBUTIONS) -> None:
    """The engine's and Jupyter server's packages (or `distributions`) and the project's own sources, where the
    test users can read them (root's interpreter and checkout may be root-only); the system Python of the same
    version runs them."""
    site = root / "site"
    for dist in _distributions(distributions):
        base = Path(str(dist.locate_file("")))
        for top in {f.parts[0] for f in dist.files or [] if f.parts[0] not in ("..", "__pycache__")}:
            source = base / top
            if source.is_dir():
                shutil.copytree(source, site / top, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
            elif source.exists():
                site.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, site / top)
    for package in ("engine", "pydock_common", "pydock_cli", "pydock_ext"):
        shutil.copytree(os.path.join(REPO, package), root / "src" / package,
                        ignore=shutil.ignore_patterns("__pycache__", "labextension", "node_modules"))
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            path = os.path.join(dirpath, name)
            os.chmod(path, 0o755 if os.access(path, os.X_OK) else 0o644)


def _add_user(name: str, subids: bool) -> None:
    cmd = ["useradd", "--create-home", "--shell", "/bin/sh"]
    if not subids:
        cmd += ["-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0"]
    subprocess.run([*cmd, name], check=True, capture_output=True)
    if subids:
        with open("/etc/subuid") as f:
            granted = any(line.startswith(name + ":") for line in f)
        if not granted:  # a login.defs without automatic ranges
            base = 300000 + 65536 * (pwd.getpwnam(name).pw_uid % 1000)
            subprocess.run(["usermod", "--add-subuids", f"{base}-{base + 65535}", "--add-subgids",
                            f"{base}-{base + 65535}", name], check=True)


def _remove_user(user: User) -> None:
    user.stop()
    for _ in range(3):  # monitors may respawn nothing, but a dying process can leave a child for a moment
        pids = user.processes()
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.3)
    subprocess.run(["userdel", "--remove", user.name], check=False, capture_output=True)
    shutil.rmtree(user.pw.pw_dir, ignore_errors=True)  # files owned by subordinate IDs too
    shutil.rmtree(f"/tmp/pydock-{user.uid}", ignore_errors=True)
    if user.runtime_dir:
        shutil.rmtree(user.runtime_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def env_root() -> Iterator[str]:
    version = subprocess.run([SYSTEM_PYTHON, "--version"], capture_output=True, text=True, check=False).stdout
    if f"{sys.version_info.major}.{sys.version_info.minor}" not in version:
        pytest.skip("the system Python's minor version differs: the copied extension modules would not load")
    root = tempfile.mkdtemp(prefix="pydock-rootless-")
    os.chmod(root, 0o755)
    _readable_environment(Path(root))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def users(env_root: str, busybox_tar: str, crun_host: str) -> Iterator[dict[str, User]]:
    """Alice (subordinate IDs, /tmp fallback paths), Bob (subordinate IDs, an XDG runtime directory) and
    Carol (no subordinate IDs), each with a running pydockd (started where crun itself can run) and busybox
    imported."""
    tag = uuid.uuid4().hex[:6]
    made: dict[str, User] = {}
    try:
        for role, subids in (("alice", True), ("bob", True), ("carol", False)):
            name = f"pdrl{tag}{role[0]}"
            _add_user(name, subids)
            user = User(name, env_root)
            if role == "bob":
                user.runtime_dir = f"/run/user/{user.uid}"
                os.makedirs(user.runtime_dir, mode=0o700, exist_ok=True)
                os.chown(user.runtime_dir, user.uid, user.pw.pw_gid)
            made[role] = user
            user.start()
            user.docker("import", "-c", 'CMD ["sh"]', "-", "busybox:latest", input=Path(busybox_tar).read_bytes(),
                        check=True)
        yield made
    finally:
        for user in made.values():
            _remove_user(user)
        for role in ("alice", "bob", "carol"):  # a user whose creation failed half-way
            subprocess.run(["userdel", "--remove", f"pdrl{tag}{role[0]}"], check=False, capture_output=True)


def test_info_says_rootless_and_user_paths(users: dict[str, User]) -> None:
    alice = users["alice"]
    info = json.loads(alice.docker("info", "--format", "{{json .}}", check=True).stdout)
    assert "name=rootless" in info["SecurityOptions"]
    assert info["DockerRootDir"] == alice.data_root
    if _cgroup_v1():
        assert info["CgroupDriver"] == "none" and not info["MemoryLimit"]
        assert any("rootless-mode without cgroups" in w for w in info["Warnings"])
    # the fallback directory is the user's own and private; the data belongs to the user on the host
    st = os.stat(f"/tmp/pydock-{alice.uid}")
    assert (st.st_uid, st.st_mode & 0o777) == (alice.uid, 0o700)
    assert os.stat(alice.data_root).st_uid == alice.uid
    bob = users["bob"]
    assert bob.socket == f"{bob.runtime_dir}/pydock.sock" and os.path.exists(bob.socket)


def _parent(pid: int) -> int:
    """A process's parent PID from /proc; 0 once it is gone."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def test_run_exec_logs_stop_rm(users: dict[str, User]) -> None:
    alice = users["alice"]
    out = alice.docker("run", "--rm", "busybox", "sh", "-c", "echo hi; id -u", check=True).stdout
    assert out.split() == ["hi", "0"]
    cid = alice.docker("run", "-d", "busybox", "sh", "-c", "echo started; exec sleep 300", check=True).stdout.strip()
    try:
        pid = int(alice.docker("inspect", "-f", "{{.State.Pid}}", cid, check=True).stdout)
        with open(f"/proc/{pid}/status") as f:
            uids = next(line.split()[1:] for line in f if line.startswith("Uid:"))
        assert uids[0] == str(alice.uid)  # root in the container is the user on the host
        monitor = os.readlink(f"/proc/{_parent(pid)}/exe")  # the compiled one, built by the user's own daemon
        assert monitor.startswith(os.path.join(alice.data_root, "monitor", "monitor-")), monitor
        assert os.stat(monitor).st_uid == alice.uid
        assert alice.docker("exec", cid, "sh", "-c", "echo from-exec", check=True).stdout == "from-exec\n"
        assert alice.docker("logs", cid, check=True).stdout == "started\n"
        assert "sleep 300" in alice.docker("top", cid, check=True).stdout
        alice.docker("stop", "-t", "1", cid, check=True)
        assert alice.docker("inspect", "-f", "{{.State.Status}}", cid, check=True).stdout.strip() == "exited"
        alice.docker("restart", "-t", "1", cid, check=True)
        assert alice.docker("logs", cid, check=True).stdout == "started\nstarted\n"
    finally:
        alice.docker("rm", "-f", cid, check=True)
    assert cid not in alice.docker("ps", "-aq", "--no-trunc", check=True).stdout


@pytest.mark.skipif(not _cgroup_v1(), reason="on cgroup v2 crun depends on systemd's delegation")
def test_crun_is_refused_with_the_reason_without_cgroups(users: dict[str, User]) -> None:
    """crun (1.8) reads the container's freezer state at every exec, so without a cgroup of their own
    (rootless on cgroup v1) containers are not offered crun, even where crun itself could run; runc stays."""
    alice = users["alice"]
    info = json.loads(alice.docker("info", "--format", "{{json .}}", check=True).stdout)
    assert set(info["Runtimes"]) == {"runc"} and info["DefaultRuntime"] == "runc"
    refused = alice.docker("create", "--runtime", "crun", "busybox")
    assert refused.returncode != 0
    assert "Unknown runtime specified crun (crun cannot exec into containers without a cgroup" in refused.stderr
    assert alice.docker("ps", "-aq", check=True).stdout == ""


@pytest.mark.skipif(not _cgroup_v1(), reason="on cgroup v2 limits depend on systemd's delegation")
@pytest.mark.parametrize("flags,named", [(["-m", "64m"], "--memory"), (["--cpus", "0.5"], "--cpus"),
                                         (["--pids-limit", "10", "-m", "64m"], "--memory, --pids-limit")])
def test_limits_refused_on_cgroup_v1(users: dict[str, User], flags: list[str], named: str) -> None:
    alice = users["alice"]
    before = alice.docker("ps", "-aq", check=True).stdout
    proc = alice.docker("run", "--rm", *flags, "busybox", "true")
    assert proc.returncode == 125
    assert f"cannot set {named}: rootless mode on cgroup v1 cannot apply resource limits" in proc.stderr
    assert alice.docker("ps", "-aq", check=True).stdout == before  # nothing was created
    cid = alice.docker("create", "busybox", "true", check=True).stdout.strip()
    try:
        proc = alice.docker("update", "--cpus", "1", cid)
        assert proc.returncode != 0 and "cannot set --cpus" in proc.stderr
        alice.docker("update", "--restart", "on-failure:2", cid, check=True)  # a policy is not a limit
    finally:
        alice.docker("rm", cid, check=True)


def test_pause_refused_clearly_without_cgroups(users: dict[str, User]) -> None:
    if not _cgroup_v1():
        pytest.skip("only cgroup v1 has no cgroup at all for rootless containers")
    alice = users["alice"]
    cid = alice.docker("run", "-d", "busybox", "sleep", "300", check=True).stdout.strip()
    try:
        proc = alice.docker("pause", cid)
        assert proc.returncode != 0 and "no cgroup of its own to freeze" in proc.stderr
        assert alice.docker("inspect", "-f", "{{.State.Status}}", cid, check=True).stdout.strip() == "running"
        stats = json.loads(alice.docker("stats", "--no-stream", "--format", "{{json .}}", cid, check=True).stdout)
        assert stats["MemUsage"].startswith("0B")  # not the whole user's memory
    finally:
        alice.docker("rm", "-f", cid, check=True)


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello from the host\n")

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _host_server(address: str) -> Iterator[str]:
    """The URL of an HTTP server on `address` of this machine that answers "hello from the host"."""
    server = http.server.HTTPServer((address, 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{address}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_outbound_network_and_user_network_dns(users: dict[str, User]) -> None:
    address = _host_address()
    if not address:
        pytest.skip("this machine has no non-loopback address for containers to reach")
    alice = users["alice"]
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(_host_server(address))
        stack.callback(alice.docker, "network", "rm", "rlnet")
        stack.callback(alice.docker, "rm", "-f", "rl-server")
        _reaches_the_host(alice, url)


def _reaches_the_host(user: User, url: str) -> None:
    """Containers on the default bridge and on a user network (by name to each other) reach `url`."""
    out = user.docker("run", "--rm", "busybox", "wget", "-q", "-O-", url, check=True).stdout
    assert out == "hello from the host\n"
    user.docker("network", "create", "rlnet", check=True)
    user.docker("run", "-d", "--name", "rl-server", "--network", "rlnet", "busybox", "sleep", "300", check=True)
    out = user.docker("run", "--rm", "--network", "rlnet", "busybox", "ping", "-c1", "-W2", "rl-server",
                      check=True).stdout
    assert "1 packets received" in out
    out = user.docker("run", "--rm", "--network", "rlnet", "busybox", "wget", "-q", "-O-", url, check=True).stdout
    assert out == "hello from the host\n"


@pytest.mark.skipif(not shutil.which("pasta"), reason="needs pasta (Debian package passt)")
def test_outbound_network_through_pasta(users: dict[str, User]) -> None:
    """--rootless-network pasta: a daemon restarted with it replaces slirp4netns by pasta (and back), containers
    reach the host's address through it, never the host's loopback."""
    address = _host_address()
    if not address:
        pytest.skip("this machine has no non-loopback address for containers to reach")
    alice = users["alice"]
    exec_root = Path(f"/tmp/pydock-{alice.uid}/pydock")
    slirp = int((exec_root / "slirp4netns.pid").read_text())
    alice.stop()
    alice.start("--rootless-network", "pasta")
    try:
        pasta = int((exec_root / "pasta.pid").read_text())
        # pasta re-executes itself (passt.avx2 where the CPU has AVX2), keeping its argv
        argv0 = Path(f"/proc/{pasta}/cmdline").read_bytes().split(b"\0")[0]
        assert os.path.basename(argv0) == b"pasta" and pasta in alice.processes()
        assert not process_running(slirp)
        with contextlib.ExitStack() as stack:
            url = stack.enter_context(_host_server(address))
            loopback = stack.enter_context(_host_server("127.0.0.1"))
            stack.callback(alice.docker, "network", "rm", "rlnet")
            stack.callback(alice.docker, "rm", "-f", "rl-server")
            _reaches_the_host(alice, url)
            gateway = loopback.replace("127.0.0.1", "10.0.2.2")
            proc = alice.docker("run", "--rm", "busybox", "wget", "-q", "-T", "3", "-O-", gateway)
            assert "hello from the host" not in proc.stdout
    finally:
        alice.stop()
        alice.start()
    assert not process_running(pasta)
    assert Path(f"/proc/{int((exec_root / 'slirp4netns.pid').read_text())}/comm").read_text().strip() == "slirp4netns"


def test_ipv6_links_and_endpoint_settings_in_the_holders_namespace(users: dict[str, User]) -> None:
    """An IPv6 network (bridge gateway, addresses, routes, AAAA names, ip6 table), a chosen MAC, a
    link-local address and a legacy link, all made in the holder's network namespace."""
    alice = users["alice"]
    try:
        alice.docker("network", "create", "--ipv6", "--subnet", "fd00:5e::/64", "rl6", check=True)
        alice.docker("run", "-d", "--name", "rl6-server", "--network", "rl6", "--mac-address", "02:42:ac:1e:00:05",
                     "--link-local-ip", "169.254.9.9", "busybox", "sleep", "300", check=True)
        shown = alice.docker("exec", "rl6-server", "ip", "addr", "show", "eth0", check=True).stdout
        assert "02:42:ac:1e:00:05" in shown and "inet 169.254.9.9/16" in shown and "inet6 fd00:5e::2/64" in shown
        out = alice.docker("run", "--rm", "--network", "rl6", "busybox", "ping", "-6", "-c1", "-W2", "rl6-server",
                           check=True).stdout
        assert "fd00:5e::2" in out and "1 packets received" in out
        alice.docker("run", "-d", "--name", "rl-child", "busybox", "sleep", "300", check=True)
        out = alice.docker("run", "--rm", "--link", "rl-child:kid", "busybox", "sh", "-c",
                           "ping -c1 -W2 kid && echo $KID_NAME", check=True).stdout
        assert "1 packets received" in out and out.endswith("/kid\n")
    finally:
        alice.docker("rm", "-f", "rl6-server", "rl-child")
        alice.docker("network", "rm", "rl6")


def test_volume_survives_container_removal(users: dict[str, User]) -> None:
    alice = users["alice"]
    alice.docker("volume", "create", "rlvol", check=True)
    try:
        alice.docker("run", "--rm", "-v", "rlvol:/data", "busybox", "sh", "-c",
                     "echo kept > /data/f && chown 1000:1000 /data/f", check=True)
        out = alice.docker("run", "--rm", "-v", "rlvol:/data", "busybox", "sh", "-c", "cat /data/f; stat -c %u /data/f",
                           check=True).stdout
        assert out.split() == ["kept", "1000"]
    finally:
        alice.docker("volume", "rm", "rlvol", check=True)


def test_build_push_and_pull_by_another_user(users: dict[str, User], tmp_path_factory: pytest.TempPathFactory) -> None:
    """A build whose files belong to other users, pushed by one user and pulled by another: owners survive."""
    from test_registry import start_registry
    reg_root = str(tmp_path_factory.mktemp("rootless-registry"))
    registry = start_registry(reg_root)
    alice, bob = users["alice"], users["bob"]
    context = os.path.join(alice.pw.pw_dir, "ctx")
    os.makedirs(context)
    with open(os.path.join(context, "Dockerfile"), "w") as f:
        f.write("FROM busybox\nRUN mkdir /owned && chown 1234:2345 /owned && echo built > /owned/f\n"
                "COPY --chown=4321:4321 note /note\nCMD cat /owned/f\n")
    with open(os.path.join(context, "note"), "w") as f:
        f.write("a note\n")
    subprocess.run(["chown", "-R", f"{alice.uid}:{alice.pw.pw_gid}", context], check=True)
    ref = f"{registry.host}/rootless/built:1"
    try:
        build = subprocess.run(alice.argv(DOCKER, "build", "-q", "-t", ref, context), capture_output=True, text=True,
                               env=alice.env(DOCKER_HOST=f"unix://{alice.socket}", DOCKER_BUILDKIT="0"),
                               cwd=alice.pw.pw_dir, timeout=120, check=False)
        assert build.returncode == 0, build.stderr
        assert alice.docker("run", "--rm", ref, check=True).stdout == "built\n"
        alice.docker("push", ref, check=True, timeout=120)
        bob.docker("pull", ref, check=True, timeout=120)
        out = bob.docker("run", "--rm", ref, "stat", "-c", "%u:%g %n", "/owned", "/owned/f", "/note", check=True).stdout
        assert out.splitlines() == ["1234:2345 /owned", "0:0 /owned/f", "4321:4321 /note"]
        # on the host, bob's copy belongs to his subordinate IDs: ID 1234 is the 1234th of his range
        with open("/etc/subuid") as f:
            start = next(int(line.split(":")[1]) for line in f if line.startswith(bob.name + ":"))
        owners = {os.stat(os.path.join(d, "owned")).st_uid
                  for d in Path(bob.data_root, "layers").glob("*/diff") if os.path.isdir(os.path.join(d, "owned"))}
        assert owners == {start + 1233}
        carol = users["carol"]  # a namespace of one ID: every owner becomes root, as Podman's ignore_chown_errors
        carol.docker("pull", ref, check=True, timeout=120)
        out = carol.docker("run", "--rm", ref, "stat", "-c", "%u:%g", "/owned", "/note", check=True).stdout
        assert out.split() == ["0:0", "0:0"]
    finally:
        registry.proc.kill()
        registry.proc.wait()
        for user in users.values():
            user.docker("rmi", "-f", ref)


def test_commit_save_load_and_export_keep_owners(users: dict[str, User]) -> None:
    """A commit of files other users own, saved by one user and loaded by another; export shows the
    container's owners too, not the subordinate IDs they have on the host."""
    alice, bob = users["alice"], users["bob"]
    archive = os.path.join(bob.pw.pw_dir, "own.tar")
    try:
        alice.docker("run", "--name", "owner", "busybox", "sh", "-c",
                     "mkdir /d && echo x > /d/f && chown -R 1234:2345 /d", check=True)
        alice.docker("commit", "owner", "rl/owned:1", check=True)
        alice.docker("export", "-o", "exported.tar", "owner", check=True)
        alice.docker("save", "-o", "own.tar", "rl/owned:1", check=True)
        shutil.copy(os.path.join(alice.pw.pw_dir, "own.tar"), archive)
        os.chown(archive, bob.uid, bob.pw.pw_gid)
        assert "rl/owned:1" in bob.docker("load", "-i", archive, check=True).stdout
        out = bob.docker("run", "--rm", "rl/owned:1", "stat", "-c", "%u:%g", "/d", "/d/f", check=True).stdout
        assert out.split() == ["1234:2345", "1234:2345"]
        listing = subprocess.run(["tar", "--numeric-owner", "-tvf", os.path.join(alice.pw.pw_dir, "exported.tar"),
                                  "d/f"], capture_output=True, text=True, check=False).stdout
        assert "1234/2345" in listing, listing
    finally:
        alice.docker("rm", "-f", "owner")
        for user in (alice, bob):
            user.docker("rmi", "-f", "rl/owned:1")


def test_containers_survive_daemon_restart(users: dict[str, User]) -> None:
    alice = users["alice"]
    cid = alice.docker("run", "-d", "--restart", "always", "busybox", "sh", "-c", "echo up; exec sleep 300",
                       check=True).stdout.strip()
    try:
        pid = int(alice.docker("inspect", "-f", "{{.State.Pid}}", cid, check=True).stdout)
        alice.stop()
        assert os.path.exists(f"/proc/{pid}")  # the daemon is gone, the container is not
        alice.start()
        assert alice.docker("inspect", "-f", "{{.State.Running}} {{.State.Pid}}", cid, check=True).stdout.split() == \
            ["true", str(pid)]
        assert alice.docker("exec", cid, "echo", "again", check=True).stdout == "again\n"
        since = str(int(time.time()) - 1)
        os.kill(pid, signal.SIGKILL)  # the restart policy brings it back
        deadline = time.time() + 30
        while alice.docker("inspect", "-f", "{{.RestartCount}}", cid, check=True).stdout.strip() == "0":
            assert time.time() < deadline, "the container was not restarted"
            time.sleep(0.2)
        events = alice.docker("events", "--since", since, "--until", str(int(time.time()) + 1), "--filter",
                              f"container={cid}", "--format", "{{.Action}}", check=True).stdout.split()
        assert "die" in events and "start" in events
    finally:
        alice.docker("rm", "-f", cid, check=True)


def test_users_are_isolated(users: dict[str, User]) -> None:
    alice, bob = users["alice"], users["bob"]
    cid = alice.docker("create", "--name", "alices", "busybox", "true", check=True).stdout.strip()
    alice.docker("tag", "busybox", "alice-only:1", check=True)
    try:
        assert cid not in bob.docker("ps", "-aq", "--no-trunc", check=True).stdout
        assert "alice-only" not in bob.docker("images", check=True).stdout
        assert bob.docker("inspect", "alices").returncode != 0
        denied = bob.docker("ps", host=f"unix://{alice.socket}")
        assert denied.returncode != 0 and "permission denied" in denied.stderr
        # nor can bob reach alice's engine through her data, runtime state or holder
        for path in (alice.data_root, f"/tmp/pydock-{alice.uid}"):
            probe = subprocess.run(bob.argv("ls", path), capture_output=True, text=True, check=False)
            assert probe.returncode != 0
    finally:
        alice.docker("rm", cid, check=True)
        alice.docker("rmi", "alice-only:1", check=True)


def test_without_subordinate_ids_one_id_is_mapped_with_a_warning(users: dict[str, User]) -> None:
    carol = users["carol"]
    warnings = json.loads(carol.docker("info", "--format", "{{json .Warnings}}", check=True).stdout)
    assert any("no subordinate uids" in w for w in warnings)
    assert carol.docker("run", "--rm", "busybox", "echo", "works", check=True).stdout == "works\n"
    proc = carol.docker("run", "--rm", "--user", "1000", "busybox", "id")
    assert proc.returncode != 0  # no ID but root exists in carol's namespace


def test_restarted_daemon_joins_the_same_holder(users: dict[str, User]) -> None:
    """The holder and slirp4netns are the user's own processes, recorded by pid under the exec root."""
    alice = users["alice"]
    exec_root = f"/tmp/pydock-{alice.uid}/pydock"
    holder = int(Path(exec_root, "holder.pid").read_text())
    slirp = int(Path(exec_root, "slirp4netns.pid").read_text())
    assert {holder, slirp} <= set(alice.processes())
    assert b"pydock-holder" in Path(f"/proc/{holder}/cmdline").read_bytes()
    assert Path(f"/proc/{slirp}/comm").read_text().strip() == "slirp4netns"
    alice.stop()
    alice.start()
    assert int(Path(exec_root, "holder.pid").read_text()) == holder
    assert int(Path(exec_root, "slirp4netns.pid").read_text()) == slirp
    assert os.readlink(f"/proc/{alice.proc.pid}/ns/user") == os.readlink(f"/proc/{holder}/ns/user")


def test_jupyter_server_as_the_user_starts_and_keeps_its_pydockd(users: dict[str, User]) -> None:
    """A non-root Jupyter server serves the user's rootless pydockd (starting it when none runs), which, with its
    containers, outlives the server."""
    alice = users["alice"]
    alice.stop()
    token = uuid.uuid4().hex
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = Path(alice.pw.pw_dir, ".docker")
    config.mkdir(exist_ok=True)
    (config / "config.json").write_text(json.dumps({"HttpHeaders": {"Authorization": f"token {token}"}}))
    subprocess.run(["chown", "-R", f"{alice.uid}:{alice.pw.pw_gid}", str(config)], check=True)
    log_path = os.path.join(alice.env_root, "jupyter.log")
    with open(log_path, "ab") as log:
        server = subprocess.Popen(
            alice.argv(SYSTEM_PYTHON, "-m", "jupyter_server", "--no-browser", f"--ServerApp.port={port}",
                       "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
                       "--ServerApp.jpserver_extensions={'pydock_ext': True}"),
            env=alice.env(), cwd=alice.pw.pw_dir, stdout=log, stderr=log, start_new_session=True)
    api = f"tcp://127.0.0.1:{port}/pydock"
    daemon_pid = 0
    try:
        deadline = time.time() + 90
        while alice.docker("version", host=api).returncode != 0:
            assert server.poll() is None and time.time() < deadline, Path(log_path).read_text()[-3000:]
            time.sleep(0.5)
        info = json.loads(alice.docker("info", "--format", "{{json .SecurityOptions}}", host=api, check=True).stdout)
        assert "name=rootless" in info
        cid = alice.docker("run", "-d", "busybox", "sleep", "300", host=api, check=True).stdout.strip()
        lock = Path(alice.data_root, "pydock.lock").read_text()  # "pid N (pydockd)": not the server itself
        assert lock.endswith("(pydockd)\n")
        daemon_pid = int(lock.split()[1])
        server.terminate()
        server.wait(timeout=30)
        assert alice.docker("inspect", "-f", "{{.State.Running}}", cid, check=True).stdout.strip() == "true"
        alice.docker("rm", "-f", cid, check=True)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        if daemon_pid:
            os.kill(daemon_pid, signal.SIGTERM)
            while process_running(daemon_pid):
                time.sleep(0.1)
        alice.start()


def _get(url: str, timeout: float = 10) -> str:
    """The body at `url`, retried while the server in the container is still starting."""
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return str(response.read().decode())
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def test_published_ports_on_the_host(users: dict[str, User]) -> None:
    """-p listens in the host's network namespace (where the user may bind) and relays into the container,
    across a daemon restart; a port below the unprivileged range is refused with the sysctl to change."""
    alice = users["alice"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cid = alice.docker("run", "-d", "-p", f"{port}:80", "-p", "127.0.0.1::80", "busybox", "sh", "-c",
                       "echo hello-port > /tmp/index.html; exec httpd -f -p 80 -h /tmp", check=True).stdout.strip()
    try:
        assert _get(f"http://127.0.0.1:{port}/index.html") == "hello-port\n"
        mapped = alice.docker("port", cid, "80/tcp", check=True).stdout.split()
        assert f"0.0.0.0:{port}" in mapped
        local = next(m for m in mapped if m.startswith("127.0.0.1:"))
        assert _get(f"http://{local}/index.html") == "hello-port\n"
        alice.stop()  # the relay, like the container, outlives the daemon
        assert _get(f"http://127.0.0.1:{port}/index.html") == "hello-port\n"
        alice.start()
        alice.docker("stop", "-t", "1", cid, check=True)
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2)
        alice.docker("start", cid, check=True)  # the same port again, at once
        assert _get(f"http://127.0.0.1:{port}/index.html") == "hello-port\n"
    finally:
        alice.docker("rm", "-f", cid, check=True)
    if int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text()) > 80:
        proc = alice.docker("run", "--rm", "-p", "80:80", "busybox", "true")
        assert proc.returncode == 125 and "cannot expose privileged port 80" in proc.stderr
        assert "net.ipv4.ip_unprivileged_port_start=80" in proc.stderr


def test_latency_bench_has_rootless_rows(users: dict[str, User]) -> None:
    """bench/run_latency.py measures the user's rootless pydockd against rootless runc, interleaved with the rest,
    and leaves neither the user's daemon nor its holder behind."""
    alice = users["alice"]
    before = set(alice.processes())
    proc = subprocess.run([sys.executable, os.path.join(REPO, "bench", "run_latency.py"), "--runs", "2", "--warmup",
                           "0", "--no-dockerd", "--rootless-user", alice.name, "--rootless-python", SYSTEM_PYTHON],
                          env={**os.environ, "PYTHONPATH": f"{alice.env_root}/site:{alice.env_root}/src"},
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"^rl-pydockd/rl-runc ratio: \d+\.\d+x$", proc.stdout, re.MULTILINE), proc.stdout
    assert re.search(r"^pydockd/runc ratio: \d+\.\d+x", proc.stdout, re.MULTILINE), proc.stdout
    # (a zombie waits for its reaper, init here, which may take its time: no process left running)
    assert not [pid for pid in set(alice.processes()) - before if process_running(pid)]
