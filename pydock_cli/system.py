"""System commands (version, info, events, df, prune) and container inspection (top, diff, export, commit)."""
from __future__ import annotations

import platform
from typing import Any

from pydock_cli import formatting
from pydock_cli.client import DaemonError
from pydock_cli.copy import check_output_file
from pydock_cli.formatting import rfc3339_nano_fixed
from pydock_cli.session import CliError, Session, parse_filters
from pydock_cli.streams import is_terminal
from pydock_cli.template import Template
from pydock_cli.timespec import api_time
from pydock_common import __version__, reference
from pydock_common.apiversion import API_VERSION
from pydock_common.errdefs import InvalidParameter

_BINARY_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]


def bytes_size(size: float) -> str:
    """go-units BytesSize: binary units, 4 significant digits."""
    i = 0
    while size >= 1024 and i < len(_BINARY_UNITS) - 1:
        size /= 1024.0
        i += 1
    return f"{size:.4g}{_BINARY_UNITS[i]}"


def _client_version() -> dict[str, Any]:
    return {"Platform": {"Name": "pydock"}, "Version": __version__, "ApiVersion": API_VERSION,
            "DefaultAPIVersion": API_VERSION, "GoVersion": f"python{platform.python_version()}", "GitCommit": "",
            "BuildTime": "", "Os": "linux", "Arch": _arch(), "Context": "default"}


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _kv(indent: str, pairs: list[tuple[str, Any]]) -> list[str]:
    return [f"{indent}{k}:\t{v}" for k, v in pairs]


def version(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    client = _client_version()
    try:
        server: dict[str, Any] | None = s.client.json("GET", "/version")
        error = None
    except DaemonError as e:
        server, error = None, e
    if opts["format"]:
        s.print(Template(opts["format"]).execute({"Client": client, "Server": server}))
    else:
        s.out.write(formatting.tabwrite(_version_text(client, server), minwidth=20, padding=1))
    if error:
        raise error
    return 0


def _version_text(client: dict[str, Any], server: dict[str, Any] | None) -> str:
    lines = ["Client:"] + _kv(" ", [("Version", client["Version"]), ("API version", client["ApiVersion"]),
                                    ("Go version", client["GoVersion"]), ("Git commit", ""), ("Built", ""),
                                    ("OS/Arch", f"{client['Os']}/{client['Arch']}"), ("Context", "default")])
    if server:
        lines += ["", f"Server: {(server.get('Platform') or {}).get('Name', '')}"]
        for comp in server.get("Components") or []:
            d = comp.get("Details") or {}
            lines.append(f" {comp['Name']}:")
            if comp["Name"] == "Engine":
                lines += _kv("  ", [("Version", comp["Version"]),
                                    ("API version", f"{d.get('ApiVersion')} (minimum version {d.get('MinAPIVersion')})"),
                                    ("Go version", d.get("GoVersion", "")), ("Git commit", d.get("GitCommit", "")),
                                    ("Built", d.get("BuildTime", "")), ("OS/Arch", f"{d.get('Os')}/{d.get('Arch')}"),
                                    ("Experimental", d.get("Experimental", "false"))])
            else:
                lines += _kv("  ", [("Version", comp["Version"])] + sorted(d.items()))
    return "\n".join(lines) + "\n"


def info(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    data = s.client.json("GET", "/info")
    if opts["format"]:
        s.print(Template(opts["format"]).execute(data))
        return 0
    plugins = data.get("Plugins") or {}
    lines = ["Client:", f" Version:    {__version__}", " Context:    default", " Debug Mode: false", "", "Server:",
             f" Containers: {data.get('Containers', 0)}", f"  Running: {data.get('ContainersRunning', 0)}",
             f"  Paused: {data.get('ContainersPaused', 0)}", f"  Stopped: {data.get('ContainersStopped', 0)}",
             f" Images: {data.get('Images', 0)}", f" Server Version: {data.get('ServerVersion', '')}",
             f" Storage Driver: {data.get('Driver', '')}"]
    lines += [f"  {k}: {v}" for k, v in data.get("DriverStatus") or []]
    lines += [f" Logging Driver: {data.get('LoggingDriver', '')}", f" Cgroup Driver: {data.get('CgroupDriver', '')}",
              f" Cgroup Version: {data.get('CgroupVersion', '')}", " Plugins:"]
    lines += [f"  {k}: {' '.join(plugins[k])}" for k in ("Volume", "Network", "Log") if plugins.get(k)]
    lines += [f" Swarm: {(data.get('Swarm') or {}).get('LocalNodeState', 'inactive')}",
              f" Runtimes: {' '.join(sorted(data.get('Runtimes') or {}))}",
              f" Default Runtime: {data.get('DefaultRuntime', '')}",
              f" Init Binary: {data.get('InitBinary', '')}",
              f" containerd version: {(data.get('ContainerdCommit') or {}).get('ID', '')}",
              f" runc version: {(data.get('RuncCommit') or {}).get('ID', '')}",
              f" init version: {(data.get('InitCommit') or {}).get('ID', '')}",
              f" Kernel Version: {data.get('KernelVersion', '')}",
              f" Operating System: {data.get('OperatingSystem', '')}", f" OSType: {data.get('OSType', '')}",
              f" Architecture: {data.get('Architecture', '')}", f" CPUs: {data.get('NCPU', 0)}",
              f" Total Memory: {bytes_size(data.get('MemTotal', 0))}", f" Name: {data.get('Name', '')}",
              f" ID: {data.get('ID', '')}", f" Docker Root Dir: {data.get('DockerRootDir', '')}",
              f" Debug Mode: {str(data.get('Debug', False)).lower()}",
              f" Experimental: {str(data.get('ExperimentalBuild', False)).lower()}",
              f" Live Restore Enabled: {str(data.get('LiveRestoreEnabled', False)).lower()}"]
    s.print("\n".join(lines) + "\n")
    return 0


def _event_line(ev: dict[str, Any]) -> str:
    actor = ev.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    line = f"{rfc3339_nano_fixed(ev.get('timeNano', 0))} {ev.get('Type', '')} {ev.get('Action', '')} {actor.get('ID', '')}"
    if attrs:
        line += " (" + ", ".join(f"{k}={v}" for k, v in sorted(attrs.items())) + ")"
    return line


def _go_event(ev: dict[str, Any]) -> dict[str, Any]:
    """events.Message in Go field order (omitempty legacy fields first), as docker re-encodes it."""
    out = {k: ev[k] for k in ("status", "id", "from") if ev.get(k)}
    actor = ev.get("Actor") or {}
    out.update({"Type": ev.get("Type", ""), "Action": ev.get("Action", ""),
                "Actor": {"ID": actor.get("ID", ""), "Attributes": dict(sorted((actor.get("Attributes") or {}).items()))}})
    out.update({k: ev[k] for k in ("scope", "time", "timeNano") if k in ev})
    return out


def events(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    params = {"since": api_time(opts["since"], "since"), "until": api_time(opts["until"], "until"),
              "filters": parse_filters(opts["filter"])}
    fmt = opts["format"]
    tmpl = Template("{{json .}}" if fmt == "json" else fmt.replace("\\t", "\t").replace("\\n", "\n")) if fmt else None
    resp = s.client.get("/events", params, stream=True)
    with resp:
        for ev in s.client.json_lines(resp):
            s.print(tmpl.execute(_go_event(ev)) if tmpl else _event_line(ev))
    return 0


def top(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    params = {"ps_args": " ".join(args[1:]) or None}
    data = s.client.json("GET", f"/containers/{args[0]}/top", params)
    lines = ["\t".join(data.get("Titles") or [])] + ["\t".join(p) for p in data.get("Processes") or []]
    s.out.write(formatting.tabwrite("\n".join(lines) + "\n", minwidth=20, padding=1))
    return 0


def diff(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    kinds = {0: "C", 1: "A", 2: "D"}
    for change in s.client.json("GET", f"/containers/{args[0]}/changes") or []:
        s.print(f"{kinds.get(change['Kind'], '?')} {change['Path']}")
    return 0


def export(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    save_stream(s, f"/containers/{args[0]}/export", {}, opts["output"], "failed to export container")
    return 0


def save_stream(s: Session, path: str, params: dict[str, Any], output: str, failure: str) -> None:
    """A tar answer written to `-o FILE` or stdout (never to a terminal), as export and save do."""
    if not output and is_terminal(s.out.stream):
        raise CliError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    if output:
        check_output_file(output, failure)
    with s.client.get(path, params, stream=True) as resp:
        if not output:
            for chunk in resp.iter_content(1 << 20):
                s.out.write_bytes(chunk)
            return
        with open(output, "wb") as f:
            f.writelines(resp.iter_content(1 << 20))


def commit(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    repo, tag = "", ""
    if len(args) > 1:
        try:
            ref = reference.parse(args[1])
        except InvalidParameter as e:
            raise CliError.from_kind(e) from None
        if ref.digest:
            raise CliError("refusing to create a tag with a digest reference")
        repo, tag = ref.repository, ref.tag
    params = {"container": args[0], "repo": repo or None, "tag": tag or None, "comment": opts["message"] or None,
              "author": opts["author"] or None, "changes": opts["change"] or None, "pause": opts["pause"]}
    s.print(s.client.json("POST", "/commit", params)["Id"])
    return 0



DF_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}


def _reclaimable(reclaimable: int, total: int) -> str:
    text = formatting.human_size(reclaimable, 4)
    return f"{text} ({reclaimable * 100 // total}%)" if total > 0 else text


def _df_row(kind: str, count: int, active: int, size: int, reclaimable: int) -> formatting.Context:
    return formatting.Context("*formatter.diskUsageContext", {
        "Type": kind, "TotalCount": str(count), "Active": str(active), "Size": formatting.human_size(size, 4),
        "Reclaimable": _reclaimable(reclaimable, size)})


def df_rows(du: dict[str, Any]) -> list[formatting.Context]:
    """The four summary rows of docker's disk-usage formatter."""
    images, containers = du.get("Images") or [], du.get("Containers") or []
    volumes, cache = du.get("Volumes") or [], du.get("BuildCache") or []
    layers = du.get("LayersSize") or 0
    used = sum(i["Size"] - i["SharedSize"] for i in images
               if i.get("Containers") and i.get("Size", -1) != -1 and i.get("SharedSize", -1) != -1)
    live = [c for c in containers if c.get("State") in ("running", "paused", "restarting")]
    ctr_size = sum(c.get("SizeRw") or 0 for c in containers)
    vol_usage = [v.get("UsageData") or {} for v in volumes]
    vol_size = sum(u.get("Size", 0) for u in vol_usage if u.get("Size", -1) != -1)
    return [
        _df_row("Images", len(images), sum(1 for i in images if i.get("Containers")), layers, layers - used),
        _df_row("Containers", len(containers), len(live), ctr_size,
                ctr_size - sum(c.get("SizeRw") or 0 for c in live)),
        _df_row("Local Volumes", len(volumes), sum(1 for u in vol_usage if u.get("RefCount", 0) > 0), vol_size,
                sum(u.get("Size", 0) for u in vol_usage if u.get("RefCount", 0) == 0 and u.get("Size", -1) != -1)),
        _df_row("Build Cache", len(cache), sum(1 for b in cache if b.get("InUse")),
                sum(b.get("Size", 0) for b in cache if not b.get("Shared")),
                sum(b.get("Size", 0) for b in cache if not b.get("InUse") and not b.get("Shared"))),
    ]


def df(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    fmt = opts["format"]
    if fmt in ("", "table"):
        fmt = DF_TABLE
    rows = df_rows(s.client.json("GET", "/system/df"))
    s.out.write(formatting.render(fmt, rows, DF_HEADERS, "*formatter.diskUsageContext"))
    return 0


def _prune_warning(opts: dict[str, Any]) -> str:
    items = ["all stopped containers", "all networks not used by at least one container"]
    if opts["volumes"]:
        items.append("all anonymous volumes not used by at least one container")
    items.append("all images without at least one container associated to them" if opts["all"]
                 else "all dangling images")
    items.append("all build cache" if opts["all"] else "unused build cache")
    return "WARNING! This will remove:\n" + "".join(f"  - {i}\n" for i in items)


def _prune_section(s: Session, title: str, names: list[str]) -> None:
    if names:
        s.print(f"{title}:\n" + "".join(f"{n}\n" for n in names))


def system_prune(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    """Containers, networks, [volumes], images, then build cache, each reported as its own prune command does."""
    if not opts["force"] and not s.confirm(_prune_warning(opts)):
        return 0
    filters = parse_filters(opts["filter"])
    report = s.client.json("POST", "/containers/prune", {"filters": filters})
    _prune_section(s, "Deleted Containers", report.get("ContainersDeleted") or [])
    reclaimed = report.get("SpaceReclaimed") or 0
    _prune_section(s, "Deleted Networks",
                   s.client.json("POST", "/networks/prune", {"filters": filters}).get("NetworksDeleted") or [])
    if opts["volumes"]:
        report = s.client.json("POST", "/volumes/prune", {"filters": filters})
        _prune_section(s, "Deleted Volumes", report.get("VolumesDeleted") or [])
        reclaimed += report.get("SpaceReclaimed") or 0
    image_filters = parse_filters(opts["filter"] + ([] if opts["all"] else ["dangling=true"]))
    report = s.client.json("POST", "/images/prune", {"filters": image_filters})
    deleted = [f"{key.lower()}: {item[key]}" for item in report.get("ImagesDeleted") or []
               for key in ("Untagged", "Deleted") if item.get(key)]
    _prune_section(s, "Deleted Images", deleted)
    reclaimed += (report.get("SpaceReclaimed") or 0) + _prune_build_cache(s, opts)
    s.print(f"Total reclaimed space: {formatting.human_size(reclaimed, 4)}")
    return 0


def _prune_build_cache(s: Session, opts: dict[str, Any]) -> int:
    """The classic builder keeps no separate cache; a daemon without the route has nothing to prune."""
    try:
        report = s.client.json("POST", "/build/prune", {"all": opts["all"], "filters": parse_filters(opts["filter"])})
    except DaemonError as e:
        if e.status == 404:
            return 0
        raise
    _prune_section(s, "Deleted build cache objects", report.get("CachesDeleted") or [])
    return report.get("SpaceReclaimed") or 0
