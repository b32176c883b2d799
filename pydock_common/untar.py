"""The engine's one tar extractor: build contexts, ADD archives, layers, `docker cp`.

Every tar the engine unpacks comes from a client or an image, so every entry
is hostile until proven otherwise: names with `..`, symlinks planted by an
earlier entry (or by a running container) in the path of a later one, hard
links whose target is a host file, device nodes. tarfile's own filters check
names as strings, and on some Python versions do not check hard-link targets
at all, which let a build context overwrite host files.

So nothing here works on path strings. Each entry's parent directory is
reached from a directory file descriptor one component at a time with
`openat(O_PATH | O_NOFOLLOW)`; a symlink met on the way is read and its target
walked the same way, in one of two scopes (the semantics of Linux's openat2
`RESOLVE_BENEATH` and `RESOLVE_IN_ROOT`):

- `Scope.BENEATH` (layers, build contexts): a path that would leave the
  destination, through `..` or an absolute symlink, is refused;
- `Scope.IN_ROOT` (a container's or image's rootfs): the root is `/` for the
  walk, as the container sees it, like Docker's chrooted untar.

The entry itself is never followed: whatever is at its path is replaced. Hard
links name files already inside the destination; a link target that leaves
it, is missing, is a directory or a symlink is refused. Attributes are set
through descriptors of the created file (`fchown`, `fchmod`), directory times
and modes last, re-reached the same way. A concurrent rename by a container
can make an extraction fail, never write outside the root.
"""
from __future__ import annotations

import enum
import errno
import io
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from pydock_common.errdefs import InvalidParameter, Unsupported
from pydock_common.userns import in_user_namespace, single_id_namespace

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
USER_OPAQUE_XATTR = "user.overlay.opaque"
MAX_SYMLINKS = 40  # the kernel's own limit for one path walk

_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeArchive(InvalidParameter):
    """A tar entry that would write outside its destination, or a malformed tar."""


class UnmappedOwner(Unsupported):
    """An entry's owner has no ID in the (rootless) daemon's user namespace."""


class Scope(enum.Enum):
    """How symlinks met while resolving an entry's parent are treated."""

    BENEATH = "beneath"  # refuse any walk that leaves the root
    IN_ROOT = "in-root"  # the root is "/" for the walk (a container's view)


@dataclass
class Options:
    """What an extraction keeps and where it lands.

    `dest` is a directory below the root (`""` for the root itself) that the
    entries' names are relative to. `owner` replaces every entry's owner
    (`docker cp` into a container with copyUIDGID, or out to the caller);
    `None` keeps the archive's numeric owners. `select` sees each cleaned
    name and drops the entries it refuses (`.dockerignore`). `whiteouts`
    turns OCI whiteout entries into overlayfs' form, for layers.
    """

    scope: Scope = Scope.BENEATH
    dest: str = ""
    owner: tuple[int, int] | None = None
    select: Callable[[str], bool] | None = None
    whiteouts: bool = False
    no_overwrite_dir_non_dir: bool = False
    what: str = "archive"  # names the archive in error messages ("layer", "build context")


def opaque_xattr() -> str:
    """overlayfs' mark of an opaque directory for this process's overlay mounts.

    Setting a `trusted.*` attribute needs root of the host, so inside a user
    namespace overlayfs is mounted with `userxattr` (engine.linux.mounts) and
    uses the `user.overlay.*` names instead.
    """
    return USER_OPAQUE_XATTR if in_user_namespace() else OPAQUE_XATTR


def _chown(change: Callable[[], None], uid: int, gid: int, name: str) -> None:
    """Give an entry its owner; an owner the user namespace cannot represent (EINVAL) is its own error.

    In a namespace that maps the user alone everything stays root's, as
    Podman's ignore_chown_errors does: there is no other owner to give.
    """
    try:
        change()
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        if single_id_namespace():
            return
        raise UnmappedOwner(f"cannot give {name[:200]!r} the owner {uid}:{gid}: that ID is not mapped in the "
                            "daemon's user namespace (rootless mode: too few subordinate IDs in /etc/subuid "
                            "or /etc/subgid)") from None


def clean_name(name: str, what: str = "archive") -> str:
    """A member name relative to the destination; one that leaves it is refused, as Docker's breakout check."""
    norm = posixpath.normpath("/" + name) if name.startswith("/") else posixpath.normpath(name)
    norm = norm.lstrip("/")
    if norm == ".." or norm.startswith("../"):
        raise UnsafeArchive(f"invalid {what} entry {name[:200]!r}: path escapes the {what}")
    return "" if norm == "." else norm


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p]


def _refuse(path: str, why: str) -> UnsafeArchive:
    return UnsafeArchive(f"invalid path {path[:200]!r}: {why}")


def open_dir(root_fd: int, path: str, scope: Scope, create: bool = False) -> int:
    """An O_PATH descriptor of directory `path` below `root_fd`, symlinks resolved in `scope`.

    Missing directories are created (0755) with `create`, as Docker's untar
    creates the parents an archive leaves out. The caller closes the result.
    """
    stack = [os.dup(root_fd)]  # the directories from the root down to the current one
    pending = _parts(path)[::-1]
    links = 0
    try:
        while pending:
            part = pending.pop()
            if part == ".":
                continue
            if part == "..":
                if len(stack) == 1:
                    if scope is Scope.BENEATH:
                        raise _refuse(path, "leaves the destination")
                    continue
                os.close(stack.pop())
                continue
            try:
                fd = os.open(part, _PATH, dir_fd=stack[-1])
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, 0o755, dir_fd=stack[-1])
                except FileExistsError:
                    pass  # made meanwhile: look again
                pending.append(part)
                continue
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                stack.append(fd)
                continue
            os.close(fd)
            if not stat.S_ISLNK(mode):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
            links += 1
            if links > MAX_SYMLINKS:
                raise _refuse(path, "too many levels of symbolic links")
            target = os.readlink(part, dir_fd=stack[-1])
            if target.startswith("/"):
                if scope is Scope.BENEATH:
                    raise _refuse(path, f"symbolic link {part[:100]!r} leads outside the destination")
                for d in stack[1:]:
                    os.close(d)
                del stack[1:]
            pending.extend(_parts(target)[::-1])
        result = stack.pop()
    finally:
        for d in stack:
            os.close(d)
    return result


def _split(path: str) -> tuple[str, str]:
    parent, _, name = path.rpartition("/")
    return parent, name


def _real_dir(dir_fd: int) -> int:
    """A readable descriptor of an O_PATH directory (xattrs and times need one)."""
    return os.open(".", _DIR, dir_fd=dir_fd)


@dataclass
class _Pending:
    """A directory's attributes, applied after its contents are written."""

    path: str
    mode: int
    mtime: int


class _Extraction:
    def __init__(self, tar: tarfile.TarFile, root_fd: int, opts: Options, fast_fd: int | None) -> None:
        self.tar, self.root_fd, self.opts = tar, root_fd, opts
        self.fast_fd = fast_fd  # the archive file itself when uncompressed: data is copied in the kernel
        self.dirs: list[_Pending] = []
        self._cached: tuple[str, int] | None = None  # the last parent reached: entries come grouped by directory
        self._stale = False

    # ---- walking ---------------------------------------------------------
    def _parent(self, path: str) -> int:
        if self._cached is not None and self._cached[0] == path and not self._stale:
            return self._cached[1]
        fd = open_dir(self.root_fd, path, self.opts.scope, create=True)
        self._forget()
        self._cached = (path, fd)
        return fd

    def _forget(self) -> None:
        """Drop the cached parent (after a directory was removed it may lead nowhere)."""
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None
        self._stale = False

    def _path(self, rel: str) -> str:
        return posixpath.join(self.opts.dest, rel) if self.opts.dest else rel

    # ---- entries ---------------------------------------------------------
    def run(self) -> None:
        try:
            for member in self.tar:
                self._member(member)
            self._finish_dirs()
        finally:
            self._forget()

    def _member(self, m: tarfile.TarInfo) -> None:
        rel = clean_name(m.name, self.opts.what)
        if not rel or m.ischr() or m.isblk():
            return  # the destination itself keeps its attributes; host devices never reach a container
        if self.opts.select is not None and not self.opts.select(rel):
            return
        parent, name = _split(self._path(rel))
        if self.opts.whiteouts and name.startswith(WHITEOUT_PREFIX):
            self._whiteout(parent, name)
            return
        pfd = self._parent(parent)
        self._clear(pfd, name, rel, m)
        self._create(pfd, parent, name, m)

    def _whiteout(self, parent: str, name: str) -> None:
        pfd = self._parent(parent)
        if name == OPAQUE_MARKER:
            fd = _real_dir(pfd)
            try:
                os.setxattr(fd, opaque_xattr(), b"y")
            finally:
                os.close(fd)
            return
        hidden = name[len(WHITEOUT_PREFIX):]
        if hidden in ("", ".", ".."):
            raise UnsafeArchive(f"invalid whiteout {name[:200]!r}")
        self._remove(pfd, hidden)
        os.mknod(hidden, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=pfd)

    def _clear(self, pfd: int, name: str, rel: str, m: tarfile.TarInfo) -> None:
        """Make room for the entry: what is at its path is replaced, never written through."""
        try:
            existing = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        is_dir = stat.S_ISDIR(existing.st_mode)
        if self.opts.no_overwrite_dir_non_dir and is_dir != m.isdir():
            path = "/" + self._path(rel)
            raise InvalidParameter(f'cannot overwrite {"directory" if is_dir else "non-directory"} "{path}" with '
                              f'{"non-directory" if is_dir else "directory"} "/{self.opts.dest}"')
        if not (is_dir and m.isdir()):
            self._remove(pfd, name)

    def _remove(self, pfd: int, name: str) -> None:
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=pfd)  # fd-based: never follows a symlink inside
            self._stale = True  # the cached parent may have been inside it; `pfd` itself still stands
        else:
            os.unlink(name, dir_fd=pfd)

    def _owner(self, m: tarfile.TarInfo) -> tuple[int, int]:
        return self.opts.owner or (m.uid, m.gid)

    def _create(self, pfd: int, parent: str, name: str, m: tarfile.TarInfo) -> None:
        uid, gid = self._owner(m)
        if m.issym():
            os.symlink(m.linkname, name, dir_fd=pfd)
            _chown(lambda: os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False), uid, gid, m.name)
            os.utime(name, (m.mtime, m.mtime), dir_fd=pfd, follow_symlinks=False)
            return
        if m.islnk():
            self._hard_link(pfd, name, m)
            return
        if m.isdir():
            try:
                os.mkdir(name, 0o700, dir_fd=pfd)
            except FileExistsError:
                pass  # merging into an existing directory: only its attributes change
            fd = os.open(name, _DIR, dir_fd=pfd)
            try:
                _chown(lambda: os.fchown(fd, uid, gid), uid, gid, m.name)
            finally:
                os.close(fd)
            self.dirs.append(_Pending(posixpath.join(parent, name), m.mode & 0o7777, int(m.mtime)))
            return
        if m.isfifo():
            os.mkfifo(name, 0o600, dir_fd=pfd)
            fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        elif m.isreg():
            fd = os.open(name, _NEW_FILE, 0o600, dir_fd=pfd)
            try:
                self._write_data(fd, m)
            except BaseException:
                os.close(fd)
                raise
        else:
            return  # sockets and unknown types have nothing to extract
        try:
            _chown(lambda: os.fchown(fd, uid, gid), uid, gid, m.name)
            os.fchmod(fd, m.mode & 0o7777)  # after chown, which clears setuid bits
            os.utime(fd, (m.mtime, m.mtime))
        finally:
            os.close(fd)

    def _hard_link(self, pfd: int, name: str, m: tarfile.TarInfo) -> None:
        """Link to a file the archive already put inside the destination, never to anything else."""
        what = self.opts.what
        target = clean_name(m.linkname, what)
        refused = UnsafeArchive(f"invalid hard link {m.name[:200]!r} in {what}: target {m.linkname[:200]!r} "
                                "is not a file in the destination")
        if not target:
            raise refused
        tparent, tname = _split(self._path(target))
        try:
            sfd = open_dir(self.root_fd, tparent, self.opts.scope)
        except (FileNotFoundError, NotADirectoryError):
            raise refused from None
        try:
            st = os.stat(tname, dir_fd=sfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
                raise refused
            os.link(tname, name, src_dir_fd=sfd, dst_dir_fd=pfd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            raise refused from None
        except OSError as e:
            if e.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise UnsafeArchive(f"cannot hard-link {m.name[:200]!r} to {m.linkname[:200]!r}: "
                                    f"{e.strerror}") from None
            raise
        finally:
            os.close(sfd)

    def _write_data(self, fd: int, m: tarfile.TarInfo) -> None:
        if self.fast_fd is not None and m.sparse is None:
            offset, left = m.offset_data, m.size
            while left > 0:
                n = os.copy_file_range(self.fast_fd, fd, left, offset)
                if n == 0:
                    raise UnsafeArchive(f"invalid {self.opts.what}: unexpected end of data")
                offset += n
                left -= n
            return
        src = self.tar.extractfile(m)
        if src is None:
            return
        with open(fd, "wb", closefd=False) as out:
            shutil.copyfileobj(src, out, 1 << 20)

    def _finish_dirs(self) -> None:
        """Directory modes and times last, deepest first: writing their contents would change them."""
        self._forget()
        for d in reversed(self.dirs):
            parent, name = _split(d.path)
            try:
                pfd = open_dir(self.root_fd, parent, self.opts.scope)
            except (OSError, UnsafeArchive):
                continue  # replaced by a later entry
            try:
                fd = os.open(name, _DIR, dir_fd=pfd)
            except OSError:
                continue  # no longer a directory at that path
            finally:
                os.close(pfd)
            try:
                os.fchmod(fd, d.mode)
                os.utime(fd, (d.mtime, d.mtime))
            finally:
                os.close(fd)


_CORRUPT = (tarfile.TarError, EOFError, OSError)  # gzip, bz2 and lzma report bad data as OSError
# What a hostile or malformed entry makes the kernel answer: the archive's fault, not the host's.
_ENTRY_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.ENOTDIR, errno.ELOOP, errno.EINVAL, errno.EEXIST,
                           errno.EISDIR, errno.ENOTEMPTY, errno.ENOENT})


def untar(src: str | IO[bytes], root: str | int, opts: Options) -> None:
    """Unpack the tar at path `src` (any compression), or read as a stream, below `root`.

    `root` is a directory path or an open directory descriptor (kept open).
    Raises UnsafeArchive (a 400) for hostile or malformed archives; other
    OSErrors (a full disk) are the host's and pass through.
    """
    root_fd = root if isinstance(root, int) else os.open(root, _DIR)
    try:
        with _open(src, opts) as tar:
            # an uncompressed file is read through a plain buffered file: data is copied in the kernel
            fast = tar.fileobj.fileno() if isinstance(tar.fileobj, io.BufferedReader) else None
            _Extraction(tar, root_fd, opts, fast).run()
    except (tarfile.TarError, EOFError) as e:
        raise UnsafeArchive(f"invalid {opts.what}: {e}") from e
    except OSError as e:
        if e.errno not in _ENTRY_ERRNOS:
            raise
        raise UnsafeArchive(f"cannot extract {opts.what}: {e.strerror}: {e.filename or ''}".rstrip(": ")) from e
    finally:
        if not isinstance(root, int):
            os.close(root_fd)


def _open(src: str | IO[bytes], opts: Options) -> tarfile.TarFile:
    try:
        if isinstance(src, str):
            return tarfile.open(src, "r:*")
        return tarfile.open(fileobj=src, mode="r|*")
    except _CORRUPT as e:
        raise UnsafeArchive(f"invalid {opts.what}: {e}") from e
