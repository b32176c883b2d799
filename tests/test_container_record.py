"""engine.container.record: typed views of a stored container record."""
from __future__ import annotations

from typing import Any

import pytest

from engine.container.record import Config, Container, HostConfig, RestartPolicy
from engine.container.state import ContainerState

CID = "c" * 64


def stored(**overrides: Any) -> dict[str, Any]:
    """A record as create stores it (trimmed to what the views read)."""
    rec: dict[str, Any] = {
        "Id": CID, "Name": "/web", "Created": "2026-01-01T00:00:00.000000001Z", "Image": "sha256:" + "1" * 64,
        "Path": "sh", "Args": ["-c", "exit 3"], "RestartCount": 2,
        "State": {"Status": "exited", "Running": False, "Paused": False, "Restarting": False, "ExitCode": 3},
        "Config": {"Image": "alpine", "Tty": True, "OpenStdin": True, "StdinOnce": False, "StopSignal": "SIGINT",
                   "StopTimeout": 5, "Labels": {"a": "b"}, "Dns": ["ignored by the view"]},
        "HostConfig": {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}, "AutoRemove": False,
                       "NetworkMode": "bridge", "Ulimits": None},
        "_manual_stop": True, "_intermediate": False,
    }
    rec.update(overrides)
    return rec


def test_container_reads_what_the_engine_uses() -> None:
    view = Container.from_docker(stored())
    assert (view.id, view.short_name, view.argv, view.restart_count) == (CID, "web", ["sh", "-c", "exit 3"], 2)
    assert view.state.current is ContainerState.EXITED and view.state.exit_code == 3
    assert view.config == Config(image="alpine", tty=True, open_stdin=True, stop_signal="SIGINT", stop_timeout=5,
                                 labels={"a": "b"})
    assert view.host_config == HostConfig(restart_policy=RestartPolicy("on-failure", 3), network_mode="bridge")
    assert view.manual_stop and not view.intermediate


def test_defaults_for_fields_older_records_lack() -> None:
    rec = stored(Config={"Image": "alpine"}, HostConfig={})
    del rec["RestartCount"], rec["_intermediate"]
    view = Container.from_docker(rec)
    assert view.config == Config(image="alpine") and view.config.stop_timeout is None
    assert view.host_config == HostConfig() and view.host_config.restart_policy.name == "no"
    assert view.restart_count == 0 and not view.intermediate


@pytest.mark.parametrize("policy,code,count,restarts", [
    (RestartPolicy("no"), 1, 0, False),
    (RestartPolicy("always"), 0, 99, True),
    (RestartPolicy("unless-stopped"), 0, 0, True),
    (RestartPolicy("on-failure"), 0, 0, False),
    (RestartPolicy("on-failure"), 1, 50, True),
    (RestartPolicy("on-failure", 3), 1, 2, True),
    (RestartPolicy("on-failure", 3), 1, 3, False),
])
def test_restart_policy(policy: RestartPolicy, code: int, count: int, restarts: bool) -> None:
    assert policy.should_restart(code, count) is restarts
