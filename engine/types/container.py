"""A container's configuration as typed records: Config, HostConfig (with Resources) and what they hold.

These mirror moby's api/types/container and mount structs field for field, so `docker
inspect` shows every field as dockerd does and a request body is checked as
dockerd's decoder checks it (see engine/wire.py). Create fills in dockerd's
defaults; services read the snake_case attributes and never Docker's JSON.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from engine.types.network import NetworkingConfig
from engine.wire import (
    BOOL,
    DURATION,
    EMBED,
    FILE_MODE,
    INT,
    INT64,
    STR_SLICE,
    STRING,
    STRING_MAP,
    STRING_SET,
    STRINGS,
    UINT,
    UINT16,
    UINT64,
    List,
    Map,
    Ptr,
    wfield,
)


@dataclass(slots=True)
class HealthConfig:
    test: list[str] | None = wfield("Test", STRINGS)
    interval: int = wfield("Interval", DURATION, omitempty=True)  # nanoseconds
    timeout: int = wfield("Timeout", DURATION, omitempty=True)
    start_period: int = wfield("StartPeriod", DURATION, omitempty=True)
    start_interval: int = wfield("StartInterval", DURATION, omitempty=True)
    retries: int = wfield("Retries", INT, omitempty=True)


@dataclass(slots=True)
class ContainerConfig:
    """Docker's container Config: what the container runs and how its stdio is set up."""

    GO_NAME: ClassVar[str] = "Config"
    hostname: str = wfield("Hostname", STRING)
    domainname: str = wfield("Domainname", STRING)
    user: str = wfield("User", STRING)
    attach_stdin: bool = wfield("AttachStdin", BOOL)
    attach_stdout: bool = wfield("AttachStdout", BOOL)
    attach_stderr: bool = wfield("AttachStderr", BOOL)
    exposed_ports: dict[str, dict[str, str]] | None = wfield("ExposedPorts", STRING_SET, omitempty=True)
    tty: bool = wfield("Tty", BOOL)
    open_stdin: bool = wfield("OpenStdin", BOOL)
    stdin_once: bool = wfield("StdinOnce", BOOL)
    env: list[str] | None = wfield("Env", STRINGS)
    cmd: list[str] | None = wfield("Cmd", STR_SLICE)
    healthcheck: HealthConfig | None = wfield("Healthcheck", Ptr(HealthConfig), omitempty=True)
    args_escaped: bool = wfield("ArgsEscaped", BOOL, omitempty=True)
    image: str = wfield("Image", STRING)  # as the client named it
    volumes: dict[str, dict[str, str]] | None = wfield("Volumes", STRING_SET)
    working_dir: str = wfield("WorkingDir", STRING)
    entrypoint: list[str] | None = wfield("Entrypoint", STR_SLICE)
    network_disabled: bool = wfield("NetworkDisabled", BOOL, omitempty=True)
    mac_address: str = wfield("MacAddress", STRING, omitempty=True)
    on_build: list[str] | None = wfield("OnBuild", STRINGS)
    labels: dict[str, str] | None = wfield("Labels", STRING_MAP)
    stop_signal: str = wfield("StopSignal", STRING, omitempty=True)  # empty: SIGTERM
    stop_timeout: int | None = wfield("StopTimeout", Ptr(INT), omitempty=True)  # None: the daemon's default
    shell: list[str] | None = wfield("Shell", STR_SLICE, omitempty=True)


@dataclass(slots=True)
class WeightDevice:
    path: str = wfield("Path", STRING)
    weight: int = wfield("Weight", UINT16)


@dataclass(slots=True)
class ThrottleDevice:
    path: str = wfield("Path", STRING)
    rate: int = wfield("Rate", UINT64)


@dataclass(slots=True)
class DeviceMapping:
    path_on_host: str = wfield("PathOnHost", STRING)
    path_in_container: str = wfield("PathInContainer", STRING)
    cgroup_permissions: str = wfield("CgroupPermissions", STRING)


@dataclass(slots=True)
class DeviceRequest:
    driver: str = wfield("Driver", STRING)
    count: int = wfield("Count", INT)
    device_ids: list[str] | None = wfield("DeviceIDs", STRINGS)
    capabilities: list[list[str]] | None = wfield("Capabilities", List(STRINGS))
    options: dict[str, str] | None = wfield("Options", STRING_MAP)


@dataclass(slots=True)
class Ulimit:
    name: str = wfield("Name", STRING)
    hard: int = wfield("Hard", INT64)
    soft: int = wfield("Soft", INT64)


_THROTTLE = List(ThrottleDevice)


@dataclass(slots=True)
class Resources:
    """Limits, embedded in HostConfig and taken alone by `docker update`."""

    cpu_shares: int = wfield("CpuShares", INT64)
    memory: int = wfield("Memory", INT64)
    nano_cpus: int = wfield("NanoCpus", INT64)
    cgroup_parent: str = wfield("CgroupParent", STRING)
    blkio_weight: int = wfield("BlkioWeight", UINT16)
    blkio_weight_device: list[WeightDevice] | None = wfield("BlkioWeightDevice", List(WeightDevice))
    blkio_device_read_bps: list[ThrottleDevice] | None = wfield("BlkioDeviceReadBps", _THROTTLE)
    blkio_device_write_bps: list[ThrottleDevice] | None = wfield("BlkioDeviceWriteBps", _THROTTLE)
    blkio_device_read_iops: list[ThrottleDevice] | None = wfield("BlkioDeviceReadIOps", _THROTTLE)
    blkio_device_write_iops: list[ThrottleDevice] | None = wfield("BlkioDeviceWriteIOps", _THROTTLE)
    cpu_period: int = wfield("CpuPeriod", INT64)
    cpu_quota: int = wfield("CpuQuota", INT64)
    cpu_realtime_period: int = wfield("CpuRealtimePeriod", INT64)
    cpu_realtime_runtime: int = wfield("CpuRealtimeRuntime", INT64)
    cpuset_cpus: str = wfield("CpusetCpus", STRING)
    cpuset_mems: str = wfield("CpusetMems", STRING)
    devices: list[DeviceMapping] | None = wfield("Devices", List(DeviceMapping))
    device_cgroup_rules: list[str] | None = wfield("DeviceCgroupRules", STRINGS)
    device_requests: list[DeviceRequest] | None = wfield("DeviceRequests", List(DeviceRequest))
    kernel_memory: int = wfield("KernelMemory", INT64, omitempty=True)
    kernel_memory_tcp: int = wfield("KernelMemoryTCP", INT64, omitempty=True)
    memory_reservation: int = wfield("MemoryReservation", INT64)
    memory_swap: int = wfield("MemorySwap", INT64)
    memory_swappiness: int | None = wfield("MemorySwappiness", Ptr(INT64))
    oom_kill_disable: bool | None = wfield("OomKillDisable", Ptr(BOOL))
    pids_limit: int | None = wfield("PidsLimit", Ptr(INT64))
    ulimits: list[Ulimit] | None = wfield("Ulimits", List(Ulimit))
    cpu_count: int = wfield("CpuCount", INT64)
    cpu_percent: int = wfield("CpuPercent", INT64)
    io_maximum_iops: int = wfield("IOMaximumIOps", UINT64)
    io_maximum_bandwidth: int = wfield("IOMaximumBandwidth", UINT64)


@dataclass(slots=True)
class RestartPolicy:
    name: str = wfield("Name", STRING)  # no, always, unless-stopped, on-failure ("" before create fills it)
    maximum_retry_count: int = wfield("MaximumRetryCount", INT)  # on-failure only; 0 means no limit

    def should_restart(self, exit_code: int, restart_count: int) -> bool:
        """After an exit the daemon did not ask for: whether the policy starts the container again."""
        if self.name in ("always", "unless-stopped"):
            return True
        if self.name == "on-failure":
            limit = self.maximum_retry_count
            return exit_code != 0 and (limit == 0 or restart_count < limit)
        return False


@dataclass(slots=True)
class LogConfig:
    type: str = wfield("Type", STRING)
    config: dict[str, str] | None = wfield("Config", STRING_MAP)


@dataclass(slots=True)
class PortBinding:
    host_ip: str = wfield("HostIp", STRING)
    host_port: str = wfield("HostPort", STRING)


@dataclass(slots=True)
class BindOptions:
    propagation: str = wfield("Propagation", STRING, omitempty=True)
    non_recursive: bool = wfield("NonRecursive", BOOL, omitempty=True)
    create_mountpoint: bool = wfield("CreateMountpoint", BOOL, omitempty=True)
    read_only_non_recursive: bool = wfield("ReadOnlyNonRecursive", BOOL, omitempty=True)
    read_only_force_recursive: bool = wfield("ReadOnlyForceRecursive", BOOL, omitempty=True)


@dataclass(slots=True)
class VolumeDriver:
    GO_NAME: ClassVar[str] = "Driver"
    name: str = wfield("Name", STRING, omitempty=True)
    options: dict[str, str] | None = wfield("Options", STRING_MAP, omitempty=True)


@dataclass(slots=True)
class VolumeOptions:
    no_copy: bool = wfield("NoCopy", BOOL, omitempty=True)
    labels: dict[str, str] | None = wfield("Labels", STRING_MAP, omitempty=True)
    subpath: str = wfield("Subpath", STRING, omitempty=True)
    driver_config: VolumeDriver | None = wfield("DriverConfig", Ptr(VolumeDriver), omitempty=True)


@dataclass(slots=True)
class TmpfsOptions:
    size_bytes: int = wfield("SizeBytes", INT64, omitempty=True)
    mode: int = wfield("Mode", FILE_MODE, omitempty=True)
    options: list[list[str]] | None = wfield("Options", List(STRINGS), omitempty=True)


@dataclass(slots=True)
class ImageOptions:
    subpath: str = wfield("Subpath", STRING, omitempty=True)


@dataclass(slots=True)
class ClusterOptions:
    pass


@dataclass(slots=True)
class Mount:
    """One `--mount` (HostConfig.Mounts entry), as the client gave it."""

    type: str = wfield("Type", STRING, omitempty=True)
    source: str = wfield("Source", STRING, omitempty=True)
    target: str = wfield("Target", STRING, omitempty=True)
    read_only: bool = wfield("ReadOnly", BOOL, omitempty=True)
    consistency: str = wfield("Consistency", STRING, omitempty=True)
    bind_options: BindOptions | None = wfield("BindOptions", Ptr(BindOptions), omitempty=True)
    volume_options: VolumeOptions | None = wfield("VolumeOptions", Ptr(VolumeOptions), omitempty=True)
    image_options: ImageOptions | None = wfield("ImageOptions", Ptr(ImageOptions), omitempty=True)
    tmpfs_options: TmpfsOptions | None = wfield("TmpfsOptions", Ptr(TmpfsOptions), omitempty=True)
    cluster_options: ClusterOptions | None = wfield("ClusterOptions", Ptr(ClusterOptions), omitempty=True)


@dataclass(slots=True)
class HostConfig:
    """Docker's HostConfig: how the container is placed on the host."""

    binds: list[str] | None = wfield("Binds", STRINGS)
    container_id_file: str = wfield("ContainerIDFile", STRING)
    log_config: LogConfig = wfield("LogConfig", LogConfig)
    network_mode: str = wfield("NetworkMode", STRING)
    port_bindings: dict[str, list[PortBinding]] | None = wfield("PortBindings", Map(List(PortBinding)))
    restart_policy: RestartPolicy = wfield("RestartPolicy", RestartPolicy)
    auto_remove: bool = wfield("AutoRemove", BOOL)
    volume_driver: str = wfield("VolumeDriver", STRING)
    volumes_from: list[str] | None = wfield("VolumesFrom", STRINGS)
    console_size: list[int] = wfield("ConsoleSize", List(UINT, "[2]uint"), default=lambda: [0, 0])
    annotations: dict[str, str] | None = wfield("Annotations", STRING_MAP, omitempty=True)
    cap_add: list[str] | None = wfield("CapAdd", STR_SLICE)
    cap_drop: list[str] | None = wfield("CapDrop", STR_SLICE)
    cgroupns_mode: str = wfield("CgroupnsMode", STRING)
    dns: list[str] | None = wfield("Dns", STRINGS)
    dns_options: list[str] | None = wfield("DnsOptions", STRINGS)
    dns_search: list[str] | None = wfield("DnsSearch", STRINGS)
    extra_hosts: list[str] | None = wfield("ExtraHosts", STRINGS)
    group_add: list[str] | None = wfield("GroupAdd", STRINGS)
    ipc_mode: str = wfield("IpcMode", STRING)
    cgroup: str = wfield("Cgroup", STRING)
    links: list[str] | None = wfield("Links", STRINGS)
    oom_score_adj: int = wfield("OomScoreAdj", INT)
    pid_mode: str = wfield("PidMode", STRING)
    privileged: bool = wfield("Privileged", BOOL)
    publish_all_ports: bool = wfield("PublishAllPorts", BOOL)
    readonly_rootfs: bool = wfield("ReadonlyRootfs", BOOL)
    security_opt: list[str] | None = wfield("SecurityOpt", STRINGS)
    storage_opt: dict[str, str] | None = wfield("StorageOpt", STRING_MAP, omitempty=True)
    tmpfs: dict[str, str] | None = wfield("Tmpfs", STRING_MAP, omitempty=True)
    uts_mode: str = wfield("UTSMode", STRING)
    userns_mode: str = wfield("UsernsMode", STRING)
    shm_size: int = wfield("ShmSize", INT64)
    sysctls: dict[str, str] | None = wfield("Sysctls", STRING_MAP, omitempty=True)
    runtime: str = wfield("Runtime", STRING, omitempty=True)
    isolation: str = wfield("Isolation", STRING)
    resources: Resources = wfield(EMBED, Resources)
    mounts: list[Mount] | None = wfield("Mounts", List(Mount), omitempty=True)
    masked_paths: list[str] | None = wfield("MaskedPaths", STRINGS)
    readonly_paths: list[str] | None = wfield("ReadonlyPaths", STRINGS)
    init: bool | None = wfield("Init", Ptr(BOOL), omitempty=True)


@dataclass(slots=True)
class ContainerCreateRequest:
    """POST /containers/create."""

    GO_NAME: ClassVar[str] = "ContainerConfigWrapper"
    config: ContainerConfig = wfield(EMBED, ContainerConfig)
    host_config: HostConfig = wfield("HostConfig", HostConfig)
    networking_config: NetworkingConfig = wfield("NetworkingConfig", NetworkingConfig)


@dataclass(slots=True)
class UpdateConfig:
    """POST /containers/{id}/update."""

    resources: Resources = wfield(EMBED, Resources)
    restart_policy: RestartPolicy = wfield("RestartPolicy", RestartPolicy)


@dataclass(slots=True)
class ExecConfig:
    """POST /containers/{id}/exec."""

    user: str = wfield("User", STRING)
    privileged: bool = wfield("Privileged", BOOL)
    tty: bool = wfield("Tty", BOOL)
    console_size: list[int] | None = wfield("ConsoleSize", Ptr(List(UINT, "[2]uint")))
    attach_stdin: bool = wfield("AttachStdin", BOOL)
    attach_stderr: bool = wfield("AttachStderr", BOOL)
    attach_stdout: bool = wfield("AttachStdout", BOOL)
    detach: bool = wfield("Detach", BOOL)
    detach_keys: str = wfield("DetachKeys", STRING)
    env: list[str] | None = wfield("Env", STRINGS)
    working_dir: str = wfield("WorkingDir", STRING)
    cmd: list[str] | None = wfield("Cmd", STRINGS)


@dataclass(slots=True)
class ExecStartConfig:
    """POST /exec/{id}/start."""

    GO_NAME: ClassVar[str] = "ExecStartCheck"
    detach: bool = wfield("Detach", BOOL)
    tty: bool = wfield("Tty", BOOL)
    console_size: list[int] | None = wfield("ConsoleSize", Ptr(List(UINT, "[2]uint")))
