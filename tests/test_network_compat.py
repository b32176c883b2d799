"""Networking details as dockerd has them, through the real docker CLI and SDK: IPv6 networks, legacy
links and links on user networks, and endpoint settings (aliases, static addresses, MAC, driver options).

Every test creates its own networks and containers with unique names and removes them however it
ends. IPv4 subnets the tests pick come from 10.231.0.0/16 and IPv6 ones from fd31::/16, which
nothing else on this machine uses.
"""
from __future__ import annotations

import ipaddress
import json
import secrets
import subprocess

import docker
import pytest
from test_network import _cleanup, _host_state, _ok, _tag


def _uid() -> str:
    return secrets.token_hex(3)


def _fails(daemon, *args: str) -> str:  # type: ignore[no-untyped-def]
    """The stderr of a docker command that must fail."""
    proc = daemon.docker(*args)
    assert proc.returncode != 0, (args, proc.stdout)
    return proc.stderr


def _endpoint(daemon, container: str, network: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return json.loads(_ok(daemon, "inspect", "-f", "{{json .NetworkSettings.Networks}}", container))[network]


def _subnets(uid: str) -> tuple[str, str]:
    """An IPv4 /24 and an IPv6 /64 of this test's own."""
    return f"10.231.{int(uid[:2], 16)}.0/24", str(ipaddress.ip_network(f"fd31:{uid[:4]}:{uid[4:]}::/64"))


# ---- IPv6 ---------------------------------------------------------------------
def test_ipv6_network_with_a_subnet(daemon, busybox) -> None:
    """Addresses in both inspects, the bridge's gateway, each container's address and default route,
    container-to-container traffic over IPv6, --ip6, /etc/hosts and the embedded DNS's AAAA answers."""
    uid = _uid()
    v4, v6 = _subnets(uid)
    prefix6 = v6.split("::")[0]
    net, c1, c2, c3 = f"six-{uid}", f"sixa-{uid}", f"sixb-{uid}", f"sixc-{uid}"
    with _cleanup(daemon, [c1, c2, c3], [net]):
        _ok(daemon, "network", "create", "--ipv6", "--subnet", v4, "--subnet", v6, net)
        info = json.loads(_ok(daemon, "network", "inspect", net))[0]
        assert info["EnableIPv6"] is True
        assert info["IPAM"]["Config"] == [{"Subnet": v4, "Gateway": v4.replace(".0/24", ".1")},
                                          {"Subnet": v6, "Gateway": f"{prefix6}::1"}]
        _ok(daemon, "run", "-d", "--name", c1, "--network", net, "busybox", "sh", "-c",
            "while true; do echo pong | nc -l -p 7070; done")
        _ok(daemon, "run", "-d", "--name", c2, "--network", net, "--ip6", f"{prefix6}::99", "busybox",
            "sleep", "120")
        ep1, ep2 = _endpoint(daemon, c1, net), _endpoint(daemon, c2, net)
        assert (ep1["GlobalIPv6Address"], ep1["GlobalIPv6PrefixLen"], ep1["IPv6Gateway"]) == \
            (f"{prefix6}::2", 64, f"{prefix6}::1")
        assert ep2["GlobalIPv6Address"] == f"{prefix6}::99" and ep2["IPAMConfig"] == {"IPv6Address": f"{prefix6}::99"}
        assert ep1["IPAMConfig"] is None and ep1["IPAddress"]
        cid1 = _ok(daemon, "inspect", "-f", "{{.Id}}", c1)
        shown = json.loads(_ok(daemon, "network", "inspect", net))[0]["Containers"][cid1]
        assert shown["IPv6Address"] == f"{prefix6}::2/64" and shown["IPv4Address"] == f"{ep1['IPAddress']}/24"
        assert f"inet6 {prefix6}::1/64" in subprocess.run(
            ["ip", "-6", "addr", "show", "dev", info["Options"].get("com.docker.network.bridge.name")
             or _bridge_of(daemon, info["Id"])], capture_output=True, text=True, check=True).stdout
        assert f"{prefix6}::2/64" in _ok(daemon, "exec", c1, "ip", "-6", "addr", "show", "eth0")
        assert f"default via {prefix6}::1" in _ok(daemon, "exec", c1, "ip", "-6", "route")
        assert "1 packets received" in _ok(daemon, "exec", c2, "ping6", "-c1", "-W2", f"{prefix6}::2")
        assert "1 packets received" in _ok(daemon, "exec", c2, "ping6", "-c1", "-W2", f"{prefix6}::1")
        out = _ok(daemon, "exec", c2, "sh", "-c", f"echo ping | nc -w 3 {prefix6}::2 7070")
        assert out == "pong"
        hostname1 = _ok(daemon, "inspect", "-f", "{{.Config.Hostname}}", c1)
        assert f"{prefix6}::2\t{hostname1}\n" in _ok(daemon, "exec", c1, "cat", "/etc/hosts") + "\n"
        aaaa = _ok(daemon, "exec", c2, "nslookup", "-type=aaaa", c1)
        assert f"Address: {prefix6}::2" in aaaa, aaaa
        a = _ok(daemon, "exec", c2, "nslookup", "-type=a", c1)
        assert f"Address: {ep1['IPAddress']}" in a and prefix6 not in a
        # a running container connected later gets its IPv6 address too (no default route: not its first network)
        _ok(daemon, "run", "-d", "--name", c3, "busybox", "sleep", "120")
        _ok(daemon, "network", "connect", net, c3)
        assert _endpoint(daemon, c3, net)["GlobalIPv6Address"] == f"{prefix6}::3"
        assert "1 packets received" in _ok(daemon, "exec", c3, "ping6", "-c1", "-W2", f"{prefix6}::2")
        assert "default" not in _ok(daemon, "exec", c3, "ip", "-6", "route")


def _bridge_of(daemon, network_id: str) -> str:  # type: ignore[no-untyped-def]
    """The bridge device pydockd made for a network (engine/network/bridge.py names it)."""
    return f"pd{_tag(daemon)}-{network_id}"[:15]


def test_ipv6_network_without_a_subnet_gets_a_ula_64(daemon, busybox, client) -> None:
    """As current dockerd: a /64 from a ULA /48 of the daemon's own; no address may be asked for there."""
    uid = _uid()
    n1, n2, c = f"ula1-{uid}", f"ula2-{uid}", f"ulac-{uid}"
    with _cleanup(daemon, [c], [n1, n2]):
        _ok(daemon, "network", "create", "--ipv6", n1)
        _ok(daemon, "network", "create", "--ipv6", n2)
        pools = [json.loads(_ok(daemon, "network", "inspect", n))[0]["IPAM"]["Config"] for n in (n1, n2)]
        six = [ipaddress.ip_network(p[1]["Subnet"]) for p in pools]
        assert all(s.prefixlen == 64 and s.subnet_of(ipaddress.ip_network("fd00::/8")) for s in six)
        assert six[0] != six[1] and six[0].supernet(new_prefix=48) == six[1].supernet(new_prefix=48)
        assert pools[0][1]["Gateway"] == str(six[0].network_address + 1)
        assert ipaddress.ip_network(pools[0][0]["Subnet"]).version == 4
        _ok(daemon, "run", "-d", "--name", c, "--network", n1, "busybox", "sleep", "60")
        assert _endpoint(daemon, c, n1)["GlobalIPv6Address"] == str(six[0].network_address + 2)
        msg = "user specified IP address is supported only when connecting to networks with user configured subnets"
        assert msg in _fails(daemon, "run", "--rm", "--network", n1, "--ip6", str(six[0].network_address + 9),
                             "busybox", "true")


def test_ipv6_bad_input_has_docker_errors_and_leaks_nothing(daemon, busybox, client) -> None:
    uid = _uid()
    _, v6 = _subnets(uid)
    net, plain = f"sixbad-{uid}", f"plain-{uid}"
    before = _host_state(daemon)
    count = len(_ok(daemon, "ps", "-aq").split())
    with _cleanup(daemon, networks=[net, plain]):
        _ok(daemon, "network", "create", "--ipv6", "--subnet", v6, net)
        _ok(daemon, "network", "create", plain)
        assert "Pool overlaps with other one on this address space" in _fails(
            daemon, "network", "create", "--ipv6", "--subnet", v6.replace("::/64", "::/80"), f"x-{uid}")
        assert "no matching subnet for gateway fd99::1" in _fails(
            daemon, "network", "create", "--ipv6", "--subnet", v6, "--gateway", "fd99::1", f"x-{uid}")
        prefix6 = v6.split("::")[0]
        msg = "user specified IP address is supported only when connecting to networks with user configured subnets"
        assert msg in _fails(daemon, "run", "--rm", "--network", plain, "--ip6", f"{prefix6}::5", "busybox", "true")
        assert "no configured subnet or ip-range contain the IP address fd32::5" in _fails(
            daemon, "run", "--rm", "--network", net, "--ip6", "fd32::5", "busybox", "true")
        api = client.api
        for ipam, message in [({"IPv6Address": "not-an-ip"}, "invalid IPv6 address: not-an-ip"),
                              ({"IPv6Address": "10.1.1.1"}, "invalid IPv6 address: 10.1.1.1"),
                              ({"IPv4Address": "fd31::1"}, "invalid IPv4 address: fd31::1"),
                              ({"LinkLocalIPs": ["nope"]}, "invalid link-local IP address: nope"),
                              ({"LinkLocalIPs": ["10.0.0.1"]}, "invalid link local IP address: 10.0.0.1")]:
            body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"NetworkMode": net},
                    "NetworkingConfig": {"EndpointsConfig": {net: {"IPAMConfig": ipam}}}}
            resp = api._post_json(api._url("/containers/create"), data=body)
            assert (resp.status_code, resp.json()["message"]) == (400, message), ipam
        # IPv6 entries of a network without IPv6 are not looked at (dockerd's ValidateIPAM)
        ipv4_only = client.networks.create(f"v4only-{uid}", ipam=docker.types.IPAMConfig(pool_configs=[
            docker.types.IPAMPool(subnet="fd31:ffff::/64")]))
        try:
            assert ipv4_only.attrs["EnableIPv6"] is False and len(ipv4_only.attrs["IPAM"]["Config"]) == 1
        finally:
            ipv4_only.remove()
    assert len(_ok(daemon, "ps", "-aq").split()) == count
    assert _host_state(daemon) == before


# ---- links ----------------------------------------------------------------------
def test_legacy_links_on_the_default_bridge(daemon, busybox, client) -> None:
    """/etc/hosts lines and dockerd's link variables in the parent, HostConfig.Links as dockerd shows
    them (by the names of now), and a moved child's new address in its running parents' /etc/hosts."""
    uid = _uid()
    web, parent, bare, taker = f"web-{uid}", f"par-{uid}", f"bare-{uid}", f"taker-{uid}"
    with _cleanup(daemon, [web, parent, bare, taker]):
        _ok(daemon, "run", "-d", "--name", web, "--expose", "80", "--expose", "8080-8082/tcp", "--expose", "53/udp",
            "-e", "SECRET=s3", "busybox", "sleep", "300")
        ip = _ok(daemon, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", web)
        hostname = _ok(daemon, "inspect", "-f", "{{.Config.Hostname}}", web)
        _ok(daemon, "run", "-d", "--name", parent, "--link", f"{web}:db", "-e", "DB_NAME=mine", "busybox",
            "sleep", "300")
        hosts = _ok(daemon, "exec", parent, "cat", "/etc/hosts")
        assert f"{ip}\tdb {hostname} {web}\n" in hosts + "\n"
        env = set(_ok(daemon, "exec", parent, "env").splitlines())
        expected = {f"DB_PORT=udp://{ip}:53", f"DB_PORT_80_TCP=tcp://{ip}:80", f"DB_PORT_80_TCP_ADDR={ip}",
                    "DB_PORT_80_TCP_PORT=80", "DB_PORT_80_TCP_PROTO=tcp", f"DB_PORT_53_UDP=udp://{ip}:53",
                    f"DB_PORT_8080_TCP_START=tcp://{ip}:8080", f"DB_PORT_8080_TCP_END=tcp://{ip}:8082",
                    "DB_PORT_8080_TCP_PORT_START=8080", "DB_PORT_8080_TCP_PORT_END=8082",
                    f"DB_PORT_8081_TCP=tcp://{ip}:8081", "DB_ENV_SECRET=s3", "DB_NAME=mine"}
        assert expected <= env, expected - env
        assert not [e for e in env if e.startswith(("DB_ENV_PATH=", "DB_ENV_HOME="))]
        assert "1 packets received" in _ok(daemon, "exec", parent, "ping", "-c1", "-W2", "db")
        links = json.loads(_ok(daemon, "inspect", "-f", "{{json .HostConfig.Links}}", parent))
        assert links == [f"/{web}:/{parent}/db"]
        assert client.containers.get(parent).attrs["HostConfig"]["Links"] == links
        # a link without an alias names the child once
        _ok(daemon, "run", "-d", "--name", bare, "--link", web, "busybox", "sleep", "300")
        assert f"{ip}\t{web} {hostname}\n" in _ok(daemon, "exec", bare, "cat", "/etc/hosts") + "\n"
        assert f"{web.upper().replace('-', '_')}_NAME=/{bare}/{web}" in _ok(daemon, "exec", bare, "env")
        # renames show at once
        _ok(daemon, "rename", web, web + "-x")
        web += "-x"
        assert json.loads(_ok(daemon, "inspect", "-f", "{{json .HostConfig.Links}}", parent)) == \
            [f"/{web}:/{parent}/db"]
        # the child comes back on another address: running parents learn it
        _ok(daemon, "stop", "-t", "0", web)
        _ok(daemon, "run", "-d", "--name", taker, "busybox", "sleep", "300")
        assert _ok(daemon, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", taker) == ip
        _ok(daemon, "start", web)
        moved = _ok(daemon, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", web)
        assert moved != ip
        assert f"{moved}\tdb {hostname} {web}\n" in _ok(daemon, "exec", parent, "cat", "/etc/hosts") + "\n"
        # a parent cannot start while its child does not run
        _ok(daemon, "stop", "-t", "0", web, parent)
        assert f"Cannot link to a non running container: /{web} AS /{parent}/db" in _fails(daemon, "start", parent)
        # a removed child takes its links along
        _ok(daemon, "rm", web)
        assert json.loads(_ok(daemon, "inspect", "-f", "{{json .HostConfig.Links}}", parent)) is None
        _ok(daemon, "start", parent)


def test_rm_link_removes_only_the_link(daemon, busybox) -> None:
    """`docker rm --link /parent/alias`: the child stays, the running parent's /etc/hosts forgets it."""
    uid = _uid()
    child, parent = f"lchild-{uid}", f"lpar-{uid}"
    with _cleanup(daemon, [child, parent]):
        _ok(daemon, "run", "-d", "--name", child, "busybox", "sleep", "300")
        _ok(daemon, "run", "-d", "--name", parent, "--link", f"{child}:db", "busybox", "sleep", "300")
        assert "\tdb " in _ok(daemon, "exec", parent, "cat", "/etc/hosts")
        assert _ok(daemon, "rm", "--link", f"/{parent}/db") == f"/{parent}/db"
        assert json.loads(_ok(daemon, "inspect", "-f", "{{json .HostConfig.Links}}", parent)) is None
        assert "\tdb " not in _ok(daemon, "exec", parent, "cat", "/etc/hosts")
        assert _ok(daemon, "inspect", "-f", "{{.State.Running}}", child) == "true"
        assert f"No such container: {parent}/db" in _fails(daemon, "rm", "--link", f"/{parent}/db")
        assert f"No such container: nope-{uid}/db" in _fails(daemon, "rm", "--link", f"/nope-{uid}/db")
        assert "cannot remove the default link name" in _fails(daemon, "rm", "--link", child)


def test_links_bad_input_has_docker_errors(daemon, busybox, client) -> None:
    uid = _uid()
    hostnet, user, usernet, parent = f"lhost-{uid}", f"luser-{uid}", f"lnet-{uid}", f"lpar-{uid}"
    count = len(_ok(daemon, "ps", "-aq").split())
    with _cleanup(daemon, [hostnet, user, parent], [usernet]):
        api = client.api
        with pytest.raises(docker.errors.APIError) as err:
            api.create_container("busybox", "true", host_config=api.create_host_config(links={f"nope-{uid}": "x"}))
        assert (err.value.status_code, err.value.explanation) == (
            400, f"could not get container for nope-{uid}: No such container: nope-{uid}")
        _ok(daemon, "create", "--name", hostnet, "--network", "host", "busybox", "true")
        conflict = ("conflicting options: host type networking can't be used with links. "
                    "This would result in undefined behavior")
        assert conflict in _fails(daemon, "run", "--rm", "--link", f"{hostnet}:h", "busybox", "true")
        assert conflict in _fails(daemon, "run", "--rm", "--network", "host", "--link", f"{hostnet}:h", "busybox",
                                  "true")
        resp = api._post_json(api._url("/containers/create"), data={
            "Image": "busybox", "Cmd": ["true"], "HostConfig": {"Links": ["a:b:c"]}})
        assert (resp.status_code, resp.json()["message"]) == (400, "bad format for links: a:b:c")
        # a child that is not on the default bridge refuses the parent's start
        _ok(daemon, "network", "create", usernet)
        _ok(daemon, "run", "-d", "--name", user, "--network", usernet, "busybox", "sleep", "60")
        _ok(daemon, "create", "--name", parent, "--link", f"{user}:u", "busybox", "sleep", "60")
        assert f"Cannot link to /{user}, as it does not belong to the default network" in _fails(
            daemon, "start", parent)
    assert len(_ok(daemon, "ps", "-aq").split()) == count


def test_links_on_a_user_network_are_aliases_of_the_linking_endpoint(daemon, busybox, client) -> None:
    """docker-compose's one-off containers (`run --rm`) set Links; on a user network they are DNS aliases
    that only the linking container resolves, shown under NetworkSettings.Networks.<net>.Links."""
    uid = _uid()
    net, web, parent, other = f"ln-{uid}", f"lweb-{uid}", f"lp-{uid}", f"lo-{uid}"
    with _cleanup(daemon, [web, parent, other], [net]):
        _ok(daemon, "network", "create", net)
        _ok(daemon, "run", "-d", "--name", web, "--network", net, "busybox", "sleep", "120")
        ip = _ok(daemon, "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{net}").IPAddress}}}}', web)
        _ok(daemon, "run", "-d", "--name", parent, "--network", net, "--link", f"{web}:db", "busybox", "sleep", "120")
        _ok(daemon, "run", "-d", "--name", other, "--network", net, "busybox", "sleep", "120")
        assert f"Address: {ip}" in _ok(daemon, "exec", parent, "nslookup", "db")
        assert f"Address: {ip}" not in daemon.docker("exec", other, "nslookup", "db").stdout
        assert _endpoint(daemon, parent, net)["Links"] == [f"{web}:db"]
        assert json.loads(_ok(daemon, "inspect", "-f", "{{json .HostConfig.Links}}", parent)) is None
        # the SDK as docker-compose uses it: HostConfig.Links and the endpoint's Links, on a user network
        api = client.api
        one_off = api.create_container(
            "busybox", ["nslookup", "db"], host_config=api.create_host_config(network_mode=net, links={web: "db"}),
            networking_config=api.create_networking_config({net: api.create_endpoint_config(links={web: "db"})}))
        try:
            api.start(one_off)
            assert api.wait(one_off)["StatusCode"] == 0
            assert f"Address: {ip}" in api.logs(one_off).decode()
        finally:
            api.remove_container(one_off, force=True)
        # links and aliases given on connect
        _ok(daemon, "network", "disconnect", net, other)
        _ok(daemon, "network", "connect", "--link", f"{web}:cache", "--alias", "extra", net, other)
        assert f"Address: {ip}" in _ok(daemon, "exec", other, "nslookup", "cache")
        assert f"Address: {ip}" not in daemon.docker("exec", parent, "nslookup", "cache").stdout
        other_ip = _ok(daemon, "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{net}").IPAddress}}}}', other)
        assert f"Address: {other_ip}" in _ok(daemon, "exec", parent, "nslookup", "extra")
        ep = _endpoint(daemon, other, net)
        assert (ep["Links"], ep["Aliases"]) == ([f"{web}:cache"], ["extra"])


def test_bridge_keeps_its_mac_as_containers_come_and_go(daemon, busybox) -> None:
    """A bridge with an unset MAC takes its ports' lowest one: the gateway's address would change under
    its containers' ARP caches, and their DNS queries to it would be lost for seconds."""
    uid = _uid()
    net, c = f"mac-{uid}", f"macc-{uid}"
    with _cleanup(daemon, [c], [net]):
        device = _bridge_of(daemon, _ok(daemon, "network", "create", net))
        with open(f"/sys/class/net/{device}/address") as f:
            before = f.read()
        for _ in range(3):
            _ok(daemon, "run", "-d", "--name", c, "--network", net, "busybox", "sleep", "60")
            _ok(daemon, "rm", "-f", c)
        with open(f"/sys/class/net/{device}/address") as f:
            assert f.read() == before
        with open(f"/sys/class/net/{device}/addr_assign_type") as f:
            assert f.read().strip() == "3"  # NET_ADDR_SET


# ---- endpoint settings ------------------------------------------------------------
def test_endpoint_settings_are_kept_applied_and_shown(daemon, busybox, client) -> None:
    """Aliases, IPAMConfig (IPv4Address, LinkLocalIPs), MacAddress and DriverOpts at create and on connect:
    applied to the interface, shown under NetworkSettings.Networks.<net>, and kept while stopped."""
    uid = _uid()
    v4, _ = _subnets(uid)
    base = v4.rsplit(".", 1)[0]
    net, net2, c1, c2 = f"eps-{uid}", f"eps2-{uid}", f"epa-{uid}", f"epb-{uid}"
    mac = "02:42:0a:e7:00:aa"
    with _cleanup(daemon, [c1, c2], [net, net2]):
        _ok(daemon, "network", "create", "--subnet", v4, net)
        _ok(daemon, "network", "create", net2)
        _ok(daemon, "run", "-d", "--name", c1, "--network", net, "--ip", f"{base}.10", "--mac-address", mac,
            "--network-alias", "a1", "--link-local-ip", "169.254.7.7", "busybox", "sleep", "300")
        ep = _endpoint(daemon, c1, net)
        assert ep["IPAMConfig"] == {"IPv4Address": f"{base}.10", "LinkLocalIPs": ["169.254.7.7"]}
        assert (ep["IPAddress"], ep["MacAddress"], ep["Aliases"]) == (f"{base}.10", mac, ["a1"])
        assert mac in _ok(daemon, "exec", c1, "ip", "link", "show", "eth0")
        assert "inet 169.254.7.7/16" in _ok(daemon, "exec", c1, "ip", "-4", "addr", "show", "eth0")
        # DriverOpts on connect: kept and shown; the endpoint sysctls option applied to that interface
        sysctls = "com.docker.network.endpoint.sysctls=net.ipv4.conf.IFNAME.log_martians=1"
        _ok(daemon, "network", "connect", "--driver-opt", sysctls, "--driver-opt", "custom=x", net2, c1)
        assert _endpoint(daemon, c1, net2)["DriverOpts"] == {
            "com.docker.network.endpoint.sysctls": "net.ipv4.conf.IFNAME.log_martians=1", "custom": "x"}
        assert _ok(daemon, "exec", c1, "cat", "/proc/sys/net/ipv4/conf/eth1/log_martians") == "1"
        assert _ok(daemon, "exec", c1, "cat", "/proc/sys/net/ipv4/conf/eth0/log_martians") == "0"
        # stopped: the settings stay, the operational data goes, MacAddress is the one asked for
        _ok(daemon, "stop", "-t", "0", c1)
        ep = _endpoint(daemon, c1, net)
        assert (ep["IPAddress"], ep["EndpointID"], ep["MacAddress"]) == ("", "", mac)
        assert ep["IPAMConfig"] == {"IPv4Address": f"{base}.10", "LinkLocalIPs": ["169.254.7.7"]}
        # a stopped container connected with settings gets them when it starts
        _ok(daemon, "create", "--name", c2, "--network", net2, "busybox", "sleep", "300")
        _ok(daemon, "network", "connect", "--ip", f"{base}.20", "--alias", "b2", net, c2)
        _ok(daemon, "start", c1, c2)
        assert _endpoint(daemon, c2, net)["IPAddress"] == f"{base}.20"
        assert f"Address: {base}.20" in _ok(daemon, "exec", c1, "nslookup", "b2")
        assert mac in _ok(daemon, "exec", c1, "ip", "link", "show", "eth0")


def test_container_wide_mac_address(daemon, busybox, client) -> None:
    """Config.MacAddress (the SDK's mac_address) is the main network's endpoint's, as dockerd migrates it."""
    uid = _uid()
    net = f"cmac-{uid}"
    mac = "02:42:0a:e7:01:bb"
    api = client.api
    with _cleanup(daemon, networks=[net]):
        _ok(daemon, "network", "create", net)
        cid = api.create_container("busybox", ["ip", "link", "show", "eth0"], mac_address=mac,
                                   host_config=api.create_host_config(network_mode=net))["Id"]
        try:
            api.start(cid)
            assert api.wait(cid)["StatusCode"] == 0
            assert mac in api.logs(cid).decode()
            info = api.inspect_container(cid)
            assert info["Config"]["MacAddress"] == mac
            assert info["NetworkSettings"]["Networks"][net]["MacAddress"] == mac
        finally:
            api.remove_container(cid, force=True)
        cases = [({"MacAddress": mac, "HostConfig": {"NetworkMode": net},
                   "NetworkingConfig": {"EndpointsConfig": {net: {"MacAddress": "02:42:0a:e7:01:cc"}}}},
                  ("the container-wide MAC address must match the endpoint-specific MAC address for the main "
                   "network, or be left empty")),
                 ({"MacAddress": mac, "HostConfig": {"NetworkMode": "host"}},
                  "conflicting options: mac-address and the network mode"),
                 ({"MacAddress": "zz:42", "HostConfig": {"NetworkMode": net}}, "invalid MAC address zz:42"),
                 ({"HostConfig": {"NetworkMode": net}, "NetworkingConfig": {"EndpointsConfig": {net: {
                     "DriverOpts": {"com.docker.network.endpoint.sysctls": "kernel.ipv4.x.IFNAME.y=1"}}}}},
                  ("unrecognised network interface sysctl 'kernel.ipv4.x.IFNAME.y=1'; represent "
                   "'net.X.Y.ethN.Z=V' as 'net.X.Y.IFNAME.Z=V', 'X' must be 'ipv4', 'ipv6' or 'mpls'"))]
        for extra, message in cases:
            resp = api._post_json(api._url("/containers/create"), data={"Image": "busybox", "Cmd": ["true"], **extra})
            assert (resp.status_code, resp.json()["message"]) == (400, message)


def _ip6_rules(daemon) -> int:  # type: ignore[no-untyped-def]
    """Lines of this daemon's ip6 nftables table (0 when it has none)."""
    table = subprocess.run(["nft", "list", "table", "ip6", f"pydock_{_tag(daemon)}"], capture_output=True, text=True,
                           check=False).stdout
    return len(table.splitlines())


def test_ipv6_and_links_survive_a_daemon_crash_and_leave_nothing(daemon, busybox) -> None:
    uid = _uid()
    _, v6 = _subnets(uid)
    prefix6 = v6.split("::")[0]
    net, web, parent, peer = f"crash6-{uid}", f"cw-{uid}", f"cp-{uid}", f"cq-{uid}"
    baseline, rules6 = _host_state(daemon), _ip6_rules(daemon)
    with _cleanup(daemon, [parent, web, peer], [net]):
        _ok(daemon, "network", "create", "--ipv6", "--subnet", v6, net)
        _ok(daemon, "run", "-d", "--name", web, "busybox", "sleep", "300")
        _ok(daemon, "run", "-d", "--name", parent, "--link", f"{web}:db", "busybox", "sleep", "300")
        _ok(daemon, "run", "-d", "--name", peer, "--network", net, "busybox", "sleep", "300")
        _ok(daemon, "network", "connect", net, parent)
        assert _ip6_rules(daemon) > rules6  # the v6 pool masqueraded, bridges isolated
        running, running6 = _host_state(daemon), _ip6_rules(daemon)
        daemon.stop(9)
        daemon.start()
        assert (_host_state(daemon), _ip6_rules(daemon)) == (running, running6)
        assert json.loads(_ok(daemon, "inspect", "-f", "{{json .HostConfig.Links}}", parent)) == \
            [f"/{web}:/{parent}/db"]
        assert _endpoint(daemon, parent, net)["GlobalIPv6Address"] == f"{prefix6}::3"
        assert "1 packets received" in _ok(daemon, "exec", parent, "ping6", "-c1", "-W2", f"{prefix6}::2")
        assert "DB_NAME=" in _ok(daemon, "exec", parent, "env")
        # after a restart the next address is still free of the ones in use
        _ok(daemon, "restart", "-t", "0", peer)
        assert _endpoint(daemon, peer, net)["GlobalIPv6Address"] == f"{prefix6}::2"
        _ok(daemon, "rm", "-f", parent, web, peer)
        _ok(daemon, "network", "rm", net)
    assert (_host_state(daemon), _ip6_rules(daemon)) == (baseline, rules6)


def test_pydock_cli_sends_what_docker_sends_for_these_flags(daemon, busybox) -> None:
    """`pydock run`/`network connect` with --link, --ip6, --link-local-ip and --mac-address make the same
    containers as the docker CLI (inspected HostConfig.Links and endpoint settings)."""
    import io

    from pydock_cli.main import main

    uid = _uid()
    _, v6 = _subnets(uid)
    prefix6 = v6.split("::")[0]
    net, web = f"pcli-{uid}", f"pweb-{uid}"
    made = {cli: [f"{cli}a-{uid}", f"{cli}b-{uid}", f"{cli}c-{uid}"] for cli in ("docker", "pydock")}

    def run(cli: str, *args: str) -> None:
        if cli == "docker":
            _ok(daemon, *args)
        else:
            err = io.StringIO()
            assert main(["-H", daemon.url, *args], stdout=io.StringIO(), stderr=err, stdin=io.BytesIO()) == 0, \
                err.getvalue()

    with _cleanup(daemon, [web, *made["docker"], *made["pydock"]], [net]):
        _ok(daemon, "network", "create", "--ipv6", "--subnet", v6, net)
        _ok(daemon, "run", "-d", "--name", web, "busybox", "sleep", "120")
        views = {}
        for i, (cli, (a, b, c)) in enumerate(made.items()):
            run(cli, "create", "--name", a, "--link", f"{web}:db", "--mac-address", f"02:42:0a:e7:02:0{i}", "busybox")
            run(cli, "create", "--name", b, "--network", net, "--link", f"{web}:db", "--ip6", f"{prefix6}::{i + 40}",
                "--link-local-ip", f"169.254.9.{i + 1}", "busybox")
            run(cli, "create", "--name", c, "busybox")
            run(cli, "network", "connect", "--ip6", f"{prefix6}::{i + 50}", "--link-local-ip", "fe80::99", "--link",
                f"{web}:w", net, c)
            views[cli] = [(json.loads(_ok(daemon, "inspect", "-f", "{{json .HostConfig.Links}}", x)),
                           json.loads(_ok(daemon, "inspect", "-f", "{{json .NetworkSettings.Networks}}", x)))
                          for x in (a, b, c)]
        for (links_d, nets_d), (links_p, nets_p) in zip(views["docker"], views["pydock"], strict=True):
            assert (links_d is None) == (links_p is None)
            for name, ep in nets_d.items():
                other = nets_p[name]
                for key in ("Links", "Aliases", "DriverOpts"):
                    assert ep[key] == other[key], key
                assert ep["IPAMConfig"] is None or set(ep["IPAMConfig"]) == set(other["IPAMConfig"])
                assert bool(ep["MacAddress"]) == bool(other["MacAddress"])
        assert views["pydock"][0][1]["bridge"]["MacAddress"] == "02:42:0a:e7:02:01"
        assert views["pydock"][1][1][net]["IPAMConfig"] == {"IPv6Address": f"{prefix6}::41",
                                                            "LinkLocalIPs": ["169.254.9.2"]}


def test_endpoint_bad_input_on_connect_leaks_nothing(daemon, busybox) -> None:
    uid = _uid()
    v4, v6 = _subnets(uid)
    net, c = f"cbad-{uid}", f"cbadc-{uid}"
    prefix6 = v6.split("::")[0]
    with _cleanup(daemon, [c], [net]):
        _ok(daemon, "network", "create", "--ipv6", "--subnet", v4, "--subnet", v6, net)
        _ok(daemon, "run", "-d", "--name", c, "busybox", "sleep", "120")
        before = _host_state(daemon)
        cases = [(["--driver-opt", "com.docker.network.endpoint.sysctls=net.ipv4.conf.IFNAME.nonexistent=1"],
                  "failed to set sysctl net.ipv4.conf.eth1.nonexistent=1: No such file or directory"),
                 (["--ip6", "fd32::5"], "no configured subnet or ip-range contain the IP address fd32::5"),
                 (["--ip6", f"{prefix6}::1"], f"Address already in use: {prefix6}::1"),
                 (["--alias", "x", "--ip", "10.0.0.300"], "invalid IPv4 address: 10.0.0.300")]
        for flags, message in cases:
            assert message in _fails(daemon, "network", "connect", *flags, net, c), flags
            assert net not in json.loads(_ok(daemon, "inspect", "-f", "{{json .NetworkSettings.Networks}}", c))
            assert _host_state(daemon) == before
        assert "1 packets received" in _ok(daemon, "exec", c, "ping", "-c1", "-W2",
                                           _ok(daemon, "inspect", "-f", "{{.NetworkSettings.Gateway}}", c))


def test_connect_refusals_are_dockerds_400s(daemon, busybox, client) -> None:
    """runconfig's validation errors: the host network is all or nothing, and so is none."""
    uid = _uid()
    net, onhost, onnone, plain = f"cref-{uid}", f"crh-{uid}", f"crn-{uid}", f"crp-{uid}"
    with _cleanup(daemon, [onhost, onnone, plain], [net]):
        _ok(daemon, "network", "create", net)
        _ok(daemon, "create", "--name", onhost, "--network", "host", "busybox", "true")
        _ok(daemon, "create", "--name", onnone, "--network", "none", "busybox", "true")
        _ok(daemon, "create", "--name", plain, "busybox", "true")
        shared = ("container sharing network namespace with another container or host cannot be connected to any "
                  "other network")
        private = "container cannot be connected to multiple networks with one of the networks in private (none) mode"
        for network, container, message in [
                (net, onhost, shared),
                ("host", plain, "container cannot be disconnected from host network or connected to host network"),
                (net, onnone, private), ("none", plain, private)]:
            with pytest.raises(docker.errors.APIError) as err:
                client.networks.get(network).connect(container)
            assert (err.value.status_code, err.value.explanation) == (400, message), (network, container)
        with pytest.raises(docker.errors.APIError) as err:
            client.networks.get("host").disconnect(onhost)
        assert err.value.status_code == 400
        assert set(json.loads(_ok(daemon, "inspect", "-f", "{{json .NetworkSettings.Networks}}", plain))) == {"bridge"}
