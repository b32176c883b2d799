"""Rootless storage on fuse-overlayfs, end to end: the fallback for kernels that cannot mount overlayfs in a
user namespace, forced here (daemon.json "storage-driver") since this kernel can.

Two throwaway users run the same operations, one on fuse-overlayfs and one on the kernel's overlayfs (chosen
by the daemon's probe): every result must be the same, the fuse-overlayfs processes must outlive the daemon
as the containers do, and none of them, nor any mount, may be left once the containers are gone.
"""
from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import DOCKER
from test_rootless import SYSTEM_PYTHON, TOOLS, User, _add_user, _remove_user, env_root  # noqa: F401 (fixture)

from engine.linux.proc import running as process_running

pytestmark = [
    pytest.mark.rootless,
    pytest.mark.skipif(os.geteuid() != 0, reason="creating users needs root"),
    pytest.mark.skipif(not all(__import__("shutil").which(t) for t in (*TOOLS, "fuse-overlayfs"))
                       or not os.path.exists(SYSTEM_PYTHON) or not os.path.exists("/dev/fuse"),
                       reason="needs the rootless tools, fuse-overlayfs and /dev/fuse"),
]

DOCKERFILE = """FROM busybox
RUN mkdir -p /data/sub /keep && echo old > /data/sub/old && echo gone > /gone && echo kept > /keep/k
RUN rm /gone && rm -rf /data/sub && mkdir /data/sub && echo new > /data/sub/new
COPY note /keep/note
WORKDIR /made/here
"""
# what a container changes on top of the built image
CHANGES = "rm /keep/k; rm -rf /data/sub; mkdir /data/sub; echo again > /data/sub/again; echo added > /added"
LOOK = "ls -a /data/sub /keep; ls -d /made/here; cat /keep/note; test ! -e /gone && echo no-gone"


def _fuse_servers(user: User) -> list[int]:
    """The user's running fuse-overlayfs processes (exited ones waiting for init to reap them do not count)."""
    return [pid for pid in user.processes() if _comm(pid) == "fuse-overlayfs" and process_running(pid)]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _fuse_mounts(user: User) -> list[str]:
    """The fuse-overlayfs mounts in the user's holder's mount namespace (where the daemon makes them)."""
    exec_root = f"/tmp/pydock-{user.uid}/pydock"
    holder = int(Path(exec_root, "holder.pid").read_text())
    return [line.split()[4] for line in Path(f"/proc/{holder}/mountinfo").read_text().splitlines()
            if " - fuse.fuse-overlayfs " in line]


@pytest.fixture(scope="module")
def pair(env_root: str, busybox_tar: str) -> Iterator[tuple[User, User]]:  # noqa: F811 (env_root)
    """(on fuse-overlayfs through daemon.json, on the kernel's overlayfs by the daemon's own choice), each with
    busybox and an image built from DOCKERFILE."""
    tag = uuid.uuid4().hex[:6]
    made: list[User] = []
    try:
        for role in ("f", "k"):
            name = f"pdst{tag}{role}"
            _add_user(name, True)
            user = User(name, env_root)
            made.append(user)
            if role == "f":
                config = Path(user.pw.pw_dir, ".config", "pydock")
                config.mkdir(parents=True)
                (config / "daemon.json").write_text(json.dumps({"storage-driver": "fuse-overlayfs"}))
                subprocess.run(["chown", "-R", f"{user.uid}:{user.pw.pw_gid}", str(config.parent)], check=True)
            user.start()
            user.docker("import", "-c", 'CMD ["sh"]', "-", "busybox:latest", input=Path(busybox_tar).read_bytes(),
                        check=True)
            context = Path(user.pw.pw_dir, "ctx")
            context.mkdir()
            (context / "Dockerfile").write_text(DOCKERFILE)
            (context / "note").write_text("a note\n")
            subprocess.run(["chown", "-R", f"{user.uid}:{user.pw.pw_gid}", str(context)], check=True)
            build = subprocess.run(user.argv(DOCKER, "build", "-q", "-t", "built", str(context)), capture_output=True,
                                   text=True, env=user.env(DOCKER_HOST=f"unix://{user.socket}", DOCKER_BUILDKIT="0"),
                                   cwd=user.pw.pw_dir, timeout=120, check=False)
            assert build.returncode == 0, build.stderr + Path(user.log).read_text()[-3000:]
        yield made[0], made[1]
    finally:
        for user in made:
            _remove_user(user)


def test_the_driver_is_shown_and_the_kernels_is_the_default(pair: tuple[User, User]) -> None:
    fuse, kernel = pair
    assert fuse.docker("info", "--format", "{{.Driver}}", check=True).stdout.strip() == "fuse-overlayfs"
    assert kernel.docker("info", "--format", "{{.Driver}}", check=True).stdout.strip() == "overlay2"
    cid = fuse.docker("create", "busybox", "true", check=True).stdout.strip()
    try:
        shown = fuse.docker("inspect", "-f", "{{.Driver}} {{.GraphDriver.Name}}", cid, check=True).stdout.split()
        assert shown == ["fuse-overlayfs", "fuse-overlayfs"]
        for user, driver in ((fuse, "fuse-overlayfs"), (kernel, "overlay2")):
            image = user.docker("image", "inspect", "-f", "{{.GraphDriver.Name}}", "busybox", check=True)
            assert image.stdout.strip() == driver
    finally:
        fuse.docker("rm", cid, check=True)


def test_a_build_gives_the_same_image_on_both(pair: tuple[User, User]) -> None:
    """RUN (deletions, an opaque directory), COPY and WORKDIR layers read from fuse-overlayfs' upper
    directories, then run from a fuse-overlayfs mount of the image."""
    outs = [u.docker("run", "--rm", "built", "sh", "-c", LOOK, check=True).stdout for u in pair]
    assert outs[0] == outs[1]
    assert outs[0].split() == ["/data/sub:", ".", "..", "new", "/keep:", ".", "..", "k", "note", "/made/here",
                               "a", "note", "no-gone"]
    history = [u.docker("history", "--format", "{{.Size}}", "built", check=True).stdout for u in pair]
    assert history[0] == history[1]
    for user in pair:  # the build's own mounts and servers are gone
        assert not _fuse_servers(user) and not _fuse_mounts(user)


def test_container_lifecycle_on_fuse_overlayfs(pair: tuple[User, User]) -> None:
    """run, exec, diff, cp both ways, commit, restart, a daemon restart under a running container, rm: the
    same answers as on the kernel's overlayfs, and nothing left behind."""
    fuse, kernel = pair
    results: list[dict[str, str]] = []
    for user in (fuse, kernel):
        cid = user.docker("run", "-d", "built", "sh", "-c", f"{CHANGES}; exec sleep 300", check=True).stdout.strip()
        try:
            user.docker("exec", cid, "test", "-e", "/added", check=True)  # wait until the changes are made
            out: dict[str, str] = {}
            out["exec"] = user.docker("exec", cid, "sh", "-c", "ls -a /data/sub /keep; cat /added",
                                      check=True).stdout
            out["diff"] = user.docker("diff", cid, check=True).stdout
            out["cp-out"] = user.docker("cp", f"{cid}:/data/sub/again", "-", check=True).stdout[512:518]
            note = Path(user.pw.pw_dir, "in.txt")
            note.write_text("copied in\n")
            os.chown(note, user.uid, user.pw.pw_gid)
            user.docker("cp", str(note), f"{cid}:/data/sub/in.txt", check=True)
            out["cp-in"] = user.docker("exec", cid, "cat", "/data/sub/in.txt", check=True).stdout
            user.docker("commit", "--pause=false", cid, "committed", check=True)  # no freezer rootless on v1
            out["committed"] = user.docker("run", "--rm", "committed", "sh", "-c",
                                           "ls -a /data/sub /keep; cat /added", check=True).stdout
            if user is fuse:
                merged = json.loads(user.docker("inspect", cid, check=True).stdout)[0]["GraphDriver"]["Data"][
                    "MergedDir"]
                assert merged in _fuse_mounts(user)
                servers = _fuse_servers(user)
                assert servers
                user.stop()  # the servers, like the container, outlive the daemon
                assert set(servers) <= set(_fuse_servers(user))
                user.start()
            user.docker("restart", "-t", "1", cid, check=True)
            user.docker("exec", cid, "test", "-e", "/added", check=True)
            out["restarted"] = user.docker("exec", cid, "ls", "-a", "/data/sub", check=True).stdout
        finally:
            user.docker("rm", "-f", cid, check=True)
            user.docker("rmi", "committed")
        results.append(out)
    assert results[0] == results[1]
    assert {"A /added", "D /keep/k", "A /data/sub/again"} <= set(results[0]["diff"].splitlines())
    assert results[0]["exec"].split() == ["/data/sub:", ".", "..", "again", "/keep:", ".", "..", "note", "added"]
    assert results[0]["cp-out"] == "again\n" and results[0]["cp-in"] == "copied in\n"
    assert results[0]["restarted"].split() == [".", "..", "again"]  # the command made /data/sub afresh
    assert not _fuse_servers(fuse) and not _fuse_mounts(fuse)


def test_volume_filled_from_a_fuse_overlayfs_image_root(pair: tuple[User, User]) -> None:
    """A new volume on a directory of the image is filled from a read-only mount of the image's layers."""
    fuse = pair[0]
    try:
        out = fuse.docker("run", "--rm", "-v", "stvol:/data", "built", "ls", "/data/sub", check=True).stdout
        assert out == "new\n"
    finally:
        fuse.docker("volume", "rm", "stvol")
    assert not _fuse_servers(fuse) and not _fuse_mounts(fuse)
