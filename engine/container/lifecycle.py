"""Lifecycle verbs on an existing container: stop, kill, restart, pause, wait, update, resize, rename, remove, prune."""
from __future__ import annotations

import os
import signal as _signal

from engine.container import naming
from engine.container.core import Waiter, dir_bytes
from engine.container.record import ContainerRecord
from engine.container.run import Running
from engine.container.signals import parse_signal
from engine.container.state import ContainerState, Op, check
from engine.errors import Conflict, EngineError, InvalidParameter
from engine.filters import Filters
from engine.runtime import resources
from engine.runtime.runc import OCIRuntimeError
from engine.timeutil import parse_rfc3339_ns
from engine.types.container import UpdateConfig
from engine.types.results import Pruned

DEFAULT_STOP_TIMEOUT = 10
KILL_WAIT = 10.0  # seconds a SIGKILL waits for the exit to be recorded (dockerd's wait after killing)


class Lifecycle(Running):
    def resize(self, ref: str, h: int, w: int) -> None:
        cid = self.resolve(ref)
        check(Op.RESIZE, self._load(cid))
        self.runtime.request(cid, {"op": "resize", "h": h, "w": w})

    def update(self, ref: str, upd: UpdateConfig) -> list[str]:
        """`docker update`: new limits go into the record, and into the cgroup (runc update) if running;
        returns the warnings."""
        cid = self.resolve(ref)
        with self._lock(cid):
            c = self._load(cid)
            try:
                warnings = resources.apply_update(c.host_config, upd, self.cfg.limit_controllers,
                                                  self.cfg.cgroup_limits_reason)
                if c.state.running and self.cfg.cgroup_parent:  # without a cgroup no limit was taken
                    self.runtime.update(cid, resources.linux_resources(c.host_config.resources))
            except InvalidParameter:
                raise
            except OCIRuntimeError as e:  # the kernel refused the values (cpuset, limit below usage, ...)
                raise InvalidParameter(f"Cannot update container {cid}: {e.message}") from None
            except EngineError as e:  # conflicts with the current limits
                raise type(e)(f"Cannot update container {cid}: {e.message}") from None
            self._save(c)
        self._event(c, "update")
        return warnings

    # ---- stop / kill --------------------------------------------------
    def kill(self, ref: str, sig: str | int | None = None) -> None:
        """Signal the container; a SIGKILL returns once its exit is recorded, as dockerd's kill does
        (right after `docker kill`, inspect shows it stopped, with exit code 137)."""
        cid = self.resolve(ref)
        signum = parse_signal(sig)
        with self._lock(cid):
            c = self._load(cid)
            check(Op.KILL, c, ref)
            stop_sig = parse_signal(c.config.stop_signal, _signal.SIGTERM)
            if signum in (_signal.SIGKILL, stop_sig):
                c.manual_stop = True
                self._cancelled_restart.add(cid)
                self._save(c)
            log = self._exit_log(cid)
            exits = len(log.codes)
            self._signal(c, signum)
        if signum == _signal.SIGKILL:
            self._wait_exit_count(log, exits, KILL_WAIT)

    def _signal(self, c: ContainerRecord, signum: int) -> None:
        try:
            self.runtime.kill(c.id, signum)
        except Conflict:
            pass  # it exited meanwhile: the signal's work is done, as dockerd sees it
        if c.state.paused and signum == _signal.SIGKILL:
            try:  # a frozen process dies only once thawed: runc >= 1.1 thaws it for SIGKILL itself, older ones not
                self.runtime.resume(c.id)
            except Conflict:
                pass
        self._event(c, "kill", signal=str(signum))

    def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        cid = self.resolve(ref)
        with self._lock(cid):
            c = self._load(cid)
            state = c.state
            if state.restarting:
                self._cancelled_restart.add(cid)
                c.manual_stop = True
                self._cancel_restart(c)
                return
            check(Op.STOP, c)
            c.manual_stop = True
            self._cancelled_restart.add(cid)
            self._save(c)
            log = self._exit_log(cid)
            n = len(log.codes)
            config = c.config
            if timeout is None:
                timeout = DEFAULT_STOP_TIMEOUT if config.stop_timeout is None else config.stop_timeout
            signum = parse_signal(sig or config.stop_signal, _signal.SIGTERM)
            if timeout != 0:
                self._signal(c, signum)
                if state.paused:
                    self.runtime.resume(cid)
        if timeout != 0 and self._wait_exit_count(log, n, None if timeout < 0 else timeout):
            return
        with self._lock(cid):
            c = self._load(cid)
            if c.state.running:
                self._signal(c, _signal.SIGKILL)
        self._wait_exit_count(log, n, None)

    def restart(self, ref: str, timeout: int | None = None) -> None:
        cid = self.resolve(ref)
        if self._load(cid).state.running:
            self.stop(cid, timeout)
        with self._lock(cid):
            c = self._load(cid)
            if not c.state.running:
                self._start_locked(c)
        self._event(self._load(cid), "restart")

    def pause(self, ref: str) -> None:
        self._freeze(ref, Op.PAUSE)

    def unpause(self, ref: str) -> None:
        self._freeze(ref, Op.UNPAUSE)

    def _freeze(self, ref: str, op: Op) -> None:
        """Pause or unpause: the cgroup freezer through the runtime, then the state and Docker's event."""
        cid = self.resolve(ref)
        with self._lock(cid):
            c = self._load(cid)
            check(op, c)
            try:
                (self.runtime.pause if op is Op.PAUSE else self.runtime.resume)(cid)
            except OCIRuntimeError:
                if self.runtime.alive(cid):
                    raise
                # exiting: its exit is not recorded yet, but there is nothing left to freeze or thaw
                raise Conflict(f"Container {cid} is not running") from None
            if op is Op.PAUSE:
                c.state.pause()
                self._stop_health(c)  # as dockerd: probing stops, and the status reads "unhealthy"
            else:
                c.state.unpause()
                self._watch_health(c)
            self._save(c)
            self._event(c, op.value)

    # ---- wait ---------------------------------------------------------
    def begin_wait(self, ref: str, condition: str = "not-running") -> Waiter:
        """Register a wait now (see Waiter); its answer comes blocking or by a call."""
        if condition not in ("", "not-running", "next-exit", "removed"):
            raise InvalidParameter(f"invalid condition: {condition!r}")
        cid = self.resolve(ref)
        with self._cond:  # the record found, then its log: a removal cannot come between (see _exit_log)
            c = self._load(cid)
            return Waiter(self._cond, self._exit_log(cid), condition, c.state)

    # ---- remove / rename ---------------------------------------------
    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        cid = self.resolve(ref)
        with self._lock(cid):
            c = self._load(cid)
            if not force:
                check(Op.REMOVE, c)
            if c.state.running:
                c.manual_stop = True
                self._cancelled_restart.add(cid)
                self._save(c)
                log = self._exit_log(cid)
                n = len(log.codes)
                self._signal(c, _signal.SIGKILL)
            else:
                log, n = None, -1
        if log is not None:
            self._wait_exit_count(log, n, 30)
        with self._lock(cid):
            current = self.store.find(cid)
            if current is None:
                return  # auto-removed meanwhile
            self._cancelled_restart.add(cid)
            self._remove_locked(current, volumes)

    def rename(self, ref: str, new_name: str) -> None:
        cid = self.resolve(ref)
        if not new_name:
            raise InvalidParameter("Neither old nor new names may be empty")
        name = naming.validate(new_name)
        with self._lock(cid):
            c = self._load(cid)
            old = c.name
            if old == name:
                raise InvalidParameter("Renaming a container with the same name as its current name")
            self.store.rename(c, name)
            self._event(c, "rename", oldName=old)

    def prune(self, filters: Filters | None = None) -> Pruned:
        """`docker container prune`: remove stopped containers matching label/label!/until."""
        filters = (filters or Filters()).validate({"label", "label!", "until"})
        until = filters.times("until")
        deleted, reclaimed = [], 0
        for rec in self.all_records():
            if rec.state.current in (ContainerState.RUNNING, ContainerState.PAUSED, ContainerState.RESTARTING):
                continue
            labels = rec.config.labels
            if not (filters.labels("label", labels) and filters.no_labels("label!", labels)
                    and all(parse_rfc3339_ns(rec.created) < u for u in until)):
                continue
            try:
                rec = self._load(rec.id)
                reclaimed += dir_bytes(os.path.join(self.dir(rec.id), "upper"))
                with self._lock(rec.id):
                    self._remove_locked(rec, volumes=False)
                deleted.append(rec.id)
            except EngineError:
                continue
        self.events.publish("container", "prune", "", {"reclaimed": str(reclaimed)})
        return Pruned(deleted, reclaimed)
