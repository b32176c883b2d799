"""Seccomp: Docker-format profiles -> the OCI `linux.seccomp` runc applies.

Docker's profile format adds, over OCI's, per-rule conditions: `includes` /
`excludes` by architecture, capability and minimum kernel, and an `archMap`
from the native architecture to the ones it also runs. They are resolved here
against the container's bounding capabilities, so e.g. `--cap-add SYS_ADMIN`
also opens mount/unshare, as in Docker. The built-in profile is Docker's
default (engine/seccomp_default.json, moby's profiles/seccomp/default.json).
"""
from __future__ import annotations

import functools
import json
import os
import platform
from typing import Any

from engine.errors import InvalidParameter

DEFAULT_PROFILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seccomp_default.json")

# platform.machine() -> (Docker's architecture name in includes/excludes, libseccomp's)
_ARCHES = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"), "i686": ("x86", "SCMP_ARCH_X86"), "i386": ("x86", "SCMP_ARCH_X86"),
    "aarch64": ("arm64", "SCMP_ARCH_AARCH64"), "armv7l": ("arm", "SCMP_ARCH_ARM"),
    "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"), "s390x": ("s390x", "SCMP_ARCH_S390X"),
    "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"), "mips64": ("mips64", "SCMP_ARCH_MIPS64"),
}


@functools.cache
def default_profile() -> dict[str, Any]:
    with open(DEFAULT_PROFILE) as f:
        return json.load(f)


def parse_profile(text: str) -> dict[str, Any]:
    """A user profile (the CLI sends the file's JSON inline in `seccomp=...`); 400 if it is not one."""
    try:
        profile = json.loads(text)
    except ValueError as e:
        raise InvalidParameter(f"Decoding seccomp profile failed: {e}") from None
    if not isinstance(profile, dict) or not isinstance(profile.get("syscalls") or [], list):
        raise InvalidParameter("Decoding seccomp profile failed: not a seccomp profile object")
    if profile.get("architectures") and profile.get("archMap"):
        raise InvalidParameter("both 'architectures' and 'archMap' are specified in the seccomp profile, "
                               "use either 'architectures' or 'archMap'")
    return profile


def _kernel_at_least(version: str) -> bool:
    def parts(v: str) -> tuple[int, ...]:
        return tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in v.split("-")[0].split(".")[:2])
    return parts(platform.release()) >= parts(version)


def _applies(rule: dict[str, Any], arch: str, caps: list[str]) -> bool:
    exc, inc = rule.get("excludes") or {}, rule.get("includes") or {}
    if arch in (exc.get("arches") or []) or any(c in caps for c in exc.get("caps") or []):
        return False
    if exc.get("minKernel") and _kernel_at_least(exc["minKernel"]):
        return False
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if any(c not in caps for c in inc.get("caps") or []):
        return False
    return not (inc.get("minKernel") and not _kernel_at_least(inc["minKernel"]))


def to_oci(profile: dict[str, Any], caps: list[str]) -> dict[str, Any] | None:
    """OCI form of a Docker profile for a process with bounding set `caps`; None means no filter."""
    if not profile.get("defaultAction") and not profile.get("syscalls"):
        return None
    arch, scmp_arch = _ARCHES.get(platform.machine(), (platform.machine(), ""))
    out: dict[str, Any] = {k: v for k, v in profile.items()
                           if k not in ("archMap", "syscalls", "architectures") and v is not None}
    arches = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == scmp_arch:
            arches += [entry["architecture"], *(entry.get("subArchitectures") or [])]
            break
    if arches:
        out["architectures"] = arches
    out["syscalls"] = []
    for rule in profile.get("syscalls") or []:
        if not isinstance(rule, dict) or not _applies(rule, arch, caps):
            continue
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        call = {k: v for k, v in rule.items()
                if k in ("action", "errnoRet", "args") and v is not None}
        out["syscalls"].append({"names": names, **call})
    return out
