"""Request bodies and parameters of the wrong type or range: Docker's 4xx, and nothing stored.

Each case once answered 500 or, worse, was stored and then broke later calls
(`docker images` after a commit with a non-string label, inspect after an
update with a string retry count), so each test also checks that the store
still reads back.
"""
from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from typing import Any

import pytest
from test_hostile_input import api, container_ids, image_ids


def _post(daemon: Any, path: str, body: Any, query: dict[str, str] | None = None) -> tuple[int, Any]:
    return api(daemon, "POST", path, json.dumps(body).encode(), query)


@pytest.fixture
def container(daemon: Any, busybox: str) -> Iterator[str]:
    """A stopped container, removed afterwards."""
    status, reply = _post(daemon, "/containers/create", {"Image": "busybox", "Cmd": ["true"]})
    assert status == 201, reply
    yield reply["Id"]
    api(daemon, "DELETE", f"/containers/{reply['Id']}", query={"force": "1"})


def _inspect(daemon: Any, cid: str) -> dict[str, Any]:
    status, info = api(daemon, "GET", f"/containers/{cid}/json")
    assert status == 200, info
    return info  # type: ignore[no-any-return]


# ---- commit ------------------------------------------------------------------
@pytest.mark.parametrize("config,message", [
    ({"Labels": [None, None]},
     "json: cannot unmarshal array into Go struct field Config.Labels of type map[string]string"),
    ({"Labels": {"a": False}}, "json: cannot unmarshal bool into Go struct field Config.Labels of type string"),
    ({"Cmd": 5}, "json: cannot unmarshal number 5 into Go struct field Config.Cmd of type strslice.StrSlice"),
    ({"Healthcheck": {"Interval": "x"}},
     "json: cannot unmarshal string into Go struct field HealthConfig.Healthcheck.Interval of type time.Duration"),
    ([], "json: cannot unmarshal array into Go value of type Config"),
])
def test_commit_with_bad_config_is_400(daemon: Any, container: str, config: Any, message: str) -> None:
    before = image_ids(daemon)
    status, reply = _post(daemon, "/commit", config, {"container": container, "repo": "badcommit"})
    assert (status, reply["message"]) == (400, message)
    assert image_ids(daemon) == before
    assert daemon.docker("images", check=True).returncode == 0


# ---- create ------------------------------------------------------------------
@pytest.mark.parametrize("body,message", [
    ({"HostConfig": {"Memory": 2 ** 70}},
     ("json: cannot unmarshal number 1180591620717411303424 into Go struct field HostConfig.HostConfig.Memory "
     "of type int64")),
    ({"HostConfig": {"Memory": 1.5}}, "into Go struct field HostConfig.HostConfig.Memory of type int64"),
    ({"HostConfig": {"BlkioWeight": 70000}}, "of type uint16"),
    ({"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": 80}]}}},
     "json: cannot unmarshal number 80 into Go struct field PortBinding.HostConfig.PortBindings.HostPort"),
    ({"Healthcheck": {"Interval": "x"}},
     "json: cannot unmarshal string into Go struct field HealthConfig.Healthcheck.Interval of type time.Duration"),
    ({"StopTimeout": "x"},
     "json: cannot unmarshal string into Go struct field ContainerConfigWrapper.StopTimeout of type int"),
    ({"NetworkingConfig": {"EndpointsConfig": {"bridge": {"Aliases": "a"}}}},
     ("json: cannot unmarshal string into Go struct field EndpointSettings.NetworkingConfig.EndpointsConfig"
     ".Aliases of type []string")),
])
def test_create_with_bad_types_is_400(daemon: Any, busybox: str, body: dict[str, Any], message: str) -> None:
    before = container_ids(daemon)
    status, reply = _post(daemon, "/containers/create", {"Image": "busybox", "Cmd": ["true"], **body})
    assert status == 400, reply
    assert message in reply["message"]
    assert container_ids(daemon) == before


def test_create_matches_field_names_like_go(daemon: Any, busybox: str) -> None:
    """Go's decoder matches keys case-insensitively, so a lower-case key is the field, and is checked."""
    status, reply = _post(daemon, "/containers/create", {"image": "busybox", "cmd": ["true"],
                                                          "hostconfig": {"memory": "x"}})
    assert status == 400 and "HostConfig.HostConfig.Memory of type int64" in reply["message"]


@pytest.mark.parametrize("query,message", [
    ({"name": "\x00"}, "Invalid container name (\x00), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
    ({"platform": "bogus"}, '"bogus": unknown operating system or architecture: invalid argument'),
])
def test_create_with_bad_query_is_400(daemon: Any, busybox: str, query: dict[str, str], message: str) -> None:
    before = container_ids(daemon)
    status, reply = _post(daemon, "/containers/create", {"Image": "busybox", "Cmd": ["true"]}, query)
    assert (status, reply["message"]) == (400, message)
    assert container_ids(daemon) == before


# ---- update ------------------------------------------------------------------
@pytest.mark.parametrize("body,message", [
    ({"RestartPolicy": {"Name": ["always"]}},
     "json: cannot unmarshal array into Go struct field RestartPolicy.RestartPolicy.Name of type string"),
    ({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": "x"}},
     "json: cannot unmarshal string into Go struct field RestartPolicy.RestartPolicy.MaximumRetryCount of type int"),
    ({"MemorySwap": -(2 ** 70)}, "into Go struct field UpdateConfig.MemorySwap of type int64"),
    ({"Memory": "1g"}, "json: cannot unmarshal string into Go struct field UpdateConfig.Memory of type int64"),
])
def test_update_with_bad_types_is_400(daemon: Any, container: str, body: dict[str, Any], message: str) -> None:
    before = _inspect(daemon, container)["HostConfig"]
    status, reply = _post(daemon, f"/containers/{container}/update", body)
    assert status == 400, reply
    assert message in reply["message"]
    assert _inspect(daemon, container)["HostConfig"] == before


def test_update_with_huge_negative_swap_is_400(daemon: Any, container: str) -> None:
    before = _inspect(daemon, container)["HostConfig"]
    status, reply = _post(daemon, f"/containers/{container}/update", {"Memory": 8 << 20, "MemorySwap": -(2 ** 62)})
    assert status == 400, reply
    assert "swap" in reply["message"].lower()
    assert _inspect(daemon, container)["HostConfig"] == before


def test_update_ignores_fields_outside_update_config(daemon: Any, container: str) -> None:
    """ShmSize is not in Docker's UpdateConfig: like any unknown field it is ignored, whatever its type."""
    before = _inspect(daemon, container)["HostConfig"]
    status, reply = _post(daemon, f"/containers/{container}/update", {"ShmSize": "big"})
    assert status == 200, reply
    assert _inspect(daemon, container)["HostConfig"] == before


def test_restart_with_huge_timeout(daemon: Any, busybox: str) -> None:
    """dockerd multiplies t by a second without a range check: a timeout beyond any wait is a long wait."""
    status, reply = _post(daemon, "/containers/create", {
        "Image": "busybox", "Cmd": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]})
    cid = reply["Id"]
    try:
        assert api(daemon, "POST", f"/containers/{cid}/start")[0] == 204
        status, reply = api(daemon, "POST", f"/containers/{cid}/restart", query={"t": "17242111675"})
        assert status == 204, reply
        assert _inspect(daemon, cid)["State"]["Running"]
    finally:
        api(daemon, "DELETE", f"/containers/{cid}", query={"force": "1"})


def test_restart_with_out_of_range_timeout_is_400(daemon: Any, container: str) -> None:
    status, reply = api(daemon, "POST", f"/containers/{container}/restart", query={"t": str(2 ** 70)})
    assert (status, reply["message"]) == (
        400, f'invalid value for t: strconv.Atoi: parsing "{2 ** 70}": value out of range')


# ---- exec, networks, volumes ---------------------------------------------------
def test_exec_create_with_bad_types_is_400(daemon: Any, container: str) -> None:
    status, reply = _post(daemon, f"/containers/{container}/exec", {"Cmd": "true"})
    assert (status, reply["message"]) == (
        400, "json: cannot unmarshal string into Go struct field ExecConfig.Cmd of type []string")


@pytest.mark.parametrize("body,message", [
    ({"IPAM": {"Config": [{"Subnet": "10.250.3.0/24", "AuxiliaryAddresses": "x"}]}},
     ("json: cannot unmarshal string into Go struct field IPAMConfig.IPAM.Config.AuxiliaryAddresses "
     "of type map[string]string")),
    ({"IPAM": {"Config": [{"Subnet": "10.250.3.0/24", "AuxiliaryAddresses": {"h": "x"}}]}},
     "non parsable secondary ip address (h:x) passed for network badnet"),
    ({"Options": {"com.docker.network.driver.mtu": "abc"}},
     'strconv.Atoi: parsing "abc": invalid syntax'),
    ({"Labels": {"a": 1}},
     "json: cannot unmarshal number 1 into Go struct field NetworkCreateRequest.Labels of type string"),
])
def test_network_create_with_bad_input_is_400(daemon: Any, body: dict[str, Any], message: str) -> None:
    status, reply = _post(daemon, "/networks/create", {"Name": "badnet", **body})
    if status < 300:
        api(daemon, "DELETE", "/networks/badnet")
    assert status == 400, reply
    assert message in reply["message"]
    assert api(daemon, "GET", "/networks/badnet")[0] == 404


def test_volume_create_with_bad_types_is_400(daemon: Any) -> None:
    status, reply = _post(daemon, "/volumes/create", {"Name": "badvol", "Labels": {"a": []}})
    assert (status, reply["message"]) == (
        400, "json: cannot unmarshal array into Go struct field VolumeCreateBody.Labels of type string")
    assert api(daemon, "GET", "/volumes/badvol")[0] == 404


# ---- query parameters ----------------------------------------------------------
@pytest.mark.parametrize("method,path,query,message", [
    ("POST", "/build/prune", {"filters": "notjson"}, "invalid filter"),
    ("GET", "/system/df", {"type": "bogus"}, "unknown object type: bogus"),
    ("POST", "/images/create", {"fromImage": "busybox", "platform": "bogus"},
     '"bogus": unknown operating system or architecture: invalid argument'),
])
def test_bad_query_is_400(daemon: Any, method: str, path: str, query: dict[str, str], message: str) -> None:
    status, reply = api(daemon, method, path, query=query)
    assert status == 400, reply
    assert message in reply["message"]


# ---- archive -------------------------------------------------------------------
def test_put_archive_with_dangling_hard_link_is_400(daemon: Any, container: str) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.LNKTYPE, "no-such-target"
        tar.addfile(link)
    status, reply = api(daemon, "PUT", f"/containers/{container}/archive", buf.getvalue(), {"path": "/tmp"})
    assert status in (400, 404), reply
    assert "no-such-target" in reply["message"]
    assert _inspect(daemon, container)["State"]["Status"] == "created"


# ---- racing an exit --------------------------------------------------------------
@pytest.mark.parametrize(("runtime", "runc_says"), [
    ("runc", "container not running"), ("runc", "cannot pause: process already finished"),
    ("runc", 'container "x" does not exist'), ("crun", "the container `abc` is not running"),
    ("crun", "kill container: No such process"),
    ("crun", "error opening file `/run/pydock/crun/abc/status`: No such file or directory"),
])
def test_runc_on_an_exited_container_is_409(tmp_path: Any, runtime: str, runc_says: str) -> None:
    """kill/pause/update racing the container's exit: the OCI runtime's complaint is Docker's 409, not a 500."""
    from engine.config import EngineConfig
    from engine.errors import Conflict
    from engine.runtime.runc import Runtime

    fake = tmp_path / runtime
    fake.write_text(f"#!/bin/sh\necho '{runc_says}' >&2\nexit 1\n")
    fake.chmod(0o755)
    rt = Runtime(EngineConfig(data_root=str(tmp_path / "data"), exec_root=str(tmp_path / "exec"),
                              default_runtime=runtime, **{runtime: str(fake)}))
    for act in (lambda: rt.pause("abc"), lambda: rt.kill("abc", 9), lambda: rt.resume("abc")):
        with pytest.raises(Conflict, match="^Container abc is not running$"):
            act()
