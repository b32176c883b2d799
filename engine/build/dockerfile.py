"""Dockerfile parsing for the classic builder: instructions, stages, flags, words, variables.

The line structure (continuations, comments between continued lines, the
`# escape=` directive) comes from PyPI's dockerfile-parse. That library stops
there: it knows nothing of flags, exec (JSON) form, Docker's quoting rules or
`${VAR:-default}` expansion, and its own variable substitution does not
follow Docker's. Those parts follow moby's `instructions` package and shell
lexer here, since a build's result depends on them byte for byte.
"""
from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field

from dockerfile_parse import DockerfileParser

from engine.errors import InvalidParameter

INSTRUCTIONS = {"ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
                "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}
FLAGS = {
    "FROM": {"platform"},
    "COPY": {"from", "chown", "chmod", "link", "parents", "exclude"},
    "ADD": {"chown", "chmod", "link", "checksum", "keep-git-dir", "exclude"},
    "RUN": {"mount", "network", "security"},
    "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
}
_ESCAPE_DIRECTIVE = re.compile(r"^\s*#\s*escape\s*=\s*(\\|`)\s*$", re.IGNORECASE)
_DIRECTIVE = re.compile(r"^\s*#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_FLAG = re.compile(r"\s*--([a-zA-Z][a-zA-Z0-9-]*)(?:=(\"[^\"]*\"|'[^']*'|\S*))?(?=\s|$)")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


class ParseError(InvalidParameter):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"dockerfile parse error on line {line}: {message}")


@dataclass
class Instruction:
    cmd: str        # upper case
    args: str       # everything after the keyword, continuation lines joined
    original: str   # as written, for "Step n/m : ..."
    line: int       # 1-based

    def flags(self) -> tuple[dict[str, str | bool], str]:
        return split_flags(self, FLAGS.get(self.cmd, set()))


@dataclass
class Stage:
    index: int
    name: str
    base: str          # image reference before variable expansion
    platform: str
    source: Instruction
    commands: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    escape: str
    meta_args: list[Instruction]
    stages: list[Stage]

    def stage_index(self, name: str) -> int | None:
        for s in self.stages:
            if s.name and s.name == name.lower():
                return s.index
        if name.isdigit() and int(name) < len(self.stages):
            return int(name)
        return None


def _escape_token(text: str) -> str:
    """The escape directive counts only among the leading comment lines (parser directives)."""
    for line in text.splitlines():
        m = _ESCAPE_DIRECTIVE.match(line)
        if m:
            return m.group(1)
        if not _DIRECTIVE.match(line):
            break
    return "\\"


def parse_instructions(text: str) -> tuple[str, list[Instruction]]:
    escape = _escape_token(text)
    structure = DockerfileParser(fileobj=io.BytesIO(text.encode("utf-8", "surrogateescape"))).structure
    out = []
    for item in structure:
        cmd = item["instruction"]
        if cmd == "COMMENT":
            continue
        line = item["startline"] + 1
        if cmd not in INSTRUCTIONS:
            raise ParseError(line, f"unknown instruction: {cmd}")
        args = (item["value"] or "").strip()
        word = item["content"].split(None, 1)[0]
        out.append(Instruction(cmd, args, f"{word} {args}", line))
    return escape, out


def parse(data: bytes | str, name: str = "Dockerfile") -> Dockerfile:
    text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    text = text.removeprefix("\ufeff")
    escape, instrs = parse_instructions(text)
    if not instrs:
        raise InvalidParameter(f"the Dockerfile ({name}) cannot be empty")
    meta: list[Instruction] = []
    stages: list[Stage] = []
    for ins in instrs:
        if ins.cmd == "FROM":
            stages.append(_stage(ins, len(stages)))
        elif not stages:
            if ins.cmd != "ARG":
                raise ParseError(ins.line, "no build stage in current context")
            meta.append(ins)
        else:
            if ins.cmd == "ONBUILD":
                check_onbuild(ins)
            stages[-1].commands.append(ins)
    names = [s.name for s in stages if s.name]
    for n in names:
        if names.count(n) > 1:
            raise InvalidParameter(f"duplicate name {n}")
    return Dockerfile(escape, meta, stages)


def _stage(ins: Instruction, index: int) -> Stage:
    flags, rest = ins.flags()
    words = rest.split()
    if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
        raise ParseError(ins.line, "FROM requires either one or three arguments")
    name = words[2].lower() if len(words) == 3 else ""
    if name and not re.fullmatch(r"[a-z][a-z0-9-_.]*", name):
        raise ParseError(ins.line, f"invalid name for build stage: {words[2]!r}, name can't start with a number "
                                   "or contain symbols")
    return Stage(index, name, words[0], str(flags.get("platform", "")), ins)


def check_onbuild(ins: Instruction) -> None:
    word = ins.args.split(None, 1)[0].upper() if ins.args else ""
    if word in ("ONBUILD",):
        raise ParseError(ins.line, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if word in ("FROM", "MAINTAINER"):
        raise ParseError(ins.line, f"{word} isn't allowed as an ONBUILD trigger")
    if word not in INSTRUCTIONS:
        raise ParseError(ins.line, f"unknown instruction: {word}")


def trigger_instruction(trigger: str, line: int = 0) -> Instruction:
    word, _, args = trigger.strip().partition(" ")
    ins = Instruction(word.upper(), args.strip(), trigger.strip(), line)
    if ins.cmd not in INSTRUCTIONS:
        raise ParseError(line, f"unknown instruction: {word}")
    return ins


def split_flags(ins: Instruction, allowed: set[str]) -> tuple[dict[str, str | bool], str]:
    """Leading `--name[=value]` words, as moby's BFlags."""
    flags: dict[str, str | bool] = {}
    rest = ins.args
    while rest.lstrip().startswith("--"):
        m = _FLAG.match(rest)
        if not m:
            break
        name, value = m.group(1), m.group(2)
        if name not in allowed:
            raise ParseError(ins.line, f"unknown flag: {name}")
        if value is not None and len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        flags[name] = True if value is None else value
        rest = rest[m.end():]
    return flags, rest.strip()


def json_array(text: str) -> list[str] | None:
    """Exec form: a JSON array of strings, else None (shell form)."""
    text = text.strip()
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def raw_words(text: str, escape: str) -> list[str]:
    """Split on unquoted whitespace keeping quotes and escapes (moby's parseWords)."""
    words: list[str] = []
    cur = ""
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == escape and i + 1 < len(text) and quote != "'":
            cur += ch + text[i + 1]
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch.isspace():
            if cur:
                words.append(cur)
            cur = ""
            i += 1
            continue
        cur += ch
        i += 1
    if cur:
        words.append(cur)
    return words


def key_values(ins: Instruction, escape: str) -> list[tuple[str, str]]:
    """`K=V K2="v 2"` or the legacy `K V...` form of ENV and LABEL; values still quoted."""
    words = raw_words(ins.args, escape)
    if not words:
        raise ParseError(ins.line, f"{ins.cmd} requires at least one argument")
    if "=" not in words[0]:
        key, _, value = ins.args.strip().partition(" ")
        key = key.strip()
        if not value.strip() or len(words) < 2:
            raise ParseError(ins.line, f"{ins.cmd} must have two arguments")
        return [(key, value.strip())]
    out = []
    for w in words:
        key, sep, value = w.partition("=")
        if not sep or not key:
            raise ParseError(ins.line, f"{ins.cmd} names can not be blank" if sep else
                             f"Syntax error - can't find = in {w!r}. Must be of the form: name=value")
        out.append((key, value))
    return out


def parse_duration(value: str, flag: str) -> int:
    """Go's time.ParseDuration, in nanoseconds (HEALTHCHECK flags)."""
    if value in ("", "0"):
        return 0
    pos, total = 0, 0.0
    for m in _DURATION.finditer(value):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_NS[m.group(2)]
        pos = m.end()
    if pos != len(value) or pos == 0:
        raise InvalidParameter(f'time: invalid duration "{value}"')
    ns = int(total)
    if 0 < ns < 1_000_000:
        raise InvalidParameter(f"Interval {flag} cannot be less than 1ms")
    return ns


class Lexer:
    """Docker's word processing: quotes, escapes and `$VAR`, `${VAR}`, `${VAR:-x}`, `${VAR:+x}`, `${VAR:?x}`."""

    def __init__(self, escape: str = "\\") -> None:
        self.escape = escape

    def word(self, text: str, env: dict[str, str]) -> str:
        return "".join(self._process(text, env, split=False)) if text else ""

    def words(self, text: str, env: dict[str, str]) -> list[str]:
        return self._process(text, env, split=True)

    def _process(self, text: str, env: dict[str, str], split: bool) -> list[str]:
        words: list[str] = []
        cur: list[str] = []
        started = False
        i, n = 0, len(text)
        while i < n:
            ch = text[i]
            if split and ch.isspace():
                if started:
                    words.append("".join(cur))
                cur, started = [], False
                i += 1
                continue
            if ch == "$":
                i, value = self._dollar(text, i + 1, env)
                if not split:
                    cur.append(value)
                    started = True
                    continue
                parts = re.split(r"\s+", value)
                for k, part in enumerate(parts):
                    if k:  # unquoted whitespace in a value separates words
                        if started:
                            words.append("".join(cur))
                        cur, started = [], False
                    if part:
                        cur.append(part)
                        started = True
                continue
            started = True
            if ch == self.escape:
                if i + 1 < n:
                    cur.append(text[i + 1])
                i += 2
            elif ch == "'":
                end = text.find("'", i + 1)
                if end < 0:
                    raise InvalidParameter("unexpected end of statement while looking for matching single-quote")
                cur.append(text[i + 1:end])
                i = end + 1
            elif ch == '"':
                i, value = self._double_quoted(text, i + 1, env)
                cur.append(value)
            else:
                cur.append(ch)
                i += 1
        if started:
            words.append("".join(cur))
        return words

    def _double_quoted(self, text: str, i: int, env: dict[str, str]) -> tuple[int, str]:
        out: list[str] = []
        n = len(text)
        while i < n:
            ch = text[i]
            if ch == '"':
                return i + 1, "".join(out)
            if ch == "$":
                i, value = self._dollar(text, i + 1, env)
                out.append(value)
                continue
            if ch == self.escape and i + 1 < n and text[i + 1] in ('"', "$", self.escape):
                out.append(text[i + 1])
                i += 2
                continue
            out.append(ch)
            i += 1
        raise InvalidParameter("unexpected end of statement while looking for matching double-quote")

    def _dollar(self, text: str, i: int, env: dict[str, str]) -> tuple[int, str]:
        n = len(text)
        if i >= n:
            return i, "$"
        if text[i] != "{":
            m = _NAME.match(text, i)
            if m:
                return m.end(), env.get(m.group(0), "")
            if text[i].isdigit():
                return i + 1, env.get(text[i], "")
            return i, "$"
        m = _NAME.match(text, i + 1)
        if not m:
            raise InvalidParameter(f"missing ':' in substitution: {text[i - 1:][:50]}")
        name, j = m.group(0), m.end()
        if j < n and text[j] == "}":
            return j + 1, env.get(name, "")
        colon = j < n and text[j] == ":"
        if colon:
            j += 1
        if j >= n or text[j] not in "-+?":
            raise InvalidParameter(f"unsupported modifier in substitution: {text[i - 1:][:50]}")
        mod = text[j]
        end = self._closing_brace(text, j + 1)
        word = self.word(text[j + 1:end], env)
        value = env.get(name)
        is_set = value is not None and (value != "" or not colon)
        if mod == "-":
            result = value if is_set else word
        elif mod == "+":
            result = word if is_set else ""
        else:
            if not is_set:
                reason = "is not allowed to be empty" if colon else "is not allowed to be unset"
                raise InvalidParameter(f"{name}: {word or reason}")
            result = value
        return end + 1, result or ""

    def _closing_brace(self, text: str, i: int) -> int:
        depth = 0
        while i < len(text):
            ch = text[i]
            if ch == self.escape:
                i += 2
                continue
            if ch == "$" and text[i + 1:i + 2] == "{":
                depth += 1
                i += 2
                continue
            if ch == "}":
                if depth == 0:
                    return i
                depth -= 1
            i += 1
        raise InvalidParameter("syntax error: missing '}'")
