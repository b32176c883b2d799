"""Docker's jsonmessage rendering of progress streams (pull, push, load, import, build).

On a terminal, lines with an `id` are redrawn in place with their progress
bar; otherwise progress updates are dropped and each status is one line, as
`docker pull > log` shows. An in-band error ends the stream: the command
prints its message (no "Error response from daemon" prefix) and exits with
its `code`, 1 when absent.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pydock_cli.formatting import rfc3339_nano_fixed
from pydock_cli.session import CliError
from pydock_cli.streams import Out


def _has_progress(msg: dict[str, Any]) -> bool:
    detail = msg.get("progressDetail")
    return isinstance(detail, dict) and (detail.get("current", 0) > 0 or detail.get("total", 0) > 0)


def _line(msg: dict[str, Any], terminal: bool) -> str | None:
    """JSONMessage.Display without the cursor movement; None when nothing is shown."""
    if "progressDetail" in msg and not terminal and _has_progress(msg):
        return None
    text = ""
    if msg.get("timeNano"):
        text += rfc3339_nano_fixed(msg["timeNano"]) + " "
    elif msg.get("time"):
        text += rfc3339_nano_fixed(int(msg["time"]) * 1_000_000_000) + " "
    if msg.get("id"):
        text += f"{msg['id']}: "
    if msg.get("from"):
        text += f"(from {msg['from']}) "
    endl = "\r" if terminal and not msg.get("stream") and "progressDetail" in msg else ""
    progress = msg.get("progress", "") if terminal and _has_progress(msg) else ""
    if progress:
        return f"{text}{msg.get('status', '')} {progress}{endl}"
    if msg.get("stream"):
        return text + msg["stream"] + endl
    return f"{text}{msg.get('status', '')}{endl}\n"


def display(messages: Iterable[dict[str, Any]], out: Out, terminal: bool,
            aux: Callable[[dict[str, Any]], None] | None = None) -> None:
    """DisplayJSONMessagesStream: raises CliError(message, code) on an in-band error."""
    ids: dict[str, int] = {}
    for msg in messages:
        if msg.get("aux") is not None:
            if aux is not None:
                aux(msg["aux"])
            continue
        error = msg.get("errorDetail") or ({"message": msg["error"]} if msg.get("error") else None)
        diff = 0
        ident = msg.get("id")
        if ident and ("progressDetail" in msg or msg.get("progress")):
            if ident not in ids:
                ids[ident] = len(ids)
                if terminal:
                    out.write("\n")
            diff = len(ids) - ids[ident]
            if terminal:
                out.write(f"\033[{diff}A")
        else:
            ids = {}
        if error:
            raise CliError(str(error.get("message", "")), int(error.get("code") or 1))
        line = _line(msg, terminal)
        if line is not None:
            out.write(("\r\033[2K" if terminal and "progressDetail" in msg and not msg.get("stream") else "") + line)
        if ident and terminal and diff:
            out.write(f"\033[{diff}B")

