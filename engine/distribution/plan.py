"""What a pull or push will do: the platform wanted, the resolved manifest and the registry to talk to."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from engine.distribution.registry import (
    Registry,
)
from engine.errors import InvalidParameter
from engine.image.service import ARCH
from pydock_common.reference import Reference

_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm"}
_KNOWN_OS = frozenset(("aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux",
                       "nacl", "netbsd", "openbsd", "plan9", "solaris", "windows", "zos"))


_KNOWN_ARCH = frozenset(("386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "loong64", "mips", "mipsle",
                         "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc", "ppc64", "ppc64le", "riscv",
                         "riscv64", "s390", "s390x", "sparc", "sparc64", "wasm"))


_PLATFORM_COMPONENT = re.compile(r"[a-z0-9_-]+", re.ASCII)


def _go_quote(text: str) -> str:
    """Go's %q, as containerd's platform errors quote the specifier."""
    return json.dumps(text, ensure_ascii=True)


@dataclass(frozen=True)
class Platform:
    os: str
    arch: str
    variant: str = ""

    @classmethod
    def parse(cls, spec: str) -> Platform:
        """containerd's platform specifier syntax and errors (dockerd parses `?platform=` with it)."""
        if not spec:
            return cls("linux", ARCH)
        parts = spec.lower().split("/")
        for part in parts:
            if not _PLATFORM_COMPONENT.fullmatch(part):
                raise InvalidParameter(f"{_go_quote(part)}: is an invalid component of {_go_quote(spec)}: platform "
                                       f'specifier component must match "^[A-Za-z0-9_-]+$": invalid argument')
        unknown = InvalidParameter(f"{_go_quote(spec)}: unknown operating system or architecture: invalid argument")
        if len(parts) > 3:
            raise unknown
        if len(parts) == 1:
            arch = _ARCH_ALIASES.get(parts[0], parts[0])
            if parts[0] in _KNOWN_OS:
                return cls(parts[0], ARCH)
            if arch not in _KNOWN_ARCH:
                raise unknown
            return cls("linux", arch)
        return cls(parts[0], _ARCH_ALIASES.get(parts[1], parts[1]), parts[2] if len(parts) == 3 else "")

    def matches(self, p: dict[str, Any]) -> bool:
        if p.get("os") != self.os or _ARCH_ALIASES.get(p.get("architecture", ""), p.get("architecture")) != self.arch:
            return False
        if not self.variant:
            return True
        variant = p.get("variant", "") or ("v8" if self.arch == "arm64" else "")
        return variant == self.variant

    def __str__(self) -> str:
        return "/".join(x for x in (self.os, self.arch, self.variant) if x)


@dataclass
class PullPlan:
    ref: Reference  # normalized, with a tag or a digest
    registry: Registry
    digest: str  # of the manifest the reference names (the index, for multi-platform images)
    manifest: dict[str, Any]  # the single-platform image manifest


@dataclass
class PushPlan:
    repo: Reference  # without tag
    registry: Registry
    tags: list[tuple[str, str]]  # (tag, image ID)
