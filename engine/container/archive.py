"""Container filesystem access: `docker cp`, `export`, `diff` and `commit`.

A container's files are hostile: a process inside can plant symlinks such as
`/x -> /` or `/etc -> /../../etc`, and can swap a directory for a symlink
while pydock works on it. Container paths are therefore resolved with
`secure_join` (symlinks followed as if the rootfs were `/`, as Docker's
chrooted copy does), and every file is then reached with `openat`-style
calls that refuse to follow any symlink (`O_NOFOLLOW`, `dir_fd`). A race can
make an operation fail, never make it read or write a host file.

A stopped container's rootfs is not mounted: it is mounted for the duration
of the operation, under the container's lock so start/stop cannot interleave.
"""
from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import os
import posixpath
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from engine import wire
from engine.config import EngineConfig
from engine.container.record import ContainerRecord
from engine.container.service import ContainerService
from engine.errors import Conflict, InvalidParameter, NotFound
from engine.image import upperdir
from engine.image.changes import apply_change
from engine.image.layers import Layer, LayerStore, write_diff_tar
from engine.image.service import ImageService
from engine.linux.fsutil import resolve_user, secure_join
from engine.timeutil import rfc3339_ns
from engine.types.container import ContainerConfig
from pydock_common import reference
from pydock_common.tarwrite import TarWriter, walk
from pydock_common.untar import Options, Scope, untar

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

# What Docker's per-container init layer holds (below the writable layer, so
# `docker diff` never lists it); runc creates these mountpoints in our upperdir.
INIT_PATHS = frozenset({"proc", "sys", ".dockerenv", "etc/hosts", "etc/hostname", "etc/resolv.conf",
                        "etc/mtab", "dev/console", "dev/pts", "dev/shm"})
INIT_DIRS = frozenset({"etc", "dev"})

# Go's os.FileMode type bits, as the path-stat header carries them.
_GO_DIR, _GO_SYMLINK, _GO_DEVICE, _GO_PIPE, _GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
_GO_SETUID, _GO_SETGID, _GO_CHARDEV, _GO_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


def go_file_mode(mode: int) -> int:
    out = stat.S_IMODE(mode) & 0o777
    kind = stat.S_IFMT(mode)
    out |= {stat.S_IFDIR: _GO_DIR, stat.S_IFLNK: _GO_SYMLINK, stat.S_IFBLK: _GO_DEVICE,
            stat.S_IFCHR: _GO_DEVICE | _GO_CHARDEV, stat.S_IFIFO: _GO_PIPE, stat.S_IFSOCK: _GO_SOCKET}.get(kind, 0)
    for bit, go in ((stat.S_ISUID, _GO_SETUID), (stat.S_ISGID, _GO_SETGID), (stat.S_ISVTX, _GO_STICKY)):
        if mode & bit:
            out |= go
    return out


def go_time(ns: int) -> str:
    """Go's JSON time (RFC 3339, trailing zero nanoseconds trimmed, local zone)."""
    secs, frac = divmod(ns, 1_000_000_000)
    local = _dt.datetime.fromtimestamp(secs).astimezone()
    offset = local.strftime("%z")
    zone = "Z" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}"
    nanos = f".{frac:09d}".rstrip("0") if frac else ""
    return local.strftime("%Y-%m-%dT%H:%M:%S") + nanos + zone


def docker_abs_path(path: str) -> str:
    """Docker's `PreserveTrailingDotOrSeparator(filepath.Join("/", path), path)`."""
    clean = posixpath.normpath("/" + path.lstrip("/"))
    if posixpath.basename(path) == "." and not clean.endswith("/."):
        clean = clean.rstrip("/") + "/."
    elif path.endswith("/") and not clean.endswith("/"):
        clean += "/"
    return clean


def _base_name(abs_path: str) -> str:
    """Go's filepath.Base: trailing slashes ignored, "/" for the root."""
    return posixpath.basename(abs_path.rstrip("/")) or "/"


def _rel(root: str, host_path: str) -> str:
    """A `secure_join` result as a path relative to `root` ("" for the root itself)."""
    return host_path[len(root):].lstrip("/")


def open_dir(root_fd: int, rel: str, create: bool = False) -> int:
    """Directory `rel` under `root_fd`, reached without following any symlink.

    Missing components are created (0755) when `create` is set, as Docker's
    untar does for entries whose parents are not in the archive.
    """
    fd = os.dup(root_fd)
    try:
        for part in (p for p in rel.split("/") if p):
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd



def _os_error_text(e: OSError) -> str:
    """An OSError as a message: the reason and the paths, without Python's "[Errno N]" prefix."""
    names = " -> ".join(str(n) for n in (e.filename, e.filename2) if n is not None)
    return f"{e.strerror or e}: {names}" if names else str(e.strerror or e)



def _lstat_in(layer: str, rel: str) -> os.stat_result | None:
    parent, name = posixpath.split(rel)
    try:
        root_fd = os.open(layer, _DIR_FLAGS)
        try:
            fd = open_dir(root_fd, parent)
        finally:
            os.close(root_fd)
        try:
            return os.stat(name, dir_fd=fd, follow_symlinks=False)
        finally:
            os.close(fd)
    except OSError:
        return None


def _same_dir(a: os.stat_result, b: os.stat_result) -> bool:
    """Docker's test that a copied-up directory was not itself changed (sameFsTime included)."""
    sa, na = divmod(a.st_mtime_ns, 1_000_000_000)
    sb, nb = divmod(b.st_mtime_ns, 1_000_000_000)
    return (a.st_size == b.st_size and a.st_mode == b.st_mode and sa == sb
            and (na == 0 or nb == 0 or na == nb))


def overlay_changes(upper: str, lowers: list[str]) -> list[dict[str, Any]]:
    """Docker's overlay `changes()`: Kind 0 modified, 1 added, 2 deleted, in walk order (an upperdir of
    either overlay, engine.image.upperdir)."""
    out: list[dict[str, Any]] = []
    changed_dirs: set[str] = set()
    fd = os.open(upper, _DIR_FLAGS)
    try:
        for rel, pfd, name, st in walk(fd):
            deleted = upperdir.deleted_name(name, st)
            if deleted is None and not upperdir.is_content(name):
                continue
            if deleted is not None:
                rel = posixpath.join(posixpath.dirname(rel), deleted)
            if any(rel == p or rel.startswith(p + "/") for p in INIT_PATHS):
                continue
            path = "/" + rel
            is_dir = stat.S_ISDIR(st.st_mode)
            lower = next((s for s in (_lstat_in(layer, rel) for layer in lowers) if s is not None), None)
            if deleted is not None or (is_dir and lower and upperdir.is_opaque(f"/proc/self/fd/{pfd}/{name}")):
                kind = 2
            elif rel in INIT_DIRS or (is_dir and lower and stat.S_ISDIR(lower.st_mode) and _same_dir(st, lower)):
                continue
            else:
                kind = 0 if lower else 1
            if is_dir:
                changed_dirs.add(path)
            parent = posixpath.dirname(path)
            if kind != 0 and parent != "/" and parent not in changed_dirs:
                out.append({"Path": parent, "Kind": 0})
                changed_dirs.add(parent)
            out.append({"Path": path, "Kind": kind})
    finally:
        os.close(fd)
    return out


def _process_root(pid: int, merged: str) -> tuple[str, int] | None:
    """`/proc/<pid>/root` and an fd on it, if `pid` is still the container's process (its root is the
    container's root filesystem), else None. The fd is opened through the process's /proc directory, so a
    pid reused after the container exited cannot slip in between the check and the use."""
    try:
        proc_fd = os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        root_fd = os.open("root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=proc_fd)
    except OSError:
        return None
    finally:
        os.close(proc_fd)
    try:
        st, want = os.fstat(root_fd), os.stat(merged)
        same = (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino)
    except OSError:
        same = False
    if not same:
        os.close(root_fd)
        return None
    return f"/proc/{pid}/root", root_fd


def merge_config(user: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """Docker's commit `merge`: what the committed config leaves unset comes from the container's."""
    out = copy.deepcopy(user)
    for key in ("User", "WorkingDir", "StopSignal"):
        out[key] = out.get(key) or container.get(key) or ""
    out["ExposedPorts"] = {**(container.get("ExposedPorts") or {}), **(out.get("ExposedPorts") or {})} or None
    env = list(out.get("Env") or [])
    keys = {e.split("=", 1)[0] for e in env}
    out["Env"] = env + [e for e in container.get("Env") or [] if e.split("=", 1)[0] not in keys] if env \
        else container.get("Env")
    out["Labels"] = {**(container.get("Labels") or {}), **(out.get("Labels") or {})}
    if not out.get("Entrypoint"):
        if not out.get("Cmd"):
            out["Cmd"], out["Shell"] = container.get("Cmd"), container.get("Shell")
        if out.get("Entrypoint") is None:
            out["Entrypoint"] = container.get("Entrypoint")
    if out.get("Healthcheck") is None and container.get("Healthcheck") is not None:
        out["Healthcheck"] = container["Healthcheck"]
    out["Volumes"] = {**(out.get("Volumes") or {}), **(container.get("Volumes") or {})} or None
    return {k: v for k, v in out.items() if not (k == "Shell" and v is None)}


class ArchiveService:
    def __init__(self, cfg: EngineConfig, containers: ContainerService, images: ImageService,
                 layers: LayerStore) -> None:
        self.cfg = cfg
        self.containers = containers
        self.images = images
        self.layers = layers

    @contextmanager
    def _rootfs(self, ref: str, with_mounts: bool = True) -> Iterator[tuple[ContainerRecord, str, int]]:
        """The record, the container's root path and an fd on it, with start/stop/remove held off.

        With `with_mounts` (docker cp), a running container's root is its process's
        (`/proc/<pid>/root`), where its volumes, binds and tmpfs mounts are, and a
        stopped one's is assembled with its volumes and binds mounted in, as dockerd
        does; without (export), it is the root filesystem alone.
        """
        with self.containers.locked(ref) as c:
            merged = os.path.join(self.containers.dir(c.id), "merged")
            live = _process_root(c.state.pid, merged) if c.state.running and with_mounts else None
            if live is not None:
                try:
                    yield c, live[0], live[1]
                finally:
                    os.close(live[1])
                return
            temporary = self.containers.mount_root(c)
            try:
                root = os.path.realpath(merged)
                with self._mounts_shown(c, root) if with_mounts else contextlib.nullcontext():
                    root_fd = os.open(root, _DIR_FLAGS)
                    try:
                        yield c, root, root_fd
                    finally:
                        os.close(root_fd)
            finally:
                if temporary:
                    self.containers.rootfs.unmount(merged)

    @contextmanager
    def _mounts_shown(self, c: ContainerRecord, root: str) -> Iterator[None]:
        """A stopped container's volumes and binds mounted at their destinations under `root` meanwhile
        (tmpfs mounts hold nothing while it is stopped)."""
        if not c.mount_points:
            yield
            return
        volumes = self.containers.volumes
        shown: list[str] = []
        try:
            for m in volumes.attach(c.id, c.host_config, c.mount_points):
                if m["type"] != "bind":
                    continue
                target = secure_join(root, m["destination"])
                if os.path.isdir(m["source"]):
                    os.makedirs(target, mode=0o755, exist_ok=True)
                elif not os.path.lexists(target):
                    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
                    open(target, "a").close()
                self.containers.rootfs.bind(m["source"], target, "ro" in m["options"])
                shown.append(target)
            yield
        finally:
            for target in reversed(shown):
                self.containers.rootfs.unbind(target)
            volumes.detach(c)

    # ---- docker cp ------------------------------------------------------
    def _target(self, root: str, root_fd: int, ref: str, path: str) -> tuple[int, str, str, os.stat_result]:
        """Docker's ResolvePath + lstat: parent fd, entry name, absolute path, stat; the last element
        is not followed unless the path ends in "/" or "/."."""
        abs_path = docker_abs_path(path)
        dir_part, base = abs_path.rsplit("/", 1)
        resolved = _rel(root, secure_join(root, dir_part, root_resolved=True))
        if base in ("", "."):
            parent, _, name = resolved.rpartition("/")
            name = name or "."
        else:
            parent, name = resolved, base
        missing = NotFound(f"Could not find the file {path} in container {ref}")
        try:
            pfd = open_dir(root_fd, parent)
        except (FileNotFoundError, NotADirectoryError):
            raise missing from None
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            if base in ("", ".") and not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(path)
        except (FileNotFoundError, NotADirectoryError):
            os.close(pfd)
            raise missing from None
        return pfd, name, abs_path, st

    @staticmethod
    def _path_stat(root: str, abs_path: str, st: os.stat_result) -> dict[str, Any]:
        link = ""
        if stat.S_ISLNK(st.st_mode):
            link = "/" + _rel(root, secure_join(root, abs_path, root_resolved=True))
        return {"name": _base_name(abs_path), "size": st.st_size, "mode": go_file_mode(st.st_mode),
                "mtime": go_time(st.st_mtime_ns), "linkTarget": link}

    def stat_path(self, ref: str, path: str) -> dict[str, Any]:
        """HEAD /containers/{id}/archive."""
        with self._rootfs(ref) as (_c, root, root_fd):
            pfd, _name, abs_path, st = self._target(root, root_fd, ref, path)
            os.close(pfd)
            return self._path_stat(root, abs_path, st)

    def get_archive(self, ref: str, path: str, on_stat: Callable[[dict[str, Any]], None], out: IO[bytes]) -> None:
        """GET /containers/{id}/archive: `on_stat` gets the path stat before the tar is written to `out`."""
        with self._rootfs(ref) as (c, root, root_fd):
            pfd, name, abs_path, st = self._target(root, root_fd, ref, path)
            try:
                on_stat(self._path_stat(root, abs_path, st))
                with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    TarWriter(tar).add_tree(pfd, name, _base_name(abs_path))
                out.flush()
            except (FileNotFoundError, NotADirectoryError) as e:  # the container renamed it meanwhile
                raise NotFound(f"Could not find the file {path} in container {ref}: {_os_error_text(e)}") from e
            finally:
                os.close(pfd)
        self.containers.log_event(c, "archive-path")

    def put_archive(self, ref: str, path: str, src: IO[bytes], no_overwrite_dir_non_dir: bool = False,
                    copy_uid_gid: bool = False) -> None:
        """PUT /containers/{id}/archive: unpack a tar into an existing directory of the container."""
        with self._rootfs(ref) as (c, root, root_fd):
            dest = _rel(root, secure_join(root, docker_abs_path(path), root_resolved=True))
            try:
                os.close(open_dir(root_fd, dest))
            except FileNotFoundError:
                raise NotFound(f"Could not find the file {path} in container {ref}") from None
            except NotADirectoryError:
                raise InvalidParameter("extraction point is not a directory") from None
            if c.host_config.readonly_rootfs:
                raise InvalidParameter("container rootfs is marked read-only")
            owner = resolve_user(root, c.config.user)[:2] if copy_uid_gid and c.config.user else None
            try:
                untar(src, root_fd, Options(scope=Scope.IN_ROOT, dest=dest, owner=owner,
                                            no_overwrite_dir_non_dir=no_overwrite_dir_non_dir))
            except OSError as e:  # what the kernel refused for the tar's sake (untar maps the common cases)
                raise InvalidParameter(f"failed to extract archive to {path}: {_os_error_text(e)}") from e
        self.containers.log_event(c, "extract-to-dir")

    # ---- docker export / diff -------------------------------------------
    def export(self, ref: str, out: IO[bytes]) -> None:
        with self._rootfs(ref, with_mounts=False) as (c, _root, root_fd):
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                TarWriter(tar).add_children(root_fd, "")
            out.flush()
        self.containers.log_event(c, "export")

    def changes(self, ref: str) -> list[dict[str, Any]] | None:
        """`docker diff`; None when nothing changed, as Docker answers `null`."""
        with self.containers.locked(ref) as c:
            found = overlay_changes(os.path.join(self.containers.dir(c.id), "upper"),
                                    self.layers.lower_dirs(c.chain))
        return found or None

    # ---- docker commit ----------------------------------------------------
    def commit(self, ref: str, repo: str = "", tag: str = "", comment: str = "", author: str = "",
               pause: bool = True, changes: Iterable[str] = (), config: ContainerConfig | None = None) -> str:
        """`docker commit`; `config` (the request's) is merged with the container's, as dockerd does."""
        target = reference.with_tag(repo, tag) if repo else None
        with self.containers.locked(ref) as c:
            cid = c.id
            state = c.state
            if state.dead:
                raise Conflict(f"You cannot commit container {cid} which is Dead")
            # the image config is a document of its own (content-addressed JSON): built in Docker's shape
            container_config = wire.encode(c.config)
            new_config = wire.encode(config) if config else copy.deepcopy(container_config)
            for line in changes:
                apply_change(new_config, line)
            new_config = merge_config(new_config, container_config)
            if new_config.get("StopTimeout") is None:
                new_config.pop("StopTimeout", None)
            pause_now = pause and state.running and not state.paused
            if pause_now:
                try:
                    self.containers.pause(cid)
                except Conflict:  # exiting meanwhile: nothing runs that could change its files
                    pause_now = False
            try:
                layer = self._commit_layer(cid, c.chain)
            finally:
                if pause_now:
                    with contextlib.suppress(Conflict):  # killed while paused: nothing to thaw
                        self.containers.unpause(cid)
        image_id = self.images.create(self._image_config(c, new_config, layer, comment, author), parent=c.image_id)
        if target:
            self.images.tag(image_id, repo, tag)
        self.containers.log_event(c, "commit", comment=comment, imageID=image_id,
                               imageRef=target.familiar() if target else "")
        return image_id

    def _commit_layer(self, cid: str, parent_chain: str) -> Layer | None:
        """The container's upperdir as a layer; None when it holds nothing (Docker's empty layer)."""
        upper = os.path.join(self.containers.dir(cid), "upper")
        if not os.listdir(upper):
            return None
        fd, tmp = tempfile.mkstemp(dir=self.cfg.tmp_dir, prefix="commit-")
        try:
            with os.fdopen(fd, "wb") as f:
                write_diff_tar(upper, f)
            return self.layers.register(tmp, parent_chain)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _image_config(self, c: ContainerRecord, config: dict[str, Any], layer: Layer | None, comment: str,
                      author: str) -> dict[str, Any]:
        """Docker's NewChildImage: the parent's rootfs and history plus this commit."""
        parent = self.images.config(c.image_id)
        now = rfc3339_ns()
        entry: dict[str, Any] = {"created": now}
        created_by = " ".join(c.config.cmd or [])
        for key, value in (("author", author), ("created_by", created_by), ("comment", comment),
                           ("empty_layer", layer is None)):
            if value:
                entry[key] = value
        diff_ids = list((parent.get("rootfs") or {}).get("diff_ids") or [])
        if layer is not None:
            diff_ids.append(layer.diff_id)
        out: dict[str, Any] = {"architecture": parent.get("architecture", ""), "config": config, "created": now,
                               "history": list(parent.get("history") or []) + [entry],
                               "os": parent.get("os") or "linux",
                               "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        if author:
            out["author"] = author
        if parent.get("variant"):
            out["variant"] = parent["variant"]
        return out
