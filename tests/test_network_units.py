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
    assert checked({"Name": "test 01"}).name == "test 01"  # libnetwork refuses only blank names
    with pytest.raises(InvalidParameter, match="invalid name:  "):
        checked({"Name": " "})
    with pytest.raises(NotFound):
        checked({"Name": "n", "Driver": "weave"})
    with pytest.raises(Unsupported):
        checked({"Name": "n", "Driver": "overlay"})
    with pytest.raises(InvalidParameter):
        checked({"Name": "n", "Options": {"com.docker.network.driver.mtu": "abc"}})


def test_network_json_hides_private_keys_and_lists_shown_endpoints() -> None:
    from engine.api.network_json import network_json
    from engine.network.types import Endpoint, Member, NetworkView, new_network
    net = new_network("n1", "bridge", ipaddress.IPv4Network("10.9.0.0/24"), "", "pd0", {}, {}, False)
    net.auto = True
    up = Endpoint(net.id, "c" * 64, "10.9.0.2", "old", endpoint_id="e", mac="m")
    out = network_json(NetworkView(net, (Member(up, "web"),)))
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


def test_ipv6_pools_and_addresses() -> None:
    import pytest

    from engine.errors import Forbidden, InvalidParameter
    from engine.network import ipam
    base = ipam.ula_base("/var/lib/pydock")
    assert base == ipam.ula_base("/var/lib/pydock") and base.prefixlen == 48
    assert base.subnet_of(ipaddress.IPv6Network("fd00::/8")) and base != ipam.ula_base("/tmp/other")
    first = ipam.pick_subnet6([], base)
    assert first == next(base.subnets(new_prefix=64))
    assert ipam.pick_subnet6([first, ipaddress.IPv6Network("fd00::/64")], base) == list(base.subnets(new_prefix=64))[1]
    net = ipam.parse_subnet6("fd31:0783::/64")  # leading zeros are another spelling, not an error
    assert str(net) == "fd31:783::/64"
    with pytest.raises(InvalidParameter, match="it should be fd31:783::/64"):
        ipam.parse_subnet6("fd31:783::1/64")
    gw = ipam.gateway_for(net)
    assert str(gw) == "fd31:783::1"
    assert ipam.allocate(net, gw, set()) == "fd31:783::2"
    assert ipam.allocate(net, gw, {"fd31:783::2"}, pool=ipam.check_range(net, "fd31:783::100/120")) == \
        "fd31:783::101"
    with pytest.raises(Forbidden, match="Address already in use"):
        ipam.allocate(net, gw, {"fd31:783::9"}, "fd31:783::9")
    with pytest.raises(InvalidParameter, match="within subnet"):
        ipam.check_range(net, "10.0.0.0/24")
    with pytest.raises(InvalidParameter, match="no matching subnet for gateway"):
        ipam.gateway_for(net, "10.0.0.1")


def test_ipv6_create_request_and_stored_network() -> None:
    import pytest

    from engine import wire
    from engine.errors import InvalidParameter
    from engine.network.types import CreateRequest, Network, Pool, new_network
    from engine.types.network import NetworkCreateRequest

    def checked(body: dict[str, object]) -> CreateRequest:
        return CreateRequest.checked(wire.decode(NetworkCreateRequest, body))

    req = checked({"Name": "n6", "EnableIPv6": True, "IPAM": {"Config": [
        {"Subnet": "fd31::/64", "IPRange": "fd31::/80", "AuxiliaryAddresses": {"r": "fd31::5"}}]}})
    assert req.ipam is None and req.ipam6 is not None and req.ipam6.subnet == "fd31::/64"
    assert checked({"Name": "n4", "IPAM": {"Config": [{"Subnet": "fd31::/64"}]}}).ipam6 is None  # IPv6 off
    with pytest.raises(InvalidParameter, match="at most one IPv6 pool"):
        checked({"Name": "n", "EnableIPv6": True, "IPAM": {"Config": [{"Subnet": "fd31::/64"},
                                                                       {"Subnet": "fd32::/64"}]}})
    net = new_network("n6", "bridge", ipaddress.IPv4Network("10.9.0.0/24"), "", "pd0", {}, {}, False)
    net.pool6 = Pool(ipaddress.IPv6Network("fd31::/64"), "fd31::1")
    req.apply_pool(net)
    assert net.pool6.reserved() == {"fd31::5"} and net.pool6.ip_range == "fd31::/80"
    doc = net.to_stored()
    assert doc["EnableIPv6"] is True and doc["IPAM"]["Config"][1] == {
        "Subnet": "fd31::/64", "Gateway": "fd31::1", "IPRange": "fd31::/80", "AuxiliaryAddresses": {"r": "fd31::5"}}
    assert Network.from_stored(doc) == net


def test_endpoint_settings_round_trip_and_views() -> None:
    from engine.api.network_json import endpoint_json
    from engine.network.types import Attachment, Endpoint, new_network
    from engine.types.network import EndpointIPAMConfig, EndpointSettings
    net = new_network("n1", "bridge", ipaddress.IPv4Network("10.9.0.0/24"), "", "pd0", {}, {}, False)
    settings = EndpointSettings(ipam_config=EndpointIPAMConfig("10.9.0.7", "", ["169.254.1.1"]),
                                links=["web:db"], aliases=["a"], mac_address="02:42:00:00:00:01",
                                driver_opts={"k": "v"})
    ep = Endpoint(net.id, "c" * 64, "10.9.0.7", "web", settings, "e1", "02:42:00:00:00:01")
    again = Endpoint.from_row(net.id, "c" * 64, "10.9.0.7", ep.data_json())
    assert again == ep and again.link_aliases() == {"db": "web"}
    view = endpoint_json(Attachment(net, ep, ["web", "a"]))
    assert view["IPAMConfig"] == {"IPv4Address": "10.9.0.7", "LinkLocalIPs": ["169.254.1.1"]}
    assert (view["Links"], view["DriverOpts"], view["DNSNames"]) == (["web:db"], {"k": "v"}, ["web", "a"])
    down = endpoint_json(Attachment(net, Endpoint(net.id, "c" * 64, None, "web", settings), ["web"]))
    assert (down["MacAddress"], down["IPAddress"], down["DNSNames"]) == ("02:42:00:00:00:01", "", None)


def test_link_parsing_and_dockerd_link_variables() -> None:
    import pytest

    from engine.errors import InvalidParameter
    from engine.network.links import link_env
    from engine.network.types import parse_link
    assert parse_link("web") == ("web", "web") and parse_link("web:db") == ("web", "db")
    assert parse_link("/web:/app/db") == ("web", "db")  # inspect's form, as dockerd accepts it
    for bad, message in [("", "empty string specified for links"), ("a:b:c", "bad format for links: a:b:c")]:
        with pytest.raises(InvalidParameter, match=message):
            parse_link(bad)
    env = link_env("/app/my-db", "10.0.0.2", ["PATH=/bin", "HOME=/root", "PW=x=y", "BARE"],
                   ["5432/tcp", "6000/tcp", "6001/tcp", "6002/tcp", "53/udp"])
    assert env[0] == "MY_DB_PORT=udp://10.0.0.2:53"  # lowest number first
    assert "MY_DB_PORT_6000_TCP_START=tcp://10.0.0.2:6000" in env and "MY_DB_PORT_6000_TCP_END=tcp://10.0.0.2:6002" in env
    assert "MY_DB_PORT_5432_TCP_START=tcp://10.0.0.2:5432" not in env  # a run needs three ports
    assert ["MY_DB_PORT_5432_TCP=tcp://10.0.0.2:5432", "MY_DB_PORT_5432_TCP_ADDR=10.0.0.2",
            "MY_DB_PORT_5432_TCP_PORT=5432", "MY_DB_PORT_5432_TCP_PROTO=tcp"] == \
        env[env.index("MY_DB_PORT_5432_TCP=tcp://10.0.0.2:5432"):][:4]
    assert env[-2:] == ["MY_DB_NAME=/app/my-db", "MY_DB_ENV_PW=x=y"]


def test_mac_sysctl_and_aaaa_helpers() -> None:
    import struct

    import pytest

    from engine.errors import InvalidParameter
    from engine.network import dns
    from engine.network.planning import endpoint_sysctls, parse_mac
    assert parse_mac("02-42-AC-11-00-02") == parse_mac("0242.ac11.0002") == "02:42:ac:11:00:02"
    for bad in ("01:00:5e:00:00:01", "02:42:ac:11:00", "zz:42:ac:11:00:02"):
        with pytest.raises(InvalidParameter, match=f"invalid MAC address {bad}"):
            parse_mac(bad)
    opts = {"com.docker.network.endpoint.sysctls": "net.ipv6.conf.IFNAME.accept_ra=2,net.ipv4.neigh.ifname.a.b=1"}
    assert endpoint_sysctls(opts, "eth1") == [("net/ipv6/conf/eth1/accept_ra", "2"), ("net/ipv4/neigh/eth1/a/b", "1")]
    query = struct.pack("!HHHHHH", 9, 0x0100, 1, 0, 0, 0) + b"\x02db\x00" + struct.pack("!HH", dns.TYPE_AAAA, 1)
    _qid, _name, qtype, end = dns.parse_query(query)  # type: ignore[misc]
    reply = dns.build_answer(query, end, qtype, ["10.9.0.2", "fd31::2"])
    assert struct.unpack("!H", reply[6:8])[0] == 1 and reply.endswith(ipaddress.IPv6Address("fd31::2").packed)


def test_firewall_renders_an_ip6_table_for_ipv6_networks() -> None:
    from engine.network import firewall as netfw
    v4 = [netfw.Bridge("pdx0", "172.29.0.0/16")]
    assert netfw.render("t", v4, []).endswith("table ip6 t {}\ndelete table ip6 t\n")  # none left behind
    both = [*v4, netfw.Bridge("pdx-a", "10.231.0.0/24", True, "fd31::/64")]
    text = netfw.render("t", both, [])
    assert 'ip6 saddr fd31::/64 oifname != "pdx-a" masquerade' in text
    assert 'iifname "pdx-a" oifname != "pdx-a" oifname { "pdx0", "pdx-a" } drop' in text.split("table ip6 t {\n")[1]
