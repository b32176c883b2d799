"""Docker CLI output: tables, `--format` rendering and the values shown in them."""
from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Iterable
from typing import Any

from pydock_cli.template import Context, Template
from pydock_common.humanize import human_duration
from pydock_common.humanize import human_size as _human_size


def human_size(size: float, precision: int = 3) -> str:
    """The docker CLI's sizes: go-units HumanSizeWithPrecision with 3 significant digits."""
    return _human_size(size, precision)


def ago(unix_seconds: float) -> str:
    return human_duration(time.time() - unix_seconds) + " ago"


def go_time(unix_seconds: float) -> str:
    """Go's time.Time.String() for a whole-second local time."""
    t = _dt.datetime.fromtimestamp(unix_seconds).astimezone()
    return t.strftime("%Y-%m-%d %H:%M:%S %z ") + (t.tzname() or "")


def rfc3339_nano_fixed(ns: int) -> str:
    """jsonmessage.RFC3339NanoFixed in local time, as `docker events` prints."""
    secs, frac = divmod(ns, 1_000_000_000)
    t = _dt.datetime.fromtimestamp(secs).astimezone()
    offset = t.strftime("%z")
    zone = "Z" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}"
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}{zone}"


def go_quote(s: str) -> str:
    """strconv.Quote for the printable text commands usually hold."""
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out) + '"'


def ellipsis(s: str, n: int) -> str:
    return s if len(s) <= n else s[:n - 1] + "…"


def short_id(ident: str) -> str:
    """TruncateID: drop the algorithm prefix, keep 12 hex digits."""
    return ident.split(":", 1)[-1][:12]


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """text/tabwriter with docker's settings: tab-terminated cells are padded per column block."""
    lines = text.split("\n")
    cells = [line.split("\t") for line in lines]
    widths: list[list[int]] = [[0] * (len(c) - 1) for c in cells]
    col = 0
    while True:
        active = [i for i, c in enumerate(cells) if len(c) - 1 > col]
        if not active:
            break
        start = 0
        while start < len(active):
            end = start
            while end + 1 < len(active) and active[end + 1] == active[end] + 1:
                end += 1
            block = active[start:end + 1]
            width = max([minwidth] + [len(cells[i][col]) + padding for i in block])
            for i in block:
                widths[i][col] = width
            start = end + 1
        col += 1
    out = []
    for c, w in zip(cells, widths):
        out.append("".join(cell.ljust(w[k]) for k, cell in enumerate(c[:-1])) + c[-1])
    return "\n".join(out)


def render(fmt: str, rows: Iterable[Context], headers: dict[str, str], go_type: str) -> str:
    """Docker's formatter.Context: `table` prefix, `json` shorthand, `\\t`/`\\n` escapes."""
    table = fmt.startswith("table")
    if table:
        fmt = fmt[len("table"):]
    fmt = fmt.strip(" ")
    if fmt == "json":
        fmt = "{{json .}}"
    fmt = fmt.replace("\\t", "\t").replace("\\n", "\n")
    tmpl = Template(fmt)
    header = tmpl.execute(Context(go_type, headers, label_header=True)) + "\n"  # also rejects unknown fields
    body = "".join(tmpl.execute(r) + "\n" for r in rows)
    return tabwrite(header + body) if table else body


CONTAINER_HEADERS = {
    "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
    "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES",
    "Networks": "NETWORKS", "Platform": "PLATFORM",
}
PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"

IMAGE_HEADERS = {
    "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE",
}
IMAGES_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"

HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
                   "Size": "SIZE", "Comment": "COMMENT"}
HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"


def _ports(ports: list[dict[str, Any]]) -> str:
    out = []
    for p in ports or []:
        proto = p.get("Type", "tcp")
        if p.get("PublicPort"):
            out.append(f"{p.get('IP', '0.0.0.0')}:{p['PublicPort']}->{p['PrivatePort']}/{proto}")
        else:
            out.append(f"{p['PrivatePort']}/{proto}")
    return ", ".join(out)


def _names(names: list[str], trunc: bool) -> str:
    stripped = [n.removeprefix("/") for n in names or []]
    if trunc:
        plain = [n for n in stripped if "/" not in n]
        if plain:
            stripped = plain[:1]
    return ",".join(stripped)


def container_row(c: dict[str, Any], trunc: bool) -> Context:
    """ContainerContext fields for one /containers/json entry."""
    command = c.get("Command", "")
    image = c.get("Image") or "<no image>"
    if trunc and image.startswith("sha256:"):
        image = short_id(image)
    labels = c.get("Labels") or {}
    mounts = c.get("Mounts") or []
    size = ""
    if c.get("SizeRw") is not None or c.get("SizeRootFs") is not None:
        size = human_size(c.get("SizeRw") or 0)
        if c.get("SizeRootFs"):
            size += f" (virtual {human_size(c['SizeRootFs'])})"
    data = {
        "Command": go_quote(ellipsis(command, 20) if trunc else command),
        "CreatedAt": go_time(c.get("Created", 0)),
        "ID": short_id(c["Id"]) if trunc else c["Id"],
        "Image": image,
        "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
        "LocalVolumes": str(sum(1 for m in mounts if m.get("Driver") == "local")),
        "Mounts": ",".join(m.get("Name") or m.get("Source", "") for m in mounts),
        "Names": _names(c.get("Names", []), trunc),
        "Networks": ",".join(sorted(((c.get("NetworkSettings") or {}).get("Networks") or {}).keys())),
        "Platform": None,
        "Ports": _ports(c.get("Ports", [])),
        "RunningFor": ago(c.get("Created", 0)),
        "Size": size or "0B",
        "State": c.get("State", ""),
        "Status": c.get("Status", ""),
    }
    return Context("*formatter.ContainerContext", data, labels)


def image_rows(img: dict[str, Any], trunc: bool) -> list[Context]:
    """One row per repository tag, `<none>` for dangling images, as `docker images` lists them."""
    tags = [t for t in img.get("RepoTags") or [] if t != "<none>:<none>"]
    pairs = sorted(tuple(t.rsplit(":", 1)) for t in tags) or [("<none>", "<none>")]
    created = img.get("Created", 0)
    rows = []
    for repo, tag in pairs:
        data = {
            "Containers": "N/A" if img.get("Containers", -1) < 0 else str(img["Containers"]),
            "CreatedAt": go_time(created),
            "CreatedSince": ago(created),
            "Digest": "<none>",
            "ID": short_id(img["Id"]) if trunc else img["Id"],
            "Repository": repo,
            "SharedSize": "N/A" if img.get("SharedSize", -1) < 0 else human_size(img["SharedSize"]),
            "Size": human_size(img.get("Size", 0)),
            "Tag": tag,
            "UniqueSize": "N/A",
            "VirtualSize": human_size(img.get("Size", 0), 4),
        }
        rows.append(Context("*formatter.imageContext", data, img.get("Labels") or {}))
    return rows


def history_row(h: dict[str, Any], trunc: bool, human: bool) -> Context:
    ident = h.get("Id", "")
    if ident == "<missing>" or not ident:
        ident = "<missing>"
    elif trunc:
        ident = short_id(ident)
    created_by = h.get("CreatedBy", "")
    if trunc:
        created_by = ellipsis(created_by, 45)
    size = h.get("Size", 0)
    data = {
        "ID": ident,
        "CreatedSince": ago(h.get("Created", 0)) if human else go_time(h.get("Created", 0)),
        "CreatedAt": go_time(h.get("Created", 0)),
        "CreatedBy": created_by,
        "Size": human_size(size) if human else str(size),
        "Comment": h.get("Comment", ""),
    }
    return Context("*image.historyContext", data)

