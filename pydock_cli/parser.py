"""Command-line parsing with the docker CLI's (cobra/pflag) rules and messages.

argparse differs from pflag in ways a docker user sees: `-it`, `--rm=false`,
flag parsing that stops at the image name (`docker run busybox ls -l`), and
the exact wording of usage errors, which scripts grep for. So this is a small
pflag work-alike instead.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PROG = "docker"


class UsageError(Exception):
    """A command line docker rejects before talking to the daemon.

    `status` is 125 for flag errors (pflag) and 1 for argument-count errors
    (cobra's Args validators), as docker 28 exits.
    """

    def __init__(self, message: str, command: Command, status: int, hint: str = "Run") -> None:
        super().__init__(message)
        self.command = command
        self.status = status
        self.hint = hint

    def render(self) -> str:
        path = self.command.path
        return (f"{self}\n\nUsage:  {path} {self.command.usage}".rstrip()
                + f"\n\n{self.hint} '{path} --help' for more information\n")


@dataclass(frozen=True)
class Flag:
    """One option. `kind` is bool, str, int or list (repeatable)."""

    short: str
    long: str
    kind: str = "bool"
    default: Any = None
    help: str = ""
    # Validates a value as pflag's typed values do (bytes, ulimit, mount...); raises ValueError with pflag's reason.
    check: Callable[[str], Any] | None = None

    @property
    def dest(self) -> str:
        return self.long.replace("-", "_")

    def initial(self) -> Any:
        if self.kind == "list":
            return list(self.default or [])
        if self.kind == "bool":
            return bool(self.default)
        return self.default

    def display(self) -> str:
        return f"-{self.short}, --{self.long}" if self.short else f"--{self.long}"


@dataclass
class Args:
    """Validated positional count: `min`..`max` (max None = unbounded)."""

    min: int = 0
    max: int | None = 0

    def check(self, cmd: Command, n: int) -> None:
        path = cmd.path
        lo, hi = self.min, self.max
        if hi == 0 and n:
            msg, hint = f"{PROG}: '{path}' accepts no arguments", "Run"
        elif lo == hi and n != lo:
            plural = "argument" if lo == 1 else "arguments"
            msg, hint = f"{PROG}: '{path}' requires {lo} {plural}", "Run"
        elif n < lo:
            plural = "argument" if lo == 1 else "arguments"
            msg, hint = f"{PROG}: '{path}' requires at least {lo} {plural}", "See"
        elif hi is not None and n > hi:
            plural = "argument" if hi == 1 else "arguments"
            msg, hint = f"{PROG}: '{path}' requires at most {hi} {plural}", "Run"
        else:
            return
        raise UsageError(msg, cmd, 1, hint)


@dataclass
class Command:
    """A leaf command: `path` like "docker image ls", and the function that runs it."""

    name: str
    usage: str
    short: str
    run: Callable[..., int]
    args: Args = field(default_factory=Args)
    flags: list[Flag] = field(default_factory=list)
    interspersed: bool = True
    parent: str = PROG
    aliases: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        return f"{self.parent} {self.name}"

    def help_text(self) -> str:
        lines = [f"Usage:  {self.path} {self.usage}".rstrip(), "", self.short, ""]
        if self.aliases:
            lines += ["Aliases:", "  " + ", ".join(self.aliases), ""]
        shown = [f for f in self.flags if f.help]
        if shown:
            lines.append("Options:")
            width = max(len(self._flag_col(f)) for f in shown) + 2
            for f in shown:
                lines.append(f"  {self._flag_col(f):<{width}}{f.help}")
        return "\n".join(lines) + "\n"

    @staticmethod
    def _flag_col(f: Flag) -> str:
        col = f"-{f.short}, --{f.long}" if f.short else f"    --{f.long}"
        suffix = {"str": " string", "int": " int", "list": " list"}.get(f.kind, "")
        return col + suffix

    def parse(self, argv: list[str]) -> tuple[dict[str, Any], list[str]]:
        """Returns (options by dest, positional args); raises UsageError.

        `--help` is answered by the caller: it is reported as `help=True`.
        """
        opts: dict[str, Any] = {f.dest: f.initial() for f in self.flags}
        opts["help"] = False
        longs = {f.long: f for f in self.flags}
        shorts = {f.short: f for f in self.flags if f.short}
        longs["help"] = Flag("", "help")
        pos: list[str] = []
        i = 0
        while i < len(argv):
            arg = argv[i]
            i += 1
            if arg == "--":
                pos.extend(argv[i:])
                break
            if arg.startswith("--"):
                i = self._long(arg[2:], argv, i, longs, opts)
            elif arg.startswith("-") and arg != "-":
                i = self._shorts(arg[1:], argv, i, shorts, opts)
            else:
                pos.append(arg)
                if not self.interspersed:
                    pos.extend(argv[i:])
                    break
        if not opts["help"]:
            self.args.check(self, len(pos))
        return opts, pos

    def _long(self, body: str, argv: list[str], i: int, longs: dict[str, Flag], opts: dict[str, Any]) -> int:
        name, eq, value = body.partition("=")
        f = longs.get(name)
        if f is None:
            raise UsageError(f"unknown flag: --{name}", self, 125)
        if f.kind == "bool":
            self._set(f, value if eq else "true", opts)
            return i
        if not eq:
            if i >= len(argv):
                raise UsageError(f"flag needs an argument: --{name}", self, 125)
            value, i = argv[i], i + 1
        self._set(f, value, opts)
        return i

    def _shorts(self, body: str, argv: list[str], i: int, shorts: dict[str, Flag], opts: dict[str, Any]) -> int:
        j = 0
        while j < len(body):
            c = body[j]
            j += 1
            f = shorts.get(c)
            if f is None:
                if c == "h" and "h" not in shorts:
                    opts["help"] = True
                    continue
                raise UsageError(f"unknown shorthand flag: '{c}' in -{body}", self, 125)
            rest = body[j:]
            if f.kind == "bool":
                if rest.startswith("="):
                    self._set(f, rest[1:], opts)
                    return i
                self._set(f, "true", opts)
                continue
            if rest:
                self._set(f, rest.removeprefix("="), opts)
            elif i < len(argv):
                self._set(f, argv[i], opts)
                i += 1
            else:
                raise UsageError(f"flag needs an argument: '{c}' in -{c}", self, 125)
            return i
        return i

    def _set(self, f: Flag, value: str, opts: dict[str, Any]) -> None:
        dest = "help" if f.long == "help" else f.dest
        if f.check is not None:
            try:
                f.check(value)
            except ValueError as e:
                raise UsageError(f'invalid argument "{value}" for "{f.display()}" flag: {e}', self, 125) from None
        if f.kind == "bool":
            parsed = {"1": True, "t": True, "T": True, "true": True, "TRUE": True, "True": True,
                      "0": False, "f": False, "F": False, "false": False, "FALSE": False, "False": False}.get(value)
            if parsed is None:
                raise self._invalid(f, value, "ParseBool")
            opts[dest] = parsed
        elif f.kind == "int":
            try:
                opts[dest] = int(value, 10)
            except ValueError:
                raise self._invalid(f, value, "ParseInt") from None
        elif f.kind == "list":
            opts[dest].append(value)
        else:
            opts[dest] = value

    def _invalid(self, f: Flag, value: str, fn: str) -> UsageError:
        return UsageError(f'invalid argument "{value}" for "{f.display()}" flag: strconv.{fn}: '
                          f'parsing "{value}": invalid syntax', self, 125)


@dataclass
class Group:
    """A management command such as `docker image`, holding subcommands."""

    name: str
    short: str
    commands: dict[str, Command]

    @property
    def path(self) -> str:
        return f"{PROG} {self.name}"

    def help_text(self) -> str:
        unique = sorted({id(c): c for c in self.commands.values()}.values(), key=lambda c: c.name)
        lines = [f"Usage:  {self.path} COMMAND", "", self.short, "", "Commands:"]
        lines += [f"  {c.name:<11} {c.short}" for c in unique]
        lines += ["", f"Run '{self.path} COMMAND --help' for more information on a command."]
        return "\n".join(lines) + "\n"

    def unknown(self, word: str) -> str:
        return (f"{PROG}: unknown command: {self.path} {word}\n\nUsage:  {self.path}\n\n"
                f"Run '{self.path} --help' for more information\n")
