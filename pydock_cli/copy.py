"""`docker cp`: the client half of Docker's copy (pkg/archive's CopyInfo / PrepareArchiveCopy rules).

The daemon only ever packs one container path or unpacks a tar into one
existing container directory; deciding the names (copy into a directory,
create a new name, rename a file) is the client's job, done by rebasing the
archive's entry names, exactly as the docker CLI does.
"""
from __future__ import annotations

import base64
import contextlib
import json
import os
import posixpath
import stat
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydock_cli.client import DaemonError
from pydock_cli.formatting import human_size
from pydock_cli.session import CliError, Session
from pydock_cli.streams import is_terminal
from pydock_common.errdefs import EngineError

STAT_HEADER = "X-Docker-Container-Path-Stat"
_GO_DIR, _GO_SYMLINK, _GO_DEVICE, _GO_IRREGULAR = 1 << 31, 1 << 27, 1 << 26, 1 << 19


@dataclass
class CopyInfo:
    path: str
    exists: bool = False
    is_dir: bool = False
    rebase_name: str = ""


def split_arg(arg: str) -> tuple[str, str]:
    """CONTAINER:PATH or a local path (absolute, `./x:y`, or without a colon)."""
    if arg.startswith("/"):
        return "", arg
    ctr, sep, path = arg.partition(":")
    if not sep or ctr.startswith("."):
        return "", arg
    return ctr, path


def _current_dir(path: str) -> bool:
    """specifiesCurrentDir: `dir/.` copies a directory's contents rather than the directory."""
    return path == "." or path.endswith("/.")


def preserve_trailing(clean: str, original: str) -> str:
    """PreserveTrailingDotOrSeparator: `dir/.` and `dir/` mean different copies, so cleaning keeps them."""
    if _current_dir(original) and not clean.endswith("/."):
        clean = clean.rstrip("/") + "/."
    elif original.endswith("/") and not clean.endswith("/"):
        clean += "/"
    return clean


def split_dir_entry(path: str) -> tuple[str, str]:
    """SplitPathDirEntry: `a/b/.` -> (`a/b`, `.`), `a/b/` -> (`a`, `b`)."""
    clean = posixpath.normpath(path)
    if _current_dir(path):
        clean += "/."
    return posixpath.dirname(clean) or ".", posixpath.basename(clean)


def _local_abs(path: str) -> str:
    return preserve_trailing(os.path.abspath(path), path)


def _asserts_dir(path: str) -> bool:
    return path.endswith("/") or _current_dir(path)


def prepare(src: CopyInfo, dst: CopyInfo) -> tuple[str, tuple[str, str] | None]:
    """PrepareArchiveCopy: the directory to extract into and the (old, new) entry-name rebase, if any."""
    dst_dir, dst_base = split_dir_entry(dst.path)
    src_base = src.rebase_name or split_dir_entry(src.path)[1]
    if dst.exists and dst.is_dir:
        return dst.path, None
    if dst.exists and src.is_dir:
        raise CliError("cannot copy directory")
    if not dst.exists and not src.is_dir and _asserts_dir(dst.path):
        raise CliError("no such directory")
    return dst_dir, (src_base, dst_base)


def rebase_name(name: str, rebase: tuple[str, str] | None) -> str:
    if rebase is None:
        return name
    old, new = rebase
    return name.replace(old, new, 1)


def _rebased(src: Any, rebase: tuple[str, str] | None) -> Any:
    """RebaseArchiveEntries as a stream: a thread rewrites entry names into a pipe the caller reads."""
    if rebase is None:
        return src
    rfd, wfd = os.pipe()

    def pump() -> None:
        with contextlib.suppress(OSError, tarfile.TarError), open(wfd, "wb") as out, \
                tarfile.open(fileobj=src, mode="r|") as tin, \
                tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tout:
            for m in tin:
                m.name = rebase_name(m.name, rebase)
                if m.islnk():
                    m.linkname = rebase_name(m.linkname, rebase)
                tout.addfile(m, tin.extractfile(m) if m.isreg() else None)

    threading.Thread(target=pump, daemon=True, name="pydock-cp-rebase").start()
    return open(rfd, "rb")


class _Counted:
    """Counts what passes through, for docker's `Successfully copied <size>` line."""

    def __init__(self, f: Any) -> None:
        self.f, self.total = f, 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.total += len(data)
        return data

    def close(self) -> None:
        self.f.close()

    def __iter__(self) -> Iterator[bytes]:
        while True:
            data = self.read(1 << 20)
            if not data:
                return
            yield data


def stat_path(s: Session, container: str, path: str) -> dict[str, Any] | None:
    """HEAD archive: the container path's stat, None when it cannot be had."""
    try:
        resp = s.client.head(f"/containers/{container}/archive", {"path": path})
    except DaemonError:
        return None  # as docker: the GET or PUT that follows reports what is wrong
    header = resp.headers.get(STAT_HEADER, "")
    return json.loads(base64.b64decode(header)) if header else None


def rebase_target(path: str, resolved: str) -> tuple[str, str]:
    """GetRebaseName: the resolved path with `path`'s trailing `/.` or `/`, and the name to give its entries."""
    if _current_dir(path) and not resolved.endswith("/."):
        resolved += "/."
    if path.endswith("/") and not resolved.endswith("/"):
        resolved += "/"
    base = split_dir_entry(path)[1]
    return resolved, base if base != split_dir_entry(resolved)[1] else ""


def _follow(path: str, st: dict[str, Any]) -> str:
    target = st.get("linkTarget") or ""
    if not target.startswith("/"):
        target = posixpath.join(split_dir_entry(path)[0], target)
    return target


def validate_output_path(path: str) -> None:
    """cp's output check: the parent must exist and the path may not be a device."""
    parent = os.path.dirname(os.path.normpath(path))
    if parent and parent != "." and not os.path.exists(parent):
        raise CliError(f'invalid output path: directory "{parent}" does not exist')
    with contextlib.suppress(FileNotFoundError):
        mode = os.stat(path).st_mode
        if stat.S_ISBLK(mode) or stat.S_ISCHR(mode):
            raise CliError(f'invalid output path: "{path}" must be a directory or a regular file: got a device')


def check_output_file(path: str, failure: str) -> None:
    """The `-o` check of save and export, whose message differs from cp's."""
    parent = os.path.dirname(os.path.normpath(path))
    if parent and parent != ".":
        try:
            os.stat(parent)
        except OSError as e:
            raise CliError(f"{failure}: invalid output path: stat {parent}: {(e.strerror or '').lower()}") from None
    with contextlib.suppress(FileNotFoundError):
        mode = os.stat(path).st_mode
        kind = {stat.S_IFDIR: "directory", stat.S_IFCHR: "character device file",
                stat.S_IFBLK: "block device file"}.get(stat.S_IFMT(mode))
        if kind:
            raise CliError(f"{failure}: cannot write to a {kind}")


def _local_dest_info(path: str) -> CopyInfo:
    """CopyInfoDestinationPath: follow a symlinked destination; the parent of a missing one must exist."""
    for _ in range(10):
        if not os.path.islink(path):
            break
        target = os.readlink(path)
        path = target if target.startswith("/") else os.path.join(os.path.dirname(path), target)
    if os.path.lexists(path):
        return CopyInfo(path, True, os.path.isdir(path))
    parent = split_dir_entry(path)[0]
    try:
        os.stat(parent)
    except OSError as e:
        raise CliError(f"stat {parent}: {(e.strerror or '').lower()}") from None
    return CopyInfo(path)


def from_container(s: Session, container: str, src: str, dst: str, follow: bool, quiet: bool) -> None:
    if dst != "-":
        dst = _local_abs(dst)
        validate_output_path(dst)
    rebase = ""
    if follow:
        st = stat_path(s, container, src)
        if st and st["mode"] & _GO_SYMLINK:
            src, rebase = rebase_target(src, _follow(src, st))
    resp = s.client.get(f"/containers/{container}/archive", {"path": src}, stream=True)
    with resp:
        if dst == "-":
            for chunk in resp.iter_content(1 << 20):
                s.out.write_bytes(chunk)
            return
        header = resp.headers.get(STAT_HEADER)
        mode = json.loads(base64.b64decode(header)).get("mode", 0) if header else 0
        info = CopyInfo(src, True, bool(mode & _GO_DIR), rebase)
        counted = _Counted(resp.raw)
        _extract(counted, info, dst)
    if not quiet:
        s.error(f"Successfully copied {human_size(counted.total)} to {dst}")


def _extract(content: _Counted, src: CopyInfo, dst_path: str) -> None:
    """archive.CopyTo: untar (owned by the caller, never over a dir/non-dir conflict) at the right name."""
    from pydock_common.untar import Options, Scope, untar  # the engine's contained untar
    dst = _local_dest_info(dst_path)
    dst_dir, rebase = prepare(src, dst)
    if src.rebase_name:  # entries still carry the link target's name: rename them in the same pass
        rebase = (split_dir_entry(src.path)[1], rebase[1] if rebase else src.rebase_name)
    root_fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        with contextlib.closing(_rebased(content, rebase)) as stream:
            untar(stream, root_fd, Options(scope=Scope.IN_ROOT, dest=os.path.abspath(dst_dir).lstrip("/"),
                                           owner=(os.getuid(), os.getgid()), no_overwrite_dir_non_dir=True))
    except EngineError as e:
        raise CliError.from_kind(e) from None
    except OSError as e:
        raise CliError(str(e)) from None
    finally:
        os.close(root_fd)


def _local_source(path: str, follow: bool) -> CopyInfo:
    """CopyInfoSourcePath / ResolveHostSourcePath: parent symlinks resolved, the entry itself only with -L."""
    if follow:
        resolved, rebase = rebase_target(path, os.path.realpath(path))
    else:
        parent, base = os.path.split(path)
        resolved = os.path.join(os.path.realpath(parent or "."), base)
        rebase = ""
        if path.endswith("/") and os.path.basename(path.rstrip("/")) != os.path.basename(resolved.rstrip("/")):
            rebase = os.path.basename(path.rstrip("/"))
        resolved = preserve_trailing(resolved, path)
    try:
        st = os.lstat(resolved)
    except OSError as e:
        raise CliError(f"lstat {resolved.rstrip('/.') or '/'}: {(e.strerror or '').lower()}") from None
    return CopyInfo(resolved, True, stat.S_ISDIR(st.st_mode), rebase)


class _SourceTar:
    """TarResource(srcInfo) produced by a thread into a pipe, entry names rebased as PrepareArchiveCopy decided.

    `size` is the archive's length without tarfile's record padding, which Go's tar writer does not add,
    so the reported size is docker's.
    """

    def __init__(self, src: CopyInfo, rebase: tuple[str, str] | None) -> None:
        self.size = 0
        parent, base = split_dir_entry(src.path)
        arcname = rebase_name(src.rebase_name or base, rebase)
        rfd, wfd = os.pipe()
        self.stream = open(rfd, "rb")  # noqa: SIM115  (closed by chunks() once drained)
        self._thread = threading.Thread(target=self._pump, args=(parent, base, arcname, wfd), daemon=True,
                                        name="pydock-cp-tar")
        self._thread.start()

    def _pump(self, parent: str, base: str, arcname: str, wfd: int) -> None:
        from pydock_common.tarwrite import TarWriter  # imported late for CLI start-up
        pfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with contextlib.suppress(OSError), open(wfd, "wb") as out, \
                    tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                TarWriter(tar).add_tree(pfd, base, arcname)
                tar.close()  # the end-of-archive blocks now, so the offset is the whole size
                self.size = tar.offset
        finally:
            os.close(pfd)

    def chunks(self) -> Iterator[bytes]:
        """The archive; closing the read end early (an upload refused) makes the writer thread stop."""
        with self.stream:
            while True:
                data = self.stream.read(1 << 20)
                if not data:
                    break
                yield data
        self._thread.join()


def to_container(s: Session, container: str, src: str, dst: str, follow: bool, copy_uid_gid: bool,
                 quiet: bool) -> None:
    dst_info = CopyInfo(dst)
    st = stat_path(s, container, dst)
    if st and st["mode"] & _GO_SYMLINK:
        dst_info.path = _follow(dst, st)
        st = stat_path(s, container, dst_info.path)
    if st and st["mode"] & (_GO_DEVICE | _GO_IRREGULAR):
        problem = "got a device" if st["mode"] & _GO_DEVICE else "got an irregular file"
        raise CliError(f'destination "{container}:{dst}" must be a directory or a regular file: {problem}')
    if st:
        dst_info.exists, dst_info.is_dir = True, bool(st["mode"] & _GO_DIR)
    params = {"path": dst_info.path, "noOverwriteDirNonDir": True, "copyUIDGID": copy_uid_gid}
    if src == "-":
        if not dst_info.is_dir:
            raise CliError(f'destination "{container}:{dst}" must be a directory')
        piped = _Counted(getattr(s.stdin, "buffer", s.stdin))
        s.client.put(f"/containers/{container}/archive", params, data=iter(piped)).close()
        size = piped.total
    else:
        info = _local_source(_local_abs(src), follow)
        dst_dir, rebase = prepare(info, dst_info)
        params["path"] = dst_dir
        tar = _SourceTar(info, rebase)
        s.client.put(f"/containers/{container}/archive", params, data=tar.chunks()).close()
        size = tar.size
    if not quiet:
        s.error(f"Successfully copied {human_size(size)} to {container}:{dst_info.path}")


def cp(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    source, destination = args
    if not source:
        raise CliError("source can not be empty")
    if not destination:
        raise CliError("destination can not be empty")
    src_ctr, src_path = split_arg(source)
    dst_ctr, dst_path = split_arg(destination)
    quiet = opts["quiet"] or not is_terminal(s.out.stream)
    if not src_ctr and not dst_ctr:
        raise CliError("must specify at least one container source")
    if src_ctr and dst_ctr:
        raise CliError("copying between containers is not supported")
    if src_ctr:
        from_container(s, src_ctr, src_path, dst_path, opts["follow_link"], quiet)
    else:
        to_container(s, dst_ctr, src_path, dst_path, opts["follow_link"], opts["archive"], quiet)
    return 0
