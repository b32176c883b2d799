"""engine.container.record and engine.wire: the typed container record, its stored form and Go's decoding rules."""
from __future__ import annotations

from typing import Any

import pytest

from engine import wire
from engine.container.record import ContainerRecord
from engine.container.state import ContainerState
from engine.errors import InvalidParameter
from engine.types.container import ContainerCreateRequest, HostConfig, RestartPolicy, UpdateConfig

CID = "c" * 64


def stored(**overrides: Any) -> dict[str, Any]:
    """A record as an earlier version stored it: Docker's inspect document plus `_` keys."""
    rec: dict[str, Any] = {
        "Id": CID, "Name": "/web", "Created": "2026-01-01T00:00:00.000000001Z", "Image": "sha256:" + "1" * 64,
        "Path": "sh", "Args": ["-c", "exit 3"], "RestartCount": 2,
        "State": {"Status": "exited", "Running": False, "Paused": False, "Restarting": False, "ExitCode": 3},
        "Config": {"Image": "alpine", "Tty": True, "OpenStdin": True, "StdinOnce": False, "StopSignal": "SIGINT",
                   "StopTimeout": 5, "Labels": {"a": "b"}},
        "HostConfig": {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}, "AutoRemove": False,
                       "NetworkMode": "bridge", "Ulimits": None, "Memory": 8 << 20,
                       "Mounts": [{"Type": "volume", "Target": "/data", "VolumeOptions": {"NoCopy": True}}]},
        "Mounts": [{"Type": "volume", "Name": "v", "Destination": "/data", "RW": True}],
        "_mounts": [{"Type": "volume", "Name": "v", "Source": "/var/lib/pydock/volumes/v/_data",
                     "Destination": "/data", "RW": True, "Anonymous": True, "VolumeOptions": {}}],
        "_chain": "sha256:" + "2" * 64, "_manual_stop": True,
    }
    rec.update(overrides)
    return rec


def test_a_stored_record_of_an_earlier_version_loads_typed() -> None:
    c = wire.decode(ContainerRecord, stored())
    assert (c.id, c.short_name, c.argv, c.restart_count) == (CID, "web", ["sh", "-c", "exit 3"], 2)
    assert c.state.current is ContainerState.EXITED and c.state.exit_code == 3
    assert (c.config.image, c.config.tty, c.config.stop_signal, c.config.stop_timeout) == ("alpine", True, "SIGINT", 5)
    assert c.host_config.restart_policy == RestartPolicy("on-failure", 3)
    assert c.host_config.resources.memory == 8 << 20  # an embedded struct's fields sit in HostConfig's object
    assert c.host_config.mounts is not None and c.host_config.mounts[0].volume_options is not None
    assert c.host_config.mounts[0].volume_options.no_copy
    assert [(m.name, m.destination, m.anonymous) for m in c.mount_points] == [("v", "/data", True)]
    assert c.manual_stop and not c.intermediate and c.chain.endswith("2" * 64)


def test_the_stored_form_round_trips() -> None:
    c = wire.decode(ContainerRecord, stored())
    again = wire.decode(ContainerRecord, wire.encode(c))
    assert again == c
    doc = wire.encode(c)
    assert doc["HostConfig"]["Memory"] == 8 << 20 and "Resources" not in doc["HostConfig"]
    assert doc["HostConfig"]["Ulimits"] is None and doc["HostConfig"]["ConsoleSize"] == [0, 0]
    assert "Healthcheck" not in doc["Config"]  # omitempty, as in moby's struct tags


def test_defaults_for_fields_older_records_lack() -> None:
    rec = stored(Config={"Image": "alpine"}, HostConfig={})
    del rec["RestartCount"], rec["_manual_stop"], rec["_mounts"]
    c = wire.decode(ContainerRecord, rec)
    assert c.config.stop_timeout is None and c.config.labels is None and c.labels == {}
    assert c.host_config == HostConfig() and c.host_config.restart_policy.name == ""
    assert c.restart_count == 0 and not c.manual_stop and c.mount_points == []


@pytest.mark.parametrize("body,message", [
    ({"Memory": "1g"}, "json: cannot unmarshal string into Go struct field UpdateConfig.Memory of type int64"),
    ({"RestartPolicy": {"Name": 1}},
     "json: cannot unmarshal number 1 into Go struct field RestartPolicy.RestartPolicy.Name of type string"),
    ([1], "json: cannot unmarshal array into Go value of type UpdateConfig"),
])
def test_type_errors_read_as_dockerds(body: Any, message: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        wire.decode(UpdateConfig, body)
    assert str(info.value) == message


def test_decoding_follows_go() -> None:
    req = wire.decode(ContainerCreateRequest, {"image": "busybox", "CMD": "true", "Unknown": 1,
                                               "HostConfig": {"memory": 7 << 20, "PortBindings": {"80/tcp": None}},
                                               "Labels": None})
    assert req.config.image == "busybox" and req.config.cmd == ["true"]  # names fold case; a StrSlice string
    assert req.host_config.resources.memory == 7 << 20
    assert req.host_config.port_bindings == {"80/tcp": None}
    assert req.config.labels is None and req.config.env is None  # null and absent: Go's zero value


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
