"""Volumes: Docker's `local` driver, and the mount points containers get from them.

A volume is a SQLite row plus `<data-root>/volumes/<name>/_data`, like
Docker's layout. The directory is created before the row is committed and
removed after the row is deleted, so the boot-time sweep can treat every
directory without a row as garbage. A volume's users are not counted in a
table: they are the containers whose records name it (plus creations in
flight), so the count can never drift from the containers that exist.

Volumes with driver options (`-o type=tmpfs -o device=tmpfs -o o=size=1m`)
are mounted on `_data` while a running container uses them, as Docker's
local driver does.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import re
import secrets
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from engine.config import EngineConfig
from engine.errors import Conflict, InternalError, InvalidParameter, NotFound
from engine.events import EventBus
from engine.filters import Filters
from engine.linux.fsutil import dir_size, secure_join
from engine.linux.mounts import is_mountpoint, mount, umount
from engine.linux.overlay import Overlay, readonly_root
from engine.store.db import MetaStore
from engine.types.container import HostConfig
from engine.types.results import Pruned
from engine.types.volume import UsageData, Volume
from engine.volume import mountspec, subpath
from engine.volume.copyup import copy_tree
from engine.volume.mountspec import MountPoint

VOLUME_SCHEMA = """
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,          -- directory name under volumes/
    driver TEXT NOT NULL,
    labels TEXT NOT NULL,           -- JSON object or null
    options TEXT NOT NULL,          -- JSON driver options or null
    created TEXT NOT NULL           -- RFC 3339, as `docker volume inspect` shows it
);
"""


ANONYMOUS_LABEL = "com.docker.volume.anonymous"
NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
VALID_NAME = re.compile(NAME_CHARS + "+", re.ASCII)
MAX_NAME = 255
DRIVER_OPTS = {"type", "o", "device", "size"}
REQUIRED_OPTS = {"device": ("type",), "type": ("device",), "o": ("device", "type")}
LIST_FILTERS = {"dangling", "name", "driver", "label"}
PRUNE_FILTERS = {"label", "label!", "all"}
# mount(8) option words that are flags, not filesystem data
_MS = {"ro": 1, "nosuid": 2, "nodev": 4, "noexec": 8, "sync": 16, "dirsync": 128, "noatime": 1024,
       "nodiratime": 2048, "relatime": 1 << 21, "strictatime": 1 << 24, "bind": 4096, "rbind": 4096 | 16384}
_MS_CLEAR = {"rw", "suid", "dev", "exec", "async", "atime", "diratime", "defaults"}

Record = dict[str, Any]


def _rfc3339(ts: float) -> str:
    """Go's time.RFC3339 in the local zone ("Z" for UTC), as Docker prints CreatedAt."""
    s = _dt.datetime.fromtimestamp(int(ts)).astimezone().isoformat(timespec="seconds")
    return s[:-6] + "Z" if s.endswith("+00:00") else s


class RunState(Protocol):
    @property
    def running(self) -> bool: ...


class VolumeUser(Protocol):
    """A container as volumes see it; met by engine.container.record.ContainerRecord."""

    @property
    def id(self) -> str: ...
    @property
    def state(self) -> RunState: ...
    @property
    def mount_points(self) -> list[MountPoint]: ...


def _volume_mounts(c: VolumeUser) -> list[MountPoint]:
    return [m for m in c.mount_points if m.type == "volume"]


class VolumeService:
    def __init__(self, cfg: EngineConfig, meta: MetaStore, events: EventBus,
                 users: Callable[[], Sequence[VolumeUser]], overlay: Overlay) -> None:
        """`users()` answers every container (the container service owns them): who mounts what; `overlay`
        mounts an image's root to look at what a volume would cover."""
        self.overlay = overlay
        self.root = os.path.join(cfg.data_root, "volumes")
        self.subpaths = os.path.join(cfg.exec_root, "subpaths")  # staged VolumeOptions.Subpath mounts, per container
        self.tmp_dir = cfg.tmp_dir
        self.meta = meta
        meta.ensure_schema(VOLUME_SCHEMA)
        self.events = events
        self.users = users
        self._lock = threading.RLock()
        self._claims: dict[str, set[str]] = {}  # volume -> containers being created with it
        self._prune_running = False
        os.makedirs(self.root, mode=0o701, exist_ok=True)

    # ---- paths and rows --------------------------------------------------
    def data_path(self, name: str) -> str:
        return os.path.join(self.root, name, "_data")

    def _row(self, name: str) -> Record | None:
        row = self.meta.query_one("SELECT * FROM volumes WHERE name=?", (name,))
        return dict(row) if row else None

    def _get_row(self, name: str) -> Record:
        row = self._row(name) if isinstance(name, str) and len(name) <= MAX_NAME else None
        if row is None:
            raise NotFound(f"get {str(name)[:MAX_NAME]}: no such volume")
        return row

    def _view(self, row: Record) -> Volume:
        return Volume(created_at=row["created"], driver=row["driver"], labels=json.loads(row["labels"]),
                      mountpoint=self.data_path(row["name"]), name=row["name"], options=json.loads(row["options"]))

    def _refs(self) -> dict[str, list[str]]:
        """Volume name -> IDs of the containers that use it (Docker's references)."""
        refs: dict[str, list[str]] = {}
        for c in self.users():
            for m in _volume_mounts(c):
                ids = refs.setdefault(m.name, [])
                if c.id not in ids:
                    ids.append(c.id)
        with self._lock:
            for name, cids in self._claims.items():
                refs.setdefault(name, []).extend(cid for cid in cids if cid not in refs[name])
        return refs

    # ---- create --------------------------------------------------------------
    def create(self, name: str = "", driver: str = "", opts: dict[str, str] | None = None,
               labels: dict[str, str] | None = None) -> Volume:
        return self._view(self._create(name, driver, opts, labels)[0])

    def _create(self, name: str, driver: str, opts: dict[str, str] | None,
                labels: dict[str, str] | None) -> tuple[Record, bool]:
        """(row, created now); an existing volume of that name is returned as it is, as in Docker."""
        if not name:
            name = secrets.token_hex(32)
            labels = {**(labels or {}), ANONYMOUS_LABEL: ""}
        self._check_name(name)
        driver = driver or "local"
        with self._lock:
            row = self._row(name)
            if row is not None:
                if row["driver"] != driver:
                    raise Conflict(f"create {name}: volume name must be unique: "
                                   f"driver '{row['driver']}' already has volume '{name}'")
                return row, False
            if driver != "local":
                raise NotFound(f'create {name}: error looking up volume plugin {driver}: plugin "{driver}" not found')
            self._check_opts(name, opts or {})
            row = {"name": name, "driver": driver, "labels": json.dumps(labels),
                   "options": json.dumps(opts), "created": ""}
            vdir = os.path.join(self.root, name)
            os.makedirs(vdir, mode=0o701)
            try:
                os.mkdir(self.data_path(name), 0o755)
                row["created"] = _rfc3339(os.stat(vdir).st_ctime)
                with self.meta.transaction() as db:
                    db.execute("INSERT INTO volumes(name, driver, labels, options, created) VALUES (?,?,?,?,?)",
                               tuple(row.values()))
            except BaseException:
                shutil.rmtree(vdir, ignore_errors=True)
                raise
        self.events.publish("volume", "create", name, {"driver": driver})
        return row, True

    @staticmethod
    def _check_name(name: str) -> None:
        if not isinstance(name, str):
            raise InvalidParameter("invalid volume name: must be a string")
        shown = name if len(name) <= 100 else name[:100] + "..."
        if len(name) == 1:
            raise InvalidParameter(f"create {name}: volume name is too short, names should be at least two "
                                   "alphanumeric characters")
        if len(name) > MAX_NAME or not VALID_NAME.fullmatch(name):
            raise InvalidParameter(f'create {shown}: "{shown}" includes invalid characters for a local volume name, '
                                   f'only "{NAME_CHARS}" are allowed. If you intended to pass a host directory, '
                                   "use absolute path")

    @staticmethod
    def _check_opts(name: str, opts: dict[str, str]) -> None:
        for key, value in opts.items():
            if key not in DRIVER_OPTS or not isinstance(value, str):
                raise InvalidParameter(f'create {name}: invalid option: "{key}"')
        if "size" in opts:
            raise InvalidParameter(f"create {name}: quota size requested but no quota support")
        for key, needed in REQUIRED_OPTS.items():
            for other in needed:
                if key in opts and other not in opts:
                    raise InvalidParameter(f'create {name}: missing required option: "{other}"')

    # ---- read ------------------------------------------------------------------
    def inspect(self, name: str) -> Volume:
        return self._view(self._get_row(name))

    def listing(self, filters: Filters | None = None) -> list[Volume]:
        """`docker volume ls`, by name."""
        filters = (filters or Filters()).validate(LIST_FILTERS)
        refs = self._refs() if "dangling" in filters else {}
        out = []
        for row in self.meta.query("SELECT * FROM volumes ORDER BY name"):
            vol = self._view(dict(row))
            if _matches(vol, filters, bool(refs.get(vol.name))):
                out.append(vol)
        return out

    def df(self) -> list[Volume]:
        """`docker system df`: local volumes without mount options, with size and reference count."""
        refs = self._refs()
        out = []
        for row in self.meta.query("SELECT * FROM volumes ORDER BY name"):
            vol = self._view(dict(row))
            if vol.options:
                continue
            try:
                size = dir_size(vol.mountpoint)
            except OSError:
                size = -1
            vol.usage_data = UsageData(size, len(refs.get(vol.name, [])))
            out.append(vol)
        return out

    # ---- remove ------------------------------------------------------------------
    def remove(self, name: str, force: bool = False) -> None:
        with self._lock:
            try:
                row = self._get_row(name)
            except NotFound:
                if force:
                    return
                raise
            users = self._refs().get(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            self._destroy(row)

    def _destroy(self, row: Record) -> None:
        name = row["name"]
        if is_mountpoint(self.data_path(name)):  # only volumes with mount options are mounted
            umount(self.data_path(name))
        with self.meta.transaction() as db:
            db.execute("DELETE FROM volumes WHERE name=?", (name,))
        shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)
        self.events.publish("volume", "destroy", name, {"driver": row["driver"]})

    def prune(self, filters: Filters | None = None, all_by_default: bool = False) -> Pruned:
        """Remove unused local volumes; only anonymous ones unless `all=true` (API >= 1.42).
        Returns the names removed and the bytes they held."""
        filters = (filters or Filters()).validate(PRUNE_FILTERS)
        if len(filters.get("all")) > 1:
            raise InvalidParameter(f"invalid filter 'all={filters.get('all')}': only one value is expected")
        if not filters.boolean("all", all_by_default):
            filters = Filters({**filters.to_dict(), "label": [*filters.get("label"), ANONYMOUS_LABEL]})
        with self._lock:
            if self._prune_running:
                raise Conflict("a prune operation is already running")
            self._prune_running = True
        try:
            deleted, reclaimed = self._prune(filters)
        finally:
            self._prune_running = False
        self.events.publish("volume", "prune", "", {"reclaimed": str(reclaimed)})
        return Pruned(deleted, reclaimed)

    def _prune(self, filters: Filters) -> tuple[list[str], int]:
        deleted, reclaimed = [], 0
        for row in self.meta.query("SELECT * FROM volumes WHERE driver='local' ORDER BY name"):
            vol = self._view(dict(row))
            if vol.options or not _matches(vol, filters, False):
                continue
            with self._lock:
                if self._row(vol.name) is None or self._refs().get(vol.name):
                    continue
                size = dir_size(vol.mountpoint)
                self._destroy(dict(row))
            deleted.append(vol.name)
            reclaimed += size
        return deleted, reclaimed

    def collect_orphans(self) -> None:
        """Directories without a row: a create or remove that a crash cut short."""
        known = {r["name"] for r in self.meta.query("SELECT name FROM volumes")}
        for name in os.listdir(self.root):
            if name not in known:
                umount(self.data_path(name))
                shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)

    # ---- containers ---------------------------------------------------------------
    @contextlib.contextmanager
    def claim(self, cid: str, host: HostConfig, image_volumes: list[str], inherited: list[MountPoint],
              lowers: list[str]) -> Iterator[list[MountPoint]]:
        """A new container's mount points, for its record.

        `image_volumes` are the anonymous volumes the image and config ask for,
        `inherited` the mount points of its `--volumes-from` containers, `lowers`
        the image's layers. Volumes are created (and filled from the image) here,
        as Docker does at create. Until the block ends, the volumes count as used
        by the container, so a concurrent prune cannot take them before the
        container's row exists; if the block fails, volumes it created go.
        """
        points = self._plan(host, image_volumes, inherited)
        created: list[Record] = []
        try:
            for mp in points:
                if mp.type == "volume":
                    self._bind_volume(cid, mp, host, created)
            self._populate(points, lowers)
            yield points
        except BaseException:
            self._unclaim(cid, points)
            with self._lock:
                refs = self._refs()
                for row in created:
                    if not refs.get(row["name"]):  # a concurrent create may have started using it
                        self._destroy(row)
            raise
        self._unclaim(cid, points)

    def _bind_volume(self, cid: str, mp: MountPoint, host: HostConfig, created: list[Record]) -> None:
        opts = mp.volume_options
        driver_config = opts.driver_config if opts else None
        driver = (driver_config.name if driver_config else "") or host.volume_driver
        with self._lock:
            row, new = self._create(mp.name, driver, driver_config.options if driver_config else None,
                                    opts.labels if opts else None)
            self._claims.setdefault(row["name"], set()).add(cid)
        if new:
            created.append(row)
        mp.anonymous = mp.anonymous or not mp.name
        mp.name, mp.source, mp.driver = row["name"], self.data_path(row["name"]), row["driver"]
        mp.copy_data = mp.copy_data and not json.loads(row["options"])

    def _unclaim(self, cid: str, points: list[MountPoint]) -> None:
        with self._lock:
            for mp in points:
                users = self._claims.get(mp.name)
                if users is not None:
                    users.discard(cid)
                    if not users:
                        del self._claims[mp.name]

    @staticmethod
    def _plan(host: HostConfig, image_volumes: list[str], inherited: list[MountPoint]) -> list[MountPoint]:
        """Docker's precedence: volumes-from, then Binds, then Mounts; image/config volumes fill the rest."""
        tmpfs = tmpfs_map(host)
        points: dict[str, MountPoint] = {mp.destination: mp for mp in inherited}
        taken: set[str] = set()
        for raw in host.binds or []:
            mp = mountspec.parse_bind(raw)
            if mp.destination in taken or mp.destination in tmpfs:
                raise InvalidParameter(f"Duplicate mount point: {mp.destination}")
            taken.add(mp.destination)
            points[mp.destination] = mp
        for m in host.mounts or []:
            mp = mountspec.parse_mount(m)
            if mp.destination in taken:
                raise InvalidParameter(f"Duplicate mount point: {m.target}")
            taken.add(mp.destination)
            points[mp.destination] = mp
        for path in image_volumes:
            dest = mountspec.destination(path)
            if dest not in points and dest not in tmpfs:
                points[dest] = MountPoint("volume", destination=dest, driver="local", anonymous=True, copy_data=True)
        return list(points.values())

    def _populate(self, points: list[MountPoint], lowers: list[str]) -> None:
        """Copy the image's content at each volume's destination into the volume, if still empty."""
        todo = [mp for mp in points if mp.type == "volume" and mp.copy_data]
        if not todo:
            return
        with readonly_root(self.overlay, lowers, self.tmp_dir) as root:
            for mp in todo:
                image_path = secure_join(root, mp.destination)
                if mp.anonymous and os.path.lexists(image_path) and not os.path.isdir(image_path):
                    raise InvalidParameter("cannot mount volume over existing file, file exists "
                                           + image_path.replace(root, "", 1))
                if os.path.isdir(image_path) and not os.listdir(mp.source):
                    copy_tree(image_path, mp.source)

    def attach(self, cid: str, host: HostConfig, points: list[MountPoint]) -> list[dict[str, Any]]:
        """OCI mounts for a container that starts: bind sources made, option volumes mounted."""
        tmpfs = tmpfs_map(host)
        out = []
        for index, mp in enumerate(points):
            if mp.destination in tmpfs:
                continue
            source = mp.source
            if mp.type == "volume":
                source = self._mount(self._get_row(mp.name))
                if mp.volume_options is not None and mp.volume_options.subpath:
                    source = subpath.stage(source, mp.volume_options.subpath,
                                           os.path.join(self.subpaths, cid, str(index)), mp.name)
                self.events.publish("volume", "mount", mp.name, {
                    "driver": mp.driver, "container": cid, "destination": mp.destination,
                    "read/write": str(mp.rw).lower(), "propagation": mp.propagation})
            elif mp.type == "bind" and mp.create_source and not os.path.lexists(source):
                try:
                    os.makedirs(source, mode=0o755)
                except OSError as e:
                    raise InternalError(f"error while creating mount source path '{source}': {e.strerror}") from None
            spec = mountspec.oci_mount(mp, source)
            if spec["type"] == "bind":
                spec["options"] += mountspec.locked_flags(source)
            out.append(spec)
        out += [mountspec.tmpfs_oci(dest, data) for dest, data in tmpfs.items()]
        return mountspec.sort_mounts(out)

    def _mount(self, row: Record) -> str:
        path = self.data_path(row["name"])
        opts = json.loads(row["options"]) or {}
        if opts.get("type") and not is_mountpoint(path):
            flags, data = 0, []
            for word in (opts.get("o") or "").split(","):
                if word in _MS:
                    flags |= _MS[word]
                elif word and word not in _MS_CLEAR:
                    data.append(word)
            try:
                mount(opts["device"], path, opts["type"], flags, ",".join(data))
            except OSError as e:
                raise InternalError(f"error while mounting volume '{path}': failed to mount local volume: "
                                  f"mount {opts['device']}:{path}, flags: {flags:#x}, data: {','.join(data)}: "
                                  f"{os.strerror(e.errno or errno.EINVAL).lower()}") from None
        return path

    def detach(self, c: VolumeUser) -> None:
        """A container stopped: its subpath mounts go, and option volumes no other running container uses."""
        subpath.release(os.path.join(self.subpaths, c.id))
        mine = _volume_mounts(c)
        if not mine:
            return
        busy = {m.name for o in self.users() if o.id != c.id and o.state.running for m in _volume_mounts(o)}
        for mp in mine:
            if mp.name not in busy:
                umount(self.data_path(mp.name))
            self.events.publish("volume", "unmount", mp.name, {"driver": mp.driver, "container": c.id})

    def release(self, c: VolumeUser, remove_anonymous: bool) -> None:
        """A container was removed (its row is gone): with `rm -v`/`--rm` its anonymous volumes go too."""
        if not remove_anonymous:
            return
        for mp in _volume_mounts(c):
            if mp.anonymous:
                with contextlib.suppress(Conflict, NotFound):  # still used by another container: kept
                    self.remove(mp.name)


def tmpfs_map(host: HostConfig) -> dict[str, str]:
    """HostConfig.Tmpfs with cleaned destinations (Docker's 400 for a relative one)."""
    return {mountspec.destination(k): v for k, v in (host.tmpfs or {}).items()}


def _matches(vol: Volume, filters: Filters, used: bool) -> bool:
    """dockerd's volume filters on one volume (`dangling` means: used by no container)."""
    labels = vol.labels
    return (filters.exact("driver", vol.driver) and filters.search("name", vol.name)
            and filters.labels("label", labels) and filters.no_labels("label!", labels)
            and ("dangling" not in filters or filters.boolean("dangling", False) != used))


        # sockets and overlay whiteouts (0:0 character devices) are not content


