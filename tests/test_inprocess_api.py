"""The API routes and services in-process on the in-memory runtime: no daemon, runc or root, in seconds.

Tornado's test client talks to `make_app` over an Engine built with
`FakeRuntime` and `FakeNetworkDriver`; the black-box suites (real pydockd,
real runc) stay the end-to-end layer. Hijacked streams (attach, exec start)
are read from a raw socket in a thread while the test's IO loop serves them.
"""
from __future__ import annotations

import asyncio
import hashlib
import http.client
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import pytest
from tornado.testing import AsyncHTTPTestCase

from engine.api import make_app
from engine.api.containers import summaries
from engine.config import EngineConfig
from engine.engine import Engine
from engine.filters import Filters
from engine.network.dns import TYPE_AAAA
from engine.network.driver import Interface
from engine.network.fakedriver import FakeNetworkDriver
from engine.network.firewall import Bridge, PortRule
from engine.runtime.base import ContainerRuntime
from engine.runtime.fake import FakeRuntime
from engine.runtime.rootfs import CopiedRootFS
from pydock_common.stdcopy import MUX, STDOUT, demux

T = TypeVar("T")

# Audit events of file and process access (an audit hook cannot be removed: one, installed once, records only
# for the thread that asked, while it asks)
FILE_EVENTS = frozenset({"open", "os.listdir", "os.scandir", "os.walk", "glob.glob", "subprocess.Popen", "os.exec"})
_audited: dict[int, list[str]] = {}
_audit_lock = threading.Lock()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event in FILE_EVENTS:
        seen = _audited.get(threading.get_ident())
        if seen is not None:
            seen.append(f"{event} {args[0] if args else ''}")


@contextmanager
def file_access() -> Iterator[list[str]]:
    """The files opened or listed and the processes started by this thread inside the block."""
    with _audit_lock:
        if not _audited.get(-1):
            sys.addaudithook(_audit)
            _audited[-1] = ["installed"]
    seen: list[str] = []
    _audited[threading.get_ident()] = seen
    try:
        yield seen
    finally:
        del _audited[threading.get_ident()]


@contextmanager
def runtime_calls(runtime: ContainerRuntime) -> Iterator[list[str]]:
    """The runtime methods this thread called inside the block (the monitors' threads call on)."""
    me, seen = threading.get_ident(), list[str]()
    patches = []
    for name in (n for n in dir(ContainerRuntime) if not n.startswith("_")):
        real = getattr(runtime, name)

        def counted(*args: Any, _name: str = name, _real: Any = real, **kwargs: Any) -> Any:
            if threading.get_ident() == me:
                seen.append(_name)
            return _real(*args, **kwargs)
        patches.append(mock.patch.object(runtime, name, counted))
    for p in patches:
        p.start()
    try:
        yield seen
    finally:
        for p in patches:
            p.stop()


def _tar(files: dict[str, bytes], owners: dict[str, tuple[int, int]] | None = None) -> bytes:
    """Entries owned by the caller unless `owners` names others (by entry name)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.uid, info.gid = (owners or {}).get(name, (os.geteuid(), os.getegid()))
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tiny_image_tar(tag: str = "tiny:latest", owners: dict[str, tuple[int, int]] | None = None) -> bytes:
    """A `docker save` archive of a one-layer image holding two files (owned by `owners`, else the caller)."""
    layer = _tar({"hello.txt": b"hello\n", "etc/motd": b"hi\n"}, owners)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["echo", "hi"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": ["l1/layer.tar"]}]).encode()
    return _tar({"manifest.json": manifest, config_name: config, "l1/layer.tar": layer})


class InProcessApi(AsyncHTTPTestCase):
    def get_app(self) -> Any:
        self.tmp = Path(tempfile.mkdtemp(prefix="pydock-inprocess-"))
        cfg = EngineConfig(data_root=str(self.tmp / "data"), exec_root=str(self.tmp / "exec"))
        self.net = FakeNetworkDriver()
        self.engine = Engine(cfg, runtime=FakeRuntime(), rootfs=CopiedRootFS(), network_driver=self.net)
        self.engine.start()  # the predefined networks, as pydockd's start makes them
        return make_app(self.engine)

    def tearDown(self) -> None:
        super().tearDown()
        self.engine.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is None and method in ("POST", "PUT"):
            data = b""
        headers = {"Content-Type": "application/x-tar" if raw is not None else "application/json"}
        resp = self.fetch(path, method=method, body=data, headers=headers, raise_error=False)
        text = resp.body.decode() if resp.body else ""
        try:
            return resp.code, json.loads(text) if text else None
        except ValueError:
            return resp.code, text

    def test_ping_and_version(self) -> None:
        assert self.call("GET", "/_ping") == (200, "OK")
        code, version = self.call("GET", "/v1.41/version")
        assert code == 200 and version["ApiVersion"]

    def test_volumes(self) -> None:
        assert self.call("POST", "/v1.41/volumes/create", {"Name": "v1"})[0] == 201
        code, listing = self.call("GET", "/v1.41/volumes")
        assert code == 200 and [v["Name"] for v in listing["Volumes"]] == ["v1"]
        assert self.call("GET", "/v1.41/volumes/nope")[0] == 404
        assert self.call("DELETE", "/v1.41/volumes/v1")[0] == 204
        assert self.call("GET", "/v1.41/volumes/v1")[0] == 404

    def test_image_load_and_container_records(self) -> None:
        code, _ = self.call("POST", "/v1.41/images/load?quiet=1", raw=tiny_image_tar())
        assert code == 200
        assert self.call("GET", "/v1.41/images/tiny:latest/json")[0] == 200
        code, created = self.call("POST", "/v1.41/containers/create?name=c1", {"Image": "tiny"})
        assert code == 201, created
        assert self.call("POST", "/v1.41/containers/create?name=c1", {"Image": "tiny"})[0] == 409
        assert self.call("POST", "/v1.41/containers/create", {"Image": "missing"})[0] == 404
        assert self.call("POST", "/v1.41/containers/create?name=bad%2Fname", {"Image": "tiny"})[0] == 400
        code, info = self.call("GET", "/v1.41/containers/c1/json")
        assert code == 200 and info["Id"] == created["Id"] and info["State"]["Status"] == "created"
        code, listing = self.call("GET", "/v1.41/containers/json?all=1")
        assert code == 200 and [c["Names"] for c in listing] == [["/c1"]]
        assert self.call("GET", "/v1.41/containers/nope/json")[0] == 404
        assert self.call("DELETE", "/v1.41/containers/c1")[0] == 204
        assert self.call("GET", "/v1.41/containers/c1/json")[0] == 404

    def test_image_whose_files_belong_to_other_users(self) -> None:
        """An image's files belong to root and others; without root the copied rootfs's layers are the engine's."""
        code, body = self.call("POST", "/v1.41/images/load?quiet=1",
                               raw=tiny_image_tar(owners={"hello.txt": (0, 0), "etc/motd": (1234, 4321)}))
        assert code == 200 and "error" not in str(body), body
        code, image = self.call("GET", "/v1.41/images/tiny:latest/json")
        assert code == 200, image
        layers = self.engine.layers
        diff = Path(layers.diff_dir(layers.get(image["RootFS"]["Layers"][0])))
        owners = {name: (st.st_uid, st.st_gid) for name in ("hello.txt", "etc/motd") for st in [(diff / name).stat()]}
        me = (os.geteuid(), os.getegid())
        assert owners == ({"hello.txt": (0, 0), "etc/motd": (1234, 4321)} if me == (0, 0) else
                          {"hello.txt": me, "etc/motd": me})
        code, created = self.call("POST", "/v1.41/containers/create?name=owned", {"Image": "tiny"})
        assert code == 201, created
        assert self.call("POST", "/v1.41/containers/owned/start")[0] == 204
        code, waited = self.call("POST", "/v1.41/containers/owned/wait")
        assert (code, waited["StatusCode"]) == (200, 0)

    def _container(self, cmd: list[str], **config: Any) -> str:
        assert self.call("POST", "/v1.41/images/load?quiet=1", raw=tiny_image_tar())[0] == 200
        code, created = self.call("POST", "/v1.41/containers/create",
                                  {"Image": "tiny", "Cmd": cmd, "HostConfig": {"NetworkMode": "none"}, **config})
        assert code == 201, created
        return str(created["Id"])

    def _health_when(self, cid: str, status: str) -> dict[str, Any]:
        """The container's State.Health once its status is `status` (probes run on their own threads)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            health: dict[str, Any] = self.call("GET", f"/v1.41/containers/{cid}/json")[1]["State"]["Health"]
            if health["Status"] == status:
                return health
            time.sleep(0.02)
        raise AssertionError(f"health of {cid} never became {status}")

    def _commits(self) -> tuple[list[bool], Any]:
        """The durability asked of each outermost MetaStore transaction, and a patch that records them."""
        meta = self.engine.meta
        real = meta.transaction
        asked: list[bool] = []

        def recording(durable: bool = True) -> Any:
            if meta._depth == 0:
                asked.append(durable)
            return real(durable)
        return asked, mock.patch.object(meta, "transaction", recording)

    def test_an_auto_remove_container_never_waits_for_the_disk(self) -> None:
        """The rows of an --rm container (its creation, start, exit and removal) commit without an fsync: the
        daemon's recovery removes it whatever a power loss left of them. A kept container's creation waits."""
        self._container(["true"])  # the image loaded
        asked, patch = self._commits()
        with patch:
            code, created = self.call("POST", "/v1.41/containers/create",
                                      {"Image": "tiny", "Cmd": ["true"], "HostConfig": {"NetworkMode": "none"}})
            assert code == 201, created
        assert asked == [True]
        asked.clear()
        with patch:
            code, created = self.call("POST", "/v1.41/containers/create", {
                "Image": "tiny", "Cmd": ["true"], "HostConfig": {"NetworkMode": "none", "AutoRemove": True}})
            assert code == 201, created
            assert self.call("POST", f"/v1.41/containers/{created['Id']}/start")[0] == 204
            deadline = time.monotonic() + 10
            while self.call("GET", f"/v1.41/containers/{created['Id']}/json")[0] != 404:  # removed once exited
                assert time.monotonic() < deadline
                time.sleep(0.02)
        assert len(asked) >= 3 and not any(asked), asked  # created, started, removed (its exit unsaved)

    def test_healthchecks(self) -> None:
        ms = 1_000_000
        failing = self._container(["sleep", "30"], Healthcheck={"Test": ["CMD", "false"], "Interval": 20 * ms,
                                                                 "Retries": 2})
        hung = self._container(["sleep", "30"], Healthcheck={"Test": ["CMD", "sleep", "5"], "Interval": 20 * ms,
                                                              "Timeout": 50 * ms, "Retries": 1})
        # Go durations reach 292 years, beyond what Python can wait at once: the shared scheduler must live on
        forever = self._container(["sleep", "30"], Healthcheck={"Test": ["CMD", "true"], "Interval": 2**63 - 1})
        passing = self._container(["sleep", "30"], Healthcheck={"Test": ["CMD-SHELL", "exit 0"], "Interval": 20 * ms,
                                                                 "Timeout": 2**63 - 1})
        for cid in (forever, failing, hung, passing):
            assert self.call("POST", f"/v1.41/containers/{cid}/start")[0] == 204
        health = self._health_when(failing, "unhealthy")
        assert health["FailingStreak"] >= 2 and {e["ExitCode"] for e in health["Log"]} == {1}
        entry = self._health_when(hung, "unhealthy")["Log"][0]
        assert (entry["ExitCode"], entry["Output"]) == (-1, "Health check exceeded timeout (50ms)")
        self._health_when(passing, "healthy")
        code, listed = self.call("GET", '/v1.41/containers/json?filters={"health":["healthy"]}')
        assert code == 200 and [c["Id"] for c in listed] == [passing] and listed[0]["Status"].endswith(" (healthy)")
        assert self.call("POST", f"/v1.41/containers/{passing}/kill")[0] == 204
        self._health_when(passing, "unhealthy")  # as dockerd once probing stops
        assert self._health_when(forever, "starting")["Log"] == []
        for cid in (forever, failing, hung, passing):
            assert self.call("DELETE", f"/v1.41/containers/{cid}?force=1")[0] == 204

    def test_run_logs_wait(self) -> None:
        cid = self._container(["echo", "hi"])
        assert self.call("POST", f"/v1.41/containers/{cid}/start")[0] == 204
        code, waited = self.call("POST", f"/v1.41/containers/{cid}/wait")
        assert (code, waited["StatusCode"]) == (200, 0)
        resp = self.fetch(f"/v1.41/containers/{cid}/logs?stdout=1", raise_error=False)
        assert resp.code == 200 and resp.body.endswith(b"hi\n")
        code, info = self.call("GET", f"/v1.41/containers/{cid}/json")
        assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 0
        assert self.call("DELETE", f"/v1.41/containers/{cid}")[0] == 204

    def test_removed_containers_leave_no_bookkeeping(self) -> None:
        """A long-lived daemon keeps nothing per container it no longer has: after an auto-removed run, a
        stop, a kill and forced removals, no exit log, lock or cancelled restart is left."""
        # long enough for the wait below to find it
        auto = self._container(["sleep", "0.5"], HostConfig={"NetworkMode": "none", "AutoRemove": True})
        assert self.call("POST", f"/v1.41/containers/{auto}/start")[0] == 204
        code, waited = self.call("POST", f"/v1.41/containers/{auto}/wait?condition=removed")
        assert (code, waited["StatusCode"]) == (200, 0)
        stopped, killed, running = (self._container(["sleep", "30"]) for _ in range(3))
        for cid in (stopped, killed, running):
            assert self.call("POST", f"/v1.41/containers/{cid}/start")[0] == 204
        assert self.call("POST", f"/v1.41/containers/{stopped}/stop?t=0")[0] == 204
        assert self.call("POST", f"/v1.41/containers/{killed}/kill")[0] == 204
        containers = self.engine.containers
        assert containers._exit_logs and containers._cancelled_restart  # there while the containers are
        for cid in (stopped, killed, running):
            assert self.call("DELETE", f"/v1.41/containers/{cid}?force=1")[0] == 204
        assert containers._exit_logs == {} and containers._cancelled_restart == set()
        assert len(containers._locks) == 0

    def test_stop_exec_and_conflicts(self) -> None:
        cid = self._container(["sleep", "30"])
        assert self.call("POST", f"/v1.41/containers/{cid}/start")[0] == 204
        assert self.call("POST", f"/v1.41/containers/{cid}/start")[0] == 304
        assert self.call("DELETE", f"/v1.41/containers/{cid}")[0] == 409
        code, ex = self.call("POST", f"/v1.41/containers/{cid}/exec", {"Cmd": ["sh", "-c", "exit 3"]})
        assert code == 201, ex
        assert self.call("POST", f"/v1.41/exec/{ex['Id']}/start", {"Detach": False})[0] == 200
        code, exinfo = self.call("GET", f"/v1.41/exec/{ex['Id']}/json")
        assert code == 200 and exinfo["ExitCode"] == 3 and not exinfo["Running"]
        assert self.call("GET", "/v1.41/exec/nope/json")[0] == 404
        assert self.call("POST", f"/v1.41/containers/{cid}/stop?t=1")[0] == 204
        code, info = self.call("GET", f"/v1.41/containers/{cid}/json")
        assert info["State"]["Status"] == "exited"
        assert self.call("POST", f"/v1.41/containers/{cid}/exec", {"Cmd": ["true"]})[0] == 409
        assert self.call("DELETE", f"/v1.41/containers/{cid}")[0] == 204

    def test_pause_kill_restart_and_prune(self) -> None:
        cid = self._container(["sleep", "30"])
        assert self.call("POST", f"/v1.41/containers/{cid}/pause")[0] == 409  # not running yet
        assert self.call("POST", f"/v1.41/containers/{cid}/start")[0] == 204
        assert self.call("POST", f"/v1.41/containers/{cid}/pause")[0] == 204
        code, err = self.call("POST", f"/v1.41/containers/{cid}/pause")
        assert (code, err["message"]) == (409, f"Container {cid} is already paused")
        code, listed = self.call("GET", '/v1.41/containers/json?filters={"status":["paused"]}')
        assert [c["Id"] for c in listed] == [cid]
        assert self.call("POST", f"/v1.41/containers/{cid}/unpause")[0] == 204
        assert self.call("POST", f"/v1.41/containers/{cid}/unpause")[0] == 409
        assert self.call("POST", f"/v1.41/containers/{cid}/restart?t=1")[0] == 204
        code, info = self.call("GET", f"/v1.41/containers/{cid}/json")
        assert info["State"]["Running"] and info["State"]["Status"] == "running"
        assert self.call("POST", f"/v1.41/containers/{cid}/kill")[0] == 204
        code, waited = self.call("POST", f"/v1.41/containers/{cid}/wait")
        assert (code, waited["StatusCode"]) == (200, 137)
        code, err = self.call("POST", f"/v1.41/containers/{cid}/kill")
        assert code == 409 and "is not running" in err["message"]
        code, err = self.call("POST", '/v1.41/containers/prune?filters={"colour":["red"]}')
        assert (code, err["message"]) == (400, "invalid filter 'colour'")
        code, pruned = self.call("POST", "/v1.41/containers/prune")
        assert code == 200 and pruned["ContainersDeleted"] == [cid]
        assert self.call("GET", f"/v1.41/containers/{cid}/json")[0] == 404

    def test_a_container_whose_runtime_is_no_longer_offered_fails_to_start_with_a_400(self) -> None:
        """Created under crun by a daemon that offered it, started by one that does not (crun removed, the
        host's cgroups changed): dockerd's 400, recorded as a failed start, not a 500."""
        offered = mock.PropertyMock(return_value={"runc": "/usr/sbin/runc", "crun": "/usr/bin/crun"})
        with mock.patch.object(EngineConfig, "runtimes", offered):
            cid = self._container(["true"], HostConfig={"NetworkMode": "none", "Runtime": "crun"})
        offered.return_value = {"runc": "/usr/sbin/runc"}
        with mock.patch.object(EngineConfig, "runtimes", offered):
            code, err = self.call("POST", f"/v1.41/containers/{cid}/start")
        assert code == 400, err
        assert err["message"].startswith("unknown or invalid runtime name: crun")
        state = self.call("GET", f"/v1.41/containers/{cid}/json")[1]["State"]
        assert not state["Running"] and state["Error"].startswith("unknown or invalid runtime name: crun")

    def test_an_exit_after_close_is_left_to_the_next_daemons_recovery(self) -> None:
        """Once the engine closes, an exit is not applied halfway while the store and network close: the
        record stays running, and the next engine's recovery records the exit the monitor kept."""
        cid = self._container(["sleep", "30"])
        assert self.call("POST", f"/v1.41/containers/{cid}/start")[0] == 204
        runtime = self.engine.runtime
        self.engine.containers.close()
        runtime.kill(cid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while runtime.read_exit(cid) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # time enough for the watcher to apply the exit, were it still doing so
        assert self.engine.containers.get(cid).state.running
        self.engine.close()
        self.engine = Engine(self.engine.cfg, runtime=runtime, rootfs=CopiedRootFS(), network_driver=self.net)
        self.engine.start()
        state = self.engine.containers.get(cid).state
        assert (state.running, state.exit_code) == (False, 137)

    # ---- networking on the in-memory driver -----------------------------------
    def _run(self, name: str, body: dict[str, Any]) -> str:
        """Create and start container `name` from the tiny image (loaded if needed); its ID."""
        if self.call("GET", "/v1.41/images/tiny:latest/json")[0] == 404:
            assert self.call("POST", "/v1.41/images/load?quiet=1", raw=tiny_image_tar())[0] == 200
        code, created = self.call("POST", f"/v1.41/containers/create?name={name}",
                                  {"Image": "tiny", "Cmd": ["sleep", "30"], **body})
        assert code == 201, created
        code, err = self.call("POST", f"/v1.41/containers/{name}/start")
        assert code == 204, err
        return str(created["Id"])

    def _settings(self, ref: str) -> dict[str, Any]:
        code, info = self.call("GET", f"/v1.41/containers/{ref}/json")
        assert code == 200, info
        return dict(info["NetworkSettings"])

    def test_default_bridge_addresses_and_published_ports(self) -> None:
        cid = self._run("web", {"ExposedPorts": {"80/tcp": {}, "53/udp": {}},
                                "HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1"}]}}})
        pool = self.call("GET", "/v1.41/networks/bridge")[1]["IPAM"]["Config"][0]
        subnet, gateway = ip_network(pool["Subnet"]), pool["Gateway"]
        settings = self._settings(cid)
        ep = settings["Networks"]["bridge"]
        assert ip_address(ep["IPAddress"]) in subnet and ep["IPAddress"] != gateway
        assert (ep["Gateway"], ep["IPPrefixLen"]) == (gateway, subnet.prefixlen)
        assert (settings["IPAddress"], settings["Gateway"], settings["MacAddress"]) == \
            (ep["IPAddress"], gateway, ep["MacAddress"])
        published = settings["Ports"]["80/tcp"]
        assert [b["HostIp"] for b in published] == ["127.0.0.1"] and int(published[0]["HostPort"]) > 0
        host_port = int(published[0]["HostPort"])
        assert settings["Ports"]["53/udp"] is None
        # what the service asked of the kernel
        device = self.net.default_device
        assert self.net.bridges[device].addresses == {(gateway, subnet.prefixlen)}
        sandbox = self.net.netns[settings["SandboxKey"]]
        assert sandbox.loopback_up and sandbox.gateway == gateway
        assert sandbox.links == {"eth0": Interface("eth0", ep["IPAddress"], subnet.prefixlen, gateway)}
        assert [(v.ifname, v.netns, v.mac, v.bridge) for v in self.net.veths.values()] == \
            [("eth0", settings["SandboxKey"], ep["MacAddress"], device)]
        assert self.net.firewall is not None and self.net.firewall[1] == \
            [PortRule("tcp", "127.0.0.1", host_port, ep["IPAddress"], 80, device)]
        code, listed = self.call("GET", "/v1.41/containers/json")
        assert code == 200 and listed[0]["Ports"] == [{"PrivatePort": 53, "Type": "udp"},
                                      {"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": host_port, "Type": "tcp"}]
        assert listed[0]["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == ep["IPAddress"]
        assert self.call("POST", f"/v1.41/containers/{cid}/stop?t=1")[0] == 204
        assert (self.net.netns, self.net.veths, self.net.firewall[1]) == ({}, {}, [])
        settings = self._settings(cid)
        assert (settings["Networks"]["bridge"]["IPAddress"], settings["Ports"], settings["SandboxKey"]) == ("", {}, "")

    def test_container_list_reads_no_runtime_and_no_files(self) -> None:
        """`docker ps` answers from the stored records and the network tables: no runtime call, no file opened
        or listed and no process started, whatever the containers' states (counted, not timed); each row's
        ports and networks are what the container's inspect shows."""
        assert self.call("POST", "/v1.41/networks/create", {"Name": "n1"})[0] == 201
        running = [self._run("web", {"ExposedPorts": {"80/tcp": {}},
                                     "HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1"}]}}}),
                   self._run("db", {"HostConfig": {"NetworkMode": "n1"},
                                    "NetworkingConfig": {"EndpointsConfig": {"n1": {"Aliases": ["database"]}}}}),
                   self._run("quiet", {"HostConfig": {"NetworkMode": "none"}})]
        for i in range(5):
            assert self.call("POST", f"/v1.41/containers/create?name=idle{i}", {"Image": "tiny"})[0] == 201
        assert self.call("POST", "/v1.41/containers/quiet/pause")[0] == 204
        for all_ in (False, True):
            with runtime_calls(self.engine.runtime) as calls, file_access() as files:
                listed = summaries(self.engine, all_, -1, False, Filters())
            assert (len(listed), calls, files) == (8 if all_ else 3, [], [])
        code, rows = self.call("GET", "/v1.41/containers/json?all=1")
        assert code == 200 and len(rows) == 8
        for row in rows:
            info = self._inspect(row["Id"])
            assert row["NetworkSettings"]["Networks"] == info["NetworkSettings"]["Networks"]
            published = {f"{p['PrivatePort']}/{p['Type']}": p for p in row["Ports"]}
            assert set(published) == set(info["NetworkSettings"]["Ports"] or {})
        assert {r["Names"][0]: r["Ports"] for r in rows}["/web"][0]["IP"] == "127.0.0.1"
        assert self.call("POST", "/v1.41/containers/quiet/unpause")[0] == 204
        for cid in running:
            assert self.call("DELETE", f"/v1.41/containers/{cid}?force=1")[0] == 204

    def test_user_network_connect_disconnect_and_dns(self) -> None:
        code, net = self.call("POST", "/v1.41/networks/create",
                              {"Name": "n1", "IPAM": {"Config": [{"Subnet": "10.77.0.0/24"}]}})
        assert code == 201, net
        device = self.net.bridge_name(net["Id"])
        assert self.net.bridges[device].addresses == {("10.77.0.1", 24)}
        assert self.net.resolver is not None and self.net.resolver.listening == {net["Id"]: "10.77.0.1"}
        db = self._run("db", {"HostConfig": {"NetworkMode": "n1"},
                              "NetworkingConfig": {"EndpointsConfig": {"n1": {"Aliases": ["database"]}}}})
        self._run("app", {"HostConfig": {"NetworkMode": "n1"}})
        db_ep, app = self._settings("db")["Networks"]["n1"], self._settings("app")
        app_ip = app["Networks"]["n1"]["IPAddress"]
        assert (db_ep["IPAddress"], app_ip, db_ep["Gateway"]) == ("10.77.0.2", "10.77.0.3", "10.77.0.1")
        assert db_ep["DNSNames"] == ["db", "database", db[:12]] and app["IPAddress"] == ""  # dockerd's order
        assert set(self.call("GET", "/v1.41/networks/n1")[1]["Containers"]) == {db, self._settings_id("app")}

        ask = self.net.resolver.ask
        assert ask("10.77.0.1", app_ip, "db") == ask("10.77.0.1", app_ip, "DATABASE.") == ["10.77.0.2"]
        assert ask("10.77.0.1", app_ip, db[:12]) == ["10.77.0.2"]
        assert ask("10.77.0.1", app_ip, "example.com") is None  # not ours: relayed upstream
        assert ask("10.77.0.1", "10.77.0.99", "db") is None  # not one of our containers: ignored

        assert self.call("POST", "/v1.41/networks/bridge/connect", {"Container": "app"})[0] == 200
        code, err = self.call("POST", "/v1.41/networks/bridge/connect", {"Container": "app"})
        assert (code, err["message"]) == (403, "endpoint with name app already exists in network bridge")
        app = self._settings("app")
        assert set(app["Networks"]) == {"n1", "bridge"} and app["IPAddress"] == app["Networks"]["bridge"]["IPAddress"]
        on_bridge = app["Networks"]["bridge"]
        assert self.net.netns[app["SandboxKey"]].links["eth1"] == \
            Interface("eth1", on_bridge["IPAddress"], on_bridge["IPPrefixLen"], "")  # no second default route
        assert ask("10.77.0.1", app_ip, "db") == ["10.77.0.2"]

        assert self.call("POST", "/v1.41/networks/bridge/disconnect", {"Container": "app"})[0] == 200
        app = self._settings("app")
        assert set(app["Networks"]) == {"n1"} and "eth1" not in self.net.netns[app["SandboxKey"]].links
        assert len(self.net.veths) == 2
        code, err = self.call("POST", "/v1.41/networks/bridge/disconnect", {"Container": "app"})
        assert code == 403 and "is not connected to network bridge" in err["message"]
        code, err = self.call("DELETE", "/v1.41/networks/n1")
        assert code == 403 and "has active endpoints" in err["message"]
        for name in ("db", "app"):
            assert self.call("DELETE", f"/v1.41/containers/{name}?force=1")[0] == 204
        assert self.call("DELETE", "/v1.41/networks/n1")[0] == 204
        assert device not in self.net.bridges and self.net.resolver.listening == {}
        assert (self.net.netns, self.net.veths) == ({}, {})

    def test_ipv6_endpoint_settings_and_links_through_the_driver(self) -> None:
        """IPv6 addresses and routes, link-local IPs, endpoint sysctls, a chosen MAC and links are all
        asked of the driver (the bridge's IPv6 gateway, each interface's configuration, the ip6 table)."""
        code, net = self.call("POST", "/v1.41/networks/create", {
            "Name": "n6", "EnableIPv6": True,
            "IPAM": {"Config": [{"Subnet": "10.78.0.0/24"}, {"Subnet": "fd00:78::/64"}]}})
        assert code == 201, net
        device = self.net.bridge_name(net["Id"])
        bridge = self.net.bridges[device]
        assert (bridge.addresses, bridge.addresses6, self.net.forwarding6) == \
            ({("10.78.0.1", 24)}, {("fd00:78::1", 64)}, True)
        assert self.net.firewall is not None and \
            Bridge(device, "10.78.0.0/24", True, "fd00:78::/64") in self.net.firewall[0]
        sysctl = "net.ipv4.conf.IFNAME.log_martians=1"
        self._run("db", {"MacAddress": "02:42:0a:4e:00:99", "HostConfig": {"NetworkMode": "n6"},
                              "NetworkingConfig": {"EndpointsConfig": {"n6": {
                                  "IPAMConfig": {"IPv6Address": "fd00:78::10", "LinkLocalIPs": ["169.254.7.7"]},
                                  "DriverOpts": {"com.docker.network.endpoint.sysctls": sysctl}}}}})
        settings = self._settings("db")
        ep = settings["Networks"]["n6"]
        assert (ep["IPAddress"], ep["GlobalIPv6Address"], ep["GlobalIPv6PrefixLen"], ep["IPv6Gateway"],
                ep["MacAddress"]) == ("10.78.0.2", "fd00:78::10", 64, "fd00:78::1", "02:42:0a:4e:00:99")
        sandbox = self.net.netns[settings["SandboxKey"]]
        assert sandbox.links == {"eth0": Interface(
            "eth0", "10.78.0.2", 24, "10.78.0.1", "fd00:78::10", 64, "fd00:78::1", ("169.254.7.7",),
            (("net/ipv4/conf/eth0/log_martians", "1"),))}
        assert [v.mac for v in self.net.veths.values()] == ["02:42:0a:4e:00:99"]

        # a user network's endpoint link is an alias only its own container resolves, in both families
        app = self._run("app", {"HostConfig": {"NetworkMode": "n6"},
                                "NetworkingConfig": {"EndpointsConfig": {"n6": {"Links": ["db:store"]}}}})
        self._run("other", {"HostConfig": {"NetworkMode": "n6"}})
        app_ep, other_ep = (self._settings(n)["Networks"]["n6"] for n in ("app", "other"))
        assert app_ep["Links"] == ["db:store"]
        assert self.net.resolver is not None
        ask = self.net.resolver.ask
        assert ask("10.78.0.1", app_ep["IPAddress"], "store") == ["10.78.0.2"]
        assert ask("10.78.0.1", app_ep["IPAddress"], "store", TYPE_AAAA) == ["fd00:78::10"]
        assert ask("10.78.0.1", other_ep["IPAddress"], "store") is None
        assert ask("10.78.0.1", other_ep["IPAddress"], "db", TYPE_AAAA) == ["fd00:78::10"]
        hosts = Path(self._inspect(app)["HostsPath"]).read_text()
        assert f"{app_ep['GlobalIPv6Address']}\t" in hosts

        # legacy links on the default bridge: the child in the parent's /etc/hosts and environment
        kid = self._run("kid", {"Env": ["COLOUR=red"], "ExposedPorts": {"80/tcp": {}}})
        self._run("parent", {"HostConfig": {"Links": ["kid:pet"]}})
        parent = self._inspect("parent")
        assert parent["HostConfig"]["Links"] == ["/kid:/parent/pet"]
        kid_ip = self._settings("kid")["Networks"]["bridge"]["IPAddress"]
        assert f"{kid_ip}\tpet {kid[:12]} kid\n" in Path(parent["HostsPath"]).read_text()
        with open(os.path.join(self.engine.containers.run_dir(parent["Id"]), "config.json")) as f:
            env = json.load(f)["process"]["env"]
        assert {"PET_NAME=/parent/pet", "PET_ENV_COLOUR=red", f"PET_PORT_80_TCP=tcp://{kid_ip}:80"} <= set(env)
        for name in ("parent", "kid", "other", "app", "db"):  # no fake process may outlive the engine
            assert self.call("DELETE", f"/v1.41/containers/{name}?force=1")[0] == 204
        assert self.call("DELETE", "/v1.41/networks/n6")[0] == 204
        assert device not in self.net.bridges and (self.net.netns, self.net.veths) == ({}, {})

    def _inspect(self, ref: str) -> dict[str, Any]:
        code, info = self.call("GET", f"/v1.41/containers/{ref}/json")
        assert code == 200, info
        return dict(info)

    def _settings_id(self, ref: str) -> str:
        return str(self.call("GET", f"/v1.41/containers/{ref}/json")[1]["Id"])

    # ---- hijacked streams ----------------------------------------------------------
    def serving(self, fn: Callable[[], T]) -> T:
        """fn() in a thread while the IO loop serves it, so a hijacked stream can stay open across requests."""
        return self.io_loop.run_sync(lambda: asyncio.to_thread(fn), timeout=30)

    def blocking_call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """`call` for the thread `serving` runs."""
        conn = http.client.HTTPConnection("127.0.0.1", self.get_http_port(), timeout=10)
        try:
            conn.request(method, path, json.dumps(body) if body is not None else b"",
                         {"Content-Type": "application/json"})
            resp = conn.getresponse()
            text = resp.read().decode()
            return resp.status, json.loads(text) if text else None
        finally:
            conn.close()

    def hijack(self, path: str, body: Any = None) -> tuple[str, socket.socket]:
        """POST `path` as the docker CLI does for a stream (Connection: Upgrade); the response head and the socket."""
        sock = socket.create_connection(("127.0.0.1", self.get_http_port()), timeout=10)
        data = json.dumps(body).encode() if body is not None else b""
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: pydock\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            chunk = sock.recv(1)  # byte by byte: the stream follows the head
            assert chunk, head
            head += chunk
        return head.decode(), sock

    def _open_wait(self, cid: str) -> socket.socket:
        """A `wait` request whose headers came (the wait is registered); its body is the answer."""
        sock = socket.create_connection(("127.0.0.1", self.get_http_port()), timeout=10)
        sock.sendall(f"POST /v1.41/containers/{cid}/wait HTTP/1.1\r\nHost: pydock\r\nContent-Length: 0\r\n\r\n"
                     .encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, head
            head += chunk
        assert head.startswith(b"HTTP/1.1 200 "), head
        return sock

    def test_waits_hold_no_thread_and_leave_with_their_clients(self) -> None:
        """Each `wait` is answered by a call from the exit that meets it, not by a thread of its own; a client
        that leaves withdraws its wait; the others get the exit code."""
        cid = self._container(["sleep", "30"])
        assert self.call("POST", f"/v1.41/containers/{cid}/start")[0] == 204
        log = self.engine.containers._exit_logs

        def clients() -> tuple[int, int, list[bytes]]:
            threads = threading.active_count()
            socks = [self._open_wait(cid) for _ in range(20)]
            grown = threading.active_count() - threads
            for sock in socks[10:]:
                sock.close()
            deadline = time.monotonic() + 10
            while len(log[cid].callbacks) > 10 and time.monotonic() < deadline:
                time.sleep(0.01)
            left = len(log[cid].callbacks)
            assert self.blocking_call("POST", f"/v1.41/containers/{cid}/kill")[0] == 204
            bodies = []
            for sock in socks[:10]:
                with sock:
                    data = b""
                    while not data.endswith(b"0\r\n\r\n"):  # the last chunk
                        chunk = sock.recv(4096)
                        assert chunk, data
                        data += chunk
                    bodies.append(data)
            return grown, left, bodies

        grown, left, bodies = self.serving(clients)
        assert grown < 5, grown  # the API pools may add a worker; a thread per wait would add 20
        assert left == 10
        assert all(b'{"StatusCode": 137, "Error": null}' in body for body in bodies), bodies
        assert self.call("DELETE", f"/v1.41/containers/{cid}")[0] == 204

    def test_attach_stdin_and_output_stream(self) -> None:
        assert self.call("POST", "/v1.41/images/load?quiet=1", raw=tiny_image_tar())[0] == 200
        code, created = self.call("POST", "/v1.41/containers/create?name=cat", {
            "Image": "tiny", "Cmd": ["cat"], "OpenStdin": True, "StdinOnce": True, "AttachStdin": True})
        assert code == 201, created

        def session() -> tuple[str, list[tuple[int, bytes]], tuple[int, Any]]:
            head, sock = self.hijack("/v1.41/containers/cat/attach?stream=1&stdin=1&stdout=1&stderr=1")
            with sock:
                assert self.blocking_call("POST", "/v1.41/containers/cat/start")[0] == 204
                sock.sendall(b"hello\n")
                sock.sendall(b"world\n")
                sock.shutdown(socket.SHUT_WR)  # stdin ends: StdinOnce closes the container's stdin
                frames = list(demux(sock.recv))
            return head, frames, self.blocking_call("POST", "/v1.41/containers/cat/wait")

        head, frames, (code, waited) = self.serving(session)
        assert head.startswith("HTTP/1.1 101 UPGRADED\r\n") and f"Content-Type: {MUX}\r\n" in head
        assert {stream for stream, _ in frames} == {STDOUT}
        assert b"".join(data for _, data in frames) == b"hello\nworld\n"
        assert (code, waited["StatusCode"]) == (200, 0)

        def replay() -> list[tuple[int, bytes]]:
            _, sock = self.hijack("/v1.41/containers/cat/attach?logs=1&stdout=1")
            with sock:
                return list(demux(sock.recv))
        frames = self.serving(replay)  # the log, then the end: the container is not running
        assert {stream for stream, _ in frames} == {STDOUT}
        assert b"".join(data for _, data in frames) == b"hello\nworld\n"

    def test_exec_start_streams_frames_and_inspect(self) -> None:
        cid = self._container(["sleep", "30"])
        assert self.call("POST", f"/v1.41/containers/{cid}/start")[0] == 204
        code, echo = self.call("POST", f"/v1.41/containers/{cid}/exec",
                               {"Cmd": ["echo", "from", "exec"], "AttachStdout": True, "AttachStderr": True})
        assert code == 201, echo
        code, cat = self.call("POST", f"/v1.41/containers/{cid}/exec",
                              {"Cmd": ["cat"], "AttachStdin": True, "AttachStdout": True})
        assert code == 201, cat

        def stream(eid: str, stdin: bytes) -> tuple[str, list[tuple[int, bytes]]]:
            head, sock = self.hijack(f"/v1.41/exec/{eid}/start", {"Detach": False, "Tty": False})
            with sock:
                sock.sendall(stdin)
                sock.shutdown(socket.SHUT_WR)
                return head, list(demux(sock.recv))

        head, frames = self.serving(lambda: stream(echo["Id"], b""))
        assert head.startswith("HTTP/1.1 101 UPGRADED\r\n") and f"Content-Type: {MUX}\r\n" in head
        assert frames == [(STDOUT, b"from exec\n")]
        code, info = self.call("GET", f"/v1.41/exec/{echo['Id']}/json")
        assert code == 200 and (info["Running"], info["ExitCode"], info["ContainerID"]) == (False, 0, cid)
        assert info["ProcessConfig"]["entrypoint"] == "echo" and info["ProcessConfig"]["arguments"] == ["from", "exec"]
        assert info["Pid"] > 0 and (info["OpenStdout"], info["OpenStdin"]) == (True, False)

        _, frames = self.serving(lambda: stream(cat["Id"], b"typed\n"))
        assert frames == [(STDOUT, b"typed\n")]
        code, info = self.call("GET", f"/v1.41/exec/{cat['Id']}/json")
        assert (info["ExitCode"], info["OpenStdin"]) == (0, True)
        code, err = self.call("POST", f"/v1.41/exec/{cat['Id']}/start", {"Detach": True})
        assert code == 409, err

    def test_start_files_are_in_the_run_directory_and_an_earlier_bundle_still_execs(self) -> None:
        """The bundle and /etc files are written to the container's run directory (in the exec root); a
        container started by an earlier pydock, whose bundle was its own directory, still takes execs."""
        cid = self._container(["sleep", "30"])
        assert self.call("POST", f"/v1.41/containers/{cid}/start")[0] == 204
        run_dir, own_dir = self.engine.containers.run_dir(cid), self.engine.containers.dir(cid)
        assert run_dir.startswith(self.engine.cfg.exec_root + "/")
        info = self.call("GET", f"/v1.41/containers/{cid}/json")[1]
        assert {info["HostsPath"], info["HostnamePath"], info["ResolvConfPath"]} == \
            {os.path.join(run_dir, n) for n in ("hosts", "hostname", "resolv.conf")}
        assert Path(info["HostnamePath"]).read_text() == cid[:12] + "\n"
        assert self.engine.containers.bundle(cid) == run_dir
        os.rename(os.path.join(run_dir, "config.json"), os.path.join(own_dir, "config.json"))
        assert self.engine.containers.bundle(cid) == own_dir
        code, echo = self.call("POST", f"/v1.41/containers/{cid}/exec", {"Cmd": ["echo", "old"], "AttachStdout": True})
        assert code == 201, echo

        def stream() -> list[tuple[int, bytes]]:
            _, sock = self.hijack(f"/v1.41/exec/{echo['Id']}/start", {"Detach": False})
            with sock:
                return list(demux(sock.recv))
        assert self.serving(stream) == [(STDOUT, b"old\n")]


SYSTEM_PYTHON = "/usr/bin/python3"


def _readable_site_packages(dest: Path) -> None:
    """Copy the third-party packages this module has imported where user `nobody` can read them.

    The interpreter's own site-packages may sit under a root-only home
    (/root/.pyenv); the system Python of the same minor version can use the copies.
    """
    roots = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None) or ""
        if "site-packages" + os.sep in path:
            site, rest = path.split("site-packages" + os.sep, 1)
            roots.add(os.path.join(site + "site-packages", rest.split(os.sep)[0]))
    dest.mkdir(parents=True, exist_ok=True)  # a single-file module may come first
    for root in roots:
        target = dest / os.path.basename(root)
        if os.path.isdir(root):
            shutil.copytree(root, target, dirs_exist_ok=True)
        else:
            shutil.copy(root, target)


@pytest.mark.skipif(os.geteuid() != 0, reason="already running unprivileged: the tests above prove it")
@pytest.mark.skipif(not os.path.exists(SYSTEM_PYTHON) or not shutil.which("setpriv"), reason="needs setpriv and "
                    + SYSTEM_PYTHON)
def test_runs_as_nobody() -> None:
    """The fake engine makes no root-only call (mount, runc, nft, cgroups): the tests pass as `nobody`."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" not in subprocess.run(
            [SYSTEM_PYTHON, "--version"], check=False, capture_output=True, text=True).stdout:
        pytest.skip("the system Python's minor version differs: the copied extension modules would not load")
    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="pydock-nobody-") as tmp:  # pytest's tmp_path is root-only
        os.chmod(tmp, 0o755)
        site = Path(tmp) / "site"
        _readable_site_packages(site)
        proc = _run_as_nobody(repo, site)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK" in proc.stderr


def _run_as_nobody(repo: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", SYSTEM_PYTHON, "-m", "unittest", "-q",
         "test_inprocess_api.InProcessApi"],
        cwd=repo / "tests", env={"PYTHONPATH": f"{site}:{repo}:{repo / 'tests'}", "PATH": "/usr/bin:/bin",
                                 "HOME": "/tmp"},
        check=False, capture_output=True, text=True, timeout=60)
