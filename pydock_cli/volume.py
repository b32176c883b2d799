"""`docker volume` commands: create, ls, inspect, rm, prune."""
from __future__ import annotations

import json
from typing import Any

from pydock_cli import formatting
from pydock_cli.images import _inspect
from pydock_cli.network import labels_map
from pydock_cli.parser import PROG, Args, Command, Flag
from pydock_cli.session import Session, parse_filters
from pydock_cli.sortorder import by_name
from pydock_cli.template import Context

PARENT = f"{PROG} volume"
HEADERS = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
           "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE", "Group": "GROUP", "Availability": "AVAILABILITY",
           "Status": "STATUS"}
TABLE = "table {{.Driver}}\t{{.Name}}"
GO_TYPE = "*formatter.volumeContext"


def create(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    body: dict[str, Any] = {"Driver": opts["driver"]}
    if opts["opt"]:
        body["DriverOpts"] = labels_map(opts["opt"])
    if opts["label"]:
        body["Labels"] = labels_map(opts["label"])
    name = args[0] if args else opts["name"]
    if name:
        body["Name"] = name
    s.print(s.client.json("POST", "/volumes/create", None, body)["Name"])
    return 0


def _row(v: dict[str, Any]) -> Context:
    labels = v.get("Labels") or {}
    usage = v.get("UsageData") or {}
    data = {
        "Name": v.get("Name", ""), "Driver": v.get("Driver", ""), "Scope": v.get("Scope", ""),
        "Mountpoint": v.get("Mountpoint", ""), "Labels": ",".join(f"{k}={val}" for k, val in sorted(labels.items())),
        "Links": str(usage["RefCount"]) if usage.get("RefCount", -1) >= 0 else "N/A",
        "Size": formatting.human_size(usage["Size"]) if usage.get("Size", -1) >= 0 else "N/A",
        "Group": "N/A", "Availability": "N/A", "Status": "N/A",
    }
    return Context(GO_TYPE, data, labels)


def ls(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    listed = s.client.json("GET", "/volumes", {"filters": parse_filters(opts["filter"])})
    for warning in listed.get("Warnings") or []:
        s.error(warning)
    fmt = opts["format"]
    if fmt in ("", "table"):
        fmt = "{{.Name}}" if opts["quiet"] else TABLE
    rows = [_row(v) for v in by_name(listed.get("Volumes") or [])]
    s.out.write(formatting.render(fmt, rows, HEADERS, GO_TYPE))
    return 0


def inspect(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    return _inspect(s, args, opts["format"], lambda ref: s.client.json("GET", f"/volumes/{ref}"),
                    lambda ref, e: str(e))


def rm(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    return s.each(args, lambda ref: s.client.delete(f"/volumes/{ref}", {"force": opts["force"] or None}).close())


def prune(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    """Anonymous volumes only, unless -a: the API's `all` filter (API >= 1.42)."""
    which = "all local volumes" if opts["all"] else "anonymous local volumes"
    if not opts["force"] and not s.confirm(f"WARNING! This will remove {which} not used by at least one container."):
        return 0
    filters = json.loads(parse_filters(opts["filter"]) or "{}")
    if opts["all"]:
        filters["all"] = {"true": True}
    report = s.client.json("POST", "/volumes/prune", {"filters": json.dumps(filters) if filters else None})
    deleted = report.get("VolumesDeleted") or []
    if deleted:
        s.print("Deleted Volumes:\n" + "".join(f"{v}\n" for v in deleted))
    s.print(f"Total reclaimed space: {formatting.human_size(report.get('SpaceReclaimed') or 0, 4)}")
    return 0


def _cmd(names: tuple[str, ...], usage: str, short: str, run: Any, args: Args,
         flags: list[Flag]) -> tuple[str, tuple[str, ...], Command]:
    aliases = tuple(f"{PARENT} {n}" for n in names) if len(names) > 1 else ()
    return "volume", names, Command(names[0], usage, short, run, args, flags, parent=PARENT, aliases=aliases)


FILTER = Flag("f", "filter", "list", help="Provide filter values (e.g. \"dangling=true\")")

COMMANDS = [
    _cmd(("create",), "[OPTIONS] [VOLUME]", "Create a volume", create, Args(0, 1), [
        Flag("d", "driver", "str", "local", "Specify volume driver name"),
        Flag("", "label", "list", help="Set metadata for a volume"),
        Flag("", "name", "str", "", ""),
        Flag("o", "opt", "list", help="Set driver specific options"),
    ]),
    _cmd(("ls", "list"), "[OPTIONS]", "List volumes", ls, Args(0, 0), [
        FILTER, Flag("", "format", "str", "", "Format output using a custom template"),
        Flag("q", "quiet", help="Only display volume names"),
    ]),
    _cmd(("inspect",), "[OPTIONS] VOLUME [VOLUME...]", "Display detailed information on one or more volumes",
         inspect, Args(1, None), [Flag("f", "format", "str", "", "Format output using a custom template")]),
    _cmd(("rm", "remove"), "[OPTIONS] VOLUME [VOLUME...]", "Remove one or more volumes", rm, Args(1, None),
         [Flag("f", "force", help="Force the removal of one or more volumes")]),
    _cmd(("prune",), "[OPTIONS]", "Remove unused local volumes", prune, Args(0, 0), [
        Flag("a", "all", help="Remove all unused volumes, not just anonymous ones"),
        Flag("", "filter", "list", help="Provide filter values (e.g. \"label=<label>\")"),
        Flag("f", "force", help="Do not prompt for confirmation"),
    ]),
]
