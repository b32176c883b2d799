"""Healthchecks of running containers: probing follows the lifecycle, and each result goes into State.Health.

As dockerd (daemon/health.go), a start sets Health to "starting" and
begins probing; an exit or a pause stops it, which leaves the status
"unhealthy"; an unpause resumes it. The record keeps Health, so a restarted
daemon resumes the probes of the containers it adopts where they were. A
probe runs like `docker exec` (the exec service's `probe`, reached through a
callable since that service is built on this one), off the container's lock;
its result is recorded under the lock, unless probing stopped meanwhile.
"""
from __future__ import annotations

import time

from engine.container.core import ContainerCore
from engine.container.probes import ProbeTimeout, Timing, Watch, probe_command
from engine.container.record import ContainerID, ContainerRecord
from engine.container.state import HealthcheckResult, HealthStatus
from engine.errors import EngineError
from engine.timeutil import go_duration, parse_rfc3339_ns, rfc3339_ns


class HealthChecking(ContainerCore):
    def _watch_health(self, c: ContainerRecord) -> None:
        """Probe `c` if it has a healthcheck and runs unpaused (dockerd's updateHealthMonitor)."""
        state = c.state
        if state.health is not None and state.running and not state.paused \
                and probe_command(c.config) is not None:
            self._probes.watch(c.id, self._probe_delay(c), self._probe)

    def _stop_health(self, c: ContainerRecord) -> None:
        """No more probes of `c` (exit, pause, removal); its status reads "unhealthy", as dockerd's. Not saved."""
        self._probes.cancel(c.id)
        if c.state.health is not None:
            c.state.health.stop()

    def close(self) -> None:
        """Stop every container's probes: the engine is closing (the containers keep running)."""
        self._probes.close()

    def _probe_delay(self, c: ContainerRecord) -> float:
        """Seconds to the next probe: the start interval while the container is starting within its start
        period, else the interval (moby's monitor getInterval)."""
        timing = Timing.of(c.config.healthcheck)
        up = time.time_ns() - parse_rfc3339_ns(c.state.started_at)
        starting = c.state.health is not None and c.state.health.status == HealthStatus.STARTING.value
        return (timing.start_interval if up < timing.start_period and starting else timing.interval) / 1e9

    def _probe(self, watch: Watch) -> float | None:
        """One probe and its result (on the scheduler's probe thread); the delay to the next, None to stop."""
        cid = ContainerID(watch.key)
        c = self.store.find(cid)
        cmd = probe_command(c.config) if c is not None else None
        if c is None or cmd is None:
            return None
        timing = Timing.of(c.config.healthcheck)
        start = time.time_ns()
        end: int | None = None
        try:
            code, output = self._run_probe(cid, cmd, timing.timeout / 1e9)
        except ProbeTimeout as e:
            code, output, end = -1, f"Health check exceeded timeout ({go_duration(timing.timeout)})", e.end_ns
        except EngineError as e:  # the exec could not run (dockerd logs the error as the output)
            code, output = -1, e.message
        result = HealthcheckResult(start=rfc3339_ns(start), end=rfc3339_ns(end), exit_code=code, output=output)
        with self._lock(cid):
            if not watch.active:  # stopped, paused, removed or restarted meanwhile, or the engine closed
                return None
            c = self.store.find(cid)
            if c is None or c.state.health is None:
                return None
            health = c.state.health
            changed = health.record(result, timing.retries, timing.start_period, c.state.started_at)
            self._save(c)
            if changed:
                self._event(c, f"health_status: {health.status}")
            return self._probe_delay(c)
