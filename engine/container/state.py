"""Container states, which operations each state allows, and how Docker words a refusal.

A container's record keeps Docker's State document (Status plus the Running,
Paused and Restarting flags) because `docker inspect` shows it as is;
`ContainerState.of` reads the one state it means. Every lifecycle operation
asks `check` before acting, so the rules (and dockerd's exact messages and
status codes: 409 Conflict, or 304 for a start/stop that has nothing to do)
live in one table instead of an `if` in each operation.
"""
from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from engine.errors import Conflict, EngineError, NotModified


class ContainerState(enum.Enum):
    """The states `docker ps --filter status=` names; the value is Docker's name."""

    CREATED = "created"  # made and never started, or rolled back to this after a failed start
    RUNNING = "running"  # its process runs under a monitor
    PAUSED = "paused"  # running, frozen by the cgroup freezer
    RESTARTING = "restarting"  # exited; the restart policy starts it again after a back-off delay
    REMOVING = "removing"  # `docker rm` in progress
    EXITED = "exited"  # its process ended (or it was stopped)
    DEAD = "dead"  # removal failed halfway; only `rm -f` helps

    @classmethod
    def of(cls, state: Mapping[str, Any]) -> ContainerState:
        """The state a Docker State document means: the flags win over a stale Status."""
        if state.get("Restarting"):
            return cls.RESTARTING
        if state.get("Running"):
            return cls.PAUSED if state.get("Paused") else cls.RUNNING
        return cls(state.get("Status") or "created")

    @property
    def alive(self) -> bool:
        """A process exists (running or paused)."""
        return self in (ContainerState.RUNNING, ContainerState.PAUSED)


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
    Op.REMOVE: frozenset(_S) - _ALIVE,  # without force
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


def allows(op: Op, state: Mapping[str, Any]) -> bool:
    return ContainerState.of(state) in ALLOWED[op]


def check(op: Op, record: Mapping[str, Any], ref: str = "") -> None:
    """Raise dockerd's refusal if `record`'s state does not allow `op` (`ref`: the name the client used)."""
    current = ContainerState.of(record["State"])
    if current in ALLOWED[op]:
        return
    kind, message = _REFUSALS.get((op, current)) or _REFUSALS[(op, None)]
    raise kind(message.format(id=record["Id"], ref=ref or record["Id"], name=record.get("Name", ""),
                              state=current.value))
