"""Filesystem work of a build: the context, image root views, COPY/ADD, layers from upperdirs.

Every step that changes files does so in an overlay of the parent image with a
fresh upperdir, then serialises that upperdir as the step's layer, exactly as
a RUN container's changes are: so COPY, ADD and WORKDIR get Docker's
copy-up semantics (existing parents keep their metadata, symlinks in the
destination path are followed inside the image) for free. Paths inside an
image or the context go through `secure_join`, so no symlink can lead out.
"""
from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator

from engine.errors import InvalidParameter
from engine.image import upperdir
from engine.image.layers import LayerStore, write_diff_tar
from engine.linux.fsutil import secure_join
from pydock_common.dockerignore import IgnoreMatcher
from pydock_common.untar import Options, Scope, untar

GLOB_CHARS = "*?["
# mountpoints runc creates in a RUN container's upperdir; Docker keeps them in
# a per-container init layer, so they never reach a committed layer
RUN_ARTIFACTS = ("etc/hostname", "etc/hosts", "etc/resolv.conf", "dev/console", "dev/pts", "dev/shm")
RUN_ARTIFACT_DIRS = ("etc", "dev")


# ---- build context --------------------------------------------------------
def _clean(name: str) -> str:
    return posixpath.normpath("/" + name).lstrip("/")


def _pad_tar(tar_path: str) -> None:
    """Complete the last block and add the end-of-archive blocks.

    The docker CLI's rewritten context (`-f` pointing outside it) ends right
    after the last file's data; Go's tar reader accepts that, Python's wants
    the padding. Zero blocks after a complete archive are ignored, so this is
    harmless for well-formed contexts.
    """
    size = os.path.getsize(tar_path)
    with open(tar_path, "ab") as f:
        f.write(b"\0" * ((-size) % tarfile.BLOCKSIZE + 2 * tarfile.BLOCKSIZE))


_BAD_TAR = (tarfile.TarError, OSError, EOFError)  # compressors report corrupt data as OSError


def _open_context(tar_path: str) -> tarfile.TarFile:
    """The context as sent, plain or compressed (`docker build --compress`)."""
    try:
        return tarfile.open(tar_path, "r:*")
    except _BAD_TAR as e:
        raise InvalidParameter(f"invalid build context: {e}") from e


def _context_members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    try:
        return {_clean(m.name): m for m in tar.getmembers() if _clean(m.name)}
    except _BAD_TAR as e:
        raise InvalidParameter(f"invalid build context: {e}") from e


def extract_context(tar_path: str, dest: str, dockerfile: str) -> bytes:
    """Unpack the context minus `.dockerignore`d files; returns the Dockerfile's bytes."""
    _pad_tar(tar_path)
    with _open_context(tar_path) as tar:
        members = _context_members(tar)

        def read(name: str) -> bytes | None:
            m = members.get(name)
            f = tar.extractfile(m) if m is not None and m.isfile() else None
            return f.read() if f is not None else None

        ignore_text = read(".dockerignore")
        ignore = IgnoreMatcher.from_text(ignore_text.decode("utf-8", "replace")) if ignore_text else IgnoreMatcher([])
        name = _clean(dockerfile) or "Dockerfile"
        data = read(name)
        if data is None and dockerfile == "Dockerfile":
            data = read("dockerfile")
        if data is None:
            raise InvalidParameter(f"Cannot locate specified Dockerfile: {dockerfile}")
    untar(tar_path, dest, Options(scope=Scope.BENEATH, select=lambda rel: not ignore.excluded(rel),
                                  what="build context"))
    return data


def layer_from_upper(upper: str, layers: LayerStore, tmp_dir: str, parent_chain: str) -> str | None:
    """Register an upperdir as a layer; None when nothing changed (Docker's empty layer)."""
    if not os.listdir(upper):
        return None
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix="build-layer-")
    try:
        with os.fdopen(fd, "wb") as f:
            write_diff_tar(upper, f)
        return layers.register(tmp, parent_chain).diff_id
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def drop_run_artifacts(upper: str) -> None:
    """Remove the empty mountpoints runc left in a RUN container's upperdir."""
    for rel in RUN_ARTIFACTS:
        path = os.path.join(upper, rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_size == 0:
            os.unlink(path)
        elif stat.S_ISDIR(st.st_mode) and not os.listdir(path):
            os.rmdir(path)
    for rel in RUN_ARTIFACT_DIRS:
        path = os.path.join(upper, rel)
        if os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path) and not upperdir.is_opaque(path):
            os.rmdir(path)


# ---- sources ----------------------------------------------------------------
def resolve_sources(root: str, src: str, instruction: str) -> list[str]:
    """Host paths inside `root` for one COPY/ADD source, with Go filepath.Match globbing per component."""
    rel = _clean(src)
    if not any(c in rel for c in GLOB_CHARS):
        path = secure_join(root, rel)
        if not os.path.lexists(path):
            raise InvalidParameter(f"{instruction} failed: file not found in build context or excluded by "
                                   f".dockerignore: stat {rel or '.'}: file does not exist")
        return [path]
    matches = [root]
    for part in rel.split("/"):
        nxt: list[str] = []
        for base in matches:
            if not os.path.isdir(base) or os.path.islink(base):
                continue
            pattern = part.replace("[^", "[!")
            nxt.extend(os.path.join(base, n) for n in sorted(os.listdir(base)) if fnmatch.fnmatchcase(n, pattern))
        matches = nxt
    return matches


def _walk(path: str) -> Iterator[tuple[str, str]]:
    """(host path, path relative to `path`) for `path` and, for a directory, everything below, sorted."""
    yield path, ""
    if os.path.isdir(path) and not os.path.islink(path):
        for root, dirs, files in os.walk(path):
            dirs.sort()
            rel_root = os.path.relpath(root, path)
            for name in sorted(dirs + files):
                rel = name if rel_root == "." else f"{rel_root}/{name}"
                yield os.path.join(root, name), rel


def content_hash(paths: list[str]) -> str:
    """Docker's tarsum idea: names, types, modes, sizes, link targets and contents; not times or owners."""
    h = hashlib.sha256()
    for top in paths:
        h.update(os.path.basename(top).encode("utf-8", "surrogateescape") + b"\0")
        for path, rel in _walk(top):
            st = os.lstat(path)
            h.update(f"{rel}\0{st.st_mode:o}\0{st.st_size}\0".encode("utf-8", "surrogateescape"))
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(path).encode("utf-8", "surrogateescape"))
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
            h.update(b"\0")
    return h.hexdigest()


# ---- copying into an image root ---------------------------------------------
def is_archive(path: str) -> bool:
    """ADD extracts local tar archives, plain or compressed (gzip, bzip2, xz), as Docker detects them."""
    if not os.path.isfile(path) or os.path.islink(path):
        return False
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        try:
            with tarfile.open(path, "r:*") as tar:
                return tar.next() is not None
        except _BAD_TAR:
            return False
    return len(head) >= 262 and head[257:262] == b"ustar"


class Copier:
    """Copies files into a writable image root with Docker's ownership and mode rules."""

    def __init__(self, root: str, uid: int, gid: int, chmod: int | None) -> None:
        self.root = root
        self.uid, self.gid = uid, gid
        self.chmod = chmod

    def mkdirs(self, path: str) -> str:
        """Create a directory in the image (and missing parents, 0755, owned like the copied files)."""
        host = secure_join(self.root, path)
        missing = []
        probe = host
        while not os.path.lexists(probe) and probe != self.root:
            missing.append(probe)
            probe = os.path.dirname(probe)
        for d in reversed(missing):
            os.mkdir(d, 0o755)
            os.chown(d, self.uid, self.gid)
        if not os.path.isdir(host):
            raise InvalidParameter(f"cannot copy to {path}: not a directory")
        return host

    def exists_as_dir(self, path: str) -> bool:
        return os.path.isdir(secure_join(self.root, path))

    def copy(self, src: str, dest: str) -> None:
        """A directory's contents go into `dest`; a file becomes `dest`."""
        if os.path.isdir(src) and not os.path.islink(src):
            self.mkdirs(dest)
            for path, rel in _walk(src):
                if rel:
                    self._copy_entry(path, posixpath.join(dest, rel))
            return
        self.mkdirs(posixpath.dirname(dest.rstrip("/")) or "/")
        self._copy_entry(src, dest)

    def _copy_entry(self, src: str, dest: str) -> None:
        parent = secure_join(self.root, posixpath.dirname(dest))
        target = os.path.join(parent, posixpath.basename(dest))
        st = os.lstat(src)
        if stat.S_ISDIR(st.st_mode):
            if not os.path.isdir(target) or os.path.islink(target):
                _remove(target)
                os.mkdir(target)
            self._finish(target, st, is_dir=True)
            return
        _remove(target)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), target)
            os.chown(target, self.uid, self.gid, follow_symlinks=False)
            return
        if stat.S_ISREG(st.st_mode):
            with open(src, "rb") as fin, open(target, "xb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
        elif stat.S_ISFIFO(st.st_mode):
            os.mkfifo(target)
        else:
            return  # sockets and devices are not copied
        self._finish(target, st, is_dir=False)

    def _finish(self, target: str, st: os.stat_result, is_dir: bool) -> None:
        os.chown(target, self.uid, self.gid)
        os.chmod(target, self.chmod if self.chmod is not None else stat.S_IMODE(st.st_mode))
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))

    def extract(self, archive: str, dest: str) -> None:
        """ADD of a local archive: unpack into the `dest` directory, keeping the archive's owners and modes."""
        host = self.mkdirs(dest)
        root = os.path.realpath(self.root)
        untar(archive, root, Options(scope=Scope.IN_ROOT, dest=host[len(root):].strip("/"),
                                     what=os.path.basename(archive)))


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
