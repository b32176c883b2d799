""".dockerignore patterns with Docker's semantics (moby's ignorefile + patternmatcher).

The docker CLI and the SDK already filter the context they send, but a raw
API client does not, so the daemon applies the same rules again: applying
them to an already filtered context changes nothing.

Rules, as Docker: `#` starts a comment only at the very start of a line;
patterns are cleaned like filepath.Clean and made relative; `*` and `?` never
cross `/`, `**` crosses any number of directories; a pattern matching a
parent directory excludes everything below it; the last matching pattern
wins, so a later `!pattern` re-includes.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    exclusion: bool


def read_patterns(text: str) -> list[str]:
    out = []
    for i, line in enumerate(text.splitlines()):
        if i == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = posixpath.normpath(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern.lstrip("/") or "/"
        out.append("!" + pattern if invert else pattern)
    return out


def _compile(pattern: str) -> re.Pattern[str]:
    out = "^"
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 1
                if i + 1 < n and pattern[i + 1] == "/":
                    i += 1
                out += ".*" if i + 1 >= n else "(.*/)?"
            else:
                out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "\\" and i + 1 < n:
            i += 1
            out += re.escape(pattern[i])
        elif ch == "[" and "]" in pattern[i + 1:]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1:end]
            out += "[" + ("^" + body[1:] if body[:1] in ("!", "^") else body) + "]"
            i = end
        else:
            out += re.escape(ch)
        i += 1
    try:
        return re.compile(out + "$", re.DOTALL)
    except re.error:
        return re.compile(re.escape(pattern) + "$")


class IgnoreMatcher:
    def __init__(self, patterns: list[str]) -> None:
        self.patterns = [_Pattern(_compile(p.removeprefix("!")), p.startswith("!"))
                         for p in patterns if p not in ("", "!")]

    @classmethod
    def from_text(cls, text: str) -> IgnoreMatcher:
        return cls(read_patterns(text))

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def excluded(self, path: str) -> bool:
        """Whether a context-relative path (no leading slash) is left out of the build."""
        path = posixpath.normpath(path).lstrip("/")
        parent = posixpath.dirname(path)
        parents = parent.split("/") if parent else []
        matched = False
        for p in self.patterns:
            if p.exclusion != matched:
                continue  # this pattern could not change the outcome
            hit = bool(p.regex.match(path))
            if not hit:
                hit = any(p.regex.match("/".join(parents[:i + 1])) for i in range(len(parents)))
            if hit:
                matched = not p.exclusion
        return matched
