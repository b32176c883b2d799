"""The subset of Go text/template that `--format` users write.

Supports `{{.Field.Sub}}`, `{{.}}`, `{{json .}}`, method calls with string
arguments (`{{.Label "x"}}`), pipes (`{{.Names | upper}}`), docker's template
functions (json, join, split, lower, upper, title, truncate, pad, println),
`len`/`index`, and `if`/`else`/`range`/`with` blocks with `{{-`/`-}}` trimming.
Values print as Go's fmt does (`map[a:b]`, `[x y]`, `<no value>`).
"""
from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class TemplateError(Exception):
    pass


def go_json(value: Any) -> str:
    """docker's `json` template function: compact JSON.

    Formatter contexts marshal themselves as sorted maps with encoding/json's
    HTML escaping (`<none>` becomes `\\u003cnone\\u003e`); API objects keep the
    daemon's field order (Go struct order) and are not escaped.
    """
    if isinstance(value, Context):
        text = json.dumps(value.data, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def go_str(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_str(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    return str(value)


def _truthy(value: Any) -> bool:
    return bool(value)


class Context:
    """A docker formatter context: named fields plus optional label access.

    Unlike a plain map, an unknown field is an error, as in docker where
    the context is a Go struct (`can't evaluate field X in type ...`).
    """

    def __init__(self, go_type: str, data: dict[str, Any], labels: dict[str, str] | None = None,
                 label_header: bool = False) -> None:
        self.go_type = go_type
        self.data = data
        self.labels = labels
        self.label_header = label_header

    def get(self, name: str, args: list[Any]) -> Any:
        if name == "Label" and (self.labels is not None or self.label_header):
            key = str(args[0]) if args else ""
            if self.label_header:
                return key.split(".")[-1].replace("-", " ").replace("_", " ")
            return (self.labels or {}).get(key, "")
        if name in self.data:
            return self.data[name]
        raise TemplateError(f'template: :1:2: executing "" at <.{name}>: '
                            f"can't evaluate field {name} in type {self.go_type}")


FUNCS: dict[str, Callable[..., Any]] = {
    "json": go_json,
    "join": lambda items, sep: sep.join(go_str(i) for i in items or []),
    "split": lambda s, sep: str(s).split(sep),
    "lower": lambda s: str(s).lower(),
    "upper": lambda s: str(s).upper(),
    "title": lambda s: str(s).title(),
    "truncate": lambda s, n: str(s)[:n],
    "pad": lambda s, left, right: " " * left + str(s) + " " * right,
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
    "print": lambda *a: "".join(go_str(x) for x in a),
    "len": lambda x: len(x or []),
    "index": lambda x, *keys: _index(x, keys),
    "eq": lambda a, *b: any(a == x for x in b),
    "ne": lambda a, b: a != b,
    "not": lambda a: not _truthy(a),
}


def _index(x: Any, keys: tuple[Any, ...]) -> Any:
    for k in keys:
        try:
            x = x[k]
        except (KeyError, IndexError, TypeError):
            return None
    return x


@dataclass
class _Node:
    kind: str  # text, action, if, range, with
    text: str = ""
    pipe: str = ""
    body: list[_Node] = field(default_factory=list)
    orelse: list[_Node] = field(default_factory=list)


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)


def _lex(src: str) -> list[tuple[str, str]]:
    """Splits into ("text", s) and ("action", s), applying trim markers."""
    out: list[tuple[str, str]] = []
    pos = 0
    for m in _ACTION.finditer(src):
        text = src[pos:m.start()]
        if m.group(1):
            text = text.rstrip()
        if out and out[-1][0] == "trim":
            out.pop()
            text = text.lstrip()
        out.append(("text", text))
        out.append(("action", m.group(2).strip()))
        if m.group(3):
            out.append(("trim", ""))
        pos = m.end()
    tail = src[pos:]
    if "{{" in tail:
        raise TemplateError("template: :1: unclosed action")
    if out and out[-1][0] == "trim":
        out.pop()
        tail = tail.lstrip()
    out.append(("text", tail))
    return [t for t in out if t != ("text", "")]


def _parse(tokens: list[tuple[str, str]], i: int = 0, stop: tuple[str, ...] = ()) -> tuple[list[_Node], int, str]:
    nodes: list[_Node] = []
    while i < len(tokens):
        kind, val = tokens[i]
        i += 1
        if kind == "text":
            nodes.append(_Node("text", text=val))
            continue
        word = val.split(None, 1)[0] if val else ""
        if word in ("end", "else") and word in stop:
            return nodes, i, word
        if word in ("if", "range", "with"):
            node = _Node(word, pipe=val[len(word):].strip())
            node.body, i, ended = _parse(tokens, i, ("end", "else"))
            if ended == "else":
                node.orelse, i, ended = _parse(tokens, i, ("end",))
            if ended != "end":
                raise TemplateError(f"template: :1: unexpected EOF in {word}")
            nodes.append(node)
        elif word in ("end", "else"):
            raise TemplateError(f"template: :1: unexpected {{{{{word}}}}}")
        else:
            nodes.append(_Node("action", pipe=val))
    if stop:
        raise TemplateError("template: :1: unexpected EOF")
    return nodes, i, ""


class Template:
    def __init__(self, src: str) -> None:
        try:
            self.nodes, _, _ = _parse(_lex(src))
        except TemplateError as e:
            raise TemplateError(f"failed to parse template: {e}") from None

    def execute(self, data: Any) -> str:
        out: list[str] = []
        try:
            self._run(self.nodes, data, out)
        except TemplateError as e:
            raise TemplateError(f"failed to execute template: {e}") from None
        return "".join(out)

    def _run(self, nodes: list[_Node], dot: Any, out: list[str]) -> None:
        for n in nodes:
            if n.kind == "text":
                out.append(n.text)
            elif n.kind == "action":
                out.append(go_str(self._pipe(n.pipe, dot)))
            elif n.kind == "if":
                self._run(n.body if _truthy(self._pipe(n.pipe, dot)) else n.orelse, dot, out)
            elif n.kind == "with":
                value = self._pipe(n.pipe, dot)
                self._run(n.body if _truthy(value) else n.orelse, value if _truthy(value) else dot, out)
            else:
                self._range(n, dot, out)

    def _range(self, n: _Node, dot: Any, out: list[str]) -> None:
        value = self._pipe(n.pipe, dot)
        items = [value[k] for k in sorted(value)] if isinstance(value, dict) else list(value or [])
        if not items:
            self._run(n.orelse, dot, out)
        for item in items:
            self._run(n.body, item, out)

    def _pipe(self, pipe: str, dot: Any) -> Any:
        value: Any = _NOARG
        for stage in _split_pipe(pipe):
            value = self._command(stage, dot, value)
        return None if value is _NOARG else value

    def _command(self, stage: str, dot: Any, piped: Any) -> Any:
        try:
            words = shlex.split(stage, posix=False)
        except ValueError as e:
            raise TemplateError(f"template: :1: {e}") from None
        if not words:
            raise TemplateError("template: :1: missing value for command")
        head, rest = words[0], words[1:]
        args = [self._arg(w, dot) for w in rest]
        if piped is not _NOARG:
            args.append(piped)
        if head.startswith("."):
            return self._field(dot, head, args)
        if head in FUNCS:
            try:
                return FUNCS[head](*args)
            except TypeError as e:
                raise TemplateError(f"template: :1: error calling {head}: {e}") from None
        if len(words) == 1 and piped is _NOARG:
            return self._arg(head, dot)
        raise TemplateError(f'template: :1: function "{head}" not defined')

    def _arg(self, word: str, dot: Any) -> Any:
        if word.startswith('"') and word.endswith('"') and len(word) >= 2:
            return json.loads(word)
        if word.startswith("."):
            return self._field(dot, word, [])
        if re.fullmatch(r"-?\d+", word):
            return int(word)
        if word in ("true", "false"):
            return word == "true"
        if word == "nil":
            return None
        if word in FUNCS:
            return FUNCS[word]()
        raise TemplateError(f'template: :1: function "{word}" not defined')

    @staticmethod
    def _field(dot: Any, chain: str, args: list[Any]) -> Any:
        if chain == ".":
            return dot
        names = chain[1:].split(".")
        value = dot
        for k, name in enumerate(names):
            last = k == len(names) - 1
            value = _lookup(value, name, args if last else [])
        return value


_NOARG = object()


def _split_pipe(pipe: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in pipe:
        if ch == '"':
            quoted = not quoted
        if ch == "|" and not quoted:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur).strip())
    return parts


def _lookup(value: Any, name: str, args: list[Any]) -> Any:
    if isinstance(value, Context):
        return value.get(name, args)
    if isinstance(value, dict):
        return value.get(name)
    if value is None:
        return None
    kind = type(value).__name__
    raise TemplateError(f'template: :1:2: executing "" at <.{name}>: can\'t evaluate field {name} in type {kind}')
