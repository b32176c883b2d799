"""engine.container.state: which operation each state allows, and dockerd's words when it does not."""
from __future__ import annotations

from typing import Any

import pytest

from engine import wire
from engine.container.record import ContainerRecord
from engine.container.state import ALLOWED, ContainerState, Op, State, check
from engine.errors import Conflict, NotModified

CID = "c" * 64


def record(**state: Any) -> ContainerRecord:
    base = {"Status": "created", "Running": False, "Paused": False, "Restarting": False}
    return wire.decode(ContainerRecord, {"Id": CID, "Name": "/web", "State": {**base, **state}})


RUNNING = record(Status="running", Running=True)
PAUSED = record(Status="paused", Running=True, Paused=True)
EXITED = record(Status="exited")
RESTARTING = record(Status="restarting", Restarting=True)


@pytest.mark.parametrize("rec,state", [(record(), ContainerState.CREATED), (RUNNING, ContainerState.RUNNING),
                                       (PAUSED, ContainerState.PAUSED), (EXITED, ContainerState.EXITED),
                                       (RESTARTING, ContainerState.RESTARTING),
                                       (record(Status="running", Restarting=True), ContainerState.RESTARTING)])
def test_the_flags_decide_the_state(rec: ContainerRecord, state: ContainerState) -> None:
    assert rec.state.current is state


@pytest.mark.parametrize("op,rec,kind,message", [
    (Op.START, RUNNING, NotModified, "container already started"),
    (Op.STOP, EXITED, NotModified, "container already stopped"),
    (Op.KILL, EXITED, Conflict, f"Cannot kill container: web: Container {CID} is not running"),
    (Op.PAUSE, PAUSED, Conflict, f"Container {CID} is already paused"),
    (Op.PAUSE, EXITED, Conflict, f"Container {CID} is not running"),
    (Op.UNPAUSE, RUNNING, Conflict, f"Container {CID} is not paused"),
    (Op.REMOVE, PAUSED, Conflict, ('cannot remove container "/web": container is paused: '
                                   "stop the container before removing or force remove")),
    (Op.REMOVE, RESTARTING, Conflict, ('cannot remove container "/web": container is restarting: '
                                       "stop the container before removing or force remove")),
    (Op.EXEC, RESTARTING, Conflict, f"Container {CID} is restarting, wait until the container is running"),
    (Op.EXEC, PAUSED, Conflict, "Container web is paused, unpause the container before exec"),
    (Op.EXEC, EXITED, Conflict, f"container {CID} is not running"),
])
def test_refusals_carry_dockerds_kind_and_message(op: Op, rec: ContainerRecord, kind: type, message: str) -> None:
    with pytest.raises(kind) as info:
        check(op, rec, "web")
    assert type(info.value) is kind and str(info.value) == message


def test_every_op_is_allowed_somewhere_and_checks_pass_there() -> None:
    for op, states in ALLOWED.items():
        assert states, op
        for state in states:
            flags = {"Running": state.alive, "Paused": state is ContainerState.PAUSED,
                     "Restarting": state is ContainerState.RESTARTING}
            check(op, record(Status=state.value, **flags))


def test_state_round_trips_dockers_document() -> None:
    doc = {"Status": "exited", "Running": False, "Paused": False, "Restarting": False, "OOMKilled": True,
           "Dead": False, "Pid": 0, "ExitCode": 137, "Error": "", "StartedAt": "2026-01-01T00:00:00Z",
           "FinishedAt": "2026-01-01T00:00:01Z"}
    state = wire.decode(State, doc)
    assert (state.current, state.exit_code, state.oom_killed) == (ContainerState.EXITED, 137, True)
    assert wire.encode(state) == doc


def test_transitions_set_what_dockerd_sets() -> None:
    state = record().state
    state.start(pid=42)
    assert state.current is ContainerState.RUNNING and state.pid == 42
    state.pause()
    assert state.current is ContainerState.PAUSED and state.status == "paused"
    state.exit(3, oom_killed=False, finished_at="2026-01-01T00:00:01Z")
    state.schedule_restart()
    assert state.current is ContainerState.RESTARTING
    assert (state.exit_code, state.pid, state.paused) == (3, 0, False)
    state.cancel_restart()
    assert state.current is ContainerState.EXITED
