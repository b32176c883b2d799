"""Container service: create, start, stop, remove, wait, and restart policies.

The container record is Docker's inspect document (minus live fields),
persisted as JSON in SQLite, so `docker inspect` shows what Docker shows and
the record survives daemon restarts. Live state comes from the shim: the
daemon holds one `wait` connection per running container and applies the
exit (state, unmount, auto-remove, restart policy) when it answers.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal as _signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from engine.config import EngineConfig
from engine.container import logconfig, naming
from engine.container.state import ContainerState, Op, check
from engine.container.store import ContainerStore
from engine.errors import Conflict, EngineError, InvalidParameter
from engine.events import EventBus
from engine.filters import Filters
from engine.image.layers import LayerStore
from engine.image.service import ImageService
from engine.linux.fsutil import resolve_user, secure_join
from engine.linux.mounts import is_mountpoint, mount_overlay, umount
from engine.network.service import NetworkService
from engine.runtime import resources, security
from engine.runtime.runc import OCIRuntimeError, Runtime, crash_point
from engine.runtime.spec import SpecOptions, build_spec, container_env, merge_env, normalize_caps
from engine.store.db import MetaStore
from engine.timeutil import ZERO_TIME, parse_rfc3339_ns, rfc3339_ns
from engine.volume.service import VolumeService
from pydock_common.humanize import human_duration

DEFAULT_STOP_TIMEOUT = 10
# the keys `docker ps --filter` takes (dockerd's acceptedPsFilterTags)
PS_FILTERS = frozenset({"ancestor", "before", "exited", "health", "id", "isolation", "is-task", "label", "name",
                        "network", "publish", "since", "status", "volume", "expose"})


def parse_signal(sig: str | int | None, default: int = _signal.SIGKILL) -> int:
    """Docker accepts `KILL`, `SIGKILL` and `9`."""
    if sig in (None, ""):
        return default
    if isinstance(sig, int) or str(sig).isdigit():
        num = int(sig)
        if not 0 < num < 65:
            raise InvalidParameter(f"Invalid signal: {sig}")
        return num
    name = str(sig).upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(getattr(_signal.Signals, name))
    except AttributeError:
        raise InvalidParameter(f"Invalid signal: {sig}") from None


def _str_slice(value: str | list[str] | None) -> list[str] | None:
    """Docker's StrSlice fields (Cmd, Entrypoint, CapAdd) take one string for a one-item list."""
    return [value] if isinstance(value, str) else value


@dataclass
class Attachment:
    """A client's attach request; `sock` is set once the container's shim accepts it."""

    stdin: bool
    stdout: bool
    stderr: bool
    close_stdin: bool
    tty: bool
    ready: threading.Event = field(default_factory=threading.Event)
    sock: socket.socket | None = None
    error: str = ""


class ContainerService:
    def __init__(self, cfg: EngineConfig, meta: MetaStore, images: ImageService, layers: LayerStore,
                 runtime: Runtime, events: EventBus, network: NetworkService) -> None:
        self.cfg = cfg
        self.meta = meta
        self.store = ContainerStore(meta)
        self.images = images
        self.layers = layers
        self.runtime = runtime
        self.events = events
        self._locks: dict[str, threading.RLock] = {}
        self._locks_guard = threading.Lock()
        self._cond = threading.Condition()
        self._exits: dict[str, list[int]] = {}   # exit codes seen per container, for wait(next-exit)
        self._removed: set[str] = set()
        self._pending: dict[str, list[Attachment]] = {}
        self._cancelled_restart: set[str] = set()
        images.usage = self.image_usage
        self.network = network
        self.volumes: VolumeService  # wired by the composition root (it reads our records)

    # ---- records ------------------------------------------------------
    def _lock(self, cid: str) -> threading.RLock:
        with self._locks_guard:
            return self._locks.setdefault(cid, threading.RLock())

    def _load(self, cid: str) -> dict[str, Any]:
        return self.store.load(cid)

    def _save(self, c: dict[str, Any]) -> None:
        self.store.save(c)

    def resolve(self, ref: str) -> str:
        """Container ID for a full ID, unique ID prefix, or name (Docker's lookup order)."""
        return self.store.resolve(ref)

    def get(self, ref: str) -> dict[str, Any]:
        return self._load(self.resolve(ref))

    def all_records(self) -> list[dict[str, Any]]:
        return self.store.records()

    def ids(self) -> set[str]:
        """IDs of every container the store holds (for the start-up sweep of orphaned directories)."""
        return self.store.ids()

    def image_usage(self, image_id: str) -> tuple[list[str], list[str]]:
        running: list[str] = []
        stopped: list[str] = []
        for c in self.all_records():
            if c["Image"] == image_id:
                (running if c["State"]["Running"] else stopped).append(c["Id"])
        return running, stopped

    def log_spec(self, c: dict[str, Any]) -> logconfig.LogSpec:
        """Where a container's log is and how it rotates (records from before LogConfig was honoured
        hold the json-file default)."""
        return logconfig.spec(c["HostConfig"].get("LogConfig") or {"Type": logconfig.JSON_FILE},
                              self.dir(c["Id"]))

    def dir(self, cid: str) -> str:
        return os.path.join(self.cfg.containers_dir, cid)

    def _attrs(self, c: dict[str, Any], **extra: str) -> dict[str, str]:
        attrs = {"image": c["Config"]["Image"], "name": c["Name"].lstrip("/")}
        attrs.update(c["Config"].get("Labels") or {})
        attrs.update(extra)
        return attrs

    def _event(self, c: dict[str, Any], action: str, **extra: str) -> None:
        self.events.publish("container", action, c["Id"], self._attrs(c, **extra))

    @contextmanager
    def locked(self, ref: str) -> Iterator[dict[str, Any]]:
        """The record of `ref`, with start, stop, remove and other lifecycle changes held off meanwhile.

        For work on a container's files (cp, export, diff, commit) that must not
        race a start mounting, or a stop unmounting, its root filesystem.
        """
        cid = self.resolve(ref)
        with self._lock(cid):
            yield self._load(cid)

    def log_event(self, c: dict[str, Any], action: str, **extra: str) -> None:
        """Container events for actions other services perform (e.g. `top`), with the usual attributes."""
        self._event(c, action, **extra)

    # ---- create -------------------------------------------------------
    def create(self, body: dict[str, Any], name: str = "", intermediate: bool = False) -> dict[str, Any]:
        """A new container; an `intermediate` one (a build's RUN) is removed if a daemon restart finds it."""
        name = naming.validate(name) if name else ""
        image_ref = body.get("Image") or ""
        if not image_ref:
            raise InvalidParameter("No image specified")
        image_id = self.images.resolve(image_ref)
        icfg = self.images.config(image_id).get("config") or {}
        host = self._validate_host_config(body.get("HostConfig") or {})
        net_plan = self.network.plan(body, host)
        warnings = resources.adapt_host_config(host)
        security.validate_host_config(host)
        entrypoint, cmd = _str_slice(body.get("Entrypoint")), _str_slice(body.get("Cmd"))
        if entrypoint is not None and entrypoint != []:
            ep, args = entrypoint, cmd or []
        else:
            ep = [] if entrypoint == [] else (icfg.get("Entrypoint") or [])
            args = cmd if cmd else ([] if entrypoint is not None else (icfg.get("Cmd") or []))
        argv = list(ep) + list(args)
        if not argv:
            raise InvalidParameter("no command specified")
        cid = secrets.token_hex(32)
        env = merge_env(icfg.get("Env"), body.get("Env") or [])
        labels = dict(icfg.get("Labels") or {})
        labels.update(body.get("Labels") or {})
        config = {
            "Hostname": body.get("Hostname") or cid[:12],
            "Domainname": body.get("Domainname") or "",
            "User": body.get("User") or icfg.get("User", ""),
            "AttachStdin": bool(body.get("AttachStdin")), "AttachStdout": bool(body.get("AttachStdout")),
            "AttachStderr": bool(body.get("AttachStderr")),
            "ExposedPorts": {**(icfg.get("ExposedPorts") or {}), **(body.get("ExposedPorts") or {})} or None,
            "Tty": bool(body.get("Tty")), "OpenStdin": bool(body.get("OpenStdin")),
            "StdinOnce": bool(body.get("StdinOnce")),
            "Env": env,
            "Cmd": cmd if cmd is not None else (icfg.get("Cmd") if entrypoint is None else None),
            "Image": image_ref,
            "Volumes": {**(icfg.get("Volumes") or {}), **(body.get("Volumes") or {})} or None,
            "WorkingDir": body.get("WorkingDir") or icfg.get("WorkingDir", ""),
            "Entrypoint": entrypoint if entrypoint is not None else (icfg.get("Entrypoint") or None),
            "OnBuild": None,
            "Labels": labels,
            "StopSignal": body.get("StopSignal") or icfg.get("StopSignal") or "",
            "StopTimeout": body.get("StopTimeout"),
        }
        if config["WorkingDir"] and not config["WorkingDir"].startswith("/"):
            raise InvalidParameter(f"the working directory '{config['WorkingDir']}' is invalid, it needs to be an absolute path")
        if config["StopSignal"]:
            parse_signal(config["StopSignal"])
        if len(config["Hostname"]) > 255:
            raise InvalidParameter("invalid hostname: too long")
        cdir = self.dir(cid)
        log_spec = logconfig.spec(host["LogConfig"], cdir)
        record: dict[str, Any] = {
            "Id": cid, "Created": rfc3339_ns(), "Path": argv[0], "Args": argv[1:],
            "State": {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
                      "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
                      "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME},
            "Image": image_id,
            "ResolvConfPath": os.path.join(cdir, "resolv.conf"),
            "HostnamePath": os.path.join(cdir, "hostname"),
            "HostsPath": os.path.join(cdir, "hosts"),
            "LogPath": log_spec.path if log_spec.driver == logconfig.JSON_FILE else "",
            "Name": name, "RestartCount": 0, "Driver": "overlay2", "Platform": "linux",
            "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": None,
            "HostConfig": host,
            "GraphDriver": {"Name": "overlay2", "Data": {
                "LowerDir": ":".join(self.layers.lower_dirs(self.images.top_chain(image_id))),
                "UpperDir": os.path.join(cdir, "upper"), "WorkDir": os.path.join(cdir, "work"),
                "MergedDir": os.path.join(cdir, "merged")}},
            "Mounts": [],
            "Config": config,
            "NetworkSettings": {"Bridge": "", "SandboxID": "", "Ports": {}, "SandboxKey": "",
                                "Networks": {}},
            "_chain": self.images.top_chain(image_id),
            "_manual_stop": False,
            "_intermediate": intermediate,
        }
        os.makedirs(cdir, mode=0o710)
        try:
            for sub in ("upper", "work", "merged"):
                os.mkdir(os.path.join(cdir, sub))
            with self.volumes.claim(record, self.layers.lower_dirs(record["_chain"])), \
                    self.meta.transaction():
                if not name:
                    record["Name"] = name = naming.generate(self.store.names())
                self.store.insert(record)
                self.network.register(cid, name, net_plan)
        except BaseException:
            shutil.rmtree(cdir, ignore_errors=True)
            raise
        self._event(record, "create")
        return {"Id": cid, "Warnings": warnings}

    @staticmethod
    def _validate_host_config(h: dict[str, Any]) -> dict[str, Any]:
        policy = h.get("RestartPolicy") or {}
        pname = policy.get("Name") or ""
        retries = policy.get("MaximumRetryCount") or 0
        resources.check_restart_policy(pname or "no", retries)
        if h.get("AutoRemove") and pname not in ("", "no"):
            raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
        mode = h.get("NetworkMode") or "default"
        out = dict(h)
        for key in ("CapAdd", "CapDrop"):
            out[key] = _str_slice(h.get(key))
            try:
                normalize_caps(out[key] or [])
            except InvalidParameter as e:
                raise InvalidParameter(f"invalid {key}: {e.message}") from None
        out.update({"RestartPolicy": {"Name": pname or "no", "MaximumRetryCount": retries},
                    "NetworkMode": mode, "AutoRemove": bool(h.get("AutoRemove")),
                    "LogConfig": logconfig.validate(h.get("LogConfig")),
                    "Privileged": bool(h.get("Privileged")), "ReadonlyRootfs": bool(h.get("ReadonlyRootfs")),
                    "Init": h.get("Init")})
        return out

    # ---- start --------------------------------------------------------
    def start(self, ref: str) -> None:
        cid = self.resolve(ref)
        with self._lock(cid):
            c = self._load(cid)
            check(Op.START, c)
            self._start_locked(c)

    def _start_locked(self, c: dict[str, Any]) -> None:
        cid = c["Id"]
        cdir = self.dir(cid)
        merged = os.path.join(cdir, "merged")
        if not is_mountpoint(merged):
            mount_overlay(self.layers.lower_dirs(c["_chain"]), os.path.join(cdir, "upper"),
                          os.path.join(cdir, "work"), merged)
        try:
            spec = self._spec(c, merged)
            _write_start_file(os.path.join(cdir, "config.json"), json.dumps(spec).encode(), 0o600)
            crash_point("prepared")
            cfg = c["Config"]
            pid = self.runtime.launch(
                cid, cdir, tty=cfg["Tty"], stdin=cfg["OpenStdin"], log=self.log_spec(c).to_shim(),
                console_size=_console_size(c["HostConfig"]), cgroup_path=spec["linux"]["cgroupsPath"])
            crash_point("created")
            for att in self._pending.pop(cid, []):
                self._connect_attachment(cid, att)
            self.runtime.request(cid, {"op": "start"})
            crash_point("started")
        except BaseException as e:
            self.runtime.cleanup(cid)
            self.network.teardown(cid)
            self.volumes.detach(c)
            umount(merged)
            c["State"].update(Error=getattr(e, "message", str(e)), ExitCode=127 if getattr(e, "status", 0) == 400 else 128)
            self._save(c)
            if c["HostConfig"]["AutoRemove"]:
                self._remove_locked(c, volumes=True)  # as Docker: --rm also covers a failed start
            raise
        c["State"].update(Status="running", Running=True, Paused=False, Restarting=False, OOMKilled=False,
                          Dead=False, Pid=pid, ExitCode=0, Error="", StartedAt=rfc3339_ns(),
                          FinishedAt=ZERO_TIME)
        c["_manual_stop"] = False
        self._cancelled_restart.discard(cid)
        self._save(c)
        self._event(c, "start")
        self._monitor(cid)

    def _spec(self, c: dict[str, Any], rootfs: str) -> dict[str, Any]:
        cfg, host = c["Config"], c["HostConfig"]
        uid, gid, extra = resolve_user(rootfs, cfg["User"])
        cwd = cfg["WorkingDir"] or "/"
        cwd_host = secure_join(rootfs, cwd)
        if not os.path.isdir(cwd_host):
            os.makedirs(cwd_host, mode=0o755, exist_ok=True)
        netns = self.network.setup(c)
        self._write_etc_files(c)
        mounts = self.volumes.attach(c)
        covered = {m["destination"] for m in mounts}
        mounts += [{"destination": f"/etc/{n}", "type": "bind", "source": os.path.join(self.dir(c["Id"]), n),
                    "options": ["rbind", "rprivate"]} for n in ("resolv.conf", "hostname", "hosts")
                   if f"/etc/{n}" not in covered]
        return build_spec(SpecOptions(
            container_id=c["Id"], rootfs=rootfs, args=[c["Path"], *c["Args"]],
            env=container_env(cfg["Env"], [], cfg["Hostname"], cfg["Tty"]), cwd=cwd,
            uid=uid, gid=gid, additional_gids=extra + security.group_add_gids(rootfs, host.get("GroupAdd") or []),
            hostname=cfg["Hostname"], tty=cfg["Tty"], console_size=_console_size(host),
            readonly_rootfs=host["ReadonlyRootfs"], extra_mounts=mounts,
            cap_add=host.get("CapAdd") or [], cap_drop=host.get("CapDrop") or [],
            privileged=host["Privileged"], network=netns,
            init_path=self.cfg.init_binary if host.get("Init") else None,
            cgroups_path=f"/{self.cfg.cgroup_parent}/{c['Id']}",
            **resources.spec_options(host), **security.spec_options(host),
        ))

    def _write_etc_files(self, c: dict[str, Any]) -> None:
        cdir = self.dir(c["Id"])
        for name, text in self.network.etc_files(c).items():
            _write_start_file(os.path.join(cdir, name), text.encode(), 0o644)

    # ---- attach -------------------------------------------------------
    def attach(self, ref: str, stdin: bool, stdout: bool, stderr: bool) -> Attachment:
        """Prepare an attach; the caller waits on `ready`, which fires now or at next start."""
        cid = self.resolve(ref)
        with self._lock(cid):
            c = self._load(cid)
            cfg = c["Config"]
            att = Attachment(stdin=stdin and cfg["OpenStdin"], stdout=stdout, stderr=stderr,
                             close_stdin=cfg["StdinOnce"], tty=cfg["Tty"])
            if c["State"]["Running"]:
                self._connect_attachment(cid, att)
            else:
                self._pending.setdefault(cid, []).append(att)
        self._event(c, "attach")
        return att

    def detach_pending(self, ref: str, att: Attachment) -> None:
        cid = self.resolve(ref)
        with self._lock(cid):
            if att in self._pending.get(cid, []):
                self._pending[cid].remove(att)

    def _connect_attachment(self, cid: str, att: Attachment) -> None:
        try:
            att.sock = self.runtime.attach(cid, stdin=att.stdin, stdout=att.stdout, stderr=att.stderr,
                                           close_stdin=att.close_stdin)
        except OSError as e:
            att.error = f"container {cid[:12]} is not running: {e}"
        att.ready.set()

    def resize(self, ref: str, h: int, w: int) -> None:
        cid = self.resolve(ref)
        check(Op.RESIZE, self._load(cid))
        self.runtime.request(cid, {"op": "resize", "h": h, "w": w})

    def update(self, ref: str, body: dict[str, Any]) -> dict[str, Any]:
        """`docker update`: new limits go into the record, and into the cgroup (runc update) if running."""
        cid = self.resolve(ref)
        with self._lock(cid):
            c = self._load(cid)
            try:
                warnings = resources.apply_update(c["HostConfig"], body)
                if c["State"]["Running"]:
                    self.runtime.update(cid, resources.linux_resources(c["HostConfig"]))
            except InvalidParameter:
                raise
            except OCIRuntimeError as e:  # the kernel refused the values (cpuset, limit below usage, ...)
                raise InvalidParameter(f"Cannot update container {cid}: {e.message}") from None
            except EngineError as e:  # conflicts with the current limits
                raise type(e)(f"Cannot update container {cid}: {e.message}") from None
            self._save(c)
        self._event(c, "update")
        return {"Warnings": warnings}

    # ---- exit handling ------------------------------------------------
    def _monitor(self, cid: str) -> None:
        threading.Thread(target=self._watch, args=(cid,), name=f"monitor-{cid[:12]}", daemon=True).start()

    def _watch(self, cid: str) -> None:
        result: dict[str, Any] | None = None
        try:
            with self.runtime.connect(cid, {"op": "wait"}, timeout=None) as sock:
                result = self.runtime.read_line(sock)
        except OSError:
            pass
        if result is None:  # connected too late: the shim wrote exit.json before closing its socket
            result = self.runtime.read_exit(cid) or {"ExitCode": 255, "FinishedAt": rfc3339_ns(), "OOMKilled": False}
        self._on_exit(cid, result)

    def _on_exit(self, cid: str, result: dict[str, Any]) -> None:
        with self._lock(cid):
            try:
                c = self._load(cid)
            except EngineError:
                return
            if not c["State"]["Running"]:
                return
            code = int(result.get("ExitCode", 255))
            c["State"].update(Status="exited", Running=False, Paused=False, Pid=0, ExitCode=code,
                              OOMKilled=bool(result.get("OOMKilled")),
                              FinishedAt=result.get("FinishedAt") or rfc3339_ns())
            self.runtime.cleanup(cid)
            self.network.teardown(cid)
            self.volumes.detach(c)
            umount(os.path.join(self.dir(cid), "merged"))
            self._save(c)
            self._event(c, "die", exitCode=str(code))
            if c["_manual_stop"]:
                self._event(c, "stop")
            with self._cond:
                self._exits.setdefault(cid, []).append(code)
                self._cond.notify_all()
            if c["HostConfig"]["AutoRemove"]:
                self._remove_locked(c, volumes=True)
                return
            if self._should_restart(c, code):
                c["State"]["Restarting"] = True
                c["State"]["Status"] = "restarting"
                self._save(c)
                delay = min(0.1 * (2 ** c["RestartCount"]), 60.0)
                threading.Timer(delay, self._auto_restart, args=(cid,)).start()

    def _should_restart(self, c: dict[str, Any], code: int) -> bool:
        if c["_manual_stop"] or c["Id"] in self._cancelled_restart:
            return False
        policy = c["HostConfig"]["RestartPolicy"]
        name = policy["Name"]
        if name in ("always", "unless-stopped"):
            return True
        if name == "on-failure":
            limit = policy["MaximumRetryCount"]
            return code != 0 and (limit == 0 or c["RestartCount"] < limit)
        return False

    def _auto_restart(self, cid: str) -> None:
        with self._lock(cid):
            try:
                c = self._load(cid)
            except EngineError:
                return
            if c["State"]["Running"] or not c["State"]["Restarting"] or cid in self._cancelled_restart:
                return
            c["RestartCount"] += 1
            try:
                self._start_locked(c)
            except EngineError:
                c = self._load(cid)
                c["State"].update(Restarting=False, Status="exited")
                self._save(c)

    # ---- stop / kill --------------------------------------------------
    def kill(self, ref: str, sig: str | int | None = None) -> None:
        cid = self.resolve(ref)
        signum = parse_signal(sig)
        with self._lock(cid):
            c = self._load(cid)
            check(Op.KILL, c, ref)
            stop_sig = parse_signal(c["Config"]["StopSignal"], _signal.SIGTERM)
            if signum in (_signal.SIGKILL, stop_sig):
                c["_manual_stop"] = True
                self._cancelled_restart.add(cid)
                self._save(c)
            self._signal(c, signum)

    def _signal(self, c: dict[str, Any], signum: int) -> None:
        try:
            self.runtime.kill(c["Id"], signum)
        except Conflict:
            pass  # it exited meanwhile: the signal's work is done, as dockerd sees it
        if c["State"]["Paused"] and signum == _signal.SIGKILL:
            self.runtime.resume(c["Id"])
        self._event(c, "kill", signal=str(signum))

    def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        cid = self.resolve(ref)
        with self._lock(cid):
            c = self._load(cid)
            if c["State"]["Restarting"]:
                self._cancelled_restart.add(cid)
                c["State"].update(Restarting=False, Status="exited")
                c["_manual_stop"] = True
                self._save(c)
                return
            check(Op.STOP, c)
            c["_manual_stop"] = True
            self._cancelled_restart.add(cid)
            self._save(c)
            n = len(self._exits.get(cid, []))
            if timeout is None:
                timeout = c["Config"].get("StopTimeout")
                timeout = DEFAULT_STOP_TIMEOUT if timeout is None else int(timeout)
            signum = parse_signal(sig or c["Config"]["StopSignal"], _signal.SIGTERM)
            if timeout != 0:
                self._signal(c, signum)
                if c["State"]["Paused"]:
                    self.runtime.resume(cid)
        if timeout != 0 and self._wait_exit_count(cid, n, None if timeout < 0 else timeout):
            return
        with self._lock(cid):
            c = self._load(cid)
            if c["State"]["Running"]:
                self._signal(c, _signal.SIGKILL)
        self._wait_exit_count(cid, n, None)

    def _wait_exit_count(self, cid: str, n: int, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while len(self._exits.get(cid, [])) <= n:
                if cid in self._removed:
                    return True
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(None if left is None else min(left, threading.TIMEOUT_MAX))
        return True

    def restart(self, ref: str, timeout: int | None = None) -> None:
        cid = self.resolve(ref)
        c = self._load(cid)
        if c["State"]["Running"]:
            self.stop(cid, timeout)
        with self._lock(cid):
            c = self._load(cid)
            if not c["State"]["Running"]:
                self._start_locked(c)
        self._event(self._load(cid), "restart")

    def pause(self, ref: str) -> None:
        cid = self.resolve(ref)
        with self._lock(cid):
            c = self._load(cid)
            check(Op.PAUSE, c)
            self.runtime.pause(cid)
            c["State"].update(Paused=True, Status="paused")
            self._save(c)
            self._event(c, "pause")

    def unpause(self, ref: str) -> None:
        cid = self.resolve(ref)
        with self._lock(cid):
            c = self._load(cid)
            check(Op.UNPAUSE, c)
            self.runtime.resume(cid)
            c["State"].update(Paused=False, Status="running")
            self._save(c)
            self._event(c, "unpause")

    # ---- wait ---------------------------------------------------------
    def begin_wait(self, ref: str, condition: str = "not-running") -> Callable[[threading.Event | None], dict[str, Any]]:
        """Register a waiter now and return the blocking part.

        Registration must happen before the API answers with headers: the
        docker CLI starts the container as soon as its wait request is
        acknowledged, and an exit in between must still count as "next".
        """
        if condition not in ("", "not-running", "next-exit", "removed"):
            raise InvalidParameter(f"invalid condition: {condition!r}")
        cid = self.resolve(ref)
        with self._cond:
            seen = len(self._exits.get(cid, []))
            c = self._load(cid)

        def result(cancel: threading.Event | None = None) -> dict[str, Any]:
            state = c["State"]
            if condition in ("", "not-running") and not state["Running"] and not state["Restarting"]:
                return {"StatusCode": state["ExitCode"], "Error": None}
            with self._cond:
                while True:
                    exits = self._exits.get(cid, [])
                    if condition == "removed":
                        if cid in self._removed:
                            return {"StatusCode": exits[-1] if exits else state["ExitCode"], "Error": None}
                    elif len(exits) > seen:
                        return {"StatusCode": exits[seen], "Error": None}
                    elif cid in self._removed:
                        return {"StatusCode": exits[-1] if exits else state["ExitCode"], "Error": None}
                    if cancel is not None and cancel.is_set():
                        raise EngineError("wait cancelled")
                    self._cond.wait(0.5)

        return result

    # ---- remove / rename ---------------------------------------------
    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        cid = self.resolve(ref)
        with self._lock(cid):
            c = self._load(cid)
            if not force:
                check(Op.REMOVE, c)
            if c["State"]["Running"]:
                c["_manual_stop"] = True
                self._cancelled_restart.add(cid)
                self._save(c)
                n = len(self._exits.get(cid, []))
                self._signal(c, _signal.SIGKILL)
            else:
                n = -1
        if n >= 0:
            self._wait_exit_count(cid, n, 30)
        with self._lock(cid):
            try:
                c = self._load(cid)
            except EngineError:
                return  # auto-removed meanwhile
            self._cancelled_restart.add(cid)
            self._remove_locked(c, volumes)

    def _remove_locked(self, c: dict[str, Any], volumes: bool) -> None:
        cid = c["Id"]
        if c["State"]["Running"]:
            self.runtime.kill(cid, _signal.SIGKILL)
        self.runtime.cleanup(cid)
        self.network.forget(cid)
        umount(os.path.join(self.dir(cid), "merged"))
        self.store.delete(cid)
        for att in self._pending.pop(cid, []):
            att.error = "container removed"
            att.ready.set()
        self._event(c, "destroy")
        self.volumes.release(c, volumes)
        with self._cond:
            self._removed.add(cid)
            self._cond.notify_all()
        # Without its row the directory is garbage (the boot-time sweep collects it
        # too), so `wait?condition=removed` need not wait for the disk to let go.
        shutil.rmtree(self.dir(cid), ignore_errors=True)

    def rename(self, ref: str, new_name: str) -> None:
        cid = self.resolve(ref)
        if not new_name:
            raise InvalidParameter("Neither old nor new names may be empty")
        name = naming.validate(new_name)
        with self._lock(cid):
            c = self._load(cid)
            old = c["Name"]
            if old == name:
                raise InvalidParameter("Renaming a container with the same name as its current name")
            self.store.rename(c, name)
            self._event(c, "rename", oldName=old)

    def prune(self, filters: Filters | None = None) -> dict[str, Any]:
        """`docker container prune`: remove stopped containers matching label/label!/until."""
        filters = (filters or Filters()).validate({"label", "label!", "until"})
        until = filters.times("until")
        deleted, reclaimed = [], 0
        for rec in self.all_records():
            if ContainerState.of(rec["State"]) in (ContainerState.RUNNING, ContainerState.PAUSED,
                                                   ContainerState.RESTARTING):
                continue
            labels = rec["Config"].get("Labels")
            if not (filters.labels("label", labels) and filters.no_labels("label!", labels)
                    and all(parse_rfc3339_ns(rec["Created"]) < u for u in until)):
                continue
            try:
                rec = self._load(rec["Id"])
                reclaimed += _dir_bytes(os.path.join(self.dir(rec["Id"]), "upper"))
                with self._lock(rec["Id"]):
                    self._remove_locked(rec, volumes=False)
                deleted.append(rec["Id"])
            except EngineError:
                continue
        self.events.publish("container", "prune", "", {"reclaimed": str(reclaimed)})
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    # ---- views --------------------------------------------------------
    def inspect(self, ref: str, size: bool = False) -> dict[str, Any]:
        c = self.get(ref)
        out = {k: v for k, v in c.items() if not k.startswith("_")}
        out["NetworkSettings"] = self.network.settings(c)
        out["ExecIDs"] = None  # the API fills in the exec service's live IDs
        if size:
            out["SizeRw"] = _dir_bytes(os.path.join(self.dir(c["Id"]), "upper"))
            out["SizeRootFs"] = out["SizeRw"] + self.images.inspect(c["Image"])["Size"]
        return out

    def summaries(self, all_: bool = False, limit: int = -1, size: bool = False,
                  filters: Filters | None = None) -> list[dict[str, Any]]:
        """`docker ps`: Docker's container summaries, newest first."""
        filters = (filters or Filters()).validate(PS_FILTERS)
        for status in filters.get("status"):
            if status not in {s.value for s in ContainerState}:
                raise InvalidParameter(f"invalid filter 'status={status}'")
        records = sorted(self.all_records(), key=lambda r: r["Created"], reverse=True)
        all_ = all_ or limit > 0  # as dockerd: `ps -n N` / `ps -l` count stopped containers too
        out = []
        for c in records:
            state = c["State"]
            if not all_ and not state["Running"] and "status" not in filters and "exited" not in filters \
                    and not state["Restarting"]:
                continue
            if not self._match(c, filters):
                continue
            item = {
                "Id": c["Id"], "Names": [c["Name"]], "Image": c["Config"]["Image"], "ImageID": c["Image"],
                "Command": " ".join([c["Path"], *c["Args"]]),
                "Created": parse_rfc3339_ns(c["Created"]) // 1_000_000_000,
                "Ports": self.network.ports_list(c), "Labels": c["Config"].get("Labels") or {},
                "State": state["Status"],
                "Status": status_text(state), "HostConfig": {"NetworkMode": c["HostConfig"]["NetworkMode"]},
                "NetworkSettings": {"Networks": self.network.settings(c)["Networks"]},
                "Mounts": c.get("Mounts") or [],
            }
            if size:
                item["SizeRw"] = _dir_bytes(os.path.join(self.dir(c["Id"]), "upper"))
            out.append(item)
            if 0 < limit <= len(out):
                break
        return out

    def _match(self, c: dict[str, Any], filters: Filters) -> bool:
        """dockerd's `docker ps` filters (daemon/list.go) on one record."""
        state = c["State"]
        if not (filters.prefix("id", c["Id"]) and filters.labels("label", c["Config"].get("Labels"))
                and (filters.search("name", c["Name"].lstrip("/")) or filters.search("name", c["Name"]))):
            return False
        if "status" in filters and ContainerState.of(state).value not in filters.get("status"):
            return False
        if "exited" in filters and not (not state["Running"] and state["Status"] == "exited"
                                        and str(state["ExitCode"]) in filters.get("exited")):
            return False
        if "ancestor" in filters and not any(self._descends(c, v) for v in filters.get("ancestor")):
            return False
        if "before" in filters and not c["Created"] < self.get(filters.get("before")[0])["Created"]:
            return False
        if "since" in filters and not c["Created"] > self.get(filters.get("since")[0])["Created"]:
            return False
        if "volume" in filters and not any(m.get("Name") in filters.get("volume")
                                           or m["Destination"] in filters.get("volume")
                                           for m in c.get("Mounts") or []):
            return False
        # filters pydock accepts but whose subject it lacks (health, publish, ...) match nothing
        unsupported = ("health", "publish", "expose", "isolation", "is-task")
        if any(key in filters for key in unsupported):
            return False
        return filters.exact("network", c["HostConfig"]["NetworkMode"])

    def _descends(self, c: dict[str, Any], image: str) -> bool:
        """`ancestor=`: the container's image by ID/reference, or the name it was created with."""
        try:
            if self.images.resolve(image) == c["Image"]:
                return True
        except EngineError:
            pass
        return bool(c["Config"]["Image"] == image)

    # ---- daemon restart ----------------------------------------------
    def restore(self) -> None:
        """Make every record true again after a daemon restart, then apply restart policies.

        The previous daemon may have died anywhere in a start, so the record
        is checked against the shim and runc: a container that really runs is
        adopted whatever its record says, and every other one loses what a
        start left behind (process, runc state, shim, mount, network).
        """
        stopped = []  # rolled back after every adoption, so volumes.detach sees who runs
        for c in self.all_records():
            cid = c["Id"]
            if c.get("_intermediate"):
                stopped.append(c)
            elif c["State"]["Running"]:
                if self.runtime.alive(cid):
                    self._monitor(cid)
                    continue
                result = self.runtime.read_exit(cid) or {"ExitCode": 255, "FinishedAt": rfc3339_ns()}
                self._on_exit(cid, result)
            elif not self._adopt_started(c):
                stopped.append(c)
        for c in stopped:
            cid = c["Id"]
            self._roll_back_start(c)
            # A build's RUN container went with the daemon that ran the build; a
            # stopped --rm container is removed at boot, as dockerd does.
            if c.get("_intermediate") or c["HostConfig"]["AutoRemove"]:
                c["State"]["Running"] = False
                with self._lock(cid):
                    self._remove_locked(c, volumes=True)
                continue
            if c["State"]["Restarting"] or self._restart_on_boot(c):
                with self._lock(cid):
                    c["State"]["Restarting"] = False
                    try:
                        self._start_locked(c)
                    except EngineError:
                        pass

    def _adopt_started(self, c: dict[str, Any]) -> bool:
        """A container the previous daemon started but died before recording: it runs, so it is Running."""
        cid = c["Id"]
        if not self.runtime.alive(cid):
            return False
        status, pid = self.runtime.status(cid)
        if status != "running":
            return False
        c["State"].update(Status="running", Running=True, Paused=False, Restarting=False, OOMKilled=False,
                          Dead=False, Pid=pid, ExitCode=0, Error="", StartedAt=rfc3339_ns(),
                          FinishedAt=ZERO_TIME)
        c["_manual_stop"] = False
        self._save(c)
        self._event(c, "start")
        self._monitor(cid)
        return True

    def _roll_back_start(self, c: dict[str, Any]) -> None:
        """Remove what an interrupted start left of a container that does not run; its record stays."""
        cid = c["Id"]
        merged = os.path.join(self.dir(cid), "merged")
        started = os.path.exists(self.runtime.state_dir(cid)) or is_mountpoint(merged)
        self.runtime.abandon(cid)
        self.network.teardown(cid)
        if started:
            self.volumes.detach(c)
        umount(merged)

    @staticmethod
    def _restart_on_boot(c: dict[str, Any]) -> bool:
        policy = c["HostConfig"]["RestartPolicy"]["Name"]
        if c["State"]["StartedAt"] == ZERO_TIME:
            return False
        return policy == "always" or (policy == "unless-stopped" and not c["_manual_stop"])


def status_text(state: dict[str, Any]) -> str:
    now = time.time()
    if state["Status"] == "created":
        return "Created"
    if state["Restarting"]:
        ago = now - parse_rfc3339_ns(state["FinishedAt"]) / 1e9
        return f"Restarting ({state['ExitCode']}) {human_duration(ago)} ago"
    if state["Running"]:
        up = f"Up {human_duration(now - parse_rfc3339_ns(state['StartedAt']) / 1e9)}"
        return up + " (Paused)" if state["Paused"] else up
    if state["FinishedAt"] == ZERO_TIME:
        return "Created"
    ago = now - parse_rfc3339_ns(state["FinishedAt"]) / 1e9
    return f"Exited ({state['ExitCode']}) {human_duration(ago)} ago"


def _write_start_file(path: str, data: bytes, mode: int) -> None:
    """Write a file every start rebuilds before runc reads it.

    Neither fsync nor rename is needed: nothing reads it while it is written,
    and a crash can only lose what the next start writes again.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(fd, mode)
        f.write(data)


def _console_size(host: dict[str, Any]) -> tuple[int, int] | None:
    size = host.get("ConsoleSize")
    if isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size):
        return (size[0], size[1])
    return None


def _dir_bytes(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


