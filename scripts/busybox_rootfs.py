"""Build a busybox rootfs tarball from Debian's busybox-static.

Docker Hub is out of reach, so the demo and the tests make their base image
locally: `python3 scripts/busybox_rootfs.py OUT.tar`, then `docker import`.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile

BUSYBOX = shutil.which("busybox") or "/bin/busybox"


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    tar.addfile(info)


def _add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def build_busybox_tar(path: str) -> str:
    """A minimal rootfs: static busybox, its applet links, passwd/group with a non-root user."""
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    with tarfile.open(path, "w") as tar:
        for d in ("bin", "etc", "tmp", "root", "home", "home/user", "var", "usr", "usr/bin"):
            _add_dir(tar, d, 0o1777 if d == "tmp" else 0o755)
        info = tar.gettarinfo(BUSYBOX, arcname="bin/busybox")
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        with open(BUSYBOX, "rb") as f:
            tar.addfile(info, f)
        for a in applets:
            if a == "busybox":
                continue
            link = tarfile.TarInfo(f"bin/{a}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
        _add_file(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
                  b"user:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
        _add_file(tar, "etc/group", b"root:x:0:\nuser:x:1000:\nwheel:x:10:user\nnogroup:x:65534:\n")
    os.chmod(path, 0o644)
    return path


if __name__ == "__main__":
    print(build_busybox_tar(sys.argv[1] if len(sys.argv) > 1 else "busybox.tar"))
