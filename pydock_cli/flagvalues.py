"""The typed flag values of `run`/`create` (pflag's value types as the docker CLI has them): sizes, CPUs,
ulimits, Go durations, addresses, `--mount`, `--device`; each raises on a value docker rejects, so a bad
value is a usage error before anything reaches the daemon."""
from __future__ import annotations

import csv
import ipaddress
import re
from fractions import Fraction
from typing import Any

from pydock_cli.session import CliError


class ConfigError(CliError):
    """A flag combination docker rejects while building the request (`docker: ...`, exit 125)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 125)


_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$")


_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


ULIMITS = {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss",
           "rtprio", "rttime", "sigpending", "stack"}


MOUNT_TYPES = {"bind", "volume", "tmpfs", "npipe", "cluster", "image"}


def ram_in_bytes(value: str) -> int:
    """go-units RAMInBytes: binary multipliers, optional `i`/`b` suffix."""
    m = _SIZE.match(value)
    if not m:
        raise ValueError(f"invalid size: '{value}'")
    return int(float(m.group(1)) * _UNITS.get((m.group(2) or "").lower(), 1))


def swap_bytes(value: str) -> int:
    return -1 if value == "-1" else ram_in_bytes(value)


def nano_cpus(value: str) -> int:
    """opts.NanoCPUs: a rational number of CPUs, exact to the nanosecond."""
    try:
        cpus = Fraction(value)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"failed to parse {value} as a rational number") from None
    nano = cpus * 1_000_000_000
    if nano.denominator != 1:
        raise ValueError("value is too precise")
    return int(nano)


def ulimit(value: str) -> dict[str, Any]:
    """go-units ParseUlimit: `name=soft[:hard]`."""
    name, eq, limits = value.partition("=")
    if not eq:
        raise ValueError(f"invalid ulimit argument: {value}")
    if name not in ULIMITS:
        raise ValueError(f"invalid ulimit type: {name}")
    soft_s, colon, hard_s = limits.partition(":")
    try:
        soft = int(soft_s)
        hard = int(hard_s) if colon else soft
    except ValueError:
        raise ValueError(f"invalid ulimit argument: {value}") from None
    if soft > hard:
        raise ValueError(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
    return {"Name": name, "Hard": hard, "Soft": soft}


_GO_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
             "m": 60_000_000_000, "h": 3_600_000_000_000}


_GO_PART = re.compile(r"(\d*)(\.\d*)?([^\d.]*)")


def go_duration(value: str) -> int:
    """Go's time.ParseDuration (pflag's duration flags), in nanoseconds: "1m30s", "1.5s", "300ms", "0"."""
    text = value.removeprefix("-").removeprefix("+") if value[:1] in "+-" else value
    if text == "0":
        return 0
    total, pos = Fraction(0), 0
    while pos < len(text) or pos == 0:
        m = _GO_PART.match(text, pos)
        assert m is not None  # every group may be empty
        whole, frac, unit = m.groups()
        if not whole and len(frac or "") < 2:
            raise ValueError(f'time: invalid duration "{value}"')
        if not unit:
            raise ValueError(f'time: missing unit in duration "{value}"')
        if unit not in _GO_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{value}"')
        total += Fraction((whole or "0") + (frac if frac and len(frac) > 1 else "")) * _GO_UNITS[unit]
        pos = m.end()
    if total >= 1 << 63:
        raise ValueError(f'time: invalid duration "{value}"')
    return -int(total) if value.startswith("-") else int(total)


def ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise ValueError(f"IP address is not correctly formatted: {value}") from None


def extra_host(value: str) -> str:
    """opts.ValidateExtraHost: `host:ip` or `host=ip`; `host-gateway` stands for the gateway."""
    sep = "=" if "=" in value else ":"
    name, found, ip = value.partition(sep)
    if not found or not name:
        raise ValueError(f'bad format for add-host: "{value}"')
    if ip != "host-gateway":
        try:
            ipaddress.ip_address(ip.removeprefix("[").removesuffix("]"))
        except ValueError:
            raise ValueError(f'invalid IP address in add-host: "{ip}"') from None
    return f"{name}:{ip}"


def sysctl(value: str) -> str:
    """opts.ValidateSysctl: only namespaced sysctls can be set per container."""
    key, eq, _ = value.partition("=")
    allowed = key in ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                      "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")
    if not eq or not (allowed or key.startswith(("fs.mqueue.", "net."))):
        raise ValueError(f"sysctl '{value}' is not allowed")
    return value


def _bool(value: str, key: str) -> bool:
    parsed = {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False}.get(value.lower())
    if parsed is None:
        raise ValueError(f"invalid value for {key}: {value}")
    return parsed


def _mount_field(m: dict[str, Any], key: str, value: str | None) -> None:
    """One `key[=value]` of --mount into the Mount object (opts.MountOpt.Set)."""
    flag_value = "true" if value is None else value
    if value is None and key not in ("readonly", "ro", "volume-nocopy", "bind-nonrecursive"):
        raise ValueError(f"invalid field '{key}' must be a key=value pair")
    bind = m.setdefault("BindOptions", {}) if key.startswith("bind-") else None
    vol = m.setdefault("VolumeOptions", {"DriverConfig": {}}) if key.startswith("volume-") else None
    if key == "type":
        m["Type"] = flag_value.lower()
    elif key in ("source", "src"):
        m["Source"] = flag_value
    elif key in ("target", "dst", "destination"):
        m["Target"] = flag_value
    elif key in ("readonly", "ro"):
        m["ReadOnly"] = _bool(flag_value, key) or None  # omitempty
    elif key == "consistency":
        m["Consistency"] = flag_value.lower()
    elif bind is not None and key == "bind-propagation":
        bind["Propagation"] = flag_value.lower()
    elif bind is not None and key == "bind-nonrecursive":
        bind["NonRecursive"] = _bool(flag_value, key) or None
    elif vol is not None and key == "volume-nocopy":
        vol["NoCopy"] = _bool(flag_value, key) or None
    elif vol is not None and key == "volume-subpath":
        vol["Subpath"] = flag_value
    elif vol is not None and key == "volume-label":
        name, _, val = flag_value.partition("=")
        vol.setdefault("Labels", {})[name] = val
    elif vol is not None and key == "volume-driver":
        vol["DriverConfig"]["Name"] = flag_value
    elif vol is not None and key == "volume-opt":
        name, _, val = flag_value.partition("=")
        vol["DriverConfig"].setdefault("Options", {})[name] = val
    elif key == "tmpfs-size":
        m.setdefault("TmpfsOptions", {})["SizeBytes"] = ram_in_bytes(flag_value)
    elif key == "tmpfs-mode":
        try:
            m.setdefault("TmpfsOptions", {})["Mode"] = int(flag_value, 8)
        except ValueError:
            raise ValueError(f"invalid value for {key}: {flag_value}") from None
    else:
        raise ValueError(f"unexpected key '{key}' in '{key}={flag_value}'")


def mount(value: str) -> dict[str, Any]:
    """A `--mount` CSV as the API's Mount object."""
    m: dict[str, Any] = {"Type": "volume"}
    for field in next(csv.reader([value]), []):
        key, eq, val = field.partition("=")
        _mount_field(m, key.strip().lower(), val if eq else None)
    if not m.get("Target"):
        raise ValueError("target is required")
    if m["Type"] not in MOUNT_TYPES:
        raise ValueError(f"invalid type '{m['Type']}'")
    for opts_key, kind in (("BindOptions", "bind"), ("VolumeOptions", "volume"), ("TmpfsOptions", "tmpfs")):
        if opts_key in m and m["Type"] != kind:
            raise ValueError(f"cannot mix '{kind}-*' options with mount type '{m['Type']}'")
    return _go_order(m, MOUNT_ORDER)


# mount.Mount and its option structs in Go field order, as the CLI encodes them.
MOUNT_ORDER = {"": ("Type", "Source", "Target", "ReadOnly", "Consistency", "BindOptions", "VolumeOptions",
                    "TmpfsOptions"),
               "BindOptions": ("Propagation", "NonRecursive"),
               "VolumeOptions": ("NoCopy", "Labels", "Subpath", "DriverConfig"),
               "DriverConfig": ("Name", "Options"), "TmpfsOptions": ("SizeBytes", "Mode")}


def _go_order(obj: dict[str, Any], order: dict[str, tuple[str, ...]], name: str = "") -> dict[str, Any]:
    out = {}
    for key in order[name]:
        if obj.get(key) is None:
            continue
        if key in order:
            out[key] = _go_order(obj[key], order, key)
        elif key in ("Labels", "Options"):
            out[key] = dict(sorted(obj[key].items()))
        else:
            out[key] = obj[key]
    return out


def _device_mode(mode: str) -> bool:
    return bool(mode) and len(set(mode)) == len(mode) and set(mode) <= set("rwm")


def device(spec: str) -> dict[str, str]:
    """`host[:container][:permissions]`, checked as opts.ValidateDevice and parsed as parseLinuxDevice."""
    parts = spec.split(":")
    if len(parts) > 3 or not parts[0]:
        raise ConfigError(f"bad format for path: {spec}")
    src, dst, perms = parts[0], "", "rwm"
    if len(parts) == 3:
        dst, perms = parts[1], parts[2]
        if not _device_mode(perms):
            raise ConfigError(f"bad mode specified: {perms}")
    elif len(parts) == 2:
        if _device_mode(parts[1]):
            perms = parts[1]
        else:
            dst = parts[1]
    if not (dst or src).startswith("/"):
        raise ConfigError(f"{dst or src} is not an absolute path")
    return {"PathOnHost": src, "PathInContainer": dst or src, "CgroupPermissions": perms}
