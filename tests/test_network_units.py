"""Unit tests of the network package's structure and pure helpers (no daemon, no kernel objects)."""
from __future__ import annotations

import ast
import ipaddress
import os

from engine.network.pools import PoolKeeper
from engine.network.store import NetworkStore
from engine.store.db import MetaStore

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETWORK_DIR = os.path.join(REPO, "engine", "network")


def _imported_modules(path: str) -> set[str]:
    with open(path) as f:
        tree = ast.parse(f.read())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_network_package_does_not_import_containers() -> None:
    """containers -> network only: what networking needs from containers is a Protocol of its own."""
    for name in os.listdir(NETWORK_DIR):
        if name.endswith(".py"):
            mods = _imported_modules(os.path.join(NETWORK_DIR, name))
            assert not [m for m in mods if m.startswith("engine.container")], name


def test_composition_root_wires_network_through_constructors() -> None:
    """No `self.containers.network = ...` / `self.network.containers = ...` after construction."""
    with open(os.path.join(REPO, "engine", "engine.py")) as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                elts = target.elts if isinstance(target, ast.Tuple) else [target]
                for t in elts:
                    if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Attribute):
                        assert t.attr not in ("network", "containers"), ast.unparse(node)


def _source(name: str) -> str:
    with open(os.path.join(NETWORK_DIR, name)) as f:
        return f.read()


def test_only_the_store_runs_sql_on_network_tables() -> None:
    """store.py owns networks/endpoints/sandboxes: no other module of the package holds SQL on them."""
    for name in os.listdir(NETWORK_DIR):
        if name.endswith(".py") and name != "store.py":
            text = _source(name)
            for table in ("networks", "endpoints", "sandboxes"):
                for verb in ("FROM", "INTO", "UPDATE"):
                    assert f"{verb} {table}" not in text, (name, verb, table)


def test_no_method_named_list_and_modules_stay_small() -> None:
    for name in os.listdir(NETWORK_DIR):
        if name.endswith(".py"):
            tree = ast.parse(_source(name))
            defs = [n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
            assert "list" not in defs, name
            assert len(_source(name).splitlines()) < 550, name


def test_router_types_its_backend_as_a_protocol() -> None:
    """engine/api/network.py names the network methods it calls in a Protocol; the service meets it."""
    from engine.api import network as router
    from engine.network.service import NetworkService
    wanted = [n for n in vars(router.Networks) if not n.startswith("_")]
    assert set(wanted) >= {"summaries", "inspect", "create", "remove", "connect", "disconnect", "prune"}
    assert all(callable(getattr(NetworkService, n, None)) for n in wanted)


def test_create_request_parsed_in_one_place() -> None:
    import pytest

    from engine import wire
    from engine.errors import InvalidParameter, NotFound, Unsupported
    from engine.network.types import CreateRequest
    from engine.types.network import NetworkCreateRequest

    def checked(body: dict[str, object]) -> CreateRequest:
        return CreateRequest.checked(wire.decode(NetworkCreateRequest, body))

    req = checked({"Name": "n1", "Labels": {"a": "b"}, "Internal": True,
                   "IPAM": {"Config": [{"Subnet": "10.9.0.0/24", "IPRange": "10.9.0.128/25"}]}})
    assert (req.name, req.labels, req.internal, req.attachable) == ("n1", {"a": "b"}, True, False)
    assert req.ipam is not None and (req.ipam.subnet, req.ipam.ip_range) == ("10.9.0.0/24", "10.9.0.128/25")
    with pytest.raises(InvalidParameter):
        checked({"Name": "bad name"})
    with pytest.raises(NotFound):
        checked({"Name": "n", "Driver": "weave"})
    with pytest.raises(Unsupported):
        checked({"Name": "n", "Driver": "overlay"})
    with pytest.raises(InvalidParameter):
        checked({"Name": "n", "Options": {"com.docker.network.driver.mtu": "abc"}})


def test_network_json_hides_private_keys_and_lists_shown_endpoints() -> None:
    from engine.network.types import Endpoint, network_json, new_network
    net = new_network("n1", "bridge", ipaddress.IPv4Network("10.9.0.0/24"), "", "pd0", {}, {}, False)
    net.auto = True
    eps = [Endpoint(net.id, "c" * 64, "10.9.0.2", "old", endpoint_id="e", mac="m"),
           Endpoint(net.id, "d" * 64, None, "down")]
    out = network_json(net, eps, lambda ep: bool(ep.ip), lambda ep: "web")
    assert not [k for k in out if k.startswith("_")]
    assert out["IPAM"]["Config"] == [{"Subnet": "10.9.0.0/24", "Gateway": "10.9.0.1"}]
    assert out["Containers"] == {"c" * 64: {"Name": "web", "EndpointID": "e", "MacAddress": "m",
                                            "IPv4Address": "10.9.0.2/24", "IPv6Address": ""}}


def test_etc_files_render_without_kernel_objects() -> None:
    from engine import wire
    from engine.container.record import ContainerRecord
    from engine.network.etcfiles import render
    c = wire.decode(ContainerRecord, {"Config": {"Hostname": "h1", "Domainname": ""},
                                      "HostConfig": {"NetworkMode": "n1", "ExtraHosts": ["gw:host-gateway"]}})
    files = render(c, "10.9.0.2", lambda: "172.29.0.1", "10.9.0.1")
    assert files["hostname"] == "h1\n"
    assert files["hosts"].endswith("172.29.0.1\tgw\n10.9.0.2\th1\n")
    assert files["resolv.conf"].startswith("nameserver 10.9.0.1\n")
    assert "options ndots:0" in files["resolv.conf"]


def test_stored_network_document_round_trips() -> None:
    """Data roots hold Docker's inspect document plus _device/_auto; loading and saving keeps it as it was."""
    from engine.network.types import Network, new_network
    net = new_network("n1", "bridge", ipaddress.IPv4Network("10.9.0.0/24"), "10.9.0.254", "pd0",
                      {"o": "1"}, {"l": "2"}, True)
    net.pool.ip_range = "10.9.0.128/25"
    doc = net.to_stored()
    assert doc["IPAM"]["Config"] == [{"Subnet": "10.9.0.0/24", "Gateway": "10.9.0.254", "IPRange": "10.9.0.128/25"}]
    assert Network.from_stored(doc) == net
    assert "Containers" not in doc and doc["_device"] == "pd0"


def test_endpoint_row_data_round_trips() -> None:
    """An endpoint's stored `data` keeps Docker's EndpointSettings names, as existing data roots hold them."""
    from engine.network.types import Endpoint, NetworkID
    data = {"IPAMConfig": {"IPv4Address": "10.9.0.7"}, "Aliases": ["db"], "EndpointID": "e1",
            "MacAddress": "02:42:0a:09:00:07", "Name": "web"}
    ep = Endpoint.from_row("n" * 64, "c" * 64, "10.9.0.7", data)
    assert (ep.network_id, ep.requested_ip, ep.aliases, ep.name) == (NetworkID("n" * 64), "10.9.0.7", ["db"], "web")
    assert ep.data_json() == data
    bare = {"IPAMConfig": None, "Aliases": None, "EndpointID": "", "MacAddress": "", "Name": "x"}
    assert Endpoint.from_row("n", "c", None, bare).data_json() == bare


class _FakeDriver:
    """The two netlink calls the pool keeper makes, without a kernel: host routes and link deletion."""

    default_device = "pdtest0"

    def __init__(self, routes: list[str]) -> None:
        self.routes = [ipaddress.IPv4Network(r) for r in routes]
        self.deleted: list[str] = []

    def host_routes(self) -> list[ipaddress.IPv4Network]:
        return self.routes

    def delete(self, device: str) -> None:
        self.deleted.append(device)


def _keeper(tmp_path: object, bip: str, routes: list[str]) -> tuple[PoolKeeper, NetworkStore, _FakeDriver]:
    store = NetworkStore(MetaStore(os.path.join(str(tmp_path), "meta.db")))
    driver = _FakeDriver(routes)
    return PoolKeeper(store, driver, bip), store, driver  # type: ignore[arg-type]


def test_predefined_networks_avoid_host_routes_and_follow_bip(tmp_path: object) -> None:
    keeper, store, driver = _keeper(tmp_path, "", ["172.29.0.0/16"])
    keeper.ensure_predefined()
    bridge = store.resolve("bridge")
    assert [n.name for n in store.networks()] == ["bridge", "host", "none"]
    assert bridge.auto and not bridge.pool.subnet.overlaps(driver.routes[0])
    keeper.bip = "10.99.0.1/24"
    keeper.apply_bip(bridge)
    moved = store.resolve("bridge")
    assert (str(moved.pool.subnet), moved.pool.gateway, moved.auto) == ("10.99.0.0/24", "10.99.0.1", False)
    assert driver.deleted == ["pdtest0"]


def test_bad_bip_is_a_clear_error(tmp_path: object) -> None:
    import pytest

    from engine.errors import InvalidParameter
    keeper, _, _ = _keeper(tmp_path, "10.99.0.300/24", [])
    with pytest.raises(InvalidParameter, match="--bip"):
        keeper.ensure_predefined()
