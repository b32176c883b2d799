"""Recovery at daemon start: every record made true again against its monitor and runc, then restart policies."""
from __future__ import annotations

import os

from engine.container.lifecycle import Lifecycle
from engine.container.record import ContainerRecord
from engine.errors import EngineError
from engine.timeutil import ZERO_TIME


class Recovery(Lifecycle):
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
            cid = c.id
            if c.intermediate:
                stopped.append(c)
            elif c.state.running:
                if self.runtime.alive(cid):
                    self._monitor(cid)
                    self._watch_health(c)
                    continue
                self._exit_seen(cid, None)  # its monitor is gone: what exit.json says, else 255
            elif not self._adopt_started(c):
                stopped.append(c)
        for c in stopped:
            cid = c.id
            self._roll_back_start(c)
            # A build's RUN container went with the daemon that ran the build; a
            # stopped --rm container is removed at boot, as dockerd does.
            if c.intermediate or c.host_config.auto_remove:
                c.state.process_gone()
                with self._lock(cid):
                    self._remove_locked(c, volumes=True)
                continue
            if c.state.restarting or self._restart_on_boot(c):
                with self._lock(cid):
                    c.state.restart_due()
                    try:
                        self._start_locked(c)
                    except EngineError:
                        pass

    def _adopt_started(self, c: ContainerRecord) -> bool:
        """A container the previous daemon started but died before recording: it runs, so it is Running."""
        cid = c.id
        if not self.runtime.alive(cid):
            return False
        status, pid = self.runtime.status(cid)
        if status != "running":
            return False
        self._mark_started(c, pid)
        self._save(c)
        self._event(c, "start")
        self._monitor(cid)
        self._watch_health(c)
        return True

    def _roll_back_start(self, c: ContainerRecord) -> None:
        """Remove what an interrupted start left of a container that does not run; its record stays."""
        cid = c.id
        merged = os.path.join(self.dir(cid), "merged")
        started = self.runtime.has_state(cid) or self.rootfs.mounted(merged)
        self.runtime.abandon(cid)
        self.network.teardown(cid)
        if started:
            self.volumes.detach(c)
        self.rootfs.unmount(merged)

    @staticmethod
    def _restart_on_boot(c: ContainerRecord) -> bool:
        """A container that ran before: `always` starts it again, `unless-stopped` unless a client stopped it."""
        if c.state.started_at == ZERO_TIME:
            return False
        policy = c.host_config.restart_policy.name
        return policy == "always" or (policy == "unless-stopped" and not c.manual_stop)
