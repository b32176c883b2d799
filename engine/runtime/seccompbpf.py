"""An OCI `linux.seccomp` section compiled to the BPF program the kernel loads, once per profile.

runc and crun (Debian's 1.8) compile the container's profile with
libseccomp at every start: for Docker's default profile that is 10-18 ms of
a 40 ms `runc run` here, most of what a start costs beyond namespaces and
mounts. crun also accepts the finished program (its
`run.oci.seccomp_bpf_data` annotation, base64), so for crun the daemon
compiles each distinct profile once, through the same libseccomp and in the
same way crun would (its libcrun/seccomp.c: the same default action,
architectures, rules, argument comparisons and skipped unknown syscalls), and
every later start loads it as it is. runc has no such input; it keeps
compiling.

Anything this cannot compile (a syscall notify listener, an action or
operator it does not know, no libseccomp) gives None: the profile then goes
to the runtime as it is, which compiles it, or reports the error in its own
words.
"""
from __future__ import annotations

import base64
import ctypes
import ctypes.util
import functools
import hashlib
import json
import os
import threading
from typing import Any

ANNOTATION = "run.oci.seccomp_bpf_data"
_CACHE_MAX = 32  # distinct profiles kept (each a few KiB): default, per-capability variants, user files

_ACT_ALLOW, _ACT_KILL_THREAD, _ACT_KILL_PROCESS = 0x7FFF0000, 0x00000000, 0x80000000
_ACT_TRAP, _ACT_LOG, _ACT_NOTIFY = 0x00030000, 0x7FFC0000, 0x7FC00000
_ACT_ERRNO, _ACT_TRACE = 0x00050000, 0x7FF00000  # | errno
_ACTIONS = {"SCMP_ACT_ALLOW": _ACT_ALLOW, "SCMP_ACT_KILL": _ACT_KILL_THREAD, "SCMP_ACT_KILL_THREAD": _ACT_KILL_THREAD,
            "SCMP_ACT_KILL_PROCESS": _ACT_KILL_PROCESS, "SCMP_ACT_TRAP": _ACT_TRAP, "SCMP_ACT_LOG": _ACT_LOG}
_OPERATORS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
              "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
EPERM = 1
_NR_SCMP_ERROR = -1


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


class Unsupported(Exception):
    """The section uses something compiled here differently from crun, or not at all: leave it to crun."""


@functools.cache
def _libseccomp() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


def _action(name: Any, errno_ret: int) -> int:
    if name == "SCMP_ACT_ERRNO":
        return _ACT_ERRNO | (errno_ret & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return _ACT_TRACE | (errno_ret & 0xFFFF)
    if name not in _ACTIONS:
        raise Unsupported(f"action {name!r}")
    return _ACTIONS[name]


def _errno(entry: dict[str, Any], key: str) -> int:
    if entry.get(key) is None:
        return EPERM
    if entry.get("action" if key == "errnoRet" else "defaultAction") not in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        raise Unsupported(f"{key} without an errno action")  # crun refuses it: let it say so
    return int(entry[key])


def _comparisons(args: list[dict[str, Any]]) -> list[list[_ArgCmp]]:
    """The rules one syscall entry adds: its comparisons in one rule, or (as crun does when an argument
    is compared more than once, which libseccomp refuses in one rule) a rule per comparison."""
    cmps = []
    for a in args[:6]:
        index = int(a.get("index", 0))
        if not 0 <= index < 6 or a.get("op") not in _OPERATORS:
            raise Unsupported(f"argument comparison {a!r}")
        cmps.append(_ArgCmp(index, _OPERATORS[a["op"]], int(a.get("value", 0)), int(a.get("valueTwo", 0))))
    if len({c.arg for c in cmps}) < len(cmps):
        return [[c] for c in cmps]
    return [cmps]


def _compile(section: dict[str, Any]) -> bytes:
    lib = _libseccomp()
    if lib is None:
        raise Unsupported("libseccomp is not installed")
    if section.get("listenerPath") or "defaultAction" not in section:
        raise Unsupported("a notify listener, or no default action")
    default = _action(section["defaultAction"], _errno(section, "defaultErrnoRet"))
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise Unsupported("seccomp_init failed")
    try:
        for arch in section.get("architectures") or []:
            name = str(arch).removeprefix("SCMP_ARCH_").lower()
            token = lib.seccomp_arch_resolve_name(name.encode())
            rc = lib.seccomp_arch_add(ctx, token) if token else -1
            if rc < 0 and rc != -17:  # -EEXIST: the native one
                raise Unsupported(f"architecture {arch!r}")
        for entry in section.get("syscalls") or []:
            action = _action(entry.get("action"), _errno(entry, "errnoRet"))
            if action == default:
                continue  # crun skips these too: libseccomp refuses a rule that repeats the default
            rules = _comparisons(entry["args"]) if entry.get("args") else [[]]
            for name in entry.get("names") or []:
                nr = lib.seccomp_syscall_resolve_name(str(name).encode())
                if nr == _NR_SCMP_ERROR:
                    continue  # unknown to this libseccomp: crun warns and skips it
                # other negative numbers are libseccomp's for syscalls of the other architectures (chown32)
                for rule in rules:
                    array = (_ArgCmp * max(len(rule), 1))(*rule)
                    if lib.seccomp_rule_add_array(ctx, action, nr, len(rule), array) < 0:
                        raise Unsupported(f"rule for {name}")
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            if lib.seccomp_export_bpf(ctx, fd) < 0:
                raise Unsupported("seccomp_export_bpf failed")
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)


_cache: dict[str, str | None] = {}
_cache_lock = threading.Lock()


def precompiled(section: dict[str, Any]) -> str | None:
    """Base64 BPF of an OCI seccomp section, for crun's annotation; None if crun should compile it.

    Keyed by the section's JSON: the default profile differs only by the
    capabilities a container adds, so a handful of entries serve every start.
    """
    key = hashlib.sha256(json.dumps(section, sort_keys=True).encode()).hexdigest()
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    try:
        data: str | None = base64.b64encode(_compile(section)).decode()
    except (Unsupported, ValueError, TypeError, OSError):
        data = None
    with _cache_lock:
        if len(_cache) >= _CACHE_MAX:
            _cache.pop(next(iter(_cache)))
        _cache[key] = data
    return data
