"""Bad input against a running daemon: clear Docker errors, nothing written outside, nothing leaked.

Raw HTTP over the unix socket sends what the docker CLI never would
(malformed JSON, wrong types); the real CLI imports hostile tarballs and runs
containers whose cleanup is then checked on the host (mounts, cgroups, shim
processes, runc state).
"""
from __future__ import annotations

import http.client
import io
import json
import os
import socket
import tarfile
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

NAME_ERROR = "Invalid container name ({}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def api(daemon: Any, method: str, path: str, body: bytes | None = None,
        query: dict[str, str] | None = None) -> tuple[int, Any]:
    """One raw request to the daemon; returns the status and the decoded JSON body (or text)."""
    conn = _UnixConnection(daemon.socket)
    try:
        url = "/v1.47" + path + ("?" + urllib.parse.urlencode(query) if query else "")
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, url, body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw)
    except ValueError:
        return resp.status, raw.decode(errors="replace")


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def container_ids(daemon: Any, running_only: bool = False) -> set[str]:
    status, body = api(daemon, "GET", "/containers/json", query={} if running_only else {"all": "1"})
    assert status == 200
    return {c["Id"] for c in body}


def image_ids(daemon: Any) -> set[str]:
    status, body = api(daemon, "GET", "/images/json", query={"all": "1"})
    assert status == 200
    return {i["Id"] for i in body}


def store_leftovers(daemon: Any) -> list[str]:
    """Half-written store entries: staging layer dirs, import spools, temp blobs."""
    data = daemon.data_root
    out = [f"layers/{n}" for n in os.listdir(os.path.join(data, "layers")) if n.startswith(".tmp-")]
    out += [f"tmp/{n}" for n in os.listdir(os.path.join(data, "tmp")) if n.startswith("import-")]
    out += [f"blobs/{n}" for n in os.listdir(os.path.join(data, "blobs", "sha256")) if n.startswith(".tmp-")]
    return out


# ---- container create: JSON and types --------------------------------------
@pytest.mark.parametrize("body,message", [
    (b"{not json", "invalid JSON"),
    (b'{"Image": "busybox"', "invalid JSON"),
    (b'{"Image": "busybox"} trailing', "invalid JSON"),
    (b"", "invalid JSON: got EOF while reading request body"),
    (b"[" * 100_000, "invalid JSON"),
    (b'{"Image": "busybox", "StopTimeout": ' + b"9" * 5000 + b"}", "invalid JSON"),
    (b"\xff\xfe\x00garbage", "invalid JSON"),
])
def test_create_malformed_json_is_400(daemon: Any, busybox: str, body: bytes, message: str) -> None:
    before = container_ids(daemon)
    status, reply = api(daemon, "POST", "/containers/create", body)
    assert status == 400, reply
    assert reply["message"].startswith(message)
    assert container_ids(daemon) == before


@pytest.mark.parametrize("body", [
    [],
    "busybox",
    None,
    {"Image": 5},
    {"Image": "busybox", "Cmd": 5},
    {"Image": "busybox", "Cmd": [1, 2]},
    {"Image": "busybox", "Entrypoint": {"a": 1}},
    {"Image": "busybox", "Env": "A=1"},
    {"Image": "busybox", "Env": [1]},
    {"Image": "busybox", "Labels": ["a"]},
    {"Image": "busybox", "Labels": {"a": 1}},
    {"Image": "busybox", "Hostname": 7},
    {"Image": "busybox", "User": ["root"]},
    {"Image": "busybox", "WorkingDir": 1},
    {"Image": "busybox", "ExposedPorts": ["80/tcp"]},
    {"Image": "busybox", "Volumes": "/data"},
    {"Image": "busybox", "HostConfig": []},
    {"Image": "busybox", "HostConfig": {"RestartPolicy": "always"}},
    {"Image": "busybox", "HostConfig": {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": "x"}}},
    {"Image": "busybox", "HostConfig": {"NetworkMode": ["host"]}},
    {"Image": "busybox", "HostConfig": {"CapAdd": 5}},
    {"Image": "busybox", "HostConfig": {"CapAdd": [1]}},
    {"Image": "busybox", "HostConfig": {"CapAdd": ["NOT_A_CAP"]}},
])
def test_create_wrong_types_are_400(daemon: Any, busybox: str, body: Any) -> None:
    before = container_ids(daemon)
    status, reply = api(daemon, "POST", "/containers/create", json.dumps(body).encode())
    assert status == 400, reply
    assert isinstance(reply, dict) and reply["message"]
    assert container_ids(daemon) == before


def test_create_ignores_unknown_fields(daemon: Any, busybox: str) -> None:
    body = {"Image": "busybox", "Cmd": ["true"], "NoSuchField": {"x": 1}, "HostConfig": {"Bogus": True},
            "NetworkingConfig": {"Whatever": 1}}
    status, reply = api(daemon, "POST", "/containers/create", json.dumps(body).encode())
    assert status == 201, reply
    cid = reply["Id"]
    try:
        status, info = api(daemon, "GET", f"/containers/{cid}/json")
        assert status == 200 and info["Config"]["Cmd"] == ["true"]
    finally:
        assert api(daemon, "DELETE", f"/containers/{cid}")[0] == 204


# ---- names and references ----------------------------------------------------
@pytest.mark.parametrize("name", ["../x", "a/b", "x" * 10_000, "a\nb", "/../../etc"])
def test_create_hostile_names_are_400(daemon: Any, busybox: str, name: str) -> None:
    before = container_ids(daemon)
    status, reply = api(daemon, "POST", "/containers/create",
                        json.dumps({"Image": "busybox", "Cmd": ["true"]}).encode(), {"name": name})
    assert status == 400, reply
    shown = name if len(name) <= 100 else name[:100] + "..."
    assert reply["message"] == NAME_ERROR.format(shown)
    assert container_ids(daemon) == before
    assert not os.path.exists(os.path.join(daemon.data_root, "x"))


def test_cli_create_with_bad_name(daemon: Any, busybox: str) -> None:
    before = container_ids(daemon)
    out = daemon.docker("create", "--name", "../x", "busybox", "true")
    assert out.returncode != 0
    assert NAME_ERROR.format("../x") in out.stderr
    out = daemon.docker("rename", "nonexistent-container", "a/b")
    assert out.returncode == 1 and "No such container: nonexistent-container" in out.stderr
    assert container_ids(daemon) == before


def test_rename_to_hostile_name_is_400(daemon: Any, busybox: str) -> None:
    cid = daemon.docker("create", "--name", "rename-victim", "busybox", "true", check=True).stdout.strip()
    try:
        status, reply = api(daemon, "POST", f"/containers/{cid}/rename", query={"name": "../x"})
        assert status == 400 and reply["message"] == NAME_ERROR.format("../x")
        assert api(daemon, "GET", f"/containers/{cid}/json")[1]["Name"] == "/rename-victim"
    finally:
        daemon.docker("rm", "-f", cid)


@pytest.mark.parametrize("method,path,message", [
    ("GET", "/containers/x/json", "No such container: x"),
    ("POST", "/containers/x/start", "No such container: x"),
    ("DELETE", "/containers/x", "No such container: x"),
    ("GET", "/containers/..%2F..%2Fetc/json", "No such container: ../../etc"),
    ("GET", "/containers/" + "a" * 5000 + "/json", "No such container: "),
    ("GET", "/images/x/json", "No such image: x"),
    ("DELETE", "/images/x", "No such image: x"),
    ("GET", "/images/../../etc/passwd/json", "No such image: "),
    ("GET", "/images/" + "a" * 64 + "/json", "No such image: "),
])
def test_missing_objects_are_404(daemon: Any, busybox: str, method: str, path: str, message: str) -> None:
    status, reply = api(daemon, method, path)
    assert status == 404, reply
    assert reply["message"].startswith(message)
    assert len(reply["message"]) < 400


def test_cli_reports_missing_objects(daemon: Any, busybox: str) -> None:
    out = daemon.docker("inspect", "--type", "container", "x")
    assert out.returncode == 1 and "No such container: x" in out.stderr
    out = daemon.docker("rm", "x")
    assert out.returncode == 1 and "No such container: x" in out.stderr
    out = daemon.docker("rmi", "x")
    assert out.returncode == 1 and "No such image: x" in out.stderr


def test_bad_tag_reference_is_400(daemon: Any, busybox: str) -> None:
    for repo in ("../x", "UPPER", "a" * 64, "x" * 300):
        status, reply = api(daemon, "POST", "/images/busybox/tag", query={"repo": repo})
        assert status == 400, (repo, reply)
        assert "repository name" in reply["message"] or reply["message"].startswith("invalid reference format")
    out = daemon.docker("tag", "busybox", "Busybox:x")
    assert out.returncode == 1
    assert "invalid reference format: repository name (library/Busybox) must be lowercase" in out.stderr


def test_bad_filters_and_versions_are_400(daemon: Any, busybox: str) -> None:
    for filters in ("{not json", "[" * 10_000, '["a"]'):
        status, reply = api(daemon, "GET", "/containers/json", query={"filters": filters})
        assert status == 400 and reply["message"].startswith("invalid filter"), reply
    conn = _UnixConnection(daemon.socket)
    conn.request("GET", "/v1..2/version")
    resp = conn.getresponse()
    assert resp.status == 400 and json.loads(resp.read())["message"].startswith("invalid API version")
    conn.close()


# ---- hostile image tarballs -------------------------------------------------
def tar_entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"evil", linkname: str = "",
              devmajor: int = 0, devminor: int = 0) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o755
    info.devmajor, info.devminor = devmajor, devminor
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def write_tar(path: str, entries: list[tuple[tarfile.TarInfo, bytes]]) -> str:
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


@pytest.fixture
def marker(tmp_path: Any) -> Iterator[str]:
    """A host directory hostile tarballs try to write into."""
    d = str(tmp_path / "marker")
    os.mkdir(d)
    yield d


def _written_outside(marker: str) -> list[str]:
    hits = os.listdir(marker)
    hits += [p for p in ("/evil", "/etc/evil", "/tmp/evil") if os.path.lexists(p)]
    return hits


def hostile_tars(marker: str) -> dict[str, list[tuple[tarfile.TarInfo, bytes]]]:
    depth = "../" * 20
    return {
        "dotdot": [tar_entry("ok"), tar_entry("../evil")],
        "dotdot-deep": [tar_entry(depth + marker.lstrip("/") + "/evil")],
        "symlink-then-entry": [tar_entry("link", tarfile.SYMTYPE, linkname=marker),
                               tar_entry("link/evil")],
        "relative-symlink-then-entry": [tar_entry("link", tarfile.SYMTYPE, linkname=depth + marker.lstrip("/")),
                                        tar_entry("link/evil")],
        "symlink-then-file": [tar_entry("f", tarfile.SYMTYPE, linkname=marker + "/evil"),
                              tar_entry("f")],
        "hardlink-out": [tar_entry("h", tarfile.LNKTYPE, linkname="../../etc/passwd")],
        "hardlink-via-symlink": [tar_entry("s", tarfile.SYMTYPE, linkname="/etc/passwd"),
                                 tar_entry("h", tarfile.LNKTYPE, linkname="s")],
    }


@pytest.mark.parametrize("case", sorted(hostile_tars("/m")))
def test_import_hostile_tar_is_rejected_and_contained(daemon: Any, busybox: str, marker: str, tmp_path: Any,
                                                      case: str) -> None:
    images_before = image_ids(daemon)
    passwd_before = os.stat("/etc/passwd")
    path = write_tar(str(tmp_path / "evil.tar"), hostile_tars(marker)[case])
    out = daemon.docker("import", path, f"hostile:{case}")
    if case == "symlink-then-file":
        # Docker replaces the symlink with the file: allowed, but the file lands inside the layer
        assert out.returncode == 0, out.stderr
        daemon.docker("rmi", f"hostile:{case}", check=True)
    else:
        assert out.returncode == 1, out.stdout
        assert "Error response from daemon" in out.stderr and "invalid" in out.stderr
        status, reply = api(daemon, "POST", "/images/create", _read(path),
                            {"fromSrc": "-", "repo": "hostile", "tag": case})
        assert status == 400, reply
    assert _written_outside(marker) == []
    after = os.stat("/etc/passwd")
    assert (after.st_nlink, after.st_mode, after.st_mtime_ns) == \
        (passwd_before.st_nlink, passwd_before.st_mode, passwd_before.st_mtime_ns)
    assert store_leftovers(daemon) == []
    assert image_ids(daemon) == images_before
    assert "hostile" not in daemon.docker("images", check=True).stdout


def _image_layer_dir(daemon: Any, ref: str) -> str:
    status, info = api(daemon, "GET", f"/images/{ref}/json")
    assert status == 200, info
    return info["GraphDriver"]["Data"]["UpperDir"]


def test_import_absolute_paths_land_inside_the_layer(daemon: Any, busybox: str, marker: str,
                                                    tmp_path: Any) -> None:
    path = write_tar(str(tmp_path / "abs.tar"), [tar_entry(marker + "/evil"), tar_entry("/etc/evil")])
    out = daemon.docker("import", path, "hostile:absolute")
    assert out.returncode == 0, out.stderr
    try:
        layer = _image_layer_dir(daemon, "hostile:absolute")
        assert os.path.isfile(os.path.join(layer, marker.lstrip("/"), "evil"))
        assert os.path.isfile(os.path.join(layer, "etc", "evil"))
        assert _written_outside(marker) == []
        assert os.path.realpath(layer).startswith(os.path.realpath(daemon.data_root) + "/")
    finally:
        daemon.docker("rmi", "hostile:absolute")
    assert store_leftovers(daemon) == []


def test_import_skips_device_nodes(daemon: Any, busybox: str, tmp_path: Any) -> None:
    path = write_tar(str(tmp_path / "dev.tar"), [
        tar_entry("dev/", tarfile.DIRTYPE),
        tar_entry("dev/mem", tarfile.CHRTYPE, devmajor=1, devminor=1),
        tar_entry("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0),
        tar_entry("dev/alias", tarfile.LNKTYPE, linkname="dev/mem"),
        tar_entry("dev/keep"),
    ])
    status, reply = api(daemon, "POST", "/images/create", _read(path),
                        {"fromSrc": "-", "repo": "hostile", "tag": "devices"})
    if status == 200:
        try:
            layer = _image_layer_dir(daemon, "hostile:devices")
            assert sorted(os.listdir(os.path.join(layer, "dev"))) == ["keep"]
        finally:
            daemon.docker("rmi", "hostile:devices", check=True)
    else:
        assert status == 400, reply  # the hard link to the skipped device may be refused
    assert store_leftovers(daemon) == []


def test_import_garbage_is_400(daemon: Any, busybox: str) -> None:
    images_before = image_ids(daemon)
    for data in (b"not a tarball at all" * 50, b"\x1f\x8b\x08\x00garbage-gzip" * 10, b"BZh9garbage" * 10):
        status, reply = api(daemon, "POST", "/images/create", data, {"fromSrc": "-", "repo": "garbage"})
        assert status == 400, reply
        assert reply["message"]
    assert store_leftovers(daemon) == []
    assert image_ids(daemon) == images_before


# ---- hostile image content at run time --------------------------------------
def _busybox_variant(busybox_tar: str, out: str, passwd_link: str) -> str:
    """The busybox rootfs with /etc/passwd replaced by a symlink."""
    with tarfile.open(busybox_tar) as src, tarfile.open(out, "w") as dst:
        for m in src:
            if m.name == "etc/passwd":
                link = tarfile.TarInfo("etc/passwd")
                link.type, link.linkname = tarfile.SYMTYPE, passwd_link
                dst.addfile(link)
            else:
                dst.addfile(m, src.extractfile(m) if m.isreg() else None)
    return out


@pytest.mark.parametrize("target", ["/../../../../etc/shadow", "../../../../../../etc/passwd", "/proc/1/environ"])
def test_passwd_symlink_cannot_read_host_files(daemon: Any, busybox: str, busybox_tar: str, tmp_path: Any,
                                               target: str) -> None:
    tar = _busybox_variant(busybox_tar, str(tmp_path / "evilpasswd.tar"), target)
    daemon.docker("import", "-c", 'CMD ["id"]', tar, "evilpasswd", check=True)
    try:
        out = daemon.docker("run", "--rm", "--user", "nobody", "evilpasswd")
        assert out.returncode != 0, out.stdout  # the host's /etc/passwd and /etc/shadow do have nobody
        assert "unable to find user nobody: no matching entries in passwd file" in out.stderr
        out = daemon.docker("run", "--rm", "--user", "1234:5678", "evilpasswd")
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("uid=1234 gid=5678")
    finally:
        daemon.docker("rmi", "-f", "evilpasswd")


# ---- cleanup after rm -f and failed starts ------------------------------------
def _mounts_of(cid: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if cid in line]


def _cgroup_dirs(cid: str) -> list[str]:
    candidates = [f"/sys/fs/cgroup/{c}/pydock/{cid}" for c in
                  ("memory", "pids", "cpu", "cpuacct", "blkio", "devices", "freezer", "cpuset", "systemd")]
    candidates.append(f"/sys/fs/cgroup/pydock/{cid}")
    return [p for p in candidates if os.path.exists(p)]


def _processes_in(directory: str) -> list[int]:
    """PIDs whose working directory is `directory` (a shim runs in its state dir), even once deleted."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if cwd == directory or cwd == directory + " (deleted)":
            pids.append(int(pid))
    return pids


def _leaks(daemon: Any, cid: str) -> dict[str, Any]:
    state_dir = os.path.join(daemon.exec_root, "s", cid[:16])
    return {
        "mounts": _mounts_of(cid),
        "cgroups": _cgroup_dirs(cid),
        "shim": _processes_in(state_dir),
        "shim_dir": os.path.exists(state_dir),
        "runtime_state": bool(daemon.runtime_states(cid)),
        "container_dir": os.path.exists(os.path.join(daemon.data_root, "containers", cid)),
        "run_dir": os.path.exists(os.path.join(daemon.exec_root, "containers", cid)),  # bundle, /etc files
    }


def _wait_until(cond: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def test_rm_force_leaves_no_mounts_cgroups_or_processes(daemon: Any, busybox: str) -> None:
    cid = daemon.docker("run", "-d", "busybox", "sleep", "1000", check=True).stdout.strip()
    pid = api(daemon, "GET", f"/containers/{cid}/json")[1]["State"]["Pid"]
    assert pid > 0 and os.path.exists(f"/proc/{pid}")
    running = _leaks(daemon, cid)
    assert running["mounts"] and running["cgroups"] and running["shim"] and running["runtime_state"], running
    assert running["container_dir"] and running["run_dir"], running
    daemon.docker("rm", "-f", cid, check=True)
    assert _wait_until(lambda: not any(_leaks(daemon, cid).values())), _leaks(daemon, cid)
    assert _wait_until(lambda: not os.path.exists(f"/proc/{pid}")), "the container's process survived rm -f"
    assert cid not in container_ids(daemon)


def test_failed_start_leaks_nothing(daemon: Any, busybox: str) -> None:
    cid = daemon.docker("create", "busybox", "/no/such/binary", check=True).stdout.strip()
    out = daemon.docker("start", cid)
    assert out.returncode != 0
    # the shim of the failed container may still be on its way out when the API answers
    assert _wait_until(lambda: not any(v for k, v in _leaks(daemon, cid).items()
                                  if k not in ("container_dir", "run_dir")), 5), \
        _leaks(daemon, cid)
    daemon.docker("rm", cid, check=True)
    assert not any(_leaks(daemon, cid).values())
    out = daemon.docker("run", "--rm", "--user", "ghost", "busybox", "true")
    assert out.returncode != 0
    assert "unable to find user ghost: no matching entries in passwd file" in out.stderr
    live = container_ids(daemon, running_only=True)
    with open("/proc/self/mountinfo") as f:
        stray = [m for m in (line.split()[4] for line in f) if m.startswith(daemon.data_root + "/containers/")
                 and m.split("/containers/")[1].split("/")[0] not in live]
    assert stray == []
