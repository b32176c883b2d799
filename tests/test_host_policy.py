"""Host access through Jupyter: refused unless `PydockExtension.allow_host_access` is set.

Everything goes through a real Jupyter server with the docker CLI, as a holder
of the Jupyter token would do it; pydockd itself keeps Docker's behaviour.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest
from conftest import DOCKER, _cleanup_mounts
from test_jupyter_server import JupyterServer

SETTING = "(set PydockExtension.allow_host_access = True to allow)"
PREFIX = "host access is disabled in this Jupyter server: "


def _server(busybox_tar: str, *args: str) -> Iterator[JupyterServer]:
    root = tempfile.mkdtemp(prefix="pydock-hp-", dir="/tmp")
    server = JupyterServer(root, args)
    server.start()
    try:
        if not any(a.startswith("--PydockExtension.daemon_socket") for a in args):
            out = server.docker("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest")
            assert out.returncode == 0, out.stderr
        yield server
    finally:
        ids = server.docker("ps", "-aq").stdout.split()
        if ids:
            server.docker("rm", "-f", *ids)
        vols = server.docker("volume", "ls", "-q").stdout.split()
        if vols:
            server.docker("volume", "rm", "-f", *vols)
        server.stop()
        _cleanup_mounts(root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def jupyter(busybox_tar: str) -> Iterator[JupyterServer]:
    yield from _server(busybox_tar)


@pytest.fixture(scope="module")
def open_jupyter(busybox_tar: str) -> Iterator[JupyterServer]:
    yield from _server(busybox_tar, "--PydockExtension.allow_host_access=True")


@pytest.fixture(scope="module")
def proxy_jupyter(daemon, busybox: str, busybox_tar: str) -> Iterator[JupyterServer]:  # type: ignore[no-untyped-def]
    yield from _server(busybox_tar, f"--PydockExtension.daemon_socket={daemon.socket}")


def _refused(out: subprocess.CompletedProcess[str], what: str) -> None:
    assert out.returncode != 0, out.stdout
    assert PREFIX + what in out.stderr, out.stderr
    assert SETTING in out.stderr, out.stderr


def _outside_links(root: str) -> dict[str, str]:
    """Paths inside the root directory that lead out of it, by `..` and by a symlink."""
    link = os.path.join(root, "to-etc")
    if not os.path.islink(link):
        os.symlink("/etc", link)
    return {"dotdot": os.path.join(root, "..", "..", "etc"), "symlink": link}


CREATE_REFUSALS = [
    (["--privileged"], "Privileged containers are not allowed"),
    (["--pid", "host"], "PidMode host is not allowed"),
    (["--ipc", "host"], "IpcMode host is not allowed"),
    (["--network", "host"], "NetworkMode host is not allowed"),
    (["--userns", "host"], "UsernsMode host is not allowed"),
    (["--uts", "host"], "UTSMode host is not allowed"),
    (["--device", "/dev/null"], "host devices (Devices) are not allowed"),
    (["--gpus", "all"], "host devices (DeviceRequests) are not allowed"),
    (["--device-cgroup-rule", "c 1:3 rwm"], "host devices (DeviceCgroupRules) are not allowed"),
    (["--cap-add", "SYS_ADMIN"], "capabilities beyond Docker's default set are not allowed: CAP_SYS_ADMIN"),
    (["--cap-add", "ALL"], "capabilities beyond Docker's default set are not allowed: ALL"),
    (["-v", "/:/host"], "bind mounts of host paths outside"),
    (["--mount", "type=bind,src=/etc,dst=/host"], "bind mounts of host paths outside"),
    (["--mount", "type=volume,dst=/host,volume-opt=type=none,volume-opt=o=bind,volume-opt=device=/etc"],
     "bind mounts of host paths outside"),
]


@pytest.mark.parametrize("args,what", CREATE_REFUSALS, ids=[" ".join(a)[:40] for a, _ in CREATE_REFUSALS])
def test_create_with_host_access_is_refused(jupyter, args, what):
    before = jupyter.docker("ps", "-aq").stdout
    _refused(jupyter.docker("create", *args, "busybox", "true"), what)
    assert jupyter.docker("ps", "-aq").stdout == before


@pytest.mark.parametrize("kind", ["dotdot", "symlink"])
def test_binds_that_lead_out_of_root_dir_are_refused(jupyter, kind):
    path = _outside_links(jupyter.root)[kind]
    _refused(jupyter.docker("create", "-v", f"{path}:/host", "busybox", "true"), "bind mounts of host paths outside")
    _refused(jupyter.docker("create", "--mount", f"type=bind,src={path},dst=/host", "busybox", "true"),
             "bind mounts of host paths outside")


def test_binds_inside_root_dir_and_default_caps_work(jupyter):
    shared = os.path.join(jupyter.root, "shared")
    os.makedirs(shared, exist_ok=True)
    with open(os.path.join(shared, "note"), "w") as f:
        f.write("from the notebook dir\n")
    out = jupyter.docker("run", "--rm", "-v", f"{shared}:/x", "--mount", f"type=bind,src={shared},dst=/y",
                         "--cap-drop", "ALL", "--cap-add", "CHOWN", "--cap-add", "net_raw", "busybox",
                         "cat", "/x/note", "/y/note")
    assert (out.returncode, out.stdout) == (0, "from the notebook dir\n" * 2), out.stderr
    out = jupyter.docker("run", "--rm", "-v", "named-vol:/v", "--network", "none", "busybox", "true")
    assert out.returncode == 0, out.stderr


def test_privileged_exec_is_refused(jupyter):
    cid = jupyter.docker("run", "-d", "busybox", "sleep", "100").stdout.strip()
    assert cid
    _refused(jupyter.docker("exec", "--privileged", cid, "true"), "privileged exec is not allowed")
    out = jupyter.docker("exec", cid, "echo", "plain")
    assert (out.returncode, out.stdout) == (0, "plain\n"), out.stderr
    jupyter.docker("rm", "-f", cid)


def test_volumes_mounting_the_host_are_refused(jupyter):
    _refused(jupyter.docker("volume", "create", "-o", "type=none", "-o", "o=bind", "-o", "device=/etc", "v-etc"),
             "bind mounts of host paths outside")
    _refused(jupyter.docker("volume", "create", "-o", "type=ext4", "-o", "device=/dev/sda", "v-disk"),
             "volumes that mount a host device or filesystem (type=ext4) are not allowed")
    assert "v-etc" not in jupyter.docker("volume", "ls", "-q").stdout
    inside = os.path.join(jupyter.root, "vol-src")
    os.makedirs(inside, exist_ok=True)
    for name, opts in (("v-tmp", ["type=tmpfs", "device=tmpfs", "o=size=1m"]),
                       ("v-inside", ["type=none", "o=bind", f"device={inside}"])):
        out = jupyter.docker("volume", "create", *[a for o in opts for a in ("-o", o)], name)
        assert out.returncode == 0, out.stderr
    out = jupyter.docker("run", "--rm", "-v", "v-inside:/v", "busybox", "sh", "-c", "echo hi > /v/f")
    assert out.returncode == 0, out.stderr
    with open(os.path.join(inside, "f")) as f:
        assert f.read() == "hi\n"


def test_build_on_host_network_is_refused(jupyter):
    env = {**os.environ, "DOCKER_HOST": jupyter.docker_host, "DOCKER_CONFIG": jupyter.docker_config,
           "DOCKER_BUILDKIT": "0"}
    out = subprocess.run([DOCKER, "build", "--network", "host", "-q", "-"], input="FROM busybox\nRUN true\n",
                         capture_output=True, text=True, timeout=60, env=env, check=False)
    _refused(out, "builds with network mode host are not allowed")
    out = subprocess.run([DOCKER, "build", "-q", "-"], input="FROM busybox\nRUN true\n",
                         capture_output=True, text=True, timeout=60, env=env, check=False)
    assert out.returncode == 0, out.stderr


def test_allow_host_access_restores_docker_behaviour(open_jupyter):
    out = open_jupyter.docker("run", "--rm", "--privileged", "--network", "host", "--pid", "host",
                              "--cap-add", "SYS_ADMIN", "-v", "/etc:/h:ro", "busybox", "cat", "/h/hostname")
    assert out.returncode == 0, out.stderr
    with open("/etc/hostname") as f:
        assert out.stdout == f.read()
    out = open_jupyter.docker("volume", "create", "-o", "type=none", "-o", "o=bind", "-o", "device=/etc", "v-etc")
    assert out.returncode == 0, out.stderr


def test_proxy_mode_applies_the_same_checks(proxy_jupyter, daemon):
    before = daemon.docker("ps", "-aq").stdout
    _refused(proxy_jupyter.docker("create", "--privileged", "busybox", "true"),
             "Privileged containers are not allowed")
    _refused(proxy_jupyter.docker("create", "-v", "/:/host", "busybox", "true"), "bind mounts of host paths outside")
    assert daemon.docker("ps", "-aq").stdout == before
    cid = proxy_jupyter.docker("run", "-d", "busybox", "sleep", "100").stdout.strip()
    assert cid
    _refused(proxy_jupyter.docker("exec", "--privileged", cid, "true"), "privileged exec is not allowed")
    proxy_jupyter.docker("rm", "-f", cid)
    privileged = daemon.docker("run", "-d", "--privileged", "busybox", "sleep", "100", check=True).stdout.strip()
    _refused(proxy_jupyter.docker("exec", privileged, "true"), "the container was created with host access")
    daemon.docker("rm", "-f", privileged)
    _refused(proxy_jupyter.docker("volume", "create", "-o", "type=none", "-o", "o=bind", "-o", "device=/etc", "v"),
             "bind mounts of host paths outside")
    shared = os.path.join(proxy_jupyter.root, "shared")
    os.makedirs(shared, exist_ok=True)
    out = proxy_jupyter.docker("run", "--rm", "-v", f"{shared}:/x", "busybox", "true")
    assert out.returncode == 0, out.stderr
    # pydockd itself keeps Docker's behaviour
    out = daemon.docker("run", "--rm", "--privileged", "-v", "/etc:/h:ro", "busybox", "true")
    assert out.returncode == 0, out.stderr


# ---- the policy object alone ----------------------------------------------
@pytest.fixture
def policy(tmp_path):  # type: ignore[no-untyped-def]
    from engine.hostpolicy import NoHostAccess
    (tmp_path / "work").mkdir()
    return NoHostAccess(str(tmp_path / "work"), "here", "Setting")


def _create(body):
    """A create request as the API hands it to the policy: decoded, as the engine decodes it."""
    from engine import wire
    from engine.types.container import ContainerCreateRequest
    return wire.decode(ContainerCreateRequest, body)


def _volume(body):
    from engine import wire
    from engine.types.volume import VolumeCreateRequest
    return wire.decode(VolumeCreateRequest, body)


def _host_configs(containers):
    """A HostConfig lookup over inspect documents by reference, as the policy gets it."""
    from engine import wire
    from engine.types.container import HostConfig
    return lambda ref: wire.decode(HostConfig, containers[ref]["HostConfig"]) if ref in containers else None


def test_policy_compares_whole_path_components(policy, tmp_path):
    from engine.errors import Forbidden
    policy.check_container_create(_create({"HostConfig": {"Binds": [f"{tmp_path}/work:/w",
                                                                    f"{tmp_path}/work/a/../b:/b"]}}))
    with pytest.raises(Forbidden):  # a sibling whose name starts with the root's name is outside
        policy.check_container_create(_create({"HostConfig": {"Binds": [f"{tmp_path}/workshop:/w"]}}))
    with pytest.raises(Forbidden):
        policy.check_volume_create(_volume({"DriverOpts": {"type": "none", "o": "rbind", "device": "work"}}))
    # a symlink before `..`: the engine drops `..` first (leaving the root), resolving first would stay inside
    (tmp_path / "work" / "deep" / "er").mkdir(parents=True)
    (tmp_path / "work" / "a").symlink_to(tmp_path / "work" / "deep" / "er")
    with pytest.raises(Forbidden):
        policy.check_container_create(_create({"HostConfig": {"Mounts": [
            {"Type": "bind", "Source": f"{tmp_path}/work/a/../../outside", "Target": "/x"}]}}))


def test_policy_reads_values_as_the_engine_does(policy):
    from engine.errors import Forbidden, InvalidParameter
    with pytest.raises(InvalidParameter):  # decoded first: the engine's 400 before the policy looks
        _create({"HostConfig": {"Privileged": 1}})
    with pytest.raises(Forbidden, match="Privileged"):
        policy.check_container_create(_create({"hostconfig": {"privileged": True}}))  # Go folds key case
    policy.check_container_create(_create({"HostConfig": {"CapAdd": ["chown", "CAP_NET_RAW"], "Privileged": False}}))
    policy.check_container_create(_create({"HostConfig": {"CapAdd": ["NOT_A_CAP"]}}))  # the engine's 400
    with pytest.raises(Forbidden, match="NET_ADMIN"):
        policy.check_container_create(_create({"HostConfig": {"CapAdd": "net_admin"}}))  # a StrSlice string
    policy.check_volume_create(_volume({"Driver": "local", "DriverOpts": {"type": "tmpfs", "device": "tmpfs"}}))


def test_forwarded_requests_match_pydockd_routes(policy):
    from engine.api import check_forwarded
    from engine.errors import Forbidden
    containers = {"plain": {"HostConfig": {}}, "priv": {"HostConfig": {"Privileged": True}}}

    def check(path: str, body: bytes = b"{}", query: str = "") -> None:
        check_forwarded(policy, "POST", path, query, body, lambda ref: containers.get(ref, {}))

    body = b'{"HostConfig": {"Privileged": true}}'
    for path in ("/containers/create", "/v1.41/containers/create"):
        with pytest.raises(Forbidden):
            check(path, body, "name=x")
    check("/containers/x/start", body)
    with pytest.raises(Forbidden, match="created with host access"):
        check("/containers/create", b'{"HostConfig": {"NetworkMode": "container:priv"}}')
    check("/containers/create", b"{not json")
    with pytest.raises(Forbidden):
        check("/v1.41/build", b"", "t=x&networkmode=host")
    with pytest.raises(Forbidden):
        check("/containers/plain/exec", b'{"Privileged": true, "Cmd": ["sh"]}')
    check("/containers/plain/exec", b'{"Cmd": ["sh"]}')
    check("/containers/missing/attach?stream=1")
    for path in ("/containers/priv/exec", "/v1.41/containers/priv/attach", "/containers/priv/start",
                 "/containers/priv/restart"):
        with pytest.raises(Forbidden, match=r"the container was created with host access \(Privileged"):
            check(path, b'{"Cmd": ["sh"]}')
    with pytest.raises(Forbidden):
        check_forwarded(policy, "PUT", "/containers/priv/archive", "path=/tmp", b"tar", containers.__getitem__)
    check_forwarded(policy, "GET", "/containers/priv/archive", "path=/tmp", b"", containers.__getitem__)


def test_sharing_is_followed_through_containers(policy):
    from engine.errors import Forbidden
    containers = {"a": {"HostConfig": {"NetworkMode": "container:b"}}, "b": {"HostConfig": {"NetworkMode": "host"}},
                  "loop": {"HostConfig": {"IpcMode": "container:loop"}}}
    with pytest.raises(Forbidden, match="NetworkMode host"):
        policy.check_container_sharing(_create({"HostConfig": {"PidMode": "container:a"}}),
                                       _host_configs(containers))
    policy.check_container_sharing(_create({"HostConfig": {"VolumesFrom": ["loop", "missing"]}}),
                                   _host_configs(containers))


def test_containers_made_with_host_access_cannot_be_used(busybox_tar):
    """A privileged container pydockd left in the data root: no exec or attach into it through Jupyter."""
    from conftest import Daemon
    root = tempfile.mkdtemp(prefix="pydock-hpx-", dir="/tmp")
    d = Daemon(root=root, log_path=os.path.join(root, "pydockd.log"))
    d.env = {**os.environ, "DOCKER_HOST": d.url, "DOCKER_CONFIG": os.path.join(root, "docker-config")}
    d.start()
    server = JupyterServer(root)  # the same data root, once pydockd is gone
    try:
        d.docker("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest", check=True)
        cid = d.docker("run", "-d", "--privileged", "busybox", "sleep", "100", check=True).stdout.strip()
        d.docker("run", "-d", "--name", "hostnet", "--network", "host", "busybox", "sleep", "100", check=True)
        d.docker("create", "--name", "binder", "-v", "/etc:/h", "busybox", "true", check=True)
        d.stop()
        server.start()
        what = "the container was created with host access (Privileged containers are not allowed)"
        _refused(server.docker("exec", cid, "true"), what)
        _refused(server.docker("create", "--network", "container:hostnet", "busybox", "true"),
                 "the container was created with host access (NetworkMode host is not allowed)")
        _refused(server.docker("create", "--volumes-from", "binder:ro", "busybox", "true"),
                 "the container was created with host access (bind mounts of host paths outside")
        _refused(server.docker("start", "binder"),
                 "the container was created with host access (bind mounts of host paths outside")
        _refused(server.docker("restart", cid), what)
        note = os.path.join(root, "note")
        with open(note, "w") as f:
            f.write("x\n")
        _refused(server.docker("cp", note, f"{cid}:/tmp/note"), what)
        out = server.docker("create", "--volumes-from", "nope", "busybox", "true")
        assert "host access" not in out.stderr and out.returncode != 0
        assert server.docker("rm", "-f", "hostnet", "binder").returncode == 0
        out = server.docker("attach", cid)  # the CLI shows only the status of a refused upgrade
        assert out.returncode != 0 and "received 403" in out.stderr, out.stderr
        assert server.docker("rm", "-f", cid).returncode == 0
    finally:
        server.stop()
        d.stop()
        _cleanup_mounts(root)
        shutil.rmtree(root, ignore_errors=True)
