"""The container service's shared state and record access, which the verb modules build on.

ContainerService is assembled from one class per group of verbs (attach,
create, run, lifecycle, views, recovery; see service.py), each in its own
module as moby keeps daemon methods in files named for the verb. This base
holds what they share: collaborators, per-container locks, the record store
and events.
"""
from __future__ import annotations

import os
import socket
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from engine.config import EngineConfig
from engine.container import logconfig
from engine.container.dirs import ContainerDirs
from engine.container.exits import ExitWatcher
from engine.container.probes import ProbeRunner, ProbeScheduler
from engine.container.record import ContainerID, ContainerRecord
from engine.container.state import State
from engine.container.store import ContainerStore
from engine.errors import NotFound
from engine.events import EventBus
from engine.image.layers import LayerStore
from engine.image.service import ImageService
from engine.network.service import NetworkService
from engine.runtime.base import ContainerRuntime
from engine.runtime.rootfs import RootFS
from engine.store.db import MetaStore
from engine.types.container import HostConfig
from engine.volume.service import VolumeService


def dir_bytes(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


@dataclass(slots=True)
class ExitLog:
    """The exit codes seen of one container, for waits on its next exit (`wait`, stop, kill, remove).

    A removed container's log is marked and leaves the engine's table, so a
    long-lived daemon keeps nothing per container it no longer has; a waiter
    that took the log before then still sees the mark.
    """

    codes: list[int] = field(default_factory=list)
    removed: bool = False
    # waits answered by a call rather than a thread (Waiter.on_done), each settled by the exit or removal
    # that meets it (settle_waiters)
    callbacks: list[tuple[Waiter, Callable[[dict[str, Any]], None]]] = field(default_factory=list)


class Waiter:
    """A wait for a container's exit or removal on one of Docker's conditions, registered before the API
    answers with headers (the docker CLI starts the container as soon as its wait is acknowledged, and an
    exit in between must still count as "next"). Answered blocking (`result`) or by a call from the exit or
    removal that meets it (`on_done`), which spares a thread per waiting client."""

    def __init__(self, cond: threading.Condition, log: ExitLog, condition: str, state: State) -> None:
        self._cond = cond  # held by whoever changes `log`
        self._log = log
        self._seen = len(log.codes)
        self._condition = condition
        self._state = state  # the container's, as the wait began

    def outcome(self) -> dict[str, Any] | None:
        """The wait's answer once its condition holds, else None; the caller holds the condition's lock."""
        state, log = self._state, self._log
        if self._condition in ("", "not-running") and not state.running and not state.restarting:
            return {"StatusCode": state.exit_code, "Error": None}
        exits = log.codes
        if self._condition != "removed" and len(exits) > self._seen:
            return {"StatusCode": exits[self._seen], "Error": None}
        if log.removed:
            return {"StatusCode": exits[-1] if exits else state.exit_code, "Error": None}
        return None

    def result(self) -> dict[str, Any]:
        """Block until the answer."""
        with self._cond:
            while (answer := self.outcome()) is None:
                self._cond.wait()
            return answer

    def on_done(self, done: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call `done` with the answer once it is there (now, if it is; else from the exit or removal, under
        the lock: it must not block); returns what withdraws the call."""
        entry = (self, done)
        with self._cond:
            answer = self.outcome()
            if answer is None:
                self._log.callbacks.append(entry)
        if answer is not None:
            done(answer)

        def withdraw() -> None:
            with self._cond:
                if entry in self._log.callbacks:
                    self._log.callbacks.remove(entry)
        return withdraw


def settle_waiters(log: ExitLog) -> None:
    """Answer the called-back waits on `log` that its change met; the caller holds the condition's lock."""
    for entry in list(log.callbacks):
        answer = entry[0].outcome()
        if answer is not None:
            log.callbacks.remove(entry)
            entry[1](answer)


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


class ContainerCore:
    def __init__(self, cfg: EngineConfig, meta: MetaStore, images: ImageService, layers: LayerStore,
                 runtime: ContainerRuntime, events: EventBus, network: NetworkService, volumes: VolumeService,
                 rootfs: RootFS, run_probe: ProbeRunner) -> None:
        """`run_probe` runs a healthcheck probe as an exec (the exec service, which is built on this one)."""
        self.cfg = cfg
        self.meta = meta
        self.store = ContainerStore(meta)
        self.images = images
        self.layers = layers
        self.runtime = runtime
        self.rootfs = rootfs
        self.events = events
        self.dirs = ContainerDirs(cfg.container_spares_dir)
        # a container's lock lives while a thread holds or waits for it: no entry outlives its use
        self._locks: weakref.WeakValueDictionary[str, threading.RLock] = weakref.WeakValueDictionary()
        self._locks_guard = threading.Lock()
        self._cond = threading.Condition()
        self._exit_logs: dict[ContainerID, ExitLog] = {}  # of containers that exist; see exit_log
        self._pending: dict[str, list[Attachment]] = {}
        self._cancelled_restart: set[ContainerID] = set()
        self._closing = False   # set by close: exits seen from then on are the next daemon's to apply
        self._handling = 0      # exits being applied now, which close waits for
        self._exit_watcher = ExitWatcher()
        self.network = network
        self.volumes = volumes
        self._run_probe = run_probe
        self._probes = ProbeScheduler()

    # ---- records ------------------------------------------------------
    def _lock(self, cid: ContainerID) -> threading.RLock:
        with self._locks_guard:
            lock = self._locks.get(cid)
            if lock is None:
                lock = self._locks[cid] = threading.RLock()
            return lock

    def _exit_log(self, cid: ContainerID) -> ExitLog:
        """`cid`'s exit log. The caller knows `cid` exists (it holds `cid`'s lock, or found its record while
        holding `_cond`): a log made for a removed container would never be marked, nor leave."""
        with self._cond:
            log = self._exit_logs.get(cid)
            if log is None:
                log = self._exit_logs[cid] = ExitLog()
            return log

    def _forget_exits(self, cid: ContainerID) -> None:
        """`cid` is removed: its waiters see it, and its log leaves the table."""
        with self._cond:
            log = self._exit_logs.pop(cid, None)
            if log is not None:
                log.removed = True
                settle_waiters(log)
            self._cond.notify_all()

    def _load(self, cid: ContainerID) -> ContainerRecord:
        return self.store.load(cid)

    def _save(self, c: ContainerRecord, durable: bool = True) -> None:
        self.store.save(c, durable)

    def resolve(self, ref: str) -> ContainerID:
        """Container ID for a full ID, unique ID prefix, or name (Docker's lookup order)."""
        return self.store.resolve(ref)

    def get(self, ref: str) -> ContainerRecord:
        return self._load(self.resolve(ref))

    def host_config_of(self, ref: str) -> HostConfig | None:
        """A container's HostConfig, None when there is no such container (for the host policy)."""
        try:
            return self.get(ref).host_config
        except NotFound:
            return None

    def all_records(self) -> list[ContainerRecord]:
        return self.store.records()

    def ids(self) -> set[ContainerID]:
        """IDs of every container the store holds (for the start-up sweep of orphaned directories)."""
        return self.store.ids()

    def image_usage(self, image_id: str) -> tuple[list[str], list[str]]:
        running: list[str] = []
        stopped: list[str] = []
        for c in self.all_records():
            if c.image_id == image_id:
                (running if c.state.running else stopped).append(c.id)
        return running, stopped

    def log_spec(self, c: ContainerRecord) -> logconfig.LogSpec:
        """Where a container's log is and how it rotates (records from before LogConfig was honoured
        hold no type: the json-file default)."""
        return logconfig.spec(c.host_config.log_config, self.dir(c.id))

    def dir(self, cid: str) -> str:
        return os.path.join(self.cfg.containers_dir, cid)

    def mount_root(self, c: ContainerRecord) -> bool:
        """Assemble `c`'s root filesystem at its `merged` unless it is there; whether this call mounted it.
        The one place a start and `docker cp` of a stopped container stack its layers (an --rm container's
        overlay is volatile: see Overlay.mount)."""
        cdir = self.dir(c.id)
        merged = os.path.join(cdir, "merged")
        if self.rootfs.mounted(merged):
            return False
        self.rootfs.mount(self.layers.container_lowers(self.layers.lower_dirs(c.chain)), os.path.join(cdir, "upper"),
                          os.path.join(cdir, "work"), merged, volatile=c.host_config.auto_remove)
        return True

    def run_dir(self, cid: str) -> str:
        """Where the container's start files go: its OCI bundle (config.json) and /etc files."""
        return os.path.join(self.cfg.containers_run_dir, cid)

    def bundle(self, cid: str) -> str:
        """The OCI bundle the container last started from: its run directory, or its own directory for one
        started by an earlier pydock, which kept the bundle there (it may still run across an upgrade)."""
        run = self.run_dir(cid)
        return run if os.path.exists(os.path.join(run, "config.json")) else self.dir(cid)

    @staticmethod
    def _attrs(c: ContainerRecord, **extra: str) -> dict[str, str]:
        """An event's attributes: Docker's image and name, the container's labels, then `extra`."""
        attrs = {"image": c.config.image, "name": c.short_name}
        attrs.update(c.labels)
        attrs.update(extra)
        return attrs

    def _event(self, c: ContainerRecord, action: str, **extra: str) -> None:
        self.events.publish("container", action, c.id, self._attrs(c, **extra))

    @contextmanager
    def locked(self, ref: str) -> Iterator[ContainerRecord]:
        """The record of `ref`, with start, stop, remove and other lifecycle changes held off meanwhile.

        For work on a container's files (cp, export, diff, commit) that must not
        race a start mounting, or a stop unmounting, its root filesystem.
        """
        cid = self.resolve(ref)
        with self._lock(cid):
            yield self._load(cid)

    def log_event(self, c: ContainerRecord, action: str, **extra: str) -> None:
        """Container events for actions other services perform (e.g. `top`), with the usual attributes."""
        self._event(c, action, **extra)
