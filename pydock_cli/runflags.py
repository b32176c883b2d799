"""`run`/`create` flags for ports, networking, mounts and resources, turned into the create body as the docker CLI does.

Each flag value is checked when it is parsed (pflag's typed values: bytes,
ulimit, mount...), so a bad value is a usage error with exit code 125 before
anything reaches the daemon. `apply()` then fills the Engine API fields
(ExposedPorts, PortBindings, Binds/Volumes, Mounts, EndpointsConfig...)
exactly as `docker run` sends them.
"""
from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterable
from typing import Any

from pydock_cli.flagvalues import (
    ConfigError,
    device,
    extra_host,
    go_duration,
    ip_address,
    mount,
    nano_cpus,
    ram_in_bytes,
    swap_bytes,
    sysctl,
    ulimit,
)
from pydock_cli.parser import Flag

PROTOCOLS = {"tcp", "udp", "sctp"}


RUN_FLAGS = [
    Flag("p", "publish", "list", help="Publish a container's port(s) to the host"),
    Flag("P", "publish-all", help="Publish all exposed ports to random ports"),
    Flag("", "expose", "list", help="Expose a port or a range of ports"),
    Flag("", "network-alias", "list", help="Add network-scoped alias for the container"),
    Flag("", "ip", "str", "", "IPv4 address (e.g., 172.30.100.104)"),
    Flag("", "ip6", "str", "", "IPv6 address (e.g., 2001:db8::33)"),
    Flag("", "link", "list", help="Add link to another container"),
    Flag("", "link-local-ip", "list", help="Container IPv4/IPv6 link-local addresses"),
    Flag("", "mac-address", "str", "", "Container MAC address (e.g., 92:d0:c6:0a:29:33)"),
    Flag("", "add-host", "list", help="Add a custom host-to-IP mapping (host:ip)", check=extra_host),
    Flag("", "dns", "list", help="Set custom DNS servers", check=ip_address),
    Flag("", "dns-search", "list", help="Set custom DNS search domains"),
    Flag("", "dns-option", "list", help="Set DNS options"),
    Flag("", "mount", "list", help="Attach a filesystem mount to the container", check=mount),
    Flag("", "tmpfs", "list", help="Mount a tmpfs directory"),
    Flag("", "volumes-from", "list", help="Mount volumes from the specified container(s)"),
    Flag("m", "memory", "str", "", "Memory limit", ram_in_bytes),
    Flag("", "memory-swap", "str", "", "Swap limit equal to memory plus swap: '-1' to enable unlimited swap",
         swap_bytes),
    Flag("", "memory-reservation", "str", "", "Memory soft limit", ram_in_bytes),
    Flag("", "cpus", "str", "", "Number of CPUs", nano_cpus),
    Flag("c", "cpu-shares", "int", 0, "CPU shares (relative weight)"),
    Flag("", "cpuset-cpus", "str", "", "CPUs in which to allow execution (0-3, 0,1)"),
    Flag("", "cpuset-mems", "str", "", "MEMs in which to allow execution (0-3, 0,1)"),
    Flag("", "pids-limit", "int", 0, "Tune container pids limit (set -1 for unlimited)"),
    Flag("", "ulimit", "list", help="Ulimit options", check=ulimit),
    Flag("", "shm-size", "str", "", "Size of /dev/shm", ram_in_bytes),
    Flag("", "security-opt", "list", help="Security Options"),
    Flag("", "device", "list", help="Add a host device to the container"),
    Flag("", "group-add", "list", help="Add additional groups to join"),
    Flag("", "sysctl", "list", help="Sysctl options", check=sysctl),
    Flag("", "health-cmd", "str", "", "Command to run to check health"),
    Flag("", "health-interval", "str", "", "Time between running the check (ms|s|m|h) (default 0s)", go_duration),
    Flag("", "health-timeout", "str", "", "Maximum time to allow one check to run (ms|s|m|h) (default 0s)",
         go_duration),
    Flag("", "health-start-period", "str", "",
         "Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) "
         "(default 0s)", go_duration),
    Flag("", "health-start-interval", "str", "",
         "Time between running the check during the start period (ms|s|m|h) (default 0s)", go_duration),
    Flag("", "health-retries", "int", 0, "Consecutive failures needed to report unhealthy"),
    Flag("", "no-healthcheck", help="Disable any container-specified HEALTHCHECK"),
]


def _port_range(text: str, what: str) -> tuple[int, int]:
    lo, dash, hi = text.partition("-")
    try:
        start, end = int(lo), int(hi) if dash else int(lo)
    except ValueError:
        raise ConfigError(f"invalid {what}: {text}") from None
    if not (0 <= start <= end <= 65535) or (what == "containerPort" and start == 0):
        raise ConfigError(f"invalid {what}: {text}")
    return start, end


def _split_publish(raw: str) -> tuple[str, str, str]:
    """`[ip:][hostPort:]containerPort[/proto]`, with an IPv6 address in brackets."""
    if raw.startswith("["):
        end = raw.find("]:")
        if end < 0:
            raise ConfigError(f"invalid IP address: {raw}")
        ip, rest = raw[1:end], raw[end + 2:]
        host, _, container = rest.rpartition(":")
        return ip, host, container
    parts = raw.rsplit(":", 2)
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return "", "", parts[0]


def _proto_port(spec: str) -> tuple[str, str]:
    port, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOCOLS:
        raise ConfigError(f"invalid proto: {proto}")
    return port, proto


def port_bindings(specs: list[str]) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, str]]]]:
    """nat.ParsePortSpecs: (ExposedPorts, PortBindings)."""
    exposed: dict[str, dict[str, Any]] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for raw in specs:
        ip, host, container = _split_publish(raw)
        if ip:
            _check_host_ip(ip)
        port, proto = _proto_port(container)
        start, end = _port_range(port, "containerPort")
        hstart, hend = _port_range(host, "hostPort") if host else (0, 0)
        if host and hend - hstart != end - start and start != end:
            raise ConfigError(f"invalid ranges specified for container and host Ports: {port} and {host}")
        for i in range(end - start + 1):
            key = f"{start + i}/{proto}"
            host_port = str(hstart + i) if host and hend - hstart == end - start else host
            exposed[key] = {}
            bindings.setdefault(key, []).append({"HostIp": ip, "HostPort": host_port})
    return exposed, bindings


def _check_host_ip(ip: str) -> None:
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise ConfigError(f"invalid IP address: {ip}") from None


def exposed_ports(specs: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for raw in specs:
        port, proto = _proto_port(raw)
        for part in port.split("-", 1):
            if not part.isdigit():
                raise ConfigError(f"invalid range format for --expose: {raw}, error: strconv.ParseUint: "
                                  f'parsing "{part}": invalid syntax')
        start, end = _port_range(port, "containerPort")
        out.update({f"{p}/{proto}": {} for p in range(start, end + 1)})
    return out


def split_volumes(specs: list[str]) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """`-v`: specs with a source become Binds (relative host paths made absolute), the rest anonymous Volumes."""
    binds: list[str] = []
    anonymous: dict[str, dict[str, Any]] = {}
    for spec in specs:
        source, colon, rest = spec.partition(":")
        if not colon:
            anonymous[spec] = {}
            continue
        if source.startswith("."):
            source = os.path.abspath(source)
        binds.append(f"{source}:{rest}")
    return binds, anonymous


def security_opts(values: list[str]) -> tuple[list[str], bool]:
    """parseSecurityOpts: a seccomp profile file is sent inline; `systempaths=unconfined` unmasks /proc paths."""
    out, unmask = [], False
    for value in values:
        key, eq, val = value.partition("=")
        if not eq:
            key, eq, val = value.partition(":")
        if key == "systempaths" and val == "unconfined":
            unmask = True
            continue
        if key == "seccomp" and val not in ("unconfined", "builtin"):
            try:
                with open(val, encoding="utf-8") as f:
                    profile = json.load(f)
            except OSError as e:
                raise ConfigError(f"opening seccomp profile ({val}) failed: open {val}: "
                                  f"{(e.strerror or str(e)).lower()}") from None
            except ValueError as e:
                raise ConfigError(f"compacting json for seccomp profile ({val}) failed: {e}") from None
            value = "seccomp=" + json.dumps(profile, separators=(",", ":"))
        out.append(value)
    return out, unmask


def capabilities(add: list[str], drop: list[str]) -> tuple[list[str] | None, list[str] | None]:
    """opts.EffectiveCapAddCapDrop: normalized, deduplicated, sorted; adding wins over dropping."""

    def normalize(caps: list[str]) -> set[str]:
        out = set()
        for c in caps:
            c = c.strip().upper()
            out.add(c if c in ("ALL", "RESET") or c.startswith("CAP_") else "CAP_" + c)
        return {"ALL"} if "ALL" in out else out

    add_set, drop_set = normalize(add), normalize(drop)
    cap_add = sorted(add_set - {"RESET"})
    cap_drop = sorted(drop_set - add_set - {"RESET"})
    return cap_add or None, cap_drop or None


# HostConfig in the docker CLI's field order (Go struct order, which the daemon's inspect keeps), each with
# the value the CLI sends when no flag sets it; OMIT marks `omitempty` fields, left out when unset.
OMIT = object()
HOST_FIELDS: dict[str, Any] = {
    "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "", "Config": {}}, "NetworkMode": "default",
    "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "AutoRemove": False,
    "VolumeDriver": "", "VolumesFrom": None, "ConsoleSize": [0, 0], "CapAdd": None, "CapDrop": None,
    "CgroupnsMode": "", "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": None, "GroupAdd": None,
    "IpcMode": "", "Cgroup": "", "Links": None, "OomScoreAdj": 0, "PidMode": "", "Privileged": False,
    "PublishAllPorts": False, "ReadonlyRootfs": False, "SecurityOpt": None, "Tmpfs": OMIT, "UTSMode": "",
    "UsernsMode": "", "ShmSize": 0, "Sysctls": OMIT, "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0,
    "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [], "BlkioDeviceReadBps": [],
    "BlkioDeviceWriteBps": [], "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [], "CpuPeriod": 0,
    "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "",
    "Devices": [], "DeviceCgroupRules": None, "DeviceRequests": None, "MemoryReservation": 0, "MemorySwap": 0,
    "MemorySwappiness": -1, "OomKillDisable": False, "PidsLimit": 0, "Ulimits": [], "CpuCount": 0,
    "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0, "Mounts": OMIT, "MaskedPaths": None,
    "ReadonlyPaths": None, "Init": OMIT,
}
CONFIG_ORDER = ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "ExposedPorts",
                "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "Image", "Volumes", "WorkingDir", "Entrypoint",
                "OnBuild", "Labels", "StopSignal", "StopTimeout", "HostConfig", "NetworkingConfig")
USER_NETWORK_EXCLUDED = ("default", "bridge", "host", "none")


def _endpoint(opts: dict[str, Any]) -> dict[str, Any] | None:
    """The network's endpoint settings, sent only when a flag customises them (--ip, --ip6, --link-local-ip,
    --network-alias, --mac-address, or --link on a user-defined network, where links are endpoint aliases)."""
    network = opts["network"]
    user = not (network in USER_NETWORK_EXCLUDED or network.startswith("container:"))
    links = opts["link"] if user else []
    if not (opts["ip"] or opts["ip6"] or opts["link_local_ip"] or opts["network_alias"] or opts["mac_address"]
            or links):
        return None
    if opts["network_alias"] and not user:
        raise ConfigError("network-scoped aliases are only supported for user-defined networks")
    ipam = {k: v for k, v in (("IPv4Address", opts["ip"]), ("IPv6Address", opts["ip6"]),
                              ("LinkLocalIPs", opts["link_local_ip"])) if v}
    return {"IPAMConfig": ipam or None, "Links": links or None, "Aliases": opts["network_alias"] or None,
            "MacAddress": opts["mac_address"], "DriverOpts": None}


def _sorted_map(pairs: Iterable[list[str]]) -> dict[str, str] | None:
    """A map flag as Go encodes it: later values win, keys sorted; absent when empty."""
    out = {pair[0]: pair[1] for pair in pairs}
    return dict(sorted(out.items())) or None


def _size(value: str, parse: Any) -> int:
    return parse(value) if value else 0


_HEALTH_DURATIONS = (("Interval", "health_interval"), ("Timeout", "health_timeout"),
                     ("StartPeriod", "health_start_period"), ("StartInterval", "health_start_interval"))


def healthcheck(opts: dict[str, Any]) -> dict[str, Any] | None:
    """Config.Healthcheck as the docker CLI builds it: NONE for --no-healthcheck, else the --health-* values
    given (a zero field is left out, so the image's applies); None when no such flag is given."""
    durations = {key: _size(opts[dest], go_duration) for key, dest in _HEALTH_DURATIONS}
    retries = opts["health_retries"]
    if not (opts["health_cmd"] or retries or any(durations.values())):
        return {"Test": ["NONE"]} if opts["no_healthcheck"] else None
    if opts["no_healthcheck"]:
        raise ConfigError("--no-healthcheck conflicts with --health-* options")
    for flag, value in (("interval", durations["Interval"]), ("timeout", durations["Timeout"]), ("retries", retries),
                        ("start-period", durations["StartPeriod"]), ("start-interval", durations["StartInterval"])):
        if value < 0:  # in the docker CLI's order
            raise ConfigError(f"--health-{flag} cannot be negative")
    test = {"Test": ["CMD-SHELL", opts["health_cmd"]]} if opts["health_cmd"] else {}
    return {**test, **{k: v for k, v in durations.items() if v}, **({"Retries": retries} if retries else {})}


def _host_flags(opts: dict[str, Any]) -> dict[str, Any]:
    """The HostConfig fields RUN_FLAGS set, in the CLI's empty form when a flag is not given."""
    _, bindings = port_bindings(opts["publish"])
    binds, _ = split_volumes(opts["volume"])
    secopts, unmask = security_opts(opts["security_opt"])
    cap_add, cap_drop = capabilities(opts["cap_add"], opts["cap_drop"])
    out = {
        "Binds": binds or None, "PortBindings": dict(sorted(bindings.items())), "CapAdd": cap_add,
        "CapDrop": cap_drop, "PublishAllPorts": opts["publish_all"], "ExtraHosts": [extra_host(h) for h in opts["add_host"]] or None,
        "Dns": [ip_address(d) for d in opts["dns"]], "DnsSearch": opts["dns_search"],
        "DnsOptions": opts["dns_option"], "Mounts": [mount(m) for m in opts["mount"]] or None,
        "Tmpfs": _sorted_map(t.split(":", 1) + [""] for t in opts["tmpfs"]),
        "VolumesFrom": opts["volumes_from"] or None, "Memory": _size(opts["memory"], ram_in_bytes),
        "MemorySwap": _size(opts["memory_swap"], swap_bytes),
        "MemoryReservation": _size(opts["memory_reservation"], ram_in_bytes),
        "NanoCpus": _size(opts["cpus"], nano_cpus), "CpuShares": opts["cpu_shares"],
        "CpusetCpus": opts["cpuset_cpus"], "CpusetMems": opts["cpuset_mems"], "PidsLimit": opts["pids_limit"],
        "Ulimits": sorted({u["Name"]: u for u in map(ulimit, opts["ulimit"])}.values(), key=lambda u: u["Name"]),
        "ShmSize": _size(opts["shm_size"], ram_in_bytes), "SecurityOpt": secopts or None,
        "Devices": [device(d) for d in opts["device"]], "GroupAdd": opts["group_add"] or None,
        "Sysctls": _sorted_map(s.split("=", 1) for s in opts["sysctl"]), "Links": opts["link"] or None,
    }
    if unmask:
        out["MaskedPaths"], out["ReadonlyPaths"] = [], []
    return out


def _ordered_host(given: dict[str, Any]) -> dict[str, Any]:
    host = {}
    for key, zero in HOST_FIELDS.items():
        value = given.pop(key, zero)
        if not (zero is OMIT and (value is OMIT or value is None)):
            host[key] = value
    host.update(given)
    return host


def apply(body: dict[str, Any], opts: dict[str, Any]) -> dict[str, Any]:
    """Completes a create body from the basic flags with RUN_FLAGS (and -v, --network, caps), as docker sends it."""
    exposed, _ = port_bindings(opts["publish"])
    exposed.update(exposed_ports(opts["expose"]))
    endpoint = _endpoint(opts)
    body.update({
        "ExposedPorts": dict(sorted(exposed.items())) or None, "Env": body["Env"] or None,
        "Volumes": split_volumes(opts["volume"])[1], "Labels": dict(sorted(body["Labels"].items())),
        "HostConfig": _ordered_host({**body["HostConfig"], **_host_flags(opts)}),
        "NetworkingConfig": {"EndpointsConfig": {opts["network"]: endpoint} if endpoint else {}},
    })
    if body["ExposedPorts"] is None:
        del body["ExposedPorts"]
    health = healthcheck(opts)
    if health is not None:
        body["Healthcheck"] = health
    ordered = {key: body.pop(key) for key in CONFIG_ORDER if key in body}
    return {**ordered, **body}
