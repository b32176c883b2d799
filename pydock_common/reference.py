"""Docker image references: `busybox` means `docker.io/library/busybox:latest`.

Tags are stored in normalized form so `busybox`, `library/busybox` and
`docker.io/library/busybox` all name the same image, and shown in familiar
form, as the docker CLI shows them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from pydock_common.errdefs import InvalidParameter

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
DEFAULT_TAG = "latest"
NAME_MAX = 255
# distribution/reference's grammar; used with fullmatch (ASCII only, no trailing newline)
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*", re.ASCII)
_TAG = re.compile(r"\w[\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}", re.ASCII)
_DOMAIN = re.compile(r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
                     r"(?::[0-9]+)?|\[[0-9a-fA-F:]+\](?::[0-9]+)?", re.ASCII)
_HEX64 = re.compile(r"[a-f0-9]{64}", re.ASCII)


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
        return self.path.removeprefix("library/")

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
    """Parse and normalize as Docker's ParseNormalizedNamed; adds `:latest` when neither tag nor digest is given."""
    if not ref or len(ref) > 4096:
        raise InvalidParameter("invalid reference format")
    if _HEX64.fullmatch(ref):
        raise InvalidParameter(f"invalid repository name ({ref}), cannot specify 64-byte hexadecimal strings")
    name, digest = ref, ""
    if "@" in name:
        name, digest = name.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise InvalidParameter("invalid reference format")
    tag = ""
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
        if not _TAG.fullmatch(tag):
            raise InvalidParameter("invalid reference format")
    domain, rest = _split_domain(name)
    if rest.lower() != rest:
        raise InvalidParameter(f"invalid reference format: repository name ({rest[:200]}) must be lowercase")
    if not _DOMAIN.fullmatch(domain) or not all(_COMPONENT.fullmatch(p) for p in rest.split("/")):
        raise InvalidParameter("invalid reference format")
    if len(domain) + 1 + len(rest) > NAME_MAX:
        raise InvalidParameter(f"repository name must not be more than {NAME_MAX} characters")
    if default_tag and not tag and not digest:
        tag = DEFAULT_TAG
    return Reference(domain, rest, tag, digest)


def _split_domain(name: str) -> tuple[str, str]:
    """Docker's splitDockerDomain: a first component is a registry only if it looks like a host."""
    first, sep, remainder = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost" and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain = first
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = "library/" + remainder
    return domain, remainder


def with_tag(repo: str, tag: str) -> Reference:
    """`docker tag SRC repo:tag` and import's `repo`/`tag` query pair."""
    ref = parse(repo, default_tag=False)
    if ref.tag and tag:
        raise InvalidParameter(f"invalid reference format: {repo}:{tag}")
    if ref.digest:
        raise InvalidParameter("refusing to create a tag with a digest reference")
    if tag and not _TAG.fullmatch(tag):
        raise InvalidParameter(f"invalid tag format: {tag[:200]}")
    return Reference(ref.domain, ref.path, ref.tag or tag or DEFAULT_TAG, "")
