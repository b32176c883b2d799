"""`docker network` commands: create, ls, inspect, rm, connect, disconnect, prune."""
from __future__ import annotations

import datetime as _dt
import ipaddress
from typing import Any

from pydock_cli import formatting
from pydock_cli.client import DaemonError
from pydock_cli.images import _inspect
from pydock_cli.parser import PROG, Args, Command, Flag
from pydock_cli.session import CliError, Session, parse_filters
from pydock_cli.sortorder import by_name
from pydock_cli.template import Context

PARENT = f"{PROG} network"
HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv4": "IPV4", "IPv6": "IPV6",
           "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}
TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
GO_TYPE = "*formatter.networkContext"


def labels_map(values: list[str]) -> dict[str, str]:
    """opts.ConvertKVStringsToMap: `k=v`, or `k` for an empty value; sorted, as Go encodes a map."""
    return dict(sorted(dict((v.split("=", 1) + [""])[:2] for v in values).items()))


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise CliError(f"invalid CIDR address: {text}") from None


def _contains(subnet: str, addr: str, is_range: bool) -> bool:
    sub = _network(subnet)
    if is_range:
        net = _network(addr)
        return net.version == sub.version and net.subnet_of(sub)  # type: ignore[arg-type]
    try:
        return ipaddress.ip_address(addr) in sub
    except ValueError:
        raise CliError(f"invalid gateway address: {addr}") from None


def _holds(subnet: str, addr: str) -> bool:
    """subnetMatches for --aux-address: an address that does not parse belongs to no subnet."""
    try:
        return ipaddress.ip_address(addr) in _network(subnet)
    except ValueError:
        return False


def _owner(subnets: list[dict[str, Any]], addr: str, is_range: bool) -> dict[str, Any]:
    """The --subnet entry a --gateway or --ip-range belongs to (consolidateIpam)."""
    for entry in subnets:
        if _contains(entry["Subnet"], addr, is_range):
            return entry
    raise CliError(f"no matching subnet for {'range' if is_range else 'gateway'} {addr}")


def ipam_config(subnets: list[str], ranges: list[str], gateways: list[str],
                aux_addresses: dict[str, str] | None = None) -> list[dict[str, Any]]:
    if (ranges or gateways or aux_addresses) and not subnets:
        raise CliError("every ip-range or gateway must have a corresponding subnet")
    out: list[dict[str, Any]] = [{"Subnet": s} for s in subnets]
    for r in ranges:
        entry = _owner(out, r, True)
        if "IPRange" in entry:
            raise CliError(f"cannot configure multiple ranges ({r}, {entry['IPRange']}) on the same subnet "
                           f"({entry['Subnet']})")
        entry["IPRange"] = r
    for g in gateways:
        entry = _owner(out, g, False)
        if "Gateway" in entry:
            raise CliError(f"cannot configure multiple gateways ({g}, {entry['Gateway']}) for the same subnet "
                           f"({entry['Subnet']})")
        entry["Gateway"] = g
    for host, addr in (aux_addresses or {}).items():
        owners = [entry for entry in out if _holds(entry["Subnet"], addr)]
        if not owners:
            raise CliError(f"no matching subnet for aux-address {addr}")
        for entry in owners:
            entry.setdefault("AuxiliaryAddresses", {})[host] = addr
    return out


def create(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    body = {
        "Driver": opts["driver"], "Scope": "",
        "IPAM": {"Driver": opts["ipam_driver"], "Options": labels_map(opts["ipam_opt"]),
                 "Config": ipam_config(opts["subnet"], opts["ip_range"], opts["gateway"],
                                       labels_map(opts["aux_address"]))},
        "Internal": opts["internal"], "Attachable": opts["attachable"], "Ingress": False, "ConfigOnly": False,
        "ConfigFrom": None, "Options": labels_map(opts["opt"]), "Labels": labels_map(opts["label"]), "Name": args[0],
    }
    if opts["ipv6"]:
        body["EnableIPv6"] = True
    s.print(s.client.json("POST", "/networks/create", None, body)["Id"])
    return 0


def go_time_string(rfc3339: str) -> str:
    """Go's time.Time.String() for an RFC 3339 timestamp with nanoseconds."""
    head, _, frac = rfc3339.rstrip("Z").partition(".")
    t = _dt.datetime.fromisoformat(head)
    frac = frac.rstrip("0")
    return t.strftime("%Y-%m-%d %H:%M:%S") + (f".{frac}" if frac else "") + " +0000 UTC"


def _row(n: dict[str, Any], trunc: bool) -> Context:
    labels = n.get("Labels") or {}
    data = {
        "ID": formatting.short_id(n["Id"]) if trunc else n["Id"], "Name": n.get("Name", ""),
        "Driver": n.get("Driver", ""), "Scope": n.get("Scope", ""),
        "IPv4": str(n.get("EnableIPv4", True)).lower(), "IPv6": str(bool(n.get("EnableIPv6"))).lower(),
        "Internal": str(bool(n.get("Internal"))).lower(),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "CreatedAt": go_time_string(n.get("Created", "0001-01-01T00:00:00Z")),
    }
    return Context(GO_TYPE, data, labels)


def ls(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    networks = s.client.json("GET", "/networks", {"filters": parse_filters(opts["filter"])})
    fmt = opts["format"]
    if fmt in ("", "table"):
        fmt = "{{.ID}}" if opts["quiet"] else TABLE
    rows = [_row(n, not opts["no_trunc"]) for n in by_name(networks)]
    s.out.write(formatting.render(fmt, rows, HEADERS, GO_TYPE))
    return 0


def inspect(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    params = {"verbose": opts["verbose"] or None}
    return _inspect(s, args, opts["format"], lambda ref: s.client.json("GET", f"/networks/{ref}", params),
                    lambda ref, e: str(e))


def rm(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    """Removes each network; docker ends with `exit status 1` when any removal failed."""
    failed = False
    for ref in args:
        try:
            s.client.delete(f"/networks/{ref}").close()
        except DaemonError as e:
            if opts["force"] and e.status == 404:
                continue
            s.error(str(e))
            failed = True
            continue
        s.print(ref)
    if failed:
        raise CliError("exit status 1")
    return 0


def connect(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    ipam = {k: v for k, v in (("IPv4Address", opts["ip"]), ("IPv6Address", opts["ip6"]),
                              ("LinkLocalIPs", opts["link_local_ip"])) if v}
    endpoint = {"IPAMConfig": ipam, "Links": opts["link"] or None,
                "Aliases": opts["alias"], "MacAddress": "", "DriverOpts": labels_map(opts["driver_opt"])}
    s.client.post(f"/networks/{args[0]}/connect", body={"Container": args[1], "EndpointConfig": endpoint}).close()
    return 0


def disconnect(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    s.client.post(f"/networks/{args[0]}/disconnect", body={"Container": args[1], "Force": opts["force"]}).close()
    return 0


def prune(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    warning = "WARNING! This will remove all custom networks not used by at least one container."
    if not opts["force"] and not s.confirm(warning):
        return 0
    report = s.client.json("POST", "/networks/prune", {"filters": parse_filters(opts["filter"])})
    deleted = report.get("NetworksDeleted") or []
    s.print("Deleted Networks:\n" + "".join(f"{n}\n" for n in deleted) if deleted else "")
    return 0


def _cmd(names: tuple[str, ...], usage: str, short: str, run: Any, args: Args,
         flags: list[Flag]) -> tuple[str, tuple[str, ...], Command]:
    aliases = tuple(f"{PARENT} {n}" for n in names) if len(names) > 1 else ()
    return "network", names, Command(names[0], usage, short, run, args, flags, parent=PARENT, aliases=aliases)


FILTER = Flag("f", "filter", "list", help="Provide filter values (e.g. \"driver=bridge\")")
FORMAT = Flag("f", "format", "str", "", "Format output using a custom template")

COMMANDS = [
    _cmd(("create",), "[OPTIONS] NETWORK", "Create a network", create, Args(1, 1), [
        Flag("", "attachable", help="Enable manual container attachment"),
        Flag("", "aux-address", "list", help="Auxiliary IPv4 or IPv6 addresses used by Network driver"),
        Flag("d", "driver", "str", "bridge", "Driver to manage the Network"),
        Flag("", "gateway", "list", help="IPv4 or IPv6 Gateway for the master subnet"),
        Flag("", "internal", help="Restrict external access to the network"),
        Flag("", "ip-range", "list", help="Allocate container ip from a sub-range"),
        Flag("", "ipam-driver", "str", "default", "IP Address Management Driver"),
        Flag("", "ipam-opt", "list", help="Set IPAM driver specific options"),
        Flag("", "ipv6", help="Enable or disable IPv6 networking"),
        Flag("", "label", "list", help="Set metadata on a network"),
        Flag("o", "opt", "list", help="Set driver specific options"),
        Flag("", "subnet", "list", help="Subnet in CIDR format that represents a network segment"),
    ]),
    _cmd(("ls", "list"), "[OPTIONS]", "List networks", ls, Args(0, 0), [
        FILTER, Flag("", "format", "str", "", "Format output using a custom template"),
        Flag("", "no-trunc", help="Do not truncate the output"), Flag("q", "quiet", help="Only display network IDs"),
    ]),
    _cmd(("inspect",), "[OPTIONS] NETWORK [NETWORK...]", "Display detailed information on one or more networks",
         inspect, Args(1, None), [FORMAT, Flag("v", "verbose", help="Verbose output for diagnostics")]),
    _cmd(("rm", "remove"), "NETWORK [NETWORK...]", "Remove one or more networks", rm, Args(1, None),
         [Flag("f", "force", help="Do not error if the network does not exist")]),
    _cmd(("connect",), "[OPTIONS] NETWORK CONTAINER", "Connect a container to a network", connect, Args(2, 2), [
        Flag("", "alias", "list", help="Add network-scoped alias for the container"),
        Flag("", "driver-opt", "list", help="driver options for the network"),
        Flag("", "ip", "str", "", "IPv4 address (e.g., \"172.30.100.104\")"),
        Flag("", "ip6", "str", "", "IPv6 address (e.g., \"2001:db8::33\")"),
        Flag("", "link", "list", help="Add link to another container"),
        Flag("", "link-local-ip", "list", help="Add a link-local address for the container"),
    ]),
    _cmd(("disconnect",), "[OPTIONS] NETWORK CONTAINER", "Disconnect a container from a network", disconnect,
         Args(2, 2), [Flag("f", "force", help="Force the container to disconnect from a network")]),
    _cmd(("prune",), "[OPTIONS]", "Remove all unused networks", prune, Args(0, 0),
         [Flag("", "filter", "list", help="Provide filter values (e.g. \"until=<timestamp>\")"),
          Flag("f", "force", help="Do not prompt for confirmation")]),
]
