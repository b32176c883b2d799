"""Hard links and symlinks in every tar the engine unpacks never reach a host file.

The attack that once worked: a build context with a hard link `h -> /tmp/canary`,
a symlink `d -> .` and a file `d/h` overwrote the canary on the host and
changed its mode; a link entry alone re-owned the host file, and `COPY` of a
link to `/etc/shadow` put the host's shadow into the image. Each entry point
(build context, ADD, import, load, `docker cp`, the extractor itself in both
scopes) is tried with absolute, `../` and symlink-laundered link targets.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import DOCKER, Daemon

from pydock_common.untar import Options, Scope, UnsafeArchive, untar

Entry = tuple[tarfile.TarInfo, bytes]


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", linkname: str = "",
          mode: int = 0o644, uid: int = 0) -> Entry:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.uid, info.size = kind, linkname, mode, uid, len(data)
    return info, data


def tar_bytes(entries: list[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


@pytest.fixture
def canary() -> Iterator[str]:
    """A host file the hostile archives aim at, under /tmp as in the report."""
    path = f"/tmp/canary-{uuid.uuid4().hex[:8]}"
    with open(path, "wb") as f:
        f.write(b"host secret\n")
    os.chmod(path, 0o600)
    yield path
    os.unlink(path)


def fingerprint(path: str) -> tuple[int, int, int, int, int, bytes]:
    st = os.lstat(path)
    with open(path, "rb") as f:
        return st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_mtime_ns, f.read()


def attacks(canary: str) -> dict[str, list[Entry]]:
    """Hostile link entries, each ending by writing through what it planted."""
    rel_up = "../" * 12 + canary.lstrip("/")
    write = entry("d/h", data=b"pwned\n", mode=0o777)
    return {
        "absolute-then-write": [entry("h", tarfile.LNKTYPE, linkname=canary, mode=0o777, uid=4242),
                                entry("d", tarfile.SYMTYPE, linkname="."), write],
        "absolute-alone": [entry("h", tarfile.LNKTYPE, linkname=canary, mode=0o4777, uid=4242)],
        "dotdot": [entry("h", tarfile.LNKTYPE, linkname=rel_up, mode=0o777),
                   entry("d", tarfile.SYMTYPE, linkname="."), write],
        "laundered-absolute-symlink": [entry("s", tarfile.SYMTYPE, linkname=os.path.dirname(canary)),
                                       entry("h", tarfile.LNKTYPE, linkname="s/" + os.path.basename(canary)),
                                       entry("d", tarfile.SYMTYPE, linkname="."), write],
        "laundered-relative-symlink": [entry("s", tarfile.SYMTYPE, linkname="../" * 12 + "tmp"),
                                       entry("h", tarfile.LNKTYPE, linkname="s/" + os.path.basename(canary)),
                                       entry("d", tarfile.SYMTYPE, linkname="."), write],
        "link-to-symlink": [entry("s", tarfile.SYMTYPE, linkname=canary),
                            entry("h", tarfile.LNKTYPE, linkname="s", mode=0o777),
                            entry("d", tarfile.SYMTYPE, linkname="."), write],
    }


CASES = sorted(attacks("/tmp/x"))


# ---- the extractor itself --------------------------------------------------
@pytest.mark.parametrize("scope", [Scope.BENEATH, Scope.IN_ROOT])
@pytest.mark.parametrize("case", CASES)
def test_untar_refuses_links_that_leave(tmp_path: Any, canary: str, case: str, scope: Scope) -> None:
    before = fingerprint(canary)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchive):
        untar(io.BytesIO(tar_bytes(attacks(canary)[case])), str(dest), Options(scope=scope))
    assert fingerprint(canary) == before
    for dirpath, _dirs, files in os.walk(dest):
        for name in files:
            assert os.lstat(os.path.join(dirpath, name)).st_ino != os.lstat(canary).st_ino


def test_untar_in_root_resolves_symlinks_as_the_container_sees_them(tmp_path: Any) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "data").mkdir()
    tar = tar_bytes([entry("abs", tarfile.SYMTYPE, linkname="/etc"), entry("abs/f", data=b"1"),
                     entry("up", tarfile.SYMTYPE, linkname="../../../../etc"), entry("up/g", data=b"2"),
                     entry("abs/hl", tarfile.LNKTYPE, linkname="abs/f")])
    untar(io.BytesIO(tar), str(root), Options(scope=Scope.IN_ROOT, dest="data"))
    assert (root / "etc" / "f").read_bytes() == b"1"
    assert (root / "etc" / "g").read_bytes() == b"2"
    assert os.path.samefile(root / "etc" / "hl", root / "etc" / "f")


def test_untar_beneath_refuses_symlinked_parents_that_leave(tmp_path: Any) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchive):
        untar(io.BytesIO(tar_bytes([entry("l", tarfile.SYMTYPE, linkname="/etc"), entry("l/x", data=b"1")])),
              str(dest), Options(scope=Scope.BENEATH))
    assert not os.path.exists("/etc/x")


def test_untar_keeps_links_modes_and_owners_inside(tmp_path: Any) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    tar = tar_bytes([entry("dir/", tarfile.DIRTYPE, mode=0o750, uid=7), entry("dir/f", data=b"x", mode=0o4755, uid=7),
                     entry("dir/same", tarfile.LNKTYPE, linkname="/dir/f"),
                     entry("ln", tarfile.SYMTYPE, linkname="dir/f"), entry("d2", tarfile.SYMTYPE, linkname="dir"),
                     entry("d2/via-link", data=b"y")])
    untar(io.BytesIO(tar), str(dest), Options())
    st = os.lstat(dest / "dir" / "f")
    assert (st.st_mode & 0o7777, st.st_uid, st.st_nlink) == (0o4755, 7, 2)
    assert os.lstat(dest / "dir").st_mode & 0o7777 == 0o750
    assert os.readlink(dest / "ln") == "dir/f"
    assert (dest / "dir" / "via-link").read_bytes() == b"y"


# ---- through the daemon ----------------------------------------------------
def api_build(daemon: Daemon, context: bytes, tag: str) -> tuple[int, str]:
    """POST /build with exactly these context bytes; (status, body)."""
    out = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--unix-socket", daemon.socket,
                          "-X", "POST", "-H", "Content-Type: application/x-tar", "--data-binary", "@-",
                          f"http://localhost/v1.41/build?t={tag}&rm=1"], input=context, capture_output=True,
                         timeout=120, check=True)
    body, _, status = out.stdout.decode(errors="replace").rpartition("\n")
    return int(status), body


def failed(status: int, body: str) -> bool:
    return status >= 400 or '"errorDetail"' in body


@pytest.mark.parametrize("case", CASES)
def test_build_context_cannot_touch_host_files(daemon: Daemon, busybox: str, canary: str, case: str) -> None:
    before = fingerprint(canary)
    context = tar_bytes([entry("Dockerfile", data=b"FROM busybox\nCOPY . /ctx/\n"), *attacks(canary)[case]])
    status, body = api_build(daemon, context, f"escape-{case}")
    assert failed(status, body), body
    assert status < 500 and "invalid" in body, body
    assert fingerprint(canary) == before
    assert daemon.docker("image", "inspect", f"escape-{case}").returncode == 1


def test_copy_of_a_link_to_shadow_does_not_copy_the_host_file(daemon: Daemon, busybox: str) -> None:
    context = tar_bytes([entry("Dockerfile", data=b"FROM busybox\nCOPY shadow /stolen\n"),
                         entry("shadow", tarfile.LNKTYPE, linkname="/etc/shadow")])
    status, body = api_build(daemon, context, "escape-shadow")
    assert failed(status, body) and status < 500, body
    assert daemon.docker("image", "inspect", "escape-shadow").returncode == 1


@pytest.mark.parametrize("case", CASES)
def test_add_of_a_hostile_archive_is_refused(daemon: Daemon, busybox: str, canary: str, case: str) -> None:
    before = fingerprint(canary)
    context = tar_bytes([entry("Dockerfile", data=b"FROM busybox\nADD evil.tar /x/\n"),
                         entry("evil.tar", data=tar_bytes(attacks(canary)[case]))])
    status, body = api_build(daemon, context, f"escape-add-{case}")
    assert failed(status, body) and status < 500, body
    assert fingerprint(canary) == before


@pytest.mark.parametrize("case", CASES)
def test_import_of_a_hostile_layer_is_refused(daemon: Daemon, busybox: str, canary: str, case: str,
                                              tmp_path: Any) -> None:
    before = fingerprint(canary)
    path = tmp_path / "evil.tar"
    path.write_bytes(tar_bytes(attacks(canary)[case]))
    out = daemon.docker("import", str(path), f"escape-import:{case}")
    assert out.returncode == 1 and "invalid" in out.stderr, out.stderr
    assert fingerprint(canary) == before


@pytest.mark.parametrize("case", CASES)
def test_load_of_a_hostile_layer_is_refused(daemon: Daemon, busybox: str, canary: str, case: str,
                                            tmp_path: Any) -> None:
    before = fingerprint(canary)
    layer = tar_bytes(attacks(canary)[case])
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": [f"escape-load:{case}"],
                            "Layers": ["l/layer.tar"]}]).encode()
    path = tmp_path / "image.tar"
    path.write_bytes(tar_bytes([entry("l/layer.tar", data=layer), entry("config.json", data=config),
                                entry("manifest.json", data=manifest)]))
    out = daemon.docker("load", "-i", str(path))
    assert out.returncode == 1 and "invalid" in out.stderr, out.stderr
    assert fingerprint(canary) == before


@pytest.mark.parametrize("case", CASES)
def test_cp_into_a_container_is_refused(daemon: Daemon, busybox: str, canary: str, case: str, names: list[str]) -> None:
    before = fingerprint(canary)
    name = f"escape-cp-{uuid.uuid4().hex[:8]}"
    names.append(name)
    daemon.docker("create", "--name", name, "busybox", check=True)
    out = subprocess.run([DOCKER, "cp", "-", f"{name}:/tmp"], input=tar_bytes(attacks(canary)[case]),
                         capture_output=True, env=daemon.env, timeout=60, check=False)
    assert out.returncode == 1, out.stdout
    assert b"Error response from daemon" in out.stderr and b"500" not in out.stderr, out.stderr
    assert fingerprint(canary) == before
