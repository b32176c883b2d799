"""Container filesystem access through the real docker CLI and SDK: cp, export, diff, commit."""
from __future__ import annotations

import base64
import io
import json
import os
import secrets
import tarfile
import time
from collections.abc import Iterator

import docker
import pytest


def _mounts_under(root: str) -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f if line.split()[4].startswith(root)}


def _assert_no_stray_mounts(daemon) -> None:
    """Only running containers' rootfs may be mounted under the data root."""
    running = daemon.docker("ps", "-q", "--no-trunc").stdout.split()
    allowed = {os.path.join(daemon.data_root, "containers", cid, "merged") for cid in running}
    assert _mounts_under(daemon.data_root) - allowed == set()


@pytest.fixture
def name(daemon) -> Iterator[str]:
    """A fresh container name; after the test, checks for leftover mounts, then removes the container."""
    n = "arch-" + secrets.token_hex(4)
    try:
        yield n
        _assert_no_stray_mounts(daemon)
    finally:
        daemon.docker("rm", "-f", n)


def _container(daemon, name: str, script: str, running: bool) -> None:
    """A container whose rootfs `script` prepared; left running (sleeping) or exited."""
    if running:
        daemon.docker("run", "-d", "--name", name, "busybox", "sh", "-c", f"{script}; touch /ready; sleep 1000",
                      check=True)
        _wait_for(daemon, name, "/ready")
    else:
        daemon.docker("run", "--name", name, "busybox", "sh", "-c", script, check=True)


def _wait_for(daemon, name: str, path: str) -> None:
    deadline = time.time() + 10
    while daemon.docker("cp", f"{name}:{path}", "-").returncode != 0:
        assert time.time() < deadline, f"{path} never appeared in {name}"
        time.sleep(0.1)


def _read_back(daemon, name: str, path: str, tmp_path) -> str:
    dest = tmp_path / ("back-" + secrets.token_hex(3))
    daemon.docker("cp", f"{name}:{path}", str(dest), check=True)
    return dest.read_text()


@pytest.mark.parametrize("running", [True, False], ids=["running", "stopped"])
def test_cp_from_container(daemon, busybox, name, tmp_path, running):
    _container(daemon, name, "mkdir -p /data/sub && echo one > /data/sub/f && echo two > /data/top", running)
    daemon.docker("cp", f"{name}:/data/top", str(tmp_path / "top.txt"), check=True)
    assert (tmp_path / "top.txt").read_text() == "two\n"

    daemon.docker("cp", f"{name}:/data", str(tmp_path / "copy"), check=True)
    assert (tmp_path / "copy" / "sub" / "f").read_text() == "one\n"
    assert (tmp_path / "copy" / "top").read_text() == "two\n"

    (tmp_path / "existing").mkdir()
    daemon.docker("cp", f"{name}:/data", str(tmp_path / "existing"), check=True)
    assert (tmp_path / "existing" / "data" / "sub" / "f").read_text() == "one\n"
    daemon.docker("cp", f"{name}:/data/.", str(tmp_path / "existing"), check=True)
    assert (tmp_path / "existing" / "top").read_text() == "two\n"


@pytest.mark.parametrize("running", [True, False], ids=["running", "stopped"])
def test_cp_into_container(daemon, busybox, name, tmp_path, running):
    _container(daemon, name, "mkdir /dst && echo old > /dst/file", running)
    (tmp_path / "local.txt").write_text("hello\n")
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "a").write_text("A\n")

    daemon.docker("cp", str(tmp_path / "local.txt"), f"{name}:/dst/", check=True)
    daemon.docker("cp", str(tmp_path / "local.txt"), f"{name}:/dst/renamed", check=True)
    daemon.docker("cp", str(tmp_path / "local.txt"), f"{name}:/dst/file", check=True)
    daemon.docker("cp", str(tmp_path / "tree"), f"{name}:/dst", check=True)
    daemon.docker("cp", str(tmp_path / "tree"), f"{name}:/newdir", check=True)

    assert _read_back(daemon, name, "/dst/local.txt", tmp_path) == "hello\n"
    assert _read_back(daemon, name, "/dst/renamed", tmp_path) == "hello\n"
    assert _read_back(daemon, name, "/dst/file", tmp_path) == "hello\n"
    assert _read_back(daemon, name, "/dst/tree/sub/a", tmp_path) == "A\n"
    assert _read_back(daemon, name, "/newdir/sub/a", tmp_path) == "A\n"


def test_cp_into_stopped_container_is_seen_at_next_start(daemon, busybox, name, tmp_path):
    daemon.docker("create", "--name", name, "busybox", "cat", "/etc/motd", check=True)
    (tmp_path / "motd").write_text("from the host\n")
    daemon.docker("cp", str(tmp_path / "motd"), f"{name}:/etc/", check=True)
    out = daemon.docker("start", "-a", name)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "from the host\n"


def test_cp_archive_mode_uses_container_user(daemon, client, name, tmp_path):
    daemon.docker("create", "--name", name, "--user", "user", "busybox", check=True)
    (tmp_path / "owned").write_text("x\n")
    daemon.docker("cp", "-a", str(tmp_path / "owned"), f"{name}:/tmp/", check=True)
    daemon.docker("cp", str(tmp_path / "owned"), f"{name}:/tmp/plain", check=True)
    stream, _ = client.containers.get(name).get_archive("/tmp")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        assert (tar.getmember("tmp/owned").uid, tar.getmember("tmp/owned").gid) == (1000, 1000)
        assert tar.getmember("tmp/plain").uid == os.getuid()


def test_cp_overwrite_dir_with_non_dir_is_refused(daemon, busybox, name, tmp_path):
    _container(daemon, name, "mkdir -p /dst && echo x > /dst/f", running=False)
    (tmp_path / "f").mkdir()
    out = daemon.docker("cp", str(tmp_path / "f"), f"{name}:/dst/")
    assert out.returncode == 1
    assert 'cannot overwrite non-directory "/dst/f" with directory "/dst"' in out.stderr


def test_sdk_archive_roundtrip(client, name):
    c = client.containers.run("busybox", ["sh", "-c", "mkdir /box; sleep 1000"], name=name, detach=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mode, info.uid, info.gid = 6, 0o640, 1000, 1000
        tar.addfile(info, io.BytesIO(b"hello\n"))
    deadline = time.time() + 10
    while True:
        try:
            assert c.put_archive("/box", buf.getvalue())
            break
        except docker.errors.NotFound:
            assert time.time() < deadline
            time.sleep(0.1)
    stream, stat = c.get_archive("/box/hello.txt")
    assert stat["name"] == "hello.txt" and stat["size"] == 6 and stat["mode"] == 0o640
    assert stat["linkTarget"] == ""
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.getmember("hello.txt")
        assert (member.uid, member.gid, member.mode) == (1000, 1000, 0o640)
        assert tar.extractfile(member).read() == b"hello\n"

    _, stat = c.get_archive("/box")
    assert stat["name"] == "box" and stat["mode"] == (1 << 31) | 0o755
    _, stat = c.get_archive("/bin/sh")
    assert stat["mode"] & (1 << 27) and stat["linkTarget"] == "/bin/busybox"

    with pytest.raises(docker.errors.APIError) as err:
        c.put_archive("/box/hello.txt", buf.getvalue())
    assert err.value.status_code == 400 and "extraction point is not a directory" in str(err.value)


def test_head_on_missing_path(daemon, client, name, tmp_path):
    daemon.docker("create", "--name", name, "busybox", check=True)
    api = client.api
    resp = api.head(api._url("/containers/{0}/archive", name), params={"path": "/missing"})
    assert resp.status_code == 404
    resp = api.head(api._url("/containers/{0}/archive", name), params={"path": "/etc/passwd"})
    assert resp.status_code == 200
    stat = json.loads(base64.b64decode(resp.headers["X-Docker-Container-Path-Stat"]))
    assert stat["name"] == "passwd" and stat["mode"] == 0o644

    out = daemon.docker("cp", f"{name}:/missing", str(tmp_path / "x"))
    assert out.returncode == 1
    assert out.stderr.strip() == f"Error response from daemon: Could not find the file /missing in container {name}"
    assert not (tmp_path / "x").exists()


def test_symlinks_cannot_reach_the_host(daemon, busybox, name, tmp_path):
    """/x -> / and /up -> /../../../../tmp resolve inside the container root, for reads and writes."""
    token = "pydock-escape-" + secrets.token_hex(4)
    host_dir = f"/tmp/{token}"
    os.makedirs(host_dir)
    try:
        with open(f"{host_dir}/secret", "w") as f:
            f.write("host\n")
        script = (f"ln -s / /x; ln -s /../../../../tmp /up; mkdir /tmp/{token}; echo inner > /tmp/{token}/secret; "
                  f"ln -s /tmp/{token}/secret /abs; ln -s /etc/shadow /shadow")
        _container(daemon, name, script, running=True)

        assert _read_back(daemon, name, f"/x/tmp/{token}/secret", tmp_path) == "inner\n"
        assert _read_back(daemon, name, f"/up/{token}/secret", tmp_path) == "inner\n"
        daemon.docker("cp", "-L", f"{name}:/abs", str(tmp_path / "followed"), check=True)
        assert (tmp_path / "followed").read_text() == "inner\n"
        daemon.docker("cp", f"{name}:/abs", str(tmp_path / "link"), check=True)
        assert os.readlink(tmp_path / "link") == f"/tmp/{token}/secret"
        out = daemon.docker("cp", "-L", f"{name}:/shadow", str(tmp_path / "shadow"))
        assert out.returncode == 1 and "Could not find the file /etc/shadow" in out.stderr

        (tmp_path / "planted").write_text("planted\n")
        daemon.docker("cp", str(tmp_path / "planted"), f"{name}:/up/{token}/", check=True)
        daemon.docker("cp", str(tmp_path / "planted"), f"{name}:/x/tmp/{token}/via-root", check=True)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(f"up/{token}/from-tar")
            info.size = 4
            tar.addfile(info, io.BytesIO(b"tar\n"))
        docker.DockerClient(base_url=daemon.url).containers.get(name).put_archive("/", buf.getvalue())

        assert sorted(os.listdir(host_dir)) == ["secret"]
        with open(f"{host_dir}/secret") as f:
            assert f.read() == "host\n"
        listing = tmp_path / "listing"
        daemon.docker("cp", f"{name}:/tmp/{token}", str(listing), check=True)
        assert sorted(os.listdir(listing)) == ["from-tar", "planted", "secret", "via-root"]
    finally:
        for entry in os.listdir(host_dir):
            os.unlink(os.path.join(host_dir, entry))
        os.rmdir(host_dir)


def test_put_archive_refuses_parent_escapes(client, name):
    c = client.containers.create("busybox", name=name)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../../../../evil")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(docker.errors.APIError) as err:
        c.put_archive("/tmp", buf.getvalue())
    assert err.value.status_code == 400


def test_export_contains_rootfs(daemon, busybox, name, tmp_path):
    _container(daemon, name, "echo exported > /root/mark", running=False)
    out = tmp_path / "export.tar"
    daemon.docker("export", "-o", str(out), name, check=True)
    with tarfile.open(out) as tar:
        names = tar.getnames()
        assert "bin/busybox" in names and tar.getmember("bin/busybox").isreg()
        assert tar.getmember("bin/sh").issym()
        assert tar.extractfile("root/mark").read() == b"exported\n"


def test_diff_like_docker(daemon, busybox, name):
    _container(daemon, name, "echo hi > /tmp/new; rm /etc/group; echo x >> /etc/passwd; mkdir -p /a/b; touch /a/b/c",
               running=False)
    out = daemon.docker("diff", name, check=True)
    assert out.stdout.splitlines() == ["A /a", "A /a/b", "A /a/b/c", "C /etc", "D /etc/group", "C /etc/passwd",
                                       "C /tmp", "A /tmp/new"]


def test_diff_of_untouched_container_is_empty(daemon, busybox, name, client):
    daemon.docker("run", "--name", name, "busybox", "true", check=True)
    assert daemon.docker("diff", name, check=True).stdout == ""
    assert client.containers.get(name).diff() is None


def test_the_runtime_makes_no_mount_points_in_the_writable_layer(daemon, busybox, name):
    """The image lacks /etc/hosts, /proc and the other mount points: the runtime finds them in the init layer
    every container shares (engine/image/layers.py) instead of creating them in the container's own layer at
    each start; inside, /etc/hosts is still the container's."""
    out = daemon.docker("run", "--name", name, "--add-host", "pinned.test:10.9.8.7", "busybox", "cat", "/etc/hosts",
                        check=True)
    assert "10.9.8.7\tpinned.test" in out.stdout
    data = daemon.inspect(name)["GraphDriver"]["Data"]
    assert os.listdir(data["UpperDir"]) == []
    init = data["LowerDir"].split(":")[0]
    assert sorted(os.listdir(init)) == ["dev", "etc", "proc", "sys"]
    assert sorted(os.listdir(os.path.join(init, "etc"))) == ["hostname", "hosts", "resolv.conf"]


def test_commit_then_run(daemon, busybox, name):
    repo = "committed-" + secrets.token_hex(3)
    _container(daemon, name, "echo baked > /root/file", running=False)
    out = daemon.docker("commit", "-m", "my message", "-a", "me", name, f"{repo}:v1", check=True)
    image_id = out.stdout.strip()
    assert image_id.startswith("sha256:")
    try:
        assert daemon.docker("run", "--rm", f"{repo}:v1", "cat", "/root/file", check=True).stdout == "baked\n"
        history = daemon.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}",
                                f"{repo}:v1", check=True).stdout.splitlines()
        assert history[0] == "sh -c echo baked > /root/file|my message"
        assert len(history) == len(daemon.docker("history", "-q", "busybox").stdout.splitlines()) + 1
        info = json.loads(daemon.docker("image", "inspect", f"{repo}:v1", check=True).stdout)[0]
        assert info["Author"] == "me" and info["Parent"] == busybox
        assert info["Config"]["Cmd"] == ["sh", "-c", "echo baked > /root/file"]
        assert len(info["RootFS"]["Layers"]) == 2
    finally:
        daemon.docker("rmi", "-f", f"{repo}:v1")


def test_commit_changes_and_pause(daemon, busybox, name):
    repo = "changed-" + secrets.token_hex(3)
    since = str(int(time.time()) - 1)
    _container(daemon, name, "echo live > /root/live", running=True)
    out = daemon.docker("commit", "-c", 'CMD ["echo","x"]', "-c", "ENV FOO=bar", name, repo, check=True)
    image_id = out.stdout.strip()
    try:
        assert daemon.docker("run", "--rm", repo, check=True).stdout == "x\n"
        assert "FOO=bar" in daemon.docker("run", "--rm", repo, "env", check=True).stdout
        state = json.loads(daemon.docker("inspect", name, check=True).stdout)[0]["State"]
        assert state["Running"] and not state["Paused"]
        events = daemon.docker("events", "--since", since, "--until", str(int(time.time()) + 1), "--filter",
                               f"container={name}", "--format", "{{json .}}", check=True).stdout.splitlines()
        actions = [json.loads(e)["Action"] for e in events]
        assert actions[-3:] == ["pause", "unpause", "commit"]
        attrs = json.loads(events[-1])["Actor"]["Attributes"]
        assert attrs["imageID"] == image_id and attrs["imageRef"] == f"{repo}:latest"
    finally:
        daemon.docker("rmi", "-f", repo)


def test_sdk_commit_with_config(client, name):
    c = client.containers.run("busybox", ["sh", "-c", "echo sdk > /root/sdk"], name=name, detach=True)
    c.wait()
    image = c.commit(repository="sdkcommit", tag="t", conf={"Labels": {"k": "v"}}, changes=["WORKDIR /root"])
    try:
        assert image.labels == {"k": "v"}
        assert image.attrs["Config"]["WorkingDir"] == "/root"
        assert client.containers.run(image.id, ["cat", "sdk"], remove=True) == b"sdk\n"
    finally:
        client.images.remove(image.id, force=True)


def test_commit_bad_change_is_rejected(daemon, busybox, name):
    daemon.docker("create", "--name", name, "busybox", check=True)
    out = daemon.docker("commit", "-c", "RUN echo no", name)
    assert out.returncode == 1 and "RUN is not a valid change command" in out.stderr
