"""The sealed in-memory copies of the OCI runtime binaries (engine/runtime/sealedexe.py), which runc and crun run
from without copying themselves again at every call."""
from __future__ import annotations

import errno
import fcntl
import os
import shutil
import subprocess
from typing import Any

import pytest

from engine.runtime import oci
from engine.runtime.sealedexe import SEALS, SealedExecutables, exe_path, seal_copy


def _content(fd: int) -> bytes:
    return os.pread(fd, 1 << 26, 0)


def test_a_copy_is_sealed_against_every_change(tmp_path: Any) -> None:
    path = tmp_path / "tool"
    path.write_bytes(b"#!/bin/sh\necho copied\n" * 1000)
    fd = seal_copy(str(path))
    try:
        assert fcntl.fcntl(fd, fcntl.F_GET_SEALS) == SEALS
        assert _content(fd) == path.read_bytes()
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        for change in (lambda: os.pwrite(fd, b"x", 0), lambda: os.ftruncate(fd, 1),
                       lambda: os.ftruncate(fd, 1 << 20)):
            with pytest.raises(PermissionError):
                change()
        with pytest.raises(PermissionError):
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, 0)  # F_SEAL_SEAL: the seals cannot be lifted either
    finally:
        os.close(fd)


def test_one_copy_per_binary_until_the_file_changes(tmp_path: Any) -> None:
    path = tmp_path / "tool"
    path.write_bytes(b"version 1")
    copies = SealedExecutables()
    first = copies.fd(str(path))
    assert first is not None and copies.fd(str(path)) == first
    path.write_bytes(b"version 2, longer")  # an upgrade: a new copy; the old one stays open for calls under way
    second = copies.fd(str(path))
    assert second is not None and second != first
    assert _content(second) == b"version 2, longer" and _content(first) == b"version 1"


def test_no_copy_runs_the_binary_by_path(tmp_path: Any) -> None:
    copies = SealedExecutables()
    assert copies.fd(str(tmp_path / "missing")) is None
    assert copies.fd(str(tmp_path)) is None  # a directory cannot be copied: remembered, not retried
    with pytest.raises(OSError) as e:
        seal_copy(str(tmp_path))
    assert e.value.errno == errno.EISDIR


@pytest.mark.parametrize("runtime", oci.NAMES)
def test_the_runtimes_run_from_their_copy(runtime: str) -> None:
    """What the daemon's own runtime calls do: exec the copy through /proc/self/fd (inherited by the child
    only), with the binary's path as argv[0]."""
    binary = oci.find(runtime) or shutil.which(runtime)
    if not binary:
        pytest.skip(f"{runtime} is not installed")
    fd = SealedExecutables().fd(binary)
    assert fd is not None
    proc = subprocess.run([binary, "--version"], executable=exe_path(fd), pass_fds=(fd,), capture_output=True,
                          text=True, check=True)
    assert proc.stdout.startswith(f"{runtime} version")
