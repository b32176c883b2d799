"""The request-body types the engine accepts, checked the way Go's json decoder checks them.

JSON from clients is untrusted: a field of the wrong type must be a clear
400 at the API edge, never a 500 from deep inside a service or a record in
the database that later breaks `docker ps`/`docker images`. dockerd gets this
from decoding into its Go structs, so this module describes those structs
once (string, bool, sized integers, lists, maps, nested structs) and
`decode` checks a body against one, with dockerd's message. As in Go, null
is accepted for every field (it leaves the zero value), unknown fields are
ignored and field names match case-insensitively.

Semantic checks (is this a valid IP, an absolute path, a known policy) stay
with the service that owns the value, as in dockerd.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import InvalidParameter


@dataclass(frozen=True)
class Scalar:
    """A Go scalar: `kind` is the JSON kind it accepts, `go` its Go type name."""

    go: str
    kind: str  # "string" | "bool" | "int" | "number"
    low: int = 0
    high: int = 0


@dataclass(frozen=True)
class List:
    item: GoType
    go: str = ""

    @property
    def name(self) -> str:
        return self.go or f"[]{type_name(self.item)}"


@dataclass(frozen=True)
class Map:
    value: GoType

    @property
    def name(self) -> str:
        return f"map[string]{type_name(self.value)}"


@dataclass(frozen=True)
class Struct:
    go: str
    fields: Mapping[str, GoType] = field(default_factory=dict)


@dataclass(frozen=True)
class StrSlice:
    """Docker's strslice.StrSlice: a list of strings, or one string."""


GoType = Scalar | List | Map | Struct | StrSlice


def _int(go: str, bits: int) -> Scalar:
    return Scalar(go, "int", -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def _uint(go: str, bits: int) -> Scalar:
    return Scalar(go, "int", 0, (1 << bits) - 1)


STRING = Scalar("string", "string")
BOOL = Scalar("bool", "bool")
INT = _int("int", 64)  # Go's int on amd64/arm64
INT64 = _int("int64", 64)
UINT = _uint("uint", 64)
UINT16 = _uint("uint16", 16)
UINT64 = _uint("uint64", 64)
FILE_MODE = _uint("fs.FileMode", 32)
DURATION = _int("time.Duration", 64)
STRINGS = List(STRING)
STRING_MAP = Map(STRING)
EMPTY_SET = Map(Struct("struct {}"))
STR_SLICE = StrSlice()


def type_name(t: GoType) -> str:
    if isinstance(t, (Scalar, Struct)):
        return t.go
    if isinstance(t, StrSlice):
        return "strslice.StrSlice"
    return t.name


# ---- the Engine API's request bodies (moby api/types) ---------------------

HEALTH_CONFIG = Struct("HealthConfig", {
    "Test": STRINGS, "Interval": DURATION, "Timeout": DURATION, "StartPeriod": DURATION, "Retries": INT,
})

CONTAINER_CONFIG = Struct("Config", {
    "Hostname": STRING, "Domainname": STRING, "User": STRING,
    "AttachStdin": BOOL, "AttachStdout": BOOL, "AttachStderr": BOOL,
    "ExposedPorts": EMPTY_SET, "Tty": BOOL, "OpenStdin": BOOL, "StdinOnce": BOOL,
    "Env": STRINGS, "Cmd": STR_SLICE, "Healthcheck": HEALTH_CONFIG, "ArgsEscaped": BOOL,
    "Image": STRING, "Volumes": EMPTY_SET, "WorkingDir": STRING, "Entrypoint": STR_SLICE,
    "NetworkDisabled": BOOL, "MacAddress": STRING, "OnBuild": STRINGS, "Labels": STRING_MAP,
    "StopSignal": STRING, "StopTimeout": INT, "Shell": STR_SLICE,
})

_THROTTLE_DEVICE = List(Struct("ThrottleDevice", {"Path": STRING, "Rate": UINT64}))

RESOURCES: dict[str, GoType] = {
    "CpuShares": INT64, "Memory": INT64, "NanoCpus": INT64, "CgroupParent": STRING,
    "BlkioWeight": UINT16,
    "BlkioWeightDevice": List(Struct("WeightDevice", {"Path": STRING, "Weight": UINT16})),
    "BlkioDeviceReadBps": _THROTTLE_DEVICE, "BlkioDeviceWriteBps": _THROTTLE_DEVICE,
    "BlkioDeviceReadIOps": _THROTTLE_DEVICE, "BlkioDeviceWriteIOps": _THROTTLE_DEVICE,
    "CpuPeriod": INT64, "CpuQuota": INT64, "CpuRealtimePeriod": INT64, "CpuRealtimeRuntime": INT64,
    "CpusetCpus": STRING, "CpusetMems": STRING,
    "Devices": List(Struct("DeviceMapping", {
        "PathOnHost": STRING, "PathInContainer": STRING, "CgroupPermissions": STRING})),
    "DeviceCgroupRules": STRINGS,
    "DeviceRequests": List(Struct("DeviceRequest", {
        "Driver": STRING, "Count": INT, "DeviceIDs": STRINGS, "Capabilities": List(STRINGS),
        "Options": STRING_MAP})),
    "KernelMemory": INT64, "KernelMemoryTCP": INT64, "MemoryReservation": INT64, "MemorySwap": INT64,
    "MemorySwappiness": INT64, "OomKillDisable": BOOL, "PidsLimit": INT64,
    "Ulimits": List(Struct("Ulimit", {"Name": STRING, "Hard": INT64, "Soft": INT64})),
    "CpuCount": INT64, "CpuPercent": INT64, "IOMaximumIOps": UINT64, "IOMaximumBandwidth": UINT64,
}

RESTART_POLICY = Struct("RestartPolicy", {"Name": STRING, "MaximumRetryCount": INT})

MOUNT = Struct("Mount", {
    "Type": STRING, "Source": STRING, "Target": STRING, "ReadOnly": BOOL, "Consistency": STRING,
    "BindOptions": Struct("BindOptions", {"Propagation": STRING, "NonRecursive": BOOL}),
    "VolumeOptions": Struct("VolumeOptions", {
        "NoCopy": BOOL, "Labels": STRING_MAP,
        "DriverConfig": Struct("Driver", {"Name": STRING, "Options": STRING_MAP})}),
    "TmpfsOptions": Struct("TmpfsOptions", {"SizeBytes": INT64, "Mode": FILE_MODE}),
})

HOST_CONFIG = Struct("HostConfig", {
    "Binds": STRINGS, "ContainerIDFile": STRING,
    "LogConfig": Struct("LogConfig", {"Type": STRING, "Config": STRING_MAP}),
    "NetworkMode": STRING,
    "PortBindings": Map(List(Struct("PortBinding", {"HostIp": STRING, "HostPort": STRING}))),
    "RestartPolicy": RESTART_POLICY, "AutoRemove": BOOL, "VolumeDriver": STRING, "VolumesFrom": STRINGS,
    "CapAdd": STR_SLICE, "CapDrop": STR_SLICE, "CgroupnsMode": STRING,
    "Dns": STRINGS, "DnsOptions": STRINGS, "DnsSearch": STRINGS, "ExtraHosts": STRINGS, "GroupAdd": STRINGS,
    "IpcMode": STRING, "Cgroup": STRING, "Links": STRINGS, "OomScoreAdj": INT, "PidMode": STRING,
    "Privileged": BOOL, "PublishAllPorts": BOOL, "ReadonlyRootfs": BOOL, "SecurityOpt": STRINGS,
    "StorageOpt": STRING_MAP, "Tmpfs": STRING_MAP, "UTSMode": STRING, "UsernsMode": STRING,
    "ShmSize": INT64, "Sysctls": STRING_MAP, "Runtime": STRING, "ConsoleSize": List(UINT, "[2]uint"),
    "Isolation": STRING, **RESOURCES, "Mounts": List(MOUNT), "MaskedPaths": STRINGS,
    "ReadonlyPaths": STRINGS, "Init": BOOL,
})

ENDPOINT_SETTINGS = Struct("EndpointSettings", {
    "IPAMConfig": Struct("EndpointIPAMConfig", {
        "IPv4Address": STRING, "IPv6Address": STRING, "LinkLocalIPs": STRINGS}),
    "Links": STRINGS, "Aliases": STRINGS, "NetworkID": STRING, "EndpointID": STRING, "Gateway": STRING,
    "IPAddress": STRING, "IPPrefixLen": INT, "IPv6Gateway": STRING, "GlobalIPv6Address": STRING,
    "GlobalIPv6PrefixLen": INT, "MacAddress": STRING, "DriverOpts": STRING_MAP,
})

CONTAINER_CREATE = Struct("ContainerConfigWrapper", {
    **CONTAINER_CONFIG.fields, "HostConfig": HOST_CONFIG,
    "NetworkingConfig": Struct("NetworkingConfig", {"EndpointsConfig": Map(ENDPOINT_SETTINGS)}),
})

CONTAINER_UPDATE = Struct("UpdateConfig", {**RESOURCES, "RestartPolicy": RESTART_POLICY})

EXEC_CREATE = Struct("ExecConfig", {
    "User": STRING, "Privileged": BOOL, "Tty": BOOL, "AttachStdin": BOOL, "AttachStderr": BOOL,
    "AttachStdout": BOOL, "Detach": BOOL, "DetachKeys": STRING, "Env": STRINGS, "WorkingDir": STRING,
    "Cmd": STRINGS,
})

NETWORK_CREATE = Struct("NetworkCreateRequest", {
    "Name": STRING, "CheckDuplicate": BOOL, "Driver": STRING, "Scope": STRING, "EnableIPv6": BOOL,
    "IPAM": Struct("IPAM", {
        "Driver": STRING, "Options": STRING_MAP,
        "Config": List(Struct("IPAMConfig", {
            "Subnet": STRING, "IPRange": STRING, "Gateway": STRING, "AuxiliaryAddresses": STRING_MAP}))}),
    "Internal": BOOL, "Attachable": BOOL, "Ingress": BOOL, "ConfigOnly": BOOL,
    "ConfigFrom": Struct("ConfigReference", {"Network": STRING}),
    "Options": STRING_MAP, "Labels": STRING_MAP,
})

NETWORK_CONNECT = Struct("NetworkConnect", {"Container": STRING, "EndpointConfig": ENDPOINT_SETTINGS})

NETWORK_DISCONNECT = Struct("NetworkDisconnect", {"Container": STRING, "Force": BOOL})

VOLUME_CREATE = Struct("VolumeCreateBody", {
    "Driver": STRING, "DriverOpts": STRING_MAP, "Labels": STRING_MAP, "Name": STRING,
})


# ---- decoding ---------------------------------------------------------------

def _json_kind(value: Any) -> str:
    """How Go's decoder names a JSON value in its type errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _scalar_ok(value: Any, t: Scalar) -> bool:
    if t.kind == "string":
        return isinstance(value, str)
    if t.kind == "bool":
        return isinstance(value, bool)
    return isinstance(value, int) and not isinstance(value, bool) and t.low <= value <= t.high


def _zero(t: GoType) -> Any:
    """What Go stores for a null list item or map value: the type's zero value."""
    if isinstance(t, Scalar):
        return {"string": "", "bool": False}.get(t.kind, 0)
    return {} if isinstance(t, Struct) else None


def _canonical_keys(value: dict[str, Any], fields: Mapping[str, GoType]) -> dict[str, Any]:
    """Go matches JSON keys to fields case-insensitively; give the services the canonical spelling."""
    by_fold = {k.lower(): k for k in fields}
    out = dict(value)
    for key in value:
        canon = by_fold.get(key.lower())
        if canon is not None and canon != key and canon not in value:
            out[canon] = out.pop(key)
    return out


def _check(value: Any, t: GoType, struct: str, path: str) -> Any:
    """The value with struct keys canonicalised; raises InvalidParameter at the first mismatch."""
    if value is None:
        return None
    if isinstance(t, Scalar):
        if not _scalar_ok(value, t):
            raise _type_error(value, t, struct, path)
        return value
    if isinstance(t, StrSlice):
        if isinstance(value, str):
            return value
        if isinstance(value, list) and all(v is None or isinstance(v, str) for v in value):
            return ["" if v is None else v for v in value]
        raise _type_error(value, t, struct, path)
    if isinstance(t, List):
        if not isinstance(value, list):
            raise _type_error(value, t, struct, path)
        return [_zero(t.item) if v is None else _check(v, t.item, struct, path) for v in value]
    if not isinstance(value, dict):
        raise _type_error(value, t, struct, path)
    if isinstance(t, Map):
        return {k: _zero(t.value) if v is None else _check(v, t.value, struct, path) for k, v in value.items()}
    value = _canonical_keys(value, t.fields)
    for key, ft in t.fields.items():
        if key in value:
            value[key] = _check(value[key], ft, t.go, f"{path}.{key}" if path else key)
    return value


def _type_error(value: Any, t: GoType, struct: str, path: str) -> InvalidParameter:
    where = f"Go struct field {struct}.{path}" if path else "Go value"
    return InvalidParameter(f"json: cannot unmarshal {_json_kind(value)} into {where} of type {type_name(t)}")


def decode(body: Any, t: Struct) -> dict[str, Any]:
    """A request body checked against `t` as dockerd's json.Decoder would, as a dict (null → {})."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise _type_error(body, t, "", "")
    return _check(body, t, t.go, "")

