"""Container states, which operations each state allows, and how Docker words a refusal.

A container's record holds a `State` (Docker's State document, typed: Status
plus the Running, Paused and Restarting flags, as `docker inspect` shows
them), whose methods are the only writers of those fields (one method per
transition), and whose `current` is the one state they mean. Every lifecycle operation asks `check` before acting, so the
rules (and dockerd's exact messages and status codes: 409 Conflict, or 304
for a start/stop that has nothing to do) live in one table instead of an `if`
in each operation.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.errors import Conflict, EngineError, NotModified
from engine.timeutil import ZERO_TIME, parse_rfc3339_ns, rfc3339_ns
from engine.wire import BOOL, INT, STRING, List, Ptr, wfield

if TYPE_CHECKING:
    from engine.container.record import ContainerRecord


class ContainerState(enum.Enum):
    """The states `docker ps --filter status=` names; the value is Docker's name."""

    CREATED = "created"  # made and never started, or rolled back to this after a failed start
    RUNNING = "running"  # its process runs under a monitor
    PAUSED = "paused"  # running, frozen by the cgroup freezer
    RESTARTING = "restarting"  # exited; the restart policy starts it again after a back-off delay
    REMOVING = "removing"  # `docker rm` in progress
    EXITED = "exited"  # its process ended (or it was stopped)
    DEAD = "dead"  # removal failed halfway; only `rm -f` helps

    @property
    def alive(self) -> bool:
        """A process exists (running or paused)."""
        return self in (ContainerState.RUNNING, ContainerState.PAUSED)


class HealthStatus(str, enum.Enum):
    """A healthcheck's verdicts, as Docker names them (`docker ps --filter health=` takes these and "none")."""

    STARTING = "starting"  # started, and no probe has passed yet
    HEALTHY = "healthy"  # the last probe passed
    UNHEALTHY = "unhealthy"  # `retries` probes in a row failed, or probing stopped (exit, pause)


NO_HEALTHCHECK = "none"  # the `health=` filter's name for a container without State.Health
MAX_HEALTH_LOG = 5  # probe results kept in State.Health.Log (dockerd's maxLogEntries)


@dataclass(slots=True)
class HealthcheckResult:
    """One probe, as dockerd logs it: Go times (RFC 3339), the exit code (-1: no exit, e.g. a timeout), output."""

    start: str = wfield("Start", STRING, default=lambda: ZERO_TIME)
    end: str = wfield("End", STRING, default=lambda: ZERO_TIME)
    exit_code: int = wfield("ExitCode", INT)
    output: str = wfield("Output", STRING)


@dataclass(slots=True)
class Health:
    """Docker's State.Health: present once a container with a healthcheck has started (dockerd's
    initHealthMonitor), kept after it stops. Its methods apply dockerd's rules (daemon/health.go)."""

    status: str = wfield("Status", STRING)
    failing_streak: int = wfield("FailingStreak", INT)
    log: list[HealthcheckResult] = wfield("Log", List(Ptr(HealthcheckResult)), default=list)  # oldest first

    def restart(self) -> None:
        """A (re)start: "starting" again with no failures counted; the log of earlier runs stays."""
        self.status, self.failing_streak = HealthStatus.STARTING.value, 0

    def stop(self) -> None:
        """Probing stopped (exit or pause): dockerd then reports "unhealthy", for compatibility."""
        self.status = HealthStatus.UNHEALTHY.value

    def record(self, result: HealthcheckResult, retries: int, start_period_ns: int, started_at: str) -> bool:
        """Apply one probe result (dockerd's handleProbeResult); True when the status changed.

        A pass makes it healthy. A failure counts towards `retries` unless the
        container is still starting and the probe began within the start period.
        """
        old = self.status
        self.log = [*self.log[-(MAX_HEALTH_LOG - 1):], result]
        if result.exit_code == 0:
            self.failing_streak, self.status = 0, HealthStatus.HEALTHY.value
        elif not (self.status == HealthStatus.STARTING.value
                  and parse_rfc3339_ns(result.start) - parse_rfc3339_ns(started_at) < start_period_ns):
            self.failing_streak += 1
            if self.failing_streak >= retries:
                self.status = HealthStatus.UNHEALTHY.value
        return self.status != old


@dataclass(slots=True)
class State:
    """Docker's container State document, typed; times are RFC 3339 strings, as Docker shows them.

    Its methods are the only writers of these fields, one per transition.
    """

    status: str = wfield("Status", STRING, default=lambda: "created")  # as last written (`current`: its meaning)
    running: bool = wfield("Running", BOOL)  # a process exists (also while paused)
    paused: bool = wfield("Paused", BOOL)
    restarting: bool = wfield("Restarting", BOOL)  # exited, restart policy pending
    oom_killed: bool = wfield("OOMKilled", BOOL)
    dead: bool = wfield("Dead", BOOL)
    pid: int = wfield("Pid", INT)
    exit_code: int = wfield("ExitCode", INT)
    error: str = wfield("Error", STRING)  # why the last start failed
    started_at: str = wfield("StartedAt", STRING, default=lambda: ZERO_TIME)
    finished_at: str = wfield("FinishedAt", STRING, default=lambda: ZERO_TIME)
    health: Health | None = wfield("Health", Ptr(Health), omitempty=True)  # None: no healthcheck, or never started

    @property
    def current(self) -> ContainerState:
        """The state the flags mean: they win over a stale Status."""
        if self.restarting:
            return ContainerState.RESTARTING
        if self.running:
            return ContainerState.PAUSED if self.paused else ContainerState.RUNNING
        return ContainerState(self.status)

    # ---- transitions: each sets what dockerd's State methods set ------------
    def start(self, pid: int) -> None:
        """created/exited/restarting -> running."""
        self.status, self.running, self.paused, self.restarting = "running", True, False, False
        self.oom_killed, self.dead, self.pid, self.exit_code, self.error = False, False, pid, 0, ""
        self.started_at, self.finished_at = rfc3339_ns(), ZERO_TIME

    def start_health(self) -> None:
        """A container with a healthcheck (re)started: its Health starts over as "starting"."""
        if self.health is None:
            self.health = Health()
        self.health.restart()

    def start_failed(self, error: str, exit_code: int) -> None:
        """A start that failed leaves the state as it was, with the error and dockerd's exit code."""
        self.error, self.exit_code = error, exit_code

    def exit(self, exit_code: int, oom_killed: bool, finished_at: str) -> None:
        """running/paused -> exited."""
        self.status, self.running, self.paused, self.pid = "exited", False, False, 0
        self.exit_code, self.oom_killed, self.finished_at = exit_code, oom_killed, finished_at

    def schedule_restart(self) -> None:
        """exited -> restarting (the restart policy starts it after a back-off)."""
        self.restarting, self.status = True, "restarting"

    def cancel_restart(self) -> None:
        """restarting -> exited (stopped meanwhile, or the restart failed)."""
        self.restarting, self.status = False, "exited"

    def process_gone(self) -> None:
        """At daemon start: the previous daemon's process is gone, and the record is about to go too."""
        self.running = False

    def restart_due(self) -> None:
        """At daemon start: the pending restart (or the policy) starts it now."""
        self.restarting = False

    def pause(self) -> None:
        self.paused, self.status = True, "paused"

    def unpause(self) -> None:
        self.paused, self.status = False, "running"


class Op(enum.Enum):
    """Operations whose permission depends on the container's state."""

    START = "start"
    STOP = "stop"
    KILL = "kill"
    PAUSE = "pause"
    UNPAUSE = "unpause"
    RESIZE = "resize"
    REMOVE = "remove"
    EXEC = "exec"
    TOP = "top"


_S = ContainerState
_ALIVE = frozenset({_S.RUNNING, _S.PAUSED})
# op -> the states it is allowed in
ALLOWED: dict[Op, frozenset[ContainerState]] = {
    Op.START: frozenset(_S) - _ALIVE,
    Op.STOP: _ALIVE | {_S.RESTARTING},
    Op.KILL: _ALIVE,
    Op.PAUSE: frozenset({_S.RUNNING}),
    Op.UNPAUSE: frozenset({_S.PAUSED}),
    Op.RESIZE: _ALIVE,
    Op.REMOVE: frozenset(_S) - _ALIVE - {_S.RESTARTING},  # without force
    Op.EXEC: frozenset({_S.RUNNING}),
    Op.TOP: _ALIVE,
}
# (op, state) -> dockerd's refusal; (op, None) is the refusal for any other state.
# Fields: {id} the full ID, {ref} what the client named, {name} the record's name, {state} Docker's name.
_REFUSALS: dict[tuple[Op, ContainerState | None], tuple[type[EngineError], str]] = {
    (Op.START, None): (NotModified, "container already started"),
    (Op.STOP, None): (NotModified, "container already stopped"),
    (Op.KILL, None): (Conflict, "Cannot kill container: {ref}: Container {id} is not running"),
    (Op.PAUSE, _S.PAUSED): (Conflict, "Container {id} is already paused"),
    (Op.PAUSE, None): (Conflict, "Container {id} is not running"),
    (Op.UNPAUSE, None): (Conflict, "Container {id} is not paused"),
    (Op.RESIZE, None): (Conflict, "Container {id} is not running"),
    (Op.REMOVE, None): (Conflict, ('cannot remove container "{name}": container is {state}: '
                                   "stop the container before removing or force remove")),
    (Op.EXEC, _S.RESTARTING): (Conflict, "Container {id} is restarting, wait until the container is running"),
    (Op.EXEC, _S.PAUSED): (Conflict, "Container {ref} is paused, unpause the container before exec"),
    (Op.EXEC, None): (Conflict, "container {id} is not running"),
    (Op.TOP, _S.RESTARTING): (Conflict, "Container {id} is restarting, wait until the container is running"),
    (Op.TOP, None): (Conflict, "Container {id} is not running"),
}


def check(op: Op, c: ContainerRecord, ref: str = "") -> None:
    """Raise dockerd's refusal if `c`'s state does not allow `op` (`ref`: the name the client used)."""
    current = c.state.current
    if current in ALLOWED[op]:
        return
    kind, message = _REFUSALS.get((op, current)) or _REFUSALS[(op, None)]
    raise kind(message.format(id=c.id, ref=ref or c.id, name=c.name, state=current.value))
