"""What every command gets: the daemon connection and the caller's streams."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydock_cli.client import Client, DaemonError
from pydock_cli.streams import Out
from pydock_common.errdefs import EngineError

# The exit code for an error the CLI finds itself before asking the daemon (a
# bad reference, an unsafe archive): the docker CLI exits 1 whatever its kind.
LOCAL_ERROR_EXIT = 1


class CliError(Exception):
    """A failure the CLI reports itself, printed as-is with `status` as exit code."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status

    @classmethod
    def from_kind(cls, e: EngineError, message: str | None = None) -> CliError:
        """A local error of one of the shared kinds; `message` rewords it as docker does for the command."""
        return cls(e.message if message is None else message, LOCAL_ERROR_EXIT)


@dataclass
class Session:
    host: str
    out: Out
    err: Out
    stdin: Any
    config_dir: str | None = None
    _client: Client | None = field(default=None, repr=False)

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.host, self.config_dir)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def error(self, text: str) -> None:
        self.err.write(text + "\n")

    def each(self, refs: Iterable[str], action: Callable[[str], Any], echo: bool = True) -> int:
        """Docker's multi-object commands: act on every ref, report each failure, exit 1 if any failed."""
        rc = 0
        for ref in refs:
            try:
                result = action(ref)
            except DaemonError as e:
                self.error(str(e))
                rc = 1
                continue
            if echo:
                self.print(ref if result is None else str(result))
        return rc

    def confirm(self, warning: str) -> bool:
        """Docker's `[y/N]` prompt, answered from stdin."""
        self.out.write(f"{warning}\nAre you sure you want to continue? [y/N] ")
        line = self.stdin.readline() if self.stdin is not None else ""
        if isinstance(line, bytes):
            line = line.decode(errors="replace")
        return line.strip().lower() in ("y", "yes")


def parse_filters(values: list[str]) -> str | None:
    """`--filter k=v` flags as the API's JSON filter map ({"k": {"v": true}})."""
    if not values:
        return None
    out: dict[str, dict[str, bool]] = {}
    for v in values:
        key, eq, val = v.partition("=")
        if not eq:
            raise CliError(f'invalid argument "{v}" for "-f, --filter" flag: '
                           "bad format of filter (expected name=value)", 125)
        out.setdefault(key.strip().lower(), {})[val] = True
    return json.dumps(out)


def indent_json(items: list[Any]) -> str:
    """`docker inspect` output: a JSON array indented with four spaces."""
    return json.dumps(items, indent=4, ensure_ascii=False)
