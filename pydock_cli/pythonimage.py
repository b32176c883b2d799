"""A Python base image made from this machine's own Debian packages, for engines that reach no registry.

`python3 -m pydock_cli.pythonimage [-t TAG] [--ipykernel]` resolves the
dependency closure of Debian's `python3` and `base-files` (/etc/os-release and
friends), plus `python3-ipykernel` when asked
so the image can host a Jupyter kernel), downloads the packages with
`apt-get download` (a cache directory keeps them for the next time), unpacks
each with `dpkg-deb -x` into one root filesystem, adds busybox for a shell and
the usual tools, and imports the result with `docker import` into the engine
DOCKER_HOST names. Nothing comes from Docker Hub, so `%%container IMAGE
--lang python` and kernels in images work offline.

Packages that only serve package management or documentation (dpkg, perl,
install-info) are left out: the image runs Python, it does not install
Debian packages.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

DEFAULT_TAG = "pydock/python:3"
LEFT_OUT = {"dpkg", "install-info", "perl", "perl-base", "perl-modules-5.36", "libperl5.36", "mailcap",
            "mime-support", "debconf", "tar"}
DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "pydock", "debs")
BUSYBOX = "/bin/busybox"  # Debian's busybox-static


def closure(packages: list[str]) -> list[str]:
    """The packages `packages` need to run (Depends and Pre-Depends, recursively), minus LEFT_OUT."""
    out = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                          "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *packages],
                         capture_output=True, text=True, check=True).stdout
    names = {line.strip() for line in out.splitlines() if line and not line[0].isspace() and not line.startswith("<")}
    return sorted(names - LEFT_OUT)


def download(packages: list[str], cache: str) -> list[str]:
    """The .deb files of `packages` (architecture-qualified names included), fetched into `cache` when missing."""
    os.makedirs(cache, exist_ok=True)
    have = {f.split("_", 1)[0] for f in os.listdir(cache) if f.endswith(".deb")}
    missing = [p for p in packages if p.split(":", 1)[0] not in have]
    if missing:
        got = subprocess.run(["apt-get", "download", "-q", *missing], cwd=cache, capture_output=True, text=True,
                             check=False)
        if got.returncode != 0:
            raise SystemExit(f"pythonimage: apt-get download failed: {got.stderr.strip()}")
    wanted = {p.split(":", 1)[0] for p in packages}
    return sorted(os.path.join(cache, f) for f in os.listdir(cache)
                  if f.endswith(".deb") and f.split("_", 1)[0] in wanted)


def build_rootfs(debs: list[str], root: str) -> None:
    """Unpack `debs` into `root`, with busybox's applets for a shell, and the files a container expects."""
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
    _merge_usr(root)
    os.makedirs(os.path.join(root, "bin"), exist_ok=True)
    if os.path.exists(BUSYBOX):
        shutil.copy2(BUSYBOX, os.path.join(root, "bin", "busybox"))
        applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
        for applet in applets:
            link = os.path.join(root, "bin", applet)
            if not os.path.lexists(link) and not os.path.lexists(os.path.join(root, "usr", "bin", applet)):
                os.symlink("busybox", link)
    for d in ("etc", "tmp", "root", "proc", "sys", "dev", "home"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    py = os.path.join(root, "usr", "bin", "python3")
    if not os.path.lexists(py):
        raise SystemExit("pythonimage: the packages hold no /usr/bin/python3")
    with open(os.path.join(root, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n")
    with open(os.path.join(root, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")


def _merge_usr(root: str) -> None:
    """Debian 12 packages ship /bin, /lib... under /usr on a merged-/usr system: link the top-level names."""
    for name in ("bin", "sbin", "lib", "lib64"):
        top, usr = os.path.join(root, name), os.path.join(root, "usr", name)
        if os.path.isdir(usr) and not os.path.islink(top):
            if os.path.isdir(top):  # files a package put at the top level move under /usr
                _move_into(top, usr)
            os.symlink(f"usr/{name}", top)


def _move_into(src: str, dst: str) -> None:
    """Move the tree `src` into the directory `dst`, merging directories both have; `src` is removed."""
    for entry in os.listdir(src):
        s, d = os.path.join(src, entry), os.path.join(dst, entry)
        if os.path.isdir(s) and not os.path.islink(s) and os.path.isdir(d) and not os.path.islink(d):
            _move_into(s, d)
        elif not os.path.lexists(d):
            os.rename(s, d)
    shutil.rmtree(src)


def import_image(root: str, tag: str, env: dict[str, str] | None = None) -> str:
    """`docker import` of `root` as `tag` (CMD python3) into the engine `env` names; returns the image ID."""
    with tempfile.NamedTemporaryFile(suffix=".tar") as tar_file:
        with tarfile.open(fileobj=tar_file, mode="w") as tar:
            for entry in sorted(os.listdir(root)):
                tar.add(os.path.join(root, entry), arcname=entry)
        tar_file.flush()
        out = subprocess.run(["docker", "import", "-c", 'CMD ["python3"]', "-c", "ENV LANG=C.UTF-8",
                              tar_file.name, tag], capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise SystemExit(f"pythonimage: docker import failed: {out.stderr.strip()}")
    return out.stdout.strip()


def make(tag: str = DEFAULT_TAG, ipykernel: bool = False, cache: str = DEFAULT_CACHE,
         env: dict[str, str] | None = None) -> str:
    """Build and import the image into the engine `env` (DOCKER_HOST, DOCKER_CONFIG) names; returns its ID."""
    packages = closure(["base-files", "python3", *(["python3-ipykernel"] if ipykernel else [])])
    debs = download(packages, cache)
    with tempfile.TemporaryDirectory(prefix="pydock-pyimage-") as tmp:
        root = os.path.join(tmp, "rootfs")
        os.mkdir(root)
        build_rootfs(debs, root)
        return import_image(root, tag, env)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m pydock_cli.pythonimage", description=__doc__.splitlines()[0])
    p.add_argument("-t", "--tag", default=DEFAULT_TAG, help=f"image name (default {DEFAULT_TAG})")
    p.add_argument("--ipykernel", action="store_true", help="include python3-ipykernel (for kernels in the image)")
    p.add_argument("--cache", default=DEFAULT_CACHE, help="where downloaded .deb files are kept")
    args = p.parse_args(argv)
    print(make(args.tag, args.ipykernel, args.cache))
    return 0


if __name__ == "__main__":
    sys.exit(main())
