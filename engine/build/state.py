"""The builder's shared vocabulary: options, the prepared build, a stage's running state and the message helpers."""
from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from engine.build.dockerfile import Dockerfile
from engine.errors import EngineError
from engine.image.service import ARCH
from engine.runtime.spec import DEFAULT_PATH

Message = dict[str, Any]
# (image reference, platform, cancel) -> pull progress messages; the image is local afterwards
PullFn = Callable[[str, str, threading.Event], Iterator[Message]]

PROXY_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
                        "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"})
DEFAULT_SHELL = ["/bin/sh", "-c"]
BUILDKIT_ONLY = "the --{} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how " \
                "to build images with BuildKit enabled"


class BuildError(EngineError):
    """A build failure reported in the stream; `code` becomes errorDetail.code (the CLI's exit status)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class BuildOptions:
    tags: list[str] = field(default_factory=list)
    dockerfile: str = "Dockerfile"
    build_args: dict[str, str | None] = field(default_factory=dict)
    no_cache: bool = False
    pull: bool = False
    target: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    cache_from: list[str] = field(default_factory=list)
    remove: bool = True
    force_remove: bool = False
    quiet: bool = False
    platform: str = ""
    network: str = "default"  # the RUN containers' NetworkMode: default, bridge, host, none, a network, container:x
    extra_hosts: list[str] = field(default_factory=list)  # `--add-host name:ip` for the RUN containers' /etc/hosts


@dataclass
class Build:
    """A prepared build: its private directory (context, mounts) and parsed Dockerfile."""

    root: str
    context: str
    dockerfile: Dockerfile
    options: BuildOptions

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class StageState:
    image_id: str                      # "" until a FROM scratch stage commits
    config: dict[str, Any]             # the image config document
    args: dict[str, str | None] = field(default_factory=dict)
    cmd_set: bool = False

    @property
    def run(self) -> dict[str, Any]:
        return self.config.setdefault("config", {})


def stream(text: str) -> Message:
    return {"stream": text}


def scratch_config() -> dict[str, Any]:
    return {"architecture": ARCH, "config": {"Env": [f"PATH={DEFAULT_PATH}"]}, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []}, "history": []}


def go_quote_list(items: list[str]) -> str:
    """Go's %q of a []string, as Docker writes CMD/ENTRYPOINT into history."""
    return "[" + " ".join(json.dumps(s, ensure_ascii=False) for s in items) + "]"


def env_dict(env: list[str] | None) -> dict[str, str]:
    return {key: value for key, _, value in (e.partition("=") for e in env or [])}


def set_env(env: list[str] | None, key: str, value: str) -> list[str]:
    out = list(env or [])
    for i, e in enumerate(out):
        if e.split("=", 1)[0] == key:
            out[i] = f"{key}={value}"
            return out
    return out + [f"{key}={value}"]
