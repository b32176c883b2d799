"""Run: start a container under its monitor, and handle its exit (state, cleanup, auto-remove, restart policy).

Start and exit handling live together because each needs the other: the
monitor's exit may restart the container, and a failed start removes an
auto-remove container as an exit would.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal as _signal
import threading
import time
from typing import Any

from engine.container.core import ExitLog, settle_waiters
from engine.container.create import Creating
from engine.container.health import HealthChecking
from engine.container.probes import probe_command
from engine.container.record import ContainerID, ContainerRecord
from engine.container.state import Op, check
from engine.errors import EngineError
from engine.linux.fsutil import make_linked_mount_point, resolve_user, secure_join
from engine.runtime import oci, resources, security
from engine.runtime.runc import UnusableCommand, crash_point
from engine.runtime.spec import SpecOptions, build_spec, container_env
from engine.timeutil import rfc3339_ns
from engine.types.container import HostConfig

log = logging.getLogger(__name__)
EXIT_GRACE = 10.0  # seconds close waits for exits being applied (each a few runtime and store calls)


def _start_exit_code(e: BaseException) -> int:
    """What Docker records as the exit code of a container that failed to start: 127 for a missing
    command, 126 for one that cannot run, 128 for any other failure."""
    return e.exit_code if isinstance(e, UnusableCommand) else 128


def _write_start_file(path: str, data: bytes, mode: int) -> None:
    """Write a file every start rebuilds before runc reads it.

    Neither fsync nor rename is needed: nothing reads it while it is written,
    and a crash can only lose what the next start writes again.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(fd, mode)
        f.write(data)


def _etc_paths(c: ContainerRecord) -> dict[str, str]:
    """Where the container's /etc files are written and mounted from, as its record says (the run directory;
    the container's own directory for one created by an earlier pydock)."""
    return {"resolv.conf": c.resolv_conf_path, "hostname": c.hostname_path, "hosts": c.hosts_path}


def _console_size(host: HostConfig) -> tuple[int, int] | None:
    size = host.console_size
    if len(size) == 2 and all(v > 0 for v in size):
        return (size[0], size[1])
    return None


class Running(Creating, HealthChecking):
    # ---- start --------------------------------------------------------
    def start(self, ref: str) -> None:
        cid = self.resolve(ref)
        with self._lock(cid):
            c = self._load(cid)
            check(Op.START, c)
            self._start_locked(c)

    def _start_locked(self, c: ContainerRecord) -> None:
        self.runtime.expect_start()  # first: what it readies takes the longest
        cid = c.id
        cdir, bundle = self.dir(cid), self.run_dir(cid)
        merged = os.path.join(cdir, "merged")
        self.mount_root(c)
        try:
            # recorded as any failed start is; dockerd's words
            self._check_runtime(c.host_config.runtime, "unknown or invalid runtime name:")
            os.makedirs(bundle, mode=0o710, exist_ok=True)  # gone after a reboot: the exec root is a tmpfs
            # First: a spare monitor (runc.py) takes the container with one message and readies itself
            # while the spec is made; the first attach or the start waits for it.
            self.runtime.launch(cid, bundle, tty=c.config.tty, stdin=c.config.open_stdin,
                                log=self.log_spec(c).to_shim(), console_size=_console_size(c.host_config),
                                cgroup_path=self._cgroups_path(c), runtime=c.host_config.runtime)
            spec = self._spec(c, merged)
            oci.prepare_spec(c.host_config.runtime, spec)
            _write_start_file(os.path.join(bundle, "config.json"), json.dumps(spec).encode(), 0o600)
            crash_point("prepared")
            for att in self._pending.pop(cid, []):
                self._connect_attachment(cid, att)
            pid = self.runtime.start(cid)
            crash_point("started")
        except BaseException as e:
            self.runtime.cleanup(cid)
            self.network.teardown(cid)
            self.volumes.detach(c)
            self.rootfs.unmount(merged)
            c.state.start_failed(getattr(e, "message", str(e)), _start_exit_code(e))
            self._save(c)
            if c.host_config.auto_remove:
                self._remove_locked(c, volumes=True)  # as Docker: --rm also covers a failed start
            raise
        self._mark_started(c, pid)
        self._cancelled_restart.discard(cid)
        self._save(c, durable=not c.disposable)
        self._event(c, "start")
        self._monitor(cid)
        self._watch_health(c)

    @staticmethod
    def _mark_started(c: ContainerRecord, pid: int) -> None:
        """`c` runs as `pid` (not yet saved): its state, a clean slate for the restart policy, and its health
        "starting" if it has a healthcheck."""
        c.state.start(pid)
        c.manual_stop = False
        if probe_command(c.config) is not None:
            c.state.start_health()

    def _cancel_restart(self, c: ContainerRecord) -> None:
        """restarting -> exited, saved: stopped while a restart was pending, or the restart failed."""
        c.state.cancel_restart()
        self._save(c)

    def _spec(self, c: ContainerRecord, rootfs: str) -> dict[str, Any]:
        cfg, host = c.config, c.host_config
        uid, gid, extra = resolve_user(rootfs, cfg.user)
        cwd = cfg.working_dir or "/"
        cwd_host = secure_join(rootfs, cwd)
        if not os.path.isdir(cwd_host):
            os.makedirs(cwd_host, mode=0o755, exist_ok=True)
        netns = self.network.setup(c)
        self._write_etc_files(c)
        mounts = self.volumes.attach(c.id, host, c.mount_points)
        for m in mounts:
            make_linked_mount_point(rootfs, m["destination"], m["type"] == "bind" and not os.path.isdir(m["source"]))
        covered = {m["destination"] for m in mounts}
        mounts += [{"destination": f"/etc/{n}", "type": "bind", "source": path, "options": ["rbind", "rprivate"]}
                   for n, path in _etc_paths(c).items() if f"/etc/{n}" not in covered]
        return build_spec(SpecOptions(
            container_id=c.id, rootfs=rootfs, args=c.argv,
            env=self.process_env(c, cfg.tty), cwd=cwd,
            uid=uid, gid=gid, additional_gids=extra + security.group_add_gids(rootfs, host.group_add or []),
            hostname=cfg.hostname, tty=cfg.tty, console_size=_console_size(host),
            readonly_rootfs=host.readonly_rootfs, extra_mounts=mounts,
            cap_add=host.cap_add or [], cap_drop=host.cap_drop or [],
            privileged=host.privileged, network=netns,
            init_path=self.cfg.init_binary if host.init else None,
            cgroups_path=self._cgroups_path(c),
            rootless=self.cfg.rootless,
            **resources.spec_options(host), **security.spec_options(host),
        ))

    def _cgroups_path(self, c: ContainerRecord) -> str:
        """The container's cgroup below the daemon's parent; none without one (rootless on cgroup v1)."""
        return f"/{self.cfg.cgroup_parent}/{c.id}" if self.cfg.cgroup_parent else ""

    def process_env(self, c: ContainerRecord, tty: bool) -> list[str]:
        """The environment of the container's processes (its init and execs), as dockerd's
        CreateDaemonEnvironment: the defaults, the legacy links' variables, then Config.Env over both."""
        cfg = c.config
        return container_env([*self.network.link_env(c), *(cfg.env or [])], [], cfg.hostname, tty)

    def _write_etc_files(self, c: ContainerRecord) -> None:
        paths = _etc_paths(c)
        for name, text in self.network.etc_files(c).items():
            _write_start_file(paths[name], text.encode(), 0o644)

    # ---- exit handling ------------------------------------------------
    def _monitor(self, cid: ContainerID) -> None:
        """Watch the running container `cid` for its exit (on the shared watcher, not a thread of its own)."""
        try:
            sock = self.runtime.connect(cid, {"op": "wait"}, timeout=None)
        except OSError:
            self._exit_watcher.report(cid, None, self._exit_seen)  # gone already: its exit.json says how it ended
            return
        self._exit_watcher.watch(cid, sock, self._exit_seen)

    def _exit_seen(self, cid: str, line: dict[str, Any] | None) -> None:
        # No line: connected too late, or the monitor died; it wrote exit.json before closing its socket.
        result = line or self.runtime.read_exit(cid) or {"ExitCode": 255, "FinishedAt": rfc3339_ns(),
                                                         "OOMKilled": False}
        self._on_exit(ContainerID(cid), result)

    def _on_exit(self, cid: ContainerID, result: dict[str, Any]) -> None:
        with self._cond:
            if self._closing:
                return  # the container outlives this daemon; the next one's recovery reads its exit.json
            self._handling += 1
        try:
            self._apply_exit(cid, result)
        finally:
            with self._cond:
                self._handling -= 1
                self._cond.notify_all()

    def close(self) -> None:
        """Stop applying exits, wait for those under way, then stop the probes.

        The network, runtime and store close right after this: an exit applied
        halfway then would leave a record that says running with its network
        and mount gone. Containers outlive the daemon, so an exit seen from now
        on is left to the next daemon's recovery, which reads the monitor's
        exit.json, and a pending restart to its restart policy.
        """
        with self._cond:
            self._closing = True
            if not self._cond.wait_for(lambda: not self._handling, EXIT_GRACE):
                log.warning("%d container exits still being applied after %.0f s", self._handling, EXIT_GRACE)
        self._exit_watcher.close()
        super().close()

    def _apply_exit(self, cid: ContainerID, result: dict[str, Any]) -> None:
        with self._lock(cid):
            c = self.store.find(cid)
            if c is None:
                return  # removed meanwhile
            state = c.state
            if not state.running:
                return
            code = int(result.get("ExitCode", 255))
            state.exit(code, bool(result.get("OOMKilled")), result.get("FinishedAt") or rfc3339_ns())
            self._stop_health(c)
            # The monitor deletes the container in runc after reporting the exit: teardown first, so
            # that runs meanwhile; cleanup then waits for the monitor to finish.
            self.network.teardown(cid)
            self.volumes.detach(c)
            if c.host_config.auto_remove:
                # Nothing of it stays: its row goes at once, the exit unsaved, and "die" follows that delete,
                # so no reader sees it running after the event; the unmount and the runtime's cleanup wait
                # until after `wait?condition=removed` has its answer (see _remove_locked).
                try:
                    self._remove_locked(c, volumes=True, exit_code=code)
                except BaseException:
                    if self.store.find(cid) is not None:  # the removal failed before its commit
                        self._record_exit(c, code)
                    raise
                return
            self.rootfs.unmount(os.path.join(self.dir(cid), "merged"))
            self._record_exit(c, code)
            if self._should_restart(c, code):
                state.schedule_restart()
                self._save(c)
                delay = min(0.1 * (2 ** c.restart_count), 60.0)
                threading.Timer(delay, self._auto_restart, args=(cid,)).start()

    def _should_restart(self, c: ContainerRecord, code: int) -> bool:
        if c.manual_stop or c.id in self._cancelled_restart:
            return False
        return c.host_config.restart_policy.should_restart(code, c.restart_count)

    def _auto_restart(self, cid: ContainerID) -> None:
        if self._closing:
            return  # still `restarting` in the store: the next daemon's recovery restarts it
        with self._lock(cid):
            c = self.store.find(cid)
            if c is None:
                return  # removed meanwhile
            if c.state.running or not c.state.restarting or cid in self._cancelled_restart:
                return
            c.restart_count += 1
            try:
                self._start_locked(c)
            except EngineError:
                self._cancel_restart(self._load(cid))

    def _wait_exit_count(self, log: ExitLog, n: int, timeout: float | None) -> bool:
        """Wait for exit number n+1 in `log` (or the container's removal); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while len(log.codes) <= n:
                if log.removed:
                    return True
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(None if left is None else min(left, threading.TIMEOUT_MAX))
        return True

    def _record_exit(self, c: ContainerRecord, code: int) -> None:
        """The exited container `c`, torn down, is saved and its exit announced."""
        self.runtime.cleanup(c.id)
        self._save(c, durable=not c.disposable)
        self._announce_exit(c, code)

    def _announce_exit(self, c: ContainerRecord, code: int) -> None:
        self._event(c, "die", exitCode=str(code))
        if c.manual_stop:
            self._event(c, "stop")
        with self._cond:
            log = self._exit_log(c.id)
            log.codes.append(code)
            settle_waiters(log)
            self._cond.notify_all()

    def _remove_locked(self, c: ContainerRecord, volumes: bool, exit_code: int | None = None) -> None:
        """Remove `c`; `exit_code`: it has just exited (unsaved, see _apply_exit), announced once it is gone."""
        cid = c.id
        running = c.state.running
        if running:
            self.runtime.kill(cid, _signal.SIGKILL)
        self._probes.cancel(cid)
        if running:
            self.runtime.cleanup(cid)  # its process and monitor gone before its mounts go
        self.network.teardown(cid)
        # the container and its endpoints go at once: one commit
        with self.meta.transaction(durable=not c.disposable):
            self.network.forget(cid)
            self.store.delete(cid)
        if exit_code is not None:
            self._announce_exit(c, exit_code)
        for att in self._pending.pop(cid, []):
            att.error = "container removed"
            att.ready.set()
        self._event(c, "destroy")
        self.volumes.release(c, volumes)
        self._forget_exits(cid)
        self._cancelled_restart.discard(cid)
        # Without its row the rest is garbage (the boot-time sweep collects it too), so
        # `wait?condition=removed` need not wait for it: the root filesystem's unmount (a few hundred
        # microseconds, at times milliseconds), the directory, and the monitor of an exited container,
        # which deletes it in the runtime as it exits (cleanup waits for that).
        crash_point("removed")
        try:
            self.rootfs.unmount(os.path.join(self.dir(cid), "merged"))
        except OSError as e:  # nothing is removed through a mount: the next boot's sweep retries
            log.warning("unmounting the root filesystem of removed container %s: %s", cid[:12], e)
        else:
            if not self.dirs.recycle(self.dir(cid)):
                shutil.rmtree(self.dir(cid), ignore_errors=True)
        shutil.rmtree(self.run_dir(cid), ignore_errors=True)
        self.runtime.cleanup(cid)
