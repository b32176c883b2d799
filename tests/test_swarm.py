"""Swarm endpoints answer as dockerd on a node outside any swarm: 503 with dockerd's message, 400 for bad input.

Clean-up code (`docker swarm leave --force || true`, the SDK's `swarm.leave`)
and feature probes (`docker node ls`) depend on these answers, not on a 404.
"""
from __future__ import annotations

from typing import Any

import docker
import pytest
from conftest import Daemon
from test_hostile_input import api

from engine.cluster import CANNOT_JOIN, NO_MANAGER, NO_SWARM

# what the docker CLI prints for a daemon error, one line
CLI_NO_MANAGER = f"Error response from daemon: {NO_MANAGER}"


def test_cli_swarm_leave_says_not_in_a_swarm(daemon: Daemon) -> None:
    for args in (["swarm", "leave"], ["swarm", "leave", "--force"]):
        out = daemon.docker(*args)
        assert out.returncode == 1, out
        assert out.stderr.strip() == f"Error response from daemon: {NO_SWARM}"


@pytest.mark.parametrize("args", [["node", "ls"], ["service", "ls"], ["secret", "ls"], ["config", "ls"],
                                  ["node", "inspect", "self"], ["service", "rm", "web"],
                                  ["swarm", "unlock-key"], ["swarm", "update", "--autolock=false"]])
def test_cli_manager_commands_say_not_a_manager(daemon: Daemon, args: list[str]) -> None:
    out = daemon.docker(*args)
    assert out.returncode == 1, out
    assert CLI_NO_MANAGER in out.stderr, out.stderr


def test_cli_swarm_init_and_join_refused(daemon: Daemon) -> None:
    out = daemon.docker("swarm", "init")
    assert out.returncode == 1 and out.stderr.strip() == f"Error response from daemon: {CANNOT_JOIN}", out
    out = daemon.docker("swarm", "join", "--token", "SWMTKN-1-x", "127.0.0.1:2377")
    assert out.returncode == 1 and CANNOT_JOIN in out.stderr, out
    assert daemon.docker("info", "--format", "{{.Swarm.LocalNodeState}}", check=True).stdout.strip() == "inactive"


def test_sdk_sees_503_with_dockerd_messages(daemon: Daemon) -> None:
    client = docker.DockerClient(base_url=daemon.url, timeout=30)
    try:
        assert client.swarm.leave(force=True)  # the SDK's clean-up path: a forced leave takes this 503 as done
        calls: list[tuple[Any, str]] = [
            (lambda: client.swarm.leave(), NO_SWARM),
            (lambda: client.api.inspect_swarm(), NO_MANAGER),
            (lambda: client.nodes.list(), NO_MANAGER),
            (lambda: client.services.list(), NO_MANAGER),
            (lambda: client.api.tasks(), NO_MANAGER),
            (lambda: client.secrets.list(), NO_MANAGER),
            (lambda: client.configs.list(), NO_MANAGER),
            (lambda: client.secrets.create(name="s", data=b"x"), NO_MANAGER),
            (lambda: client.services.get("web"), NO_MANAGER),
        ]
        for call, message in calls:
            with pytest.raises(docker.errors.APIError) as err:
                call()
            assert err.value.status_code == 503, err.value
            assert err.value.explanation == message
    finally:
        client.close()


@pytest.mark.parametrize(("method", "path", "body", "query", "message"), [
    ("POST", "/swarm/init", None, None, "got EOF while reading request body"),
    ("POST", "/swarm/init", b"[]", None, "json: cannot unmarshal array into Go value of type swarm.InitRequest"),
    ("POST", "/swarm/init", b'{"ListenAddr": ""}', None, 'invalid ListenAddr "": invalid empty address'),
    ("POST", "/swarm/init", b'{"ListenAddr": "0.0.0.0:2377", "Spec": {"Name": "other"}}', None,
     'swarm spec must be named "default"'),
    ("POST", "/swarm/join", b'{"ListenAddr": "0.0.0.0:2377"}', None, "at least 1 RemoteAddr is required to join"),
    ("POST", "/swarm/join", b'{"ListenAddr": "0.0.0.0:2377", "RemoteAddrs": 1}', None,
     "json: cannot unmarshal number 1 into Go struct field swarm.JoinRequest.RemoteAddrs of type []string"),
    ("POST", "/swarm/update", b"{}", {"version": "x"},
     "invalid swarm version 'x': strconv.ParseUint: parsing \"x\": invalid syntax"),
    ("POST", "/swarm/update", b"{}", {"version": "1", "rotateWorkerToken": "maybe"},
     "invalid value for rotateWorkerToken: maybe"),
    ("GET", "/services", None, {"status": "x"},
     "invalid value for status: x: strconv.ParseBool: parsing \"x\": invalid syntax"),
    ("GET", "/services/web", None, {"insertDefaults": "x"},
     "invalid value for insertDefaults: x: strconv.ParseBool: parsing \"x\": invalid syntax"),
    ("GET", "/services/web/logs", None, None, "Bad parameters: you must choose at least one stream"),
    ("POST", "/secrets/s/update", b"{}", None, "invalid secret version"),
    ("POST", "/configs/create", b'"x"', None,
     "json: cannot unmarshal string into Go value of type swarm.ConfigSpec"),
])
def test_bad_requests_are_400_before_the_node_state(daemon: Daemon, method: str, path: str, body: bytes | None,
                                                     query: dict[str, str] | None, message: str) -> None:
    status, answer = api(daemon, method, path, body, query)
    assert (status, answer) == (400, {"message": message})


def test_valid_requests_are_503(daemon: Daemon) -> None:
    for method, path, body in [("GET", "/swarm", None), ("GET", "/swarm/unlockkey", None),
                               ("POST", "/swarm/unlock", b'{"UnlockKey": "k"}'), ("GET", "/tasks/t1", None),
                               ("DELETE", "/nodes/n1", None), ("POST", "/nodes/n1/update?version=3", b"{}"),
                               ("GET", "/tasks/t1/logs?stdout=1", None), ("DELETE", "/configs/c1", None),
                               ("GET", "/secrets/create", None)]:
        status, answer = api(daemon, method, path, body)
        assert (status, answer) == (503, {"message": NO_MANAGER}), (method, path)
