"""Unit tests of the engine core: store, layers, references, spec generation, path resolution.

No daemon: these call the engine modules directly on temporary directories
(as root, since layers carry ownership, device whiteouts and trusted xattrs).
"""
from __future__ import annotations

import io
import os
import re
import sqlite3
import stat
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from typing import Any

import pytest

from engine.build.cache import BuildCache
from engine.container import naming
from engine.container.record import ContainerID, ContainerRecord
from engine.container.store import ContainerStore
from engine.distribution.locations import BlobLocation, BlobLocations
from engine.errors import InvalidParameter
from engine.ids import ImageID
from engine.image.layers import INIT_LAYER, LayerStore, extract_layer, write_diff_tar
from engine.image.store import ImageRecord, ImageStore
from engine.linux.fsutil import make_linked_mount_point, read_in_root, resolve_user, secure_join
from engine.runtime.spec import (
    ALL_CAPS,
    DEFAULT_CAPS,
    DEFAULT_PATH,
    INIT_PATH,
    MASKED_PATHS,
    READONLY_PATHS,
    SpecOptions,
    bounded_caps,
    build_spec,
    container_env,
    effective_caps,
    host_caps,
    merge_env,
)
from engine.store.db import BlobStore, MetaStore, check_digest, sha256_file
from pydock_common import reference
from pydock_common.files import atomic_write
from pydock_common.untar import UnsafeArchive, opaque_xattr

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="layers need root (ownership, mknod, trusted xattrs)")

HEX = "a" * 64


# ---- helpers -------------------------------------------------------------
def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", linkname: str = "", mode: int = 0o644,
          uid: int = 0, gid: int = 0, devmajor: int = 0, devminor: int = 0) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.uid, info.gid = kind, linkname, mode, uid, gid
    info.devmajor, info.devminor = devmajor, devminor
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mtime = 1_600_000_000
    return info, data


def make_tar(path: str, entries: list[tuple[tarfile.TarInfo, bytes]]) -> str:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def listing(root: str) -> set[str]:
    out = set()
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            out.add(os.path.relpath(os.path.join(dirpath, n), root))
    return out


@pytest.fixture
def store(tmp_path: Any) -> Iterator[tuple[MetaStore, BlobStore, LayerStore]]:
    blobs_dir, layers_dir = tmp_path / "blobs", tmp_path / "layers"
    blobs_dir.mkdir()
    layers_dir.mkdir()
    meta = MetaStore(str(tmp_path / "db.sqlite"))
    blobs = BlobStore(str(blobs_dir), str(tmp_path))
    yield meta, blobs, LayerStore(str(layers_dir), meta, blobs)
    meta.close()


# ---- store ---------------------------------------------------------------
def test_listing_snapshot_shares_equal_strings_and_follows_changes(tmp_path: Any) -> None:
    """`docker ps`'s kept records equal what load decodes, hold the strings containers share once, and a
    changed row is decoded again."""
    containers = ContainerStore(MetaStore(str(tmp_path / "db.sqlite")))
    for n in ("a", "b"):
        c = ContainerRecord(id=ContainerID(n * 64), name=f"/{n}", path="sh", args=["-c", "sleep 1"])
        c.config.image, c.config.env = "busybox:latest", ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"]
        containers.insert(c)
    a, b = sorted(containers.snapshot(), key=lambda c: c.id)
    assert a == containers.load(a.id) and b == containers.load(b.id)
    assert a.config.image is b.config.image and a.config.env[0] is b.config.env[0] and a.args[1] is b.args[1]
    assert containers.snapshot()[0] is a or containers.snapshot()[1] is a  # unchanged: decoded once
    changed = containers.load(a.id)  # snapshot's records are never changed
    changed.name = "/renamed"
    containers.save(changed)
    assert {c.name for c in containers.snapshot()} == {"/renamed", "/b"}


_COMMITS = """
import os, sys
from engine.store.db import MetaStore
meta = MetaStore(sys.argv[1])
meta.ensure_schema("CREATE TABLE IF NOT EXISTS t (v TEXT)")
for n, durable in enumerate(sys.argv[2:]):
    os.write(2, f"commit {n}\\n".encode())
    with meta.transaction(durable=durable == "durable") as db:
        with meta.transaction(durable=True):  # a nested one follows its outer one
            db.execute("INSERT INTO t VALUES (?)", (durable,))
os.write(2, b"end\\n")
"""


def test_a_transaction_that_need_not_be_durable_commits_without_an_fsync(tmp_path: Any) -> None:
    """Watched with strace: a durable commit fsyncs, one that is not does not, and the next durable one
    does again; all three rows are there."""
    db, trace = str(tmp_path / "db.sqlite"), str(tmp_path / "trace")
    subprocess.run(["strace", "-f", "-o", trace, "-e", "trace=write,fsync,fdatasync", sys.executable, "-c", _COMMITS,
                    db, "durable", "lazy", "durable"], capture_output=True, check=True,
                   cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    syncs: dict[str, int] = {}
    current = ""
    with open(trace) as f:
        for line in f:
            marker = re.search(r'write\(2, "((?:commit \d|end))\\n"', line)
            if marker:
                current = marker.group(1)
                syncs[current] = 0
            elif current and ("fsync(" in line or "fdatasync(" in line):
                syncs[current] += 1
    assert syncs["commit 0"] > 0 and syncs["commit 1"] == 0 and syncs["commit 2"] > 0, syncs
    meta = MetaStore(db)
    try:
        assert [r["v"] for r in meta.query("SELECT v FROM t")] == ["durable", "lazy", "durable"]
    finally:
        meta.close()


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path: Any) -> None:
    path = str(tmp_path / "f")
    atomic_write(path, b"old")
    atomic_write(path, b"new", 0o640)
    assert _read(path) == b"new"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert os.listdir(tmp_path) == ["f"]


def test_atomic_write_failure_keeps_old_content(tmp_path: Any) -> None:
    path = str(tmp_path / "f")
    atomic_write(path, b"old")
    with pytest.raises(TypeError):
        atomic_write(path, "not bytes")  # type: ignore[arg-type]
    assert _read(path) == b"old"
    assert os.listdir(tmp_path) == ["f"]


def test_blobstore_put_read_is_content_addressed(store: Any) -> None:
    _meta, blobs, _layers = store
    digest = blobs.put_bytes(b"hello")
    assert digest == "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert blobs.put_bytes(b"hello") == digest
    assert blobs.read(digest) == b"hello"
    assert blobs.exists(digest)
    assert blobs.digests() == [digest]
    blobs.delete(digest)
    blobs.delete(digest)  # idempotent
    assert not blobs.exists(digest)


def test_blobstore_adopt_moves_file_under_digest(store: Any, tmp_path: Any) -> None:
    _meta, blobs, _layers = store
    tmp = tmp_path / "upload"
    tmp.write_bytes(b"layer")
    digest = sha256_file(str(tmp))
    blobs.adopt(str(tmp), digest)
    assert not tmp.exists()
    assert blobs.read(digest) == b"layer"


@pytest.mark.parametrize("digest", [
    "sha256:../../etc/passwd", f"sha256:{HEX}/../x", f"sha256:{HEX[:-1]}", f"sha256:{HEX.upper()}",
    f"sha512:{HEX}", HEX, "", f"sha256:{HEX}\n", "sha256:/etc/passwd",
])
def test_blobstore_rejects_path_like_digests(store: Any, digest: str, tmp_path: Any) -> None:
    _meta, blobs, _layers = store
    with pytest.raises(InvalidParameter):
        check_digest(digest)
    with pytest.raises(InvalidParameter):
        blobs.read(digest)
    tmp = tmp_path / "x"
    tmp.write_bytes(b"x")
    with pytest.raises(InvalidParameter):
        blobs.adopt(str(tmp), digest)
    assert tmp.exists()


def test_metastore_transaction_rolls_back_on_exception(store: Any) -> None:
    meta, _blobs, _layers = store
    meta.set_kv("a", 1)
    with pytest.raises(RuntimeError), meta.transaction() as db:
        db.execute("INSERT OR REPLACE INTO kv(key, value) VALUES ('a', '2')")
        db.execute("INSERT INTO kv(key, value) VALUES ('b', '3')")
        raise RuntimeError("boom")
    assert meta.get_kv("a") == 1
    assert meta.get_kv("b") is None
    meta.set_kv("c", 4)  # the connection is usable again
    assert meta.get_kv("c") == 4


def test_metastore_nested_failure_undoes_only_inner_block(store: Any) -> None:
    meta, _blobs, _layers = store
    with meta.transaction() as db:
        db.execute("INSERT INTO kv(key, value) VALUES ('outer', '1')")
        with pytest.raises(sqlite3.IntegrityError), meta.transaction() as inner:
            inner.execute("INSERT INTO kv(key, value) VALUES ('inner', '1')")
            inner.execute("INSERT INTO kv(key, value) VALUES ('outer', '2')")
    assert meta.get_kv("outer") == 1
    assert meta.get_kv("inner") is None


def test_metastore_outer_failure_undoes_committed_inner_block(store: Any) -> None:
    meta, _blobs, _layers = store
    with pytest.raises(KeyError), meta.transaction():
        meta.set_kv("inner", 1)
        raise KeyError("x")
    assert meta.get_kv("inner") is None


# ---- layers: extraction ----------------------------------------------------
def test_extract_layer_preserves_files_links_modes_and_owners(tmp_path: Any) -> None:
    tar = make_tar(str(tmp_path / "l.tar"), [
        entry("bin/", tarfile.DIRTYPE, mode=0o755),
        entry("bin/tool", data=b"#!/bin/sh\n", mode=0o4755, uid=0, gid=0),
        entry("bin/alias", tarfile.SYMTYPE, linkname="tool"),
        entry("bin/hard", tarfile.LNKTYPE, linkname="bin/tool", mode=0o4755),
        entry("abs", tarfile.SYMTYPE, linkname="/etc/passwd"),
        entry("home/u/", tarfile.DIRTYPE, mode=0o700, uid=1000, gid=1001),
        entry("home/u/f", data=b"x", mode=0o2640, uid=1000, gid=1001),
        entry("fifo", tarfile.FIFOTYPE, mode=0o600),
    ])
    dest = str(tmp_path / "d")
    os.mkdir(dest)
    extract_layer(tar, dest)
    tool = os.lstat(os.path.join(dest, "bin/tool"))
    assert stat.S_IMODE(tool.st_mode) == 0o4755
    assert _read(os.path.join(dest, "bin/tool")) == b"#!/bin/sh\n"
    assert os.readlink(os.path.join(dest, "bin/alias")) == "tool"
    assert os.lstat(os.path.join(dest, "bin/hard")).st_ino == tool.st_ino
    assert os.readlink(os.path.join(dest, "abs")) == "/etc/passwd"
    home = os.lstat(os.path.join(dest, "home/u"))
    assert (home.st_uid, home.st_gid, stat.S_IMODE(home.st_mode)) == (1000, 1001, 0o700)
    f = os.lstat(os.path.join(dest, "home/u/f"))
    assert (f.st_uid, f.st_gid, stat.S_IMODE(f.st_mode)) == (1000, 1001, 0o2640)
    assert stat.S_ISFIFO(os.lstat(os.path.join(dest, "fifo")).st_mode)


def test_extract_layer_converts_oci_whiteouts(tmp_path: Any) -> None:
    tar = make_tar(str(tmp_path / "l.tar"), [
        entry("etc/", tarfile.DIRTYPE, mode=0o755),
        entry("etc/.wh.gone"),
        entry("var/lib/", tarfile.DIRTYPE, mode=0o755),
        entry("var/lib/.wh..wh..opq"),
        entry("var/lib/kept", data=b"k"),
        entry(".wh.toplevel"),
    ])
    dest = str(tmp_path / "d")
    os.mkdir(dest)
    extract_layer(tar, dest)
    for rel in ("etc/gone", "toplevel"):
        st = os.lstat(os.path.join(dest, rel))
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
    assert os.getxattr(os.path.join(dest, "var/lib"), opaque_xattr()) == b"y"
    assert listing(dest) == {"etc", "etc/gone", "var", "var/lib", "var/lib/kept", "toplevel"}


def test_write_diff_tar_round_trips_whiteouts_and_opaque_dirs(tmp_path: Any) -> None:
    upper = tmp_path / "upper"
    (upper / "dir").mkdir(parents=True)
    (upper / "dir" / "file").write_bytes(b"data")
    os.chown(upper / "dir" / "file", 1000, 1000)
    os.chmod(upper / "dir" / "file", 0o4711)  # after chown, which clears setuid
    os.symlink("file", upper / "dir" / "link")
    os.mknod(upper / "dir" / "deleted", stat.S_IFCHR, os.makedev(0, 0))
    (upper / "opaque").mkdir()
    os.setxattr(upper / "opaque", opaque_xattr(), b"y")
    buf = io.BytesIO()
    write_diff_tar(str(upper), buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        names = {m.name: m for m in tar.getmembers()}
    assert set(names) == {"dir", "dir/file", "dir/link", "dir/.wh.deleted", "opaque", "opaque/.wh..wh..opq"}
    assert (names["dir/file"].uid, names["dir/file"].mode) == (1000, 0o4711)
    assert names["dir/.wh.deleted"].isreg() and names["dir/.wh.deleted"].size == 0
    # and back: extracting the diff gives the same overlay form
    tar_path = tmp_path / "diff.tar"
    tar_path.write_bytes(buf.getvalue())
    dest = tmp_path / "again"
    dest.mkdir()
    extract_layer(str(tar_path), str(dest))
    assert listing(str(dest)) == listing(str(upper))
    st = os.lstat(dest / "dir" / "deleted")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(dest / "opaque", opaque_xattr()) == b"y"
    assert stat.S_IMODE(os.lstat(dest / "dir" / "file").st_mode) == 0o4711


def test_write_diff_tar_skips_sockets(tmp_path: Any) -> None:
    import socket
    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "f").write_bytes(b"x")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(upper / "sock"))
        buf = io.BytesIO()
        write_diff_tar(str(upper), buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        assert tar.getnames() == ["f"]


@pytest.fixture
def outside(tmp_path: Any) -> Any:
    """A directory beside the layer that hostile entries aim at."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "victim").write_bytes(b"original")
    os.chmod(d / "victim", 0o600)
    return d


def hostile_cases(outside: Any) -> dict[str, list[tuple[tarfile.TarInfo, bytes]]]:
    o = str(outside)
    return {
        "dotdot": [entry("../evil", data=b"x")],
        "dotdot-nested": [entry("a/../../evil", data=b"x")],
        "symlink-parent": [entry("link", tarfile.SYMTYPE, linkname=o), entry("link/evil", data=b"x")],
        "relative-symlink-parent": [entry("link", tarfile.SYMTYPE, linkname="../../../../../../../../" + o),
                                    entry("link/evil", data=b"x")],
        "hardlink-dotdot": [entry("h", tarfile.LNKTYPE, linkname="../../etc/passwd")],
        "hardlink-via-symlink": [entry("s", tarfile.SYMTYPE, linkname=o + "/victim"),
                                 entry("h", tarfile.LNKTYPE, linkname="s", mode=0o777, uid=1234)],
        "hardlink-to-skipped-device": [entry("dev", tarfile.CHRTYPE, devmajor=1, devminor=3),
                                       entry("h", tarfile.LNKTYPE, linkname="dev")],
        "self-hardlink-over-skipped-device": [entry("d", data=b"x"), entry("d", tarfile.CHRTYPE, devmajor=1, devminor=3),
                                              entry("d", tarfile.LNKTYPE, linkname="d")],
        "file-over-symlink": [entry("f", tarfile.SYMTYPE, linkname=o + "/victim"),
                              entry("f", data=b"overwritten", mode=0o777)],
        "dir-over-symlink": [entry("d", tarfile.SYMTYPE, linkname=o),
                             entry("d", tarfile.DIRTYPE, mode=0o777, uid=1234)],
        "symlink-over-dir": [entry("d", tarfile.DIRTYPE, mode=0o755),
                             entry("d", tarfile.SYMTYPE, linkname=o)],
        "whiteout-via-symlink": [entry("link", tarfile.SYMTYPE, linkname=o), entry("link/.wh.victim")],
        "opaque-via-symlink": [entry("link", tarfile.SYMTYPE, linkname=o), entry("link/.wh..wh..opq")],
        "whiteout-dotdot": [entry("../.wh.victim")],
    }


@pytest.mark.parametrize("case", sorted(hostile_cases("/x")))
def test_extract_layer_contains_hostile_entries(tmp_path: Any, outside: Any, case: str) -> None:
    before = {p: os.lstat(outside / p) for p in [".", *os.listdir(outside)]}
    tar = make_tar(str(tmp_path / "l.tar"), hostile_cases(outside)[case])
    dest = tmp_path / "layer" / "diff"
    dest.mkdir(parents=True)
    try:
        extract_layer(tar, str(dest))
    except UnsafeArchive:
        pass
    after = {p: os.lstat(outside / p) for p in [".", *os.listdir(outside)]}
    assert sorted(after) == sorted(before)
    for p, st in after.items():
        assert (st.st_mode, st.st_uid, st.st_size, st.st_mtime_ns, st.st_nlink) == \
            (before[p].st_mode, before[p].st_uid, before[p].st_size, before[p].st_mtime_ns, before[p].st_nlink), p
    assert (outside / "victim").read_bytes() == b"original"
    assert not (tmp_path / "evil").exists() and not (tmp_path / "layer" / "evil").exists()
    for dirpath, dirs, files in os.walk(dest):
        for n in dirs + files:
            st = os.lstat(os.path.join(dirpath, n))
            assert not stat.S_ISBLK(st.st_mode)
            assert not stat.S_ISCHR(st.st_mode) or st.st_rdev == 0, "a host device node was created"


@pytest.mark.parametrize("case", ["dotdot", "symlink-parent", "hardlink-dotdot", "hardlink-via-symlink",
                                  "hardlink-to-skipped-device", "whiteout-via-symlink"])
def test_extract_layer_rejects_escapes(tmp_path: Any, outside: Any, case: str) -> None:
    tar = make_tar(str(tmp_path / "l.tar"), hostile_cases(outside)[case])
    dest = tmp_path / "d"
    dest.mkdir()
    with pytest.raises(UnsafeArchive):
        extract_layer(tar, str(dest))


def test_extract_layer_replaces_planted_symlink_instead_of_following(tmp_path: Any, outside: Any) -> None:
    tar = make_tar(str(tmp_path / "l.tar"), hostile_cases(outside)["file-over-symlink"])
    dest = tmp_path / "d"
    dest.mkdir()
    extract_layer(tar, str(dest))
    assert not os.path.islink(dest / "f")
    assert (dest / "f").read_bytes() == b"overwritten"


def test_extract_layer_replaces_a_directory_without_touching_the_new_target(tmp_path: Any, outside: Any) -> None:
    """As Docker's unpacker: a later entry replaces a directory; its deferred mode is not applied through it."""
    tar = make_tar(str(tmp_path / "l.tar"), hostile_cases(outside)["symlink-over-dir"])
    dest = tmp_path / "d"
    dest.mkdir()
    mode = os.stat(outside).st_mode
    extract_layer(tar, str(dest))
    assert os.readlink(dest / "d") == str(outside)
    assert os.stat(outside).st_mode == mode


def test_extract_layer_keeps_absolute_names_inside(tmp_path: Any) -> None:
    tar = make_tar(str(tmp_path / "l.tar"), [entry("/etc/evil-pydock-unit", data=b"x"),
                                             entry("./a//b", data=b"y")])
    dest = tmp_path / "d"
    dest.mkdir()
    extract_layer(tar, str(dest))
    assert (dest / "etc" / "evil-pydock-unit").read_bytes() == b"x"
    assert (dest / "a" / "b").read_bytes() == b"y"
    assert not os.path.exists("/etc/evil-pydock-unit")


def test_extract_layer_skips_device_nodes(tmp_path: Any) -> None:
    tar = make_tar(str(tmp_path / "l.tar"), [
        entry("dev/", tarfile.DIRTYPE, mode=0o755),
        entry("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3),
        entry("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0),
        entry("dev/keep", data=b"k"),
    ])
    dest = tmp_path / "d"
    dest.mkdir()
    extract_layer(tar, str(dest))
    assert listing(str(dest)) == {"dev", "dev/keep"}


def test_extract_layer_rejects_garbage(tmp_path: Any) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"this is not a tar archive" * 100)
    with pytest.raises(UnsafeArchive):
        extract_layer(str(bad), str(tmp_path))


# ---- layers: store ---------------------------------------------------------
FIXED_LAYER_DIRS = ["empty", INIT_LAYER]  # the store's own: the empty lower and the containers' init layer


def test_layer_register_is_idempotent(store: Any, tmp_path: Any) -> None:
    _meta, blobs, layers = store
    entries = [entry("f", data=b"content")]
    first = layers.register(make_tar(str(tmp_path / "a.tar"), entries))
    second = layers.register(make_tar(str(tmp_path / "b.tar"), entries))
    assert first == second
    assert blobs.exists(first.diff_id)
    assert not (tmp_path / "a.tar").exists() and not (tmp_path / "b.tar").exists()
    assert sorted(os.listdir(layers.root)) == sorted([*FIXED_LAYER_DIRS, first.cache_id])
    child = layers.register(make_tar(str(tmp_path / "c.tar"), [entry("g", data=b"more")]), first.chain_id)
    assert child.parent == first.chain_id and child.chain_id != child.diff_id
    assert layers.lower_dirs(child.chain_id) == [layers.diff_dir(child), layers.diff_dir(first)]


def test_layer_register_concurrent_same_layer_keeps_one_copy(store: Any, tmp_path: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor
    _meta, blobs, layers = store
    entries = [entry(f"f{i}", data=b"x" * 1000) for i in range(200)]
    tars = [make_tar(str(tmp_path / f"{n}.tar"), entries) for n in range(4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(layers.register, tars))
    assert all(r == results[0] for r in results)
    assert sorted(os.listdir(layers.root)) == sorted([*FIXED_LAYER_DIRS, results[0].cache_id])
    assert blobs.digests() == [results[0].diff_id]


def test_layer_register_failure_leaves_nothing(store: Any, tmp_path: Any, outside: Any) -> None:
    meta, blobs, layers = store
    tar = make_tar(str(tmp_path / "bad.tar"), [entry("ok", data=b"fine")] + hostile_cases(outside)["symlink-parent"])
    with pytest.raises(UnsafeArchive):
        layers.register(tar)
    assert sorted(os.listdir(layers.root)) == sorted(FIXED_LAYER_DIRS)
    assert not os.path.exists(tar)
    assert blobs.digests() == []
    assert meta.query("SELECT * FROM layers") == []


def test_layer_remove_unreferenced(store: Any, tmp_path: Any) -> None:
    _meta, blobs, layers = store
    a = layers.register(make_tar(str(tmp_path / "a.tar"), [entry("a", data=b"a")]))
    b = layers.register(make_tar(str(tmp_path / "b.tar"), [entry("b", data=b"b")]))
    assert layers.remove_unreferenced({a.chain_id}) == 1
    assert layers.exists(a.chain_id) and not layers.exists(b.chain_id)
    assert not blobs.exists(b.diff_id) and blobs.exists(a.diff_id)
    assert sorted(os.listdir(layers.root)) == sorted([*FIXED_LAYER_DIRS, a.cache_id])


# ---- references ------------------------------------------------------------
@pytest.mark.parametrize("ref,full,familiar", [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("library/busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("user/app:v1", "docker.io/user/app:v1", "user/app:v1"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("localhost:5000/a/b:t", "localhost:5000/a/b:t", "localhost:5000/a/b:t"),
    ("Registry.Example/app", "Registry.Example/app:latest", "Registry.Example/app:latest"),
    ("a-b__c/e--f.g", "docker.io/a-b__c/e--f.g:latest", "a-b__c/e--f.g:latest"),
    ("a.b/c", "a.b/c:latest", "a.b/c:latest"),
    (f"busybox@sha256:{HEX}", f"docker.io/library/busybox@sha256:{HEX}", f"busybox@sha256:{HEX}"),
    (f"busybox:1@sha256:{HEX}", f"docker.io/library/busybox:1@sha256:{HEX}", f"busybox:1@sha256:{HEX}"),
])
def test_reference_normalization(ref: str, full: str, familiar: str) -> None:
    parsed = reference.parse(ref)
    assert str(parsed) == full
    assert parsed.familiar() == familiar


@pytest.mark.parametrize("ref,message", [
    ("", "invalid reference format"),
    ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
    ("user/App", "invalid reference format: repository name (user/App) must be lowercase"),
    (HEX, f"invalid repository name ({HEX}), cannot specify 64-byte hexadecimal strings"),
    ("busybox:", "invalid reference format"),
    (":tag", "invalid reference format"),
    ("a//b", "invalid reference format"),
    ("-a", "invalid reference format"),
    ("a_-b", "invalid reference format"),
    ("../x", "invalid reference format"),
    ("busybox\n", "invalid reference format"),
    ("busybox:t\u00e4g", "invalid reference format"),
    ("busybox:" + "t" * 129, "invalid reference format"),
    ("busybox@sha256:abc", "invalid reference format"),
    ("a/" + "b" * 250, "repository name must not be more than 255 characters"),
    ("x" * 5000, "invalid reference format"),
])
def test_reference_invalid(ref: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        reference.parse(ref)
    assert e.value.message == message


def test_reference_with_tag() -> None:
    assert str(reference.with_tag("app", "v2")) == "docker.io/library/app:v2"
    assert str(reference.with_tag("app:v3", "")) == "docker.io/library/app:v3"
    assert str(reference.with_tag("app", "")) == "docker.io/library/app:latest"
    with pytest.raises(InvalidParameter):
        reference.with_tag(f"app@sha256:{HEX}", "")
    with pytest.raises(InvalidParameter):
        reference.with_tag("app", "bad tag")


# ---- container names -------------------------------------------------------
@pytest.mark.parametrize("name", ["../x", "a/b", "x", "-ab", "a b", "ab\n", "a" * 10_000, "\u00e9t\u00e9", "a:b"])
def test_naming_rejects_invalid_names(name: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        naming.validate(name)
    assert e.value.message.startswith("Invalid container name (")
    assert e.value.message.endswith("), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    assert len(e.value.message) < 300


def test_naming_accepts_docker_names() -> None:
    assert naming.validate("web_1.a-b") == "/web_1.a-b"
    assert naming.validate("/ab") == "/ab"
    made = {naming.generate(lambda name: False) for _ in range(20)}
    assert all(naming.VALID_NAME.fullmatch(n) for n in made)
    seen: list[str] = []
    free = naming.generate(lambda name: seen.append(name) is None and len(seen) < 12)  # 11 taken
    assert free == seen[-1] and len(seen) == 12 and free[-1].isdigit()  # after ten tries a number is added
    with pytest.raises(InvalidParameter, match="could not generate a unique container name"):
        naming.generate(lambda name: True)


# ---- spec ------------------------------------------------------------------
def spec(**kw: Any) -> dict[str, Any]:
    return build_spec(SpecOptions(container_id="c" * 64, rootfs="/r", args=["sh"], **kw))


def test_default_caps_are_dockers_fourteen() -> None:
    assert len(DEFAULT_CAPS) == 14 and len(set(ALL_CAPS)) == len(ALL_CAPS) == 41
    assert set(DEFAULT_CAPS) == {
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
        "CAP_AUDIT_WRITE"}
    caps = spec()["process"]["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"] == DEFAULT_CAPS
    assert "inheritable" not in caps and "ambient" not in caps


def test_cap_add_and_drop() -> None:
    assert effective_caps(["sys_admin", "CAP_NET_ADMIN"], ["chown", "CAP_KILL"], False) == \
        [c for c in DEFAULT_CAPS if c not in ("CAP_CHOWN", "CAP_KILL")] + ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]
    assert effective_caps(["NET_ADMIN"], ["ALL"], False) == ["CAP_NET_ADMIN"]
    assert effective_caps([], ["all"], False) == []
    assert effective_caps(["ALL"], ["MKNOD"], False, ALL_CAPS) == [c for c in ALL_CAPS if c != "CAP_MKNOD"]
    assert effective_caps(["ALL"], ["ALL"], False, ALL_CAPS) == ALL_CAPS
    assert effective_caps(["CHOWN"], [], False) == DEFAULT_CAPS
    assert effective_caps([], ["ALL"], True, ALL_CAPS) == ALL_CAPS
    with pytest.raises(InvalidParameter) as e:
        effective_caps(["bogus"], [], False)
    assert e.value.message == 'unknown capability: "CAP_BOGUS"'


def test_all_caps_are_limited_to_the_daemons_bounding_set() -> None:
    assert bounded_caps((1 << 41) - 1) == ALL_CAPS
    assert bounded_caps(0x1fffeffffff) == [c for c in ALL_CAPS if c != "CAP_SYS_RESOURCE"]
    assert bounded_caps(0b100001) == ["CAP_CHOWN", "CAP_KILL"]
    limited = ["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"]
    assert effective_caps([], [], True, limited) == limited
    assert effective_caps(["ALL"], ["KILL"], False, limited) == ["CAP_CHOWN", "CAP_SYS_ADMIN"]
    with open("/proc/self/status") as f:
        mask = int(next(line for line in f if line.startswith("CapBnd:")).split()[1], 16)
    assert effective_caps([], [], True) == bounded_caps(mask) == list(host_caps())
    assert set(DEFAULT_CAPS) <= set(host_caps())


def test_spec_defaults_mask_and_confine() -> None:
    s = spec()
    assert s["linux"]["maskedPaths"] == MASKED_PATHS and "/proc/kcore" in MASKED_PATHS
    assert s["linux"]["readonlyPaths"] == READONLY_PATHS and "/proc/sys" in READONLY_PATHS
    assert s["linux"]["resources"]["devices"] == [{"allow": False, "access": "rwm"}]
    assert [n["type"] for n in s["linux"]["namespaces"]] == ["pid", "ipc", "uts", "mount", "network"]
    mounts = {m["destination"]: m for m in s["mounts"]}
    assert {"/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"} <= set(mounts)
    assert "ro" in mounts["/sys"]["options"] and "ro" in mounts["/sys/fs/cgroup"]["options"]
    assert mounts["/sys"]["type"] == "sysfs"
    assert s["process"]["args"] == ["sh"] and s["process"]["user"] == {"uid": 0, "gid": 0}
    assert s["root"] == {"path": "/r", "readonly": False}


def test_spec_privileged_lifts_confinement() -> None:
    s = spec(privileged=True, cap_drop=["ALL"])
    assert s["process"]["capabilities"]["bounding"] == list(host_caps())
    assert "maskedPaths" not in s["linux"] and "readonlyPaths" not in s["linux"]
    assert s["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    mounts = {m["destination"]: m for m in s["mounts"]}
    assert "ro" not in mounts["/sys"]["options"] and "ro" not in mounts["/sys/fs/cgroup"]["options"]


def test_spec_host_network_shares_netns_and_binds_sys() -> None:
    s = spec(network="host", hostname="h")
    assert "network" not in [n["type"] for n in s["linux"]["namespaces"]]
    sys_mount = next(m for m in s["mounts"] if m["destination"] == "/sys")
    assert sys_mount["type"] == "bind" and sys_mount["source"] == "/sys" and "ro" in sys_mount["options"]
    joined = spec(network="/proc/1/ns/net")
    assert {"type": "network", "path": "/proc/1/ns/net"} in joined["linux"]["namespaces"]
    assert spec(hostname="h")["hostname"] == "h"


def test_spec_init_wraps_command() -> None:
    s = spec(init_path="/usr/bin/tini-static")
    assert s["process"]["args"] == [INIT_PATH, "--", "sh"]
    init = next(m for m in s["mounts"] if m["destination"] == INIT_PATH)
    assert init["source"] == "/usr/bin/tini-static" and "ro" in init["options"]
    assert spec()["process"]["args"] == ["sh"]


def test_spec_user_tty_and_readonly() -> None:
    s = spec(uid=1000, gid=1000, additional_gids=[10], tty=True, console_size=(24, 80), readonly_rootfs=True,
             no_new_privileges=True, cwd="")
    assert s["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [10]}
    assert s["process"]["terminal"] is True and s["process"]["consoleSize"] == {"height": 24, "width": 80}
    assert s["root"]["readonly"] is True and s["process"]["noNewPrivileges"] is True
    assert s["process"]["cwd"] == "/"


def test_container_env_merge_rules() -> None:
    assert container_env(None, None, "h", False) == [f"PATH={DEFAULT_PATH}", "HOSTNAME=h"]
    assert container_env(["PATH=/x", "A=1"], ["A=2", "B=3"], "h", True) == \
        ["PATH=/x", "HOSTNAME=h", "TERM=xterm", "A=2", "B=3"]
    assert container_env(["TERM=dumb", "HOSTNAME=img"], [], "h", True) == \
        [f"PATH={DEFAULT_PATH}", "HOSTNAME=img", "TERM=dumb"]
    # a bare name unsets, as `docker run -e NAME` does when NAME is not set on the client
    assert container_env(["A=1", "B=2"], ["A"], "", False) == [f"PATH={DEFAULT_PATH}", "B=2"]
    assert container_env([], ["EMPTY="], "", False) == [f"PATH={DEFAULT_PATH}", "EMPTY="]
    assert merge_env(["A=1", "B=2"], ["B=3", "C=4", "A"]) == ["B=3", "C=4"]
    assert merge_env(None, ["X=a=b"]) == ["X=a=b"]


# ---- fsutil ----------------------------------------------------------------
@pytest.fixture
def rootfs(tmp_path: Any) -> str:
    root = tmp_path / "root"
    for d in ("etc", "usr/lib", "a/b"):
        (root / d).mkdir(parents=True)
    (root / "usr/lib/x").write_bytes(b"x")
    os.symlink("/usr/lib", root / "abs")
    os.symlink("../usr/lib", root / "a" / "rel")
    os.symlink("../../../../../../..", root / "a" / "up")
    os.symlink("/../../..", root / "rootup")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    os.symlink("self/x", root / "self")
    os.symlink("abs", root / "chain1")
    os.symlink("/chain1/x", root / "chain2")
    return os.path.realpath(root)


@pytest.mark.parametrize("path,expect", [
    ("/", ""),
    ("/usr/lib/x", "/usr/lib/x"),
    ("/abs/x", "/usr/lib/x"),
    ("/a/rel/x", "/usr/lib/x"),
    ("/a/up/etc", "/etc"),
    ("/rootup/etc/passwd", "/etc/passwd"),
    ("/../../../etc", "/etc"),
    ("a/b/../../usr/./lib", "/usr/lib"),
    ("/chain2", "/usr/lib/x"),
    ("/new/file", "/new/file"),
    ("/a/b/..", "/a"),
    ("/..", ""),
])
def test_secure_join_stays_in_root(rootfs: str, path: str, expect: str) -> None:
    assert secure_join(rootfs, path) == rootfs + expect


@pytest.mark.parametrize("path", ["/loop1", "/loop1/x", "/self"])
def test_secure_join_symlink_loops_fail(rootfs: str, path: str) -> None:
    with pytest.raises(InvalidParameter):
        secure_join(rootfs, path)


def test_mount_points_behind_symlinks_are_made_inside_the_root(rootfs: str, tmp_path: Any) -> None:
    """Where runc would make them (crun does not); a destination without symlinks is the runtime's."""
    os.symlink(str(tmp_path / "outside"), os.path.join(rootfs, "out"))
    make_linked_mount_point(rootfs, "/out/dir", file=False)
    make_linked_mount_point(rootfs, "/out/sub/file", file=True)
    make_linked_mount_point(rootfs, "/plain/dir", file=False)
    inside = os.path.join(rootfs, str(tmp_path / "outside").lstrip("/"))
    assert os.path.isdir(os.path.join(inside, "dir")) and os.path.isfile(os.path.join(inside, "sub", "file"))
    assert not os.path.exists(tmp_path / "outside") and not os.path.exists(os.path.join(rootfs, "plain"))
    make_linked_mount_point(rootfs, "/abs/x/y", file=False)  # /usr/lib/x is a file: left to the runtime
    assert os.path.isfile(os.path.join(rootfs, "usr/lib/x"))


PASSWD = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\nbroken:x:abc:0::/:/bin/sh\n" \
         "nobody:x:65534:65534:nobody:/:/bin/false\n"
GROUP = "root:x:0:\nusers:x:100:user\nwheel:x:10:root,user\nstaff:x:50:\nnogroup:x:65534:\n"


@pytest.fixture
def userroot(tmp_path: Any) -> str:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(PASSWD)
    (tmp_path / "etc/group").write_text(GROUP)
    return str(tmp_path)


@pytest.mark.parametrize("user,expect", [
    ("", (0, 0, [10])),
    ("root", (0, 0, [10])),
    ("user", (1000, 1000, [10, 100])),
    ("1000", (1000, 1000, [10, 100])),
    ("4242", (4242, 0, [])),
    ("user:staff", (1000, 50, [])),
    ("user:50", (1000, 50, [])),
    ("1000:4000", (1000, 4000, [])),
    ("4242:4343", (4242, 4343, [])),
    ("nobody", (65534, 65534, [])),
])
def test_resolve_user_forms(userroot: str, user: str, expect: tuple[int, int, list[int]]) -> None:
    assert resolve_user(userroot, user) == expect


@pytest.mark.parametrize("user,message", [
    ("ghost", "unable to find user ghost: no matching entries in passwd file"),
    ("broken", "unable to find user broken: no matching entries in passwd file"),
    ("user:ghosts", "unable to find group ghosts: no matching entries in group file"),
    ("\u0661\u0662", "unable to find user \u0661\u0662: no matching entries in passwd file"),
    ("99999999999", "uids and gids must be in range 0-2147483647"),
])
def test_resolve_user_errors(userroot: str, user: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        resolve_user(userroot, user)
    assert e.value.message == message


def test_resolve_user_never_reads_host_files_through_symlinks(tmp_path: Any) -> None:
    (tmp_path / "etc").mkdir()
    os.symlink("/../../../../etc/shadow", tmp_path / "etc" / "passwd")
    os.symlink("../../../../../../etc/gshadow", tmp_path / "etc" / "group")
    assert read_in_root(str(tmp_path), "/etc/passwd") == ""
    with pytest.raises(InvalidParameter):
        resolve_user(str(tmp_path), "root")  # root exists on the host, not in this rootfs
    assert resolve_user(str(tmp_path), "0") == (0, 0, [])


def test_read_in_root_refuses_fifos_and_devices(tmp_path: Any) -> None:
    (tmp_path / "etc").mkdir()
    os.mkfifo(tmp_path / "etc" / "passwd")
    os.mknod(tmp_path / "etc" / "group", stat.S_IFCHR | 0o644, os.makedev(1, 5))  # /dev/zero
    assert read_in_root(str(tmp_path), "/etc/passwd") == ""  # would block forever if opened plainly
    assert read_in_root(str(tmp_path), "/etc/group") == ""
    assert read_in_root(str(tmp_path), "/etc") == ""
    assert read_in_root(str(tmp_path), "/missing/file") == ""
    os.symlink("/etc/loop", tmp_path / "etc" / "loop")
    assert read_in_root(str(tmp_path), "/etc/loop") == ""


def test_image_store_set_tags_moves_references_together_and_reports_previous(tmp_path: Any) -> None:
    meta = MetaStore(str(tmp_path / "db.sqlite"))
    images = ImageStore(meta)
    old, new = ImageID("sha256:" + "a" * 64), ImageID("sha256:" + "b" * 64)
    for image_id in (old, new):
        images.add(ImageRecord(image_id, b"{}", "", 0, 0))
    images.set_tag("docker.io/library/x:1", old)
    before = images.set_tags(["docker.io/library/x@sha256:" + "c" * 64, "docker.io/library/x:1"], new)
    assert before == {"docker.io/library/x@sha256:" + "c" * 64: None, "docker.io/library/x:1": old}
    assert images.refs_of(new) == ["docker.io/library/x:1", "docker.io/library/x@sha256:" + "c" * 64]
    assert images.refs_of(old) == []
    images.delete(new)
    assert images.tagged_image("docker.io/library/x:1") is None and images.get(new) is None


def test_blob_locations_filter_by_media_type_and_ignore_duplicates(tmp_path: Any) -> None:
    locations = BlobLocations(MetaStore(str(tmp_path / "db.sqlite")))
    gz = BlobLocation("sha256:" + "1" * 64, "application/vnd.docker.image.rootfs.diff.tar.gzip", 10, "r.io/a")
    zst = BlobLocation("sha256:" + "2" * 64, "application/vnd.oci.image.layer.v1.tar+zstd", 9, "r.io/a")
    for loc in (gz, zst, gz):
        locations.remember("sha256:" + "d" * 64, loc)
    assert locations.known("sha256:" + "d" * 64, [gz.media_type]) == [gz]
    assert locations.known("sha256:" + "e" * 64, [gz.media_type, zst.media_type]) == []


def test_build_cache_misses_removed_images_and_images_outside_cache_from(tmp_path: Any) -> None:
    existing = {"sha256:i1"}
    cache = BuildCache(MetaStore(str(tmp_path / "db.sqlite")), lambda image_id: image_id in existing)
    cache.store("sha256:p", "k1", "sha256:i1")
    cache.store("sha256:p", "k2", "sha256:gone")
    assert cache.lookup("sha256:p", "k1", None) == "sha256:i1"
    assert cache.lookup("sha256:p", "k1", {"sha256:other"}) is None
    assert cache.lookup("sha256:p", "k2", None) is None
    assert cache.prune().deleted and cache.lookup("sha256:p", "k1", None) is None


# each image/build/volume/distribution table and the one module allowed to run SQL on it (issue 12)
TABLE_OWNERS = {
    "images": "engine/image/store.py",
    "tags": "engine/image/store.py",
    "layers": "engine/image/layers.py",
    "layer_blobs": "engine/distribution/locations.py",
    "build_cache": "engine/build/cache.py",
    "volumes": "engine/volume/service.py",
}


def test_only_the_owning_module_runs_sql_on_a_table() -> None:
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sql = r"(?:FROM|INTO|UPDATE|TABLE IF NOT EXISTS)\s+{}\b"
    offenders = []
    for root, _, files in os.walk(os.path.join(repo, "engine")):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, repo)
            with open(path) as f:
                text = f.read()
            offenders += [f"{rel}: {table}" for table, owner in TABLE_OWNERS.items()
                          if rel != owner and re.search(sql.format(table), text)]
    assert offenders == []


def _package_imports(repo: str) -> dict[str, set[str]]:
    """engine package -> the other engine packages its modules import."""
    deps: dict[str, set[str]] = {}
    for root, _, files in os.walk(os.path.join(repo, "engine")):
        rel = os.path.relpath(root, os.path.join(repo, "engine"))
        if rel == "." or "__pycache__" in rel:
            continue
        package = rel.split(os.sep)[0]
        for name in (f for f in files if f.endswith(".py")):
            with open(os.path.join(root, name)) as f:
                found = re.findall(r"^\s*(?:from|import) engine\.(\w+)", f.read(), re.MULTILINE)
            deps.setdefault(package, set()).update(p for p in found if p != package)
    return deps


def test_storage_packages_have_no_import_cycles_and_volume_stays_below_containers() -> None:
    deps = _package_imports(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert not deps["volume"] & {"container", "build", "image", "distribution"}
    for a in ("image", "distribution", "build", "volume"):
        for b in deps.get(a, set()):
            assert a not in deps.get(b, set()), f"engine.{a} and engine.{b} import each other"


def test_mountpoints_are_told_from_their_mount_ids(tmp_path: Any) -> None:
    """is_mountpoint compares a directory's mount with its parent's; a file falls back to the mount table."""
    from engine.linux import mounts
    tmpfs, bound, plain, afile, bound_file = (tmp_path / n for n in ("tmpfs", "bound", "plain", "f", "g"))
    for d in (tmpfs, bound, plain):
        d.mkdir()
    afile.touch()
    bound_file.touch()
    (tmp_path / "link").symlink_to(tmpfs)
    mounts.mount("tmpfs", str(tmpfs), "tmpfs")
    try:
        mounts.bind(str(plain), str(bound), readonly=False)  # the same filesystem: only the mount ID differs
        mounts.bind(str(afile), str(bound_file), readonly=True)
        found = {p: mounts.is_mountpoint(str(tmp_path / p)) for p in
                 ("tmpfs", "bound", "plain", "f", "g", "link", "missing", "tmpfs/..")}
        assert found == {"tmpfs": True, "bound": True, "plain": False, "f": False, "g": True, "link": True,
                         "missing": False, "tmpfs/..": False}
        assert mounts.is_mountpoint("/") and mounts.is_mountpoint("/proc")
    finally:
        for p in (bound_file, bound, tmpfs):
            mounts.umount(str(p))


def test_state_is_kept_in_memory_only_where_nothing_would_be_hidden(tmp_path: Any) -> None:
    """keep_in_memory mounts a tmpfs on a directory on disk that holds no files, once; a directory
    with files in it (a running container's state) stays as it is."""
    from engine.linux import mounts
    fresh, busy = tmp_path / "fresh" / "run", tmp_path / "busy"
    (busy / "s" / "abc").mkdir(parents=True)
    (busy / "s" / "abc" / "exit.json").write_text("{}")
    if mounts.filesystem_type(str(tmp_path)) in mounts.MEMORY_FILESYSTEMS:
        pytest.skip("the temporary directory is in memory already")
    try:
        assert mounts.keep_in_memory(str(fresh), 0o710)
        assert mounts.filesystem_type(str(fresh)) == "tmpfs" and mounts.is_mountpoint(str(fresh))
        assert oct(os.stat(fresh).st_mode & 0o7777) == "0o710"
        (fresh / "s").mkdir()
        assert not mounts.keep_in_memory(str(fresh), 0o710)  # a restarted daemon finds it in memory
        assert (fresh / "s").is_dir()
        assert not mounts.keep_in_memory(str(busy), 0o710)
        assert mounts.filesystem_type(str(busy)) == mounts.filesystem_type(str(tmp_path))
        assert (busy / "s" / "abc" / "exit.json").read_text() == "{}"
    finally:
        mounts.umount(str(fresh))


def _container_dir_after_a_run(cdir: Any) -> None:
    """What a removed container's unmounted directory holds: its log, what it wrote, the overlay's work."""
    (cdir / "upper" / "etc").mkdir(parents=True)
    (cdir / "upper" / "etc" / "written").write_text("by the container")
    (cdir / "work" / "work").mkdir()
    (cdir / "work" / "incompat" / "volatile").mkdir(parents=True)
    (cdir / f"{cdir.name}-json.log").write_text("{}\n")
    (cdir / "upper").chmod(0o700)  # `chmod 700 /` in the container


def test_removed_containers_directories_are_recycled_emptied(tmp_path: Any) -> None:
    """A recycled directory comes back with nothing of its container: a new `upper`, an empty `merged`, and
    in `work` only the directory the overlay remakes at every mount."""
    from engine.container.dirs import ContainerDirs
    spares = tmp_path / ".spare"
    spares.mkdir()
    (spares / "left-by-an-earlier-daemon").mkdir()
    dirs = ContainerDirs(str(spares))
    assert os.listdir(spares) == []
    first = tmp_path / "a"
    dirs.make(str(first))
    assert sorted(os.listdir(first)) == ["merged", "upper", "work"] and oct(first.stat().st_mode & 0o777) == "0o710"
    _container_dir_after_a_run(first)
    inode = first.stat().st_ino
    assert dirs.recycle(str(first)) and not first.exists()
    second = tmp_path / "b"
    dirs.make(str(second))
    assert second.stat().st_ino == inode and (second / "upper").stat().st_mode & 0o777 != 0o700
    assert sorted(os.listdir(second)) == ["merged", "upper", "work"]
    assert os.listdir(second / "upper") == [] and os.listdir(second / "merged") == []
    assert os.listdir(second / "work") == ["work"]
    assert os.listdir(spares) == []


def test_directories_unlike_a_containers_are_not_recycled(tmp_path: Any) -> None:
    from engine.container.dirs import SPARES, ContainerDirs
    spares = tmp_path / ".spare"
    spares.mkdir()
    dirs = ContainerDirs(str(spares))
    odd = tmp_path / "odd"
    dirs.make(str(odd))
    (odd / "unexpected").mkdir()
    assert not dirs.recycle(str(odd))
    busy = tmp_path / "busy"
    dirs.make(str(busy))
    (busy / "merged" / "file").write_text("a mount's content")
    assert not dirs.recycle(str(busy))
    made = [tmp_path / f"c{i}" for i in range(SPARES + 1)]
    for d in made:
        dirs.make(str(d))
    assert [dirs.recycle(str(d)) for d in made] == [True] * SPARES + [False]
    assert len(os.listdir(spares)) == SPARES
