"""Property-based API fuzzing: requests generated from moby's swagger never get a 5xx.

schemathesis generates requests for the Engine API's read-only operations and
for the create/update calls whose bodies pydock type-checks (container
create/update, network and volume create). Path parameters name real
objects so the handlers get past the lookup. Whatever the fuzz creates is
removed afterwards.
"""
from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from test_hostile_input import _UnixConnection, api

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings

SWAGGER = "/usr/share/gocode/src/github.com/docker/docker/api/swagger.yaml"
EXAMPLES = 15  # per operation: about 60 operations stay well under two minutes

# Operations that would block until the client leaves, and so would hang the fuzz.
HANGS = {
    "GET /events": "streams until `until`, which the fuzz rarely sets",
    "GET /containers/{id}/logs": "follow=1 streams for as long as the container runs",
    "GET /containers/{id}/stats": "stream=1 (the default) streams forever",
    "GET /containers/{id}/attach/ws": "a websocket upgrade that stays attached",
    "GET /services/{id}/logs": "swarm logs stream",
    "GET /tasks/{id}/logs": "swarm logs stream",
}
# Operations that reach the network (Docker Hub), unreachable from the test machine.
NETWORK = {"GET /images/search", "GET /distribution/{name}/json"}
BODIES = {"POST /containers/create", "POST /containers/{id}/update", "POST /networks/create", "POST /volumes/create"}
# dockerd answers 503 for swarm operations on a node outside a swarm; pydock says the same.
SWARM_PREFIXES = ("/swarm", "/nodes", "/services", "/tasks", "/secrets", "/configs")


def _schema() -> Any:
    if not os.path.exists(SWAGGER):
        pytest.skip(f"{SWAGGER} missing (apt-get install golang-github-docker-docker-dev)")
    return schemathesis.openapi.from_path(SWAGGER)


def _operations() -> list[str]:
    if not os.path.exists(SWAGGER):
        return []
    labels = [r.ok().label for r in schemathesis.openapi.from_path(SWAGGER).get_all_operations()]
    return [label for label in labels if label.split()[0] in ("GET", "HEAD") or label in BODIES]


def _allowed_5xx(path: str, status: int) -> bool:
    return status == 503 and path.startswith(SWARM_PREFIXES)


@pytest.fixture(scope="module")
def objects(daemon: Any, busybox: str) -> Iterator[dict[str, str]]:
    """Real IDs for path parameters; afterwards everything the fuzz made is removed."""
    before = {
        "containers": {c["Id"] for c in api(daemon, "GET", "/containers/json", query={"all": "1"})[1]},
        "networks": {n["Id"] for n in api(daemon, "GET", "/networks")[1]},
        "volumes": {v["Name"] for v in api(daemon, "GET", "/volumes")[1]["Volumes"] or []},
    }
    status, c = api(daemon, "POST", "/containers/create", b'{"Image": "busybox", "Cmd": ["sleep", "600"]}')
    assert status == 201, c
    assert api(daemon, "POST", f"/containers/{c['Id']}/start")[0] == 204
    status, ex = api(daemon, "POST", f"/containers/{c['Id']}/exec", b'{"Cmd": ["true"]}')
    assert status == 201, ex
    status, net = api(daemon, "POST", "/networks/create", b'{"Name": "fuzz-net"}')
    assert status == 201, net
    status, vol = api(daemon, "POST", "/volumes/create", b'{"Name": "fuzz-vol"}')
    assert status == 201, vol
    yield {"container": c["Id"], "exec": ex["Id"], "network": net["Id"], "volume": "fuzz-vol", "image": "busybox"}
    for cid in {x["Id"] for x in api(daemon, "GET", "/containers/json", query={"all": "1"})[1]} - before["containers"]:
        api(daemon, "DELETE", f"/containers/{cid}", query={"force": "1"})
    for nid in {n["Id"] for n in api(daemon, "GET", "/networks")[1]} - before["networks"]:
        api(daemon, "DELETE", f"/networks/{nid}")
    for name in {v["Name"] for v in api(daemon, "GET", "/volumes")[1]["Volumes"] or []} - before["volumes"]:
        api(daemon, "DELETE", f"/volumes/{urllib.parse.quote(name, safe='')}")


def _path_parameters(path: str, objects: dict[str, str]) -> dict[str, str]:
    area = path.split("/")[1]
    kind = {"containers": "container", "exec": "exec", "networks": "network", "volumes": "volume",
            "images": "image"}.get(area)
    if kind is None:
        return {}
    return {"id" if "{id}" in path else "name": objects[kind]}


def _send(daemon: Any, case: Any) -> tuple[int, bytes]:
    query = urllib.parse.urlencode(case.query or {}, doseq=True)
    url = "/v1.41" + case.formatted_path + ("?" + query if query else "")
    body = None
    headers = {}
    if case.body is not None and case.method == "POST":
        import json
        body = json.dumps(case.body).encode()
        headers["Content-Type"] = "application/json"
    conn = _UnixConnection(daemon.socket)
    conn.timeout = 20  # a request that hangs is a failure of its own, not a stuck suite
    try:
        conn.request(case.method, url, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read(2000)
    finally:
        conn.close()


def _prepare(case: Any, objects: dict[str, str]) -> None:
    """Real objects in the path; container bodies that stay on the host's side of safety."""
    case.path_parameters = {**(case.path_parameters or {}), **_path_parameters(case.path, objects)}
    if case.path == "/containers/create" and isinstance(case.body, dict):
        case.body["Image"] = "busybox"  # get past the image lookup into the config checks
        host = case.body.get("HostConfig")
        if isinstance(host, dict):
            for key in ("Binds", "Mounts", "VolumesFrom", "Devices"):  # no random host paths
                host.pop(key, None)
    if isinstance(case.query, dict):
        case.query.pop("follow", None)


@pytest.mark.parametrize("label", _operations())
def test_fuzz_never_5xx(daemon: Any, objects: dict[str, str], label: str) -> None:
    if label in HANGS:
        pytest.skip(HANGS[label])
    if label in NETWORK:
        pytest.skip("needs Docker Hub")
    method, path = label.split(" ", 1)
    op = _schema()[path][method]
    failures: list[str] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy())
    def run(case: Any) -> None:
        _prepare(case, objects)
        status, body = _send(daemon, case)
        if status >= 500 and not _allowed_5xx(path, status):
            failures.append(f"{status} {case.method} {case.formatted_path} query={case.query!r} "
                            f"body={str(case.body)[:300]!r}: {body[:300]!r}")

    run()
    assert not failures, "\n".join(failures[:5])
