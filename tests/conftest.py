"""Shared fixtures: a real pydockd on a private socket and a busybox image.

The daemon runs as a subprocess with its own data and exec roots, exactly as
a user would start it; tests talk to it through the real docker CLI and the
docker SDK. The busybox image is built from Debian's busybox-static, since
no registry is reachable.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
sys.path.insert(0, os.path.join(REPO, "scripts"))

from busybox_rootfs import build_busybox_tar

from engine.runtime import oci


@dataclass
class Daemon:
    root: str
    proc: subprocess.Popen[bytes] | None = None
    log_path: str = ""
    env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)  # more pydockd options

    @property
    def data_root(self) -> str:
        return os.path.join(self.root, "data")

    @property
    def exec_root(self) -> str:
        return os.path.join(self.root, "run")

    @property
    def socket(self) -> str:
        return os.path.join(self.root, "pydock.sock")

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        with open(self.log_path, "ab") as log:  # the daemon keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "engine.pydockd", "--data-root", self.data_root, "--exec-root",
                 self.exec_root, "-H", self.url, "--log-level", "warning", *self.extra_args],
                cwd=REPO, stdout=log, stderr=log, start_new_session=True)
        deadline = time.time() + 30
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("pydockd did not start:\n" + Path(self.log_path).read_text()[-3000:])
            time.sleep(0.05)

    def stop(self, sig: int = 15) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def docker(self, *args: str, input: bytes | str | None = None, timeout: float = 60,
               check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run the real docker CLI against this daemon."""
        if isinstance(input, bytes):
            input = input.decode()
        proc = subprocess.run([DOCKER, *args], input=input, capture_output=True, text=True,
                              timeout=timeout, env=self.env, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    def inspect(self, ref: str) -> dict[str, Any]:
        """`docker inspect` of one object."""
        return json.loads(self.docker("inspect", ref, check=True).stdout)[0]

    def runtime_states(self, cid: str = "*") -> list[str]:
        """The state directories the OCI runtimes (runc, crun) keep for container `cid` (a glob pattern; by
        default every container's)."""
        return [p for runtime in oci.NAMES for p in glob.glob(os.path.join(self.exec_root, runtime, cid))]


@contextmanager
def removed_after(d: Daemon) -> Iterator[list[str]]:
    """Container names a test uses on `d`; removed afterwards whatever happened."""
    created: list[str] = []
    yield created
    if created:
        d.docker("rm", "-f", *created)


def _cleanup_mounts(root: str) -> None:
    """Unmount whatever a failed test left mounted below `root`."""
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f]
    for m in sorted((m for m in mounts if m.startswith(root)), reverse=True):
        subprocess.run(["umount", "-l", m], check=False)


def _cleanup_root(d: Daemon) -> None:
    if d.proc:
        ids = d.docker("ps", "-aq").stdout.split()
        if ids:
            d.docker("rm", "-f", *ids)
    d.stop()
    _cleanup_mounts(d.root)
    shutil.rmtree(d.root, ignore_errors=True)


DEB_CACHE = "/var/cache/pydock-test-debs"  # .deb files the Python image is made of, kept between runs


def new_daemon(prefix: str) -> Daemon:
    """A daemon on a fresh temp root, with the docker CLI pointed at it (not started)."""
    root = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    d = Daemon(root=root, log_path=os.path.join(root, "pydockd.log"))
    d.env = {**os.environ, "DOCKER_HOST": d.url, "DOCKER_CONFIG": os.path.join(root, "docker-config")}
    d.env.pop("DOCKER_CONTEXT", None)
    return d


@contextmanager
def busybox_daemon(busybox_tar: str, prefix: str, extra_args: tuple[str, ...] = ()) -> Iterator[Daemon]:
    """A started daemon of a test's own (started with `extra_args`) with busybox imported; removed afterwards."""
    d = new_daemon(prefix)
    d.extra_args = list(extra_args)
    d.start()
    try:
        d.docker("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest", check=True)
        yield d
    finally:
        _cleanup_root(d)


CGROUP_ROOT = "/sys/fs/cgroup"


@pytest.fixture(scope="session", autouse=True)
def crun_host() -> str:
    """crun's path, on a host where it can run: crun (1.8) refuses a hybrid cgroup layout whose v2 tree holds
    controllers (this VM's holds hugetlb), so such controllers are mounted as cgroup v1 hierarchies, the
    layout systemd's hybrid mode sets up. The kernel keeps a v1 hierarchy that had cgroups until reboot, so
    it is left mounted.

    Before any test: every daemon of the suite then offers crun and, as on any host where crun runs, runs
    containers under it by default; test_oci_runtimes.py runs the core verbs under runc as well."""
    path = oci.find(oci.CRUN)
    assert path, "crun is not installed (scripts/setup.sh installs it)"
    if oci.why_unusable(oci.CRUN, path):
        for name in oci.hybrid_v2_controllers():
            target = os.path.join(CGROUP_ROOT, name)
            os.makedirs(target, exist_ok=True)
            subprocess.run(["mount", "-t", "cgroup", "-o", name, "cgroup", target], check=True)
    assert not oci.why_unusable(oci.CRUN, path)
    return path


@pytest.fixture(scope="session")
def daemon() -> Iterator[Daemon]:
    d = new_daemon("pydock-test-")
    d.start()
    try:
        yield d
    finally:
        _cleanup_root(d)


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_busybox_tar(str(tmp_path_factory.mktemp("busybox") / "busybox.tar"))


@pytest.fixture(scope="session")
def busybox(daemon: Daemon, busybox_tar: str) -> str:
    """`busybox:latest` imported into the session daemon; returns the image ID."""
    out = daemon.docker("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest", check=True)
    return out.stdout.strip()


@pytest.fixture(scope="module")
def shell(daemon: Daemon, busybox: str) -> Iterator[Any]:
    """An in-process IPython shell with pydock_ext loaded, pointed at the session daemon."""
    from IPython.core.interactiveshell import InteractiveShell

    saved = {k: os.environ.get(k) for k in ("PYDOCK_HOST", "DOCKER_HOST")}
    os.environ["PYDOCK_HOST"] = daemon.url
    os.environ.pop("DOCKER_HOST", None)
    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "pydock_ext")
    try:
        yield sh
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def python_image(daemon: Daemon) -> str:
    """`pydock-test/python:3` (python3 and ipykernel from this machine's Debian packages, plus busybox) in the
    session daemon, made as users make it without a registry; returns its name."""
    from pydock_cli import pythonimage
    tag = "pydock-test/python:3"
    pythonimage.make(tag, ipykernel=True, cache=DEB_CACHE, env=daemon.env)
    return tag


@pytest.fixture
def client(daemon: Daemon, busybox: str):  # type: ignore[no-untyped-def]
    import docker
    c = docker.DockerClient(base_url=daemon.url, timeout=60)
    yield c
    c.close()


@pytest.fixture
def names(daemon: Daemon) -> Iterator[list[str]]:
    """Container names a test uses on the session daemon; removed afterwards whatever happened."""
    with removed_after(daemon) as created:
        yield created


def new_name(names: list[str], prefix: str = "t-") -> str:
    """A unique container name, recorded in the `names` fixture's list for removal."""
    name = prefix + uuid.uuid4().hex[:10]
    names.append(name)
    return name
