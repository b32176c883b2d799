"""Docker image references: `busybox` means `docker.io/library/busybox:latest`.

Tags are stored in normalized form so `busybox`, `library/busybox` and
`docker.io/library/busybox` all name the same image, and shown in familiar
form, as the docker CLI shows them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidParameter

DEFAULT_DOMAIN = "docker.io"
DEFAULT_TAG = "latest"
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$")
_DOMAIN = re.compile(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$")


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def familiar_repository(self) -> str:
        if self.domain != DEFAULT_DOMAIN:
            return self.repository
        return self.path[len("library/"):] if self.path.startswith("library/") else self.path

    def __str__(self) -> str:
        return self._render(self.repository)

    def familiar(self) -> str:
        return self._render(self.familiar_repository)

    def _render(self, repo: str) -> str:
        out = repo
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out


def parse(ref: str, default_tag: bool = True) -> Reference:
    """Parse and normalize; adds `:latest` when neither tag nor digest is given."""
    if not ref or len(ref) > 4096:
        raise InvalidParameter("invalid reference format")
    name, digest = ref, ""
    if "@" in name:
        name, digest = name.split("@", 1)
        if not _DIGEST.match(digest):
            raise InvalidParameter(f"invalid reference format: {ref[:200]}")
    tag = ""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
        if not _TAG.match(tag):
            raise InvalidParameter(f"invalid reference format: {ref[:200]}")
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost" or parts[0] != parts[0].lower()):
        domain, rest = parts[0], parts[1:]
        if not _DOMAIN.match(domain):
            raise InvalidParameter(f"invalid reference format: {ref[:200]}")
    else:
        domain, rest = DEFAULT_DOMAIN, parts
    if any(p != p.lower() for p in rest):
        raise InvalidParameter(f"invalid reference format: repository name ({'/'.join(rest)[:200]}) must be lowercase")
    if not rest or not all(_COMPONENT.match(p) for p in rest):
        raise InvalidParameter(f"invalid reference format: {ref[:200]}")
    if domain == DEFAULT_DOMAIN and len(rest) == 1:
        rest = ["library"] + rest
    if default_tag and not tag and not digest:
        tag = DEFAULT_TAG
    return Reference(domain, "/".join(rest), tag, digest)


def with_tag(repo: str, tag: str) -> Reference:
    """`docker tag SRC repo:tag` and import's `repo`/`tag` query pair."""
    ref = parse(repo, default_tag=False)
    if ref.tag and tag:
        raise InvalidParameter(f"invalid reference format: {repo}:{tag}")
    if ref.digest:
        raise InvalidParameter("refusing to create a tag with a digest reference")
    if tag and not _TAG.match(tag):
        raise InvalidParameter(f"invalid tag format: {tag[:200]}")
    return Reference(ref.domain, ref.path, ref.tag or tag or DEFAULT_TAG, "")
