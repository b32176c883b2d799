"""Readying the kernel's cgroup migration lock just before an OCI runtime moves a container into its cgroup.

Moving a process into a cgroup (a write to `cgroup.procs`, which runc and
crun make for every container and exec on cgroup v1) takes a kernel-wide lock
(`cgroup_threadgroup_rwsem`) whose writer, after a quiet spell, first waits
for an RCU grace period. A daemon's starts are spaced out, so each start paid
that wait inside the runtime's call: crun's `run --detach` took 25-27 ms here,
against 10-13 ms right after another migration (measured back to back and
with 60 ms between calls).

A migration of the daemon into the cgroup it is already in changes nothing
and readies the lock just the same. Made in the background as a start
begins, its wait overlaps the start's own work (network, spec, monitor), and
the runtime's migration a few milliseconds later finds the lock ready. It
cannot be made long ahead: the lock goes quiet again soon after the last
migration (one made 25 ms before crun's helped nothing), so it is made at
each start and exec, at most one at a time.
"""
from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

CGROUP_ROOT = "/sys/fs/cgroup"


def own_procs_file(cgroup_file: str = "/proc/self/cgroup", root: str = CGROUP_ROOT) -> str | None:
    """The `cgroup.procs` of this process's own cgroup in a cgroup v1 hierarchy mounted under `root`
    (the lock is kernel-wide: any hierarchy will do); None if it has none there."""
    try:
        with open(cgroup_file) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0" or not controllers or controllers.startswith("name="):
            continue
        procs = os.path.join(root, controllers, path.lstrip("/"), "cgroup.procs")
        if os.access(procs, os.W_OK):
            return procs
    return None


class MigrationWarmer:
    """Makes the no-op migration in the background when poked, unless one is under way."""

    def __init__(self, procs_file: str) -> None:
        self.procs_file = procs_file
        self._busy = threading.Lock()

    def poke(self) -> None:
        if self._busy.acquire(blocking=False):
            threading.Thread(target=self._migrate, name="cgroup-warm", daemon=True).start()

    def _migrate(self) -> None:
        try:
            fd = os.open(self.procs_file, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"0")  # 0: the writer's own process, into the cgroup it is in
            finally:
                os.close(fd)
        except OSError as e:  # only a start's speed depends on it
            log.debug("readying the cgroup migration lock through %s: %s", self.procs_file, e)
        finally:
            self._busy.release()
