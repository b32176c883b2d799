"""Container networking through the real docker CLI: bridges, published ports, DNS, isolation.

Every test creates its own networks, containers and (for the "client host")
network namespace with unique names, and removes them however it ends.
Addresses the tests add to this machine come from 10.231.0.0/16, which
nothing else here uses.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import secrets
import socket
import struct
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import docker
import pytest


def _uid() -> str:
    return secrets.token_hex(3)


def _ok(daemon, *args: str, timeout: float = 60) -> str:  # type: ignore[no-untyped-def]
    return daemon.docker(*args, check=True, timeout=timeout).stdout.strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def _http_get(url: str, timeout: float = 5) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _tag(daemon) -> str:  # type: ignore[no-untyped-def]
    """The per-daemon name scope of bridges, veths and the nftables table (engine/network/)."""
    return hashlib.sha256(os.path.realpath(daemon.data_root).encode()).hexdigest()[:4]


def _host_state(daemon) -> dict[str, object]:  # type: ignore[no-untyped-def]
    tag = _tag(daemon)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    veths = sorted(line.split(":")[1].strip().split("@")[0] for line in links.splitlines()
                   if line.split(":")[1].strip().startswith(f"pv{tag}"))
    nsdir = os.path.join(daemon.exec_root, "netns")
    table = subprocess.run(["nft", "list", "table", "ip", f"pydock_{tag}"], capture_output=True, text=True,
                           check=False).stdout
    iptables = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False).stdout
    return {"veths": veths, "netns": sorted(os.listdir(nsdir)) if os.path.isdir(nsdir) else [],
            "rules": len(table.splitlines()), "dnat": table.count("dnat to"),
            "iptables": len([ln for ln in iptables.splitlines() if ln.startswith("-A")])}


@contextmanager
def _cleanup(daemon, containers: list[str] | None = None,  # type: ignore[no-untyped-def]
             networks: list[str] | None = None) -> Iterator[None]:
    try:
        yield
    finally:
        if containers:
            daemon.docker("rm", "-f", *containers)
        for n in networks or []:
            daemon.docker("network", "rm", n)


def _ip(daemon, container: str, network: str) -> str:  # type: ignore[no-untyped-def]
    return _ok(daemon, "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}', container)


def _httpd(daemon, name: str, *args: str) -> str:  # type: ignore[no-untyped-def]
    """A busybox httpd serving "hello <name>" on port 80."""
    return _ok(daemon, "run", "-d", "--name", name, *args, "busybox", "sh", "-c",
               f"mkdir /www && echo hello {name} > /www/index.html && exec httpd -f -p 80 -h /www")


# ---- default bridge -------------------------------------------------------
def test_default_bridge_address_gateway_and_loopback_port(daemon, busybox) -> None:
    name, port = f"web-{_uid()}", _free_port()
    with _cleanup(daemon, [name]):
        _httpd(daemon, name, "-p", f"127.0.0.1:{port}:80", "--expose", "81")
        info = json.loads(_ok(daemon, "inspect", name))[0]
        ns = info["NetworkSettings"]
        assert info["HostConfig"]["NetworkMode"] == "bridge"
        bridge = ns["Networks"]["bridge"]
        net = json.loads(_ok(daemon, "network", "inspect", "bridge"))[0]
        subnet = net["IPAM"]["Config"][0]["Subnet"]
        assert ipaddress.ip_address(bridge["IPAddress"]) in ipaddress.ip_network(subnet)
        assert bridge["IPPrefixLen"] == int(subnet.split("/")[1])
        assert ns["IPAddress"] == bridge["IPAddress"] and ns["SandboxKey"].startswith(daemon.exec_root)
        assert bridge["MacAddress"].startswith("02:42:")
        assert ns["Ports"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}], "81/tcp": None}
        assert net["IPAM"]["Config"][0]["Gateway"] == bridge["Gateway"]
        assert info["Id"] in net["Containers"]
        out = _ok(daemon, "exec", name, "ping", "-c1", "-W2", bridge["Gateway"])
        assert "1 packets received" in out
        assert _http_get(f"http://127.0.0.1:{port}/index.html") == f"hello {name}\n"
        assert _ok(daemon, "port", name) == f"80/tcp -> 127.0.0.1:{port}"
        ps = _ok(daemon, "ps", "--filter", f"name={name}", "--format", "{{.Ports}}")
        assert sorted(ps.split(", ")) == [f"127.0.0.1:{port}->80/tcp", "81/tcp"]
        resolv = _ok(daemon, "exec", name, "cat", "/etc/resolv.conf")
        assert "nameserver" in resolv and bridge["Gateway"] not in resolv  # no embedded DNS on "bridge"
        assert f"{bridge['IPAddress']}\t{info['Config']['Hostname']}" in _ok(daemon, "exec", name, "cat", "/etc/hosts")


def test_publish_all_ports_and_udp(daemon, busybox) -> None:
    name = f"pall-{_uid()}"
    with _cleanup(daemon, [name]):
        _ok(daemon, "run", "-d", "--name", name, "-P", "--expose", "80", "-p", "5353/udp", "busybox", "sleep", "60")
        ports = json.loads(_ok(daemon, "inspect", "-f", "{{json .NetworkSettings.Ports}}", name))
        assert set(ports) == {"80/tcp", "5353/udp"}
        for binds in ports.values():
            assert binds[0]["HostIp"] == "0.0.0.0" and int(binds[0]["HostPort"]) >= 1024
        lines = _ok(daemon, "port", name).splitlines()
        assert sorted(line.split(" -> ")[0] for line in lines) == ["5353/udp", "80/tcp"]


@pytest.fixture
def client_host() -> Iterator[tuple[str, str]]:
    """A network namespace playing another machine: (netns name, the host's address on its link)."""
    uid = _uid()
    ns, host_if, peer_if = f"pdt-{uid}", f"pdth{uid}", f"pdtc{uid}"
    third = int(uid[:2], 16)
    host_ip, client_ip = f"10.231.{third}.1", f"10.231.{third}.2"
    cmds = [["ip", "netns", "add", ns],
            ["ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if, "netns", ns],
            ["ip", "addr", "add", f"{host_ip}/30", "dev", host_if],
            ["ip", "link", "set", host_if, "up"],
            ["ip", "-n", ns, "addr", "add", f"{client_ip}/30", "dev", peer_if],
            ["ip", "-n", ns, "link", "set", peer_if, "up"],
            ["ip", "-n", ns, "link", "set", "lo", "up"]]
    try:
        for cmd in cmds:
            subprocess.run(cmd, check=True, capture_output=True)
        yield ns, host_ip
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def test_published_port_reached_from_another_host(daemon, busybox, client_host) -> None:
    ns, host_ip = client_host
    name, port = f"pub-{_uid()}", _free_port()
    with _cleanup(daemon, [name]):
        _httpd(daemon, name, "-p", f"{port}:80")
        _http_get(f"http://127.0.0.1:{port}/index.html")  # up and serving
        url = f"http://{host_ip}:{port}/index.html"
        out = subprocess.run(["ip", "netns", "exec", ns, "curl", "-sS", "-m", "5", url],
                             capture_output=True, text=True, check=False)
        assert out.stdout == f"hello {name}\n", out.stderr
        # and from another container on the same bridge, through the host's address (hairpin NAT)
        assert _ok(daemon, "run", "--rm", "busybox", "wget", "-qO-", url) == f"hello {name}"
        # a port bound to 127.0.0.1 only is not reachable from outside
        other, port2 = f"lo-{_uid()}", _free_port()
        with _cleanup(daemon, [other]):
            _httpd(daemon, other, "-p", f"127.0.0.1:{port2}:80")
            _http_get(f"http://127.0.0.1:{port2}/index.html")
            out = subprocess.run(["ip", "netns", "exec", ns, "curl", "-sS", "-m", "2",
                                  f"http://{host_ip}:{port2}/index.html"], capture_output=True, text=True, check=False)
            assert out.returncode != 0


def test_container_reaches_outside_through_nat(daemon, busybox, client_host) -> None:
    """Outbound traffic leaves masqueraded: the other host sees the host's address, not the container's."""
    ns, host_ip = client_host
    port = _free_port()
    serve_once = (f"import socket; s = socket.socket(); s.bind(('0.0.0.0', {port})); s.listen(); "
                  "print('up', flush=True); c, peer = s.accept(); c.sendall(peer[0].encode()); c.close()")
    server = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", serve_once], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert server.stdout is not None and server.stdout.readline() == "up\n"
        other_host = host_ip.rsplit(".", 1)[0] + ".2"
        out = _ok(daemon, "run", "--rm", "busybox", "nc", "-w", "3", other_host, str(port))
        assert out == host_ip
    finally:
        server.kill()
        server.wait()


# ---- user-defined networks ------------------------------------------------
def test_user_networks_resolve_names_and_are_isolated(daemon, busybox) -> None:
    uid = _uid()
    n1, n2 = f"front-{uid}", f"back-{uid}"
    c1, c2, c3 = f"alpha-{uid}", f"beta-{uid}", f"gamma-{uid}"
    names = [c1, c2, c3]
    with _cleanup(daemon, names, [n1, n2]):
        _ok(daemon, "network", "create", n1)
        _ok(daemon, "network", "create", "--subnet", f"10.231.{int(uid[:2], 16)}.128/26", n2)
        _ok(daemon, "run", "-d", "--name", c1, "--network", n1, "--network-alias", "db", "busybox", "sleep", "120")
        _ok(daemon, "run", "-d", "--name", c2, "--network", n1, "busybox", "sleep", "120")
        _ok(daemon, "run", "-d", "--name", c3, "--network", n2, "busybox", "sleep", "120")
        ip1, ip3 = _ip(daemon, c1, n1), _ip(daemon, c3, n2)
        assert ip3.startswith(f"10.231.{int(uid[:2], 16)}.")
        cid1 = _ok(daemon, "inspect", "-f", "{{.Id}}", c1)
        for name in (c1, "db", cid1[:12]):
            out = _ok(daemon, "exec", c2, "nslookup", name)
            assert f"Address: {ip1}" in out, out
        assert "1 packets received" in _ok(daemon, "exec", c2, "ping", "-c1", "-W2", "db")
        _ok(daemon, "rename", c1, c1 + "-new")
        c1 = names[0] = c1 + "-new"
        assert f"Address: {ip1}" in _ok(daemon, "exec", c2, "nslookup", c1)
        missing = daemon.docker("exec", c2, "nslookup", c3)
        assert ip3 not in missing.stdout
        blocked = daemon.docker("exec", c2, "ping", "-c1", "-W1", ip3)
        assert blocked.returncode != 0 and "0 packets received" in blocked.stdout
        blocked = daemon.docker("exec", c3, "ping", "-c1", "-W1", ip1)
        assert blocked.returncode != 0
        ep = json.loads(_ok(daemon, "inspect", "-f", "{{json .NetworkSettings.Networks}}", c1))[n1]
        assert ep["Aliases"] == ["db"] and set(ep["DNSNames"]) == {c1, cid1[:12], "db"}
        # the resolver on the gateway answers containers only, not whoever can reach that address
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(1)
            s.sendto(struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x02db\x00" + struct.pack("!HH", 1, 1),
                     (ep["Gateway"], 53))
            with pytest.raises(socket.timeout):
                s.recvfrom(512)


def test_network_names_as_docker_allows_them(daemon, busybox, client) -> None:
    """libnetwork takes any name that is not blank: spaces and other characters included."""
    uid = _uid()
    name, odd, c = f"test {uid} 01", f"odd:{uid}+é", f"spaced-{uid}"
    with _cleanup(daemon, [c], [name, odd]):
        net_id = _ok(daemon, "network", "create", name)
        assert json.loads(_ok(daemon, "network", "inspect", name))[0]["Id"] == net_id
        assert name in _ok(daemon, "network", "ls", "--format", "{{.Name}}").splitlines()
        _ok(daemon, "run", "-d", "--name", c, "--network", name, "busybox", "sleep", "60")
        assert _ip(daemon, c, name)
        assert client.networks.create(odd).name == odd
        for blank in ("  ", "\t"):
            with pytest.raises(docker.errors.APIError) as err:
                client.networks.create(blank)
            assert (err.value.status_code, err.value.explanation) == (400, f"invalid name: {blank}")
        assert daemon.docker("network", "create", "bridge").returncode == 1  # predefined names stay taken


def test_ipam_auxiliary_addresses_and_options(daemon, busybox, client) -> None:
    """Auxiliary addresses are shown and never given to a container; IPAM Options are null unless given."""
    uid = _uid()
    third = int(uid[:2], 16)
    subnet = f"10.231.{third}.0/29"  # hosts .1-.6: the gateway .1, the auxiliary .2 and .3
    net, plain, c = f"aux-{uid}", f"plain-{uid}", f"auxc-{uid}"
    names = [f"{c}-{i}" for i in range(4)]
    with _cleanup(daemon, names, [net, plain]):
        _ok(daemon, "network", "create", "--subnet", subnet, "--aux-address", f"router=10.231.{third}.2",
            "--aux-address", f"printer=10.231.{third}.3", net)
        ipam = json.loads(_ok(daemon, "network", "inspect", net))[0]["IPAM"]
        assert ipam["Config"] == [{"Subnet": subnet, "Gateway": f"10.231.{third}.1", "AuxiliaryAddresses": {
            "printer": f"10.231.{third}.3", "router": f"10.231.{third}.2"}}]
        assert ipam["Options"] == {}  # the docker CLI sends an empty map
        ips = []
        for name in names[:3]:
            _ok(daemon, "run", "-d", "--name", name, "--network", net, "busybox", "sleep", "60")
            ips.append(_ip(daemon, name, net))
        assert ips == [f"10.231.{third}.{n}" for n in (4, 5, 6)]
        out = daemon.docker("run", "-d", "--name", names[3], "--network", net, "--ip", f"10.231.{third}.2",
                            "busybox", "sleep", "60")
        assert out.returncode != 0 and f"Address already in use: 10.231.{third}.2" in out.stderr

        sdk = client.networks.create(plain)
        assert sdk.attrs["IPAM"]["Options"] is None
        outside = f"auxiliary address: (h:10.99.0.1) must belong to the master pool: 10.231.{third}.64/26"
        taken = f"failed to allocate secondary ip address (h:10.231.{third}.65): Address already in use"
        for aux, message in [({"h": "10.99.0.1"}, outside), ({"h": f"10.231.{third}.65"}, taken)]:
            pool = docker.types.IPAMPool(subnet=f"10.231.{third}.64/26", gateway=f"10.231.{third}.65",
                                         aux_addresses=aux)
            with pytest.raises(docker.errors.APIError) as err:
                client.networks.create(f"bad-{uid}", ipam=docker.types.IPAMConfig(pool_configs=[pool]))
            assert err.value.explanation == message
        assert not client.networks.list(names=[f"bad-{uid}"])
        opts = client.networks.create(f"opts-{uid}", ipam=docker.types.IPAMConfig(options={"k": "v"}))
        try:
            assert opts.attrs["IPAM"]["Options"] == {"k": "v"}
        finally:
            opts.remove()


def test_connect_disconnect_and_static_ip(daemon, busybox) -> None:
    uid = _uid()
    n1, n2 = f"left-{uid}", f"right-{uid}"
    c1, c2 = f"one-{uid}", f"two-{uid}"
    subnet = f"10.231.{int(uid[:2], 16)}.64/27"
    with _cleanup(daemon, [c1, c2], [n1, n2]):
        _ok(daemon, "network", "create", n1)
        _ok(daemon, "network", "create", "--subnet", subnet, n2)
        _ok(daemon, "run", "-d", "--name", c1, "--network", n1, "busybox", "sleep", "120")
        _ok(daemon, "run", "-d", "--name", c2, "--network", n2, "busybox", "sleep", "120")
        static = subnet.rsplit(".", 1)[0] + ".90"
        _ok(daemon, "network", "connect", "--ip", static, "--alias", "svc", n2, c1)
        assert _ip(daemon, c1, n2) == static
        assert static in _ok(daemon, "exec", c1, "ip", "-o", "-4", "addr")
        assert f"Address: {static}" in _ok(daemon, "exec", c2, "nslookup", "svc")
        assert "1 packets received" in _ok(daemon, "exec", c2, "ping", "-c1", "-W2", c1)
        # c1 resolves names of both its networks
        assert f"Address: {_ip(daemon, c2, n2)}" in _ok(daemon, "exec", c1, "nslookup", c2)
        dup = daemon.docker("network", "connect", n2, c1)
        assert dup.returncode != 0 and f"endpoint with name {c1} already exists in network {n2}" in dup.stderr
        taken = daemon.docker("run", "--rm", "--network", n2, "--ip", static, "busybox", "true")
        assert taken.returncode != 0 and f"Address already in use: {static}" in taken.stderr
        _ok(daemon, "network", "disconnect", n2, c1)
        assert static not in _ok(daemon, "exec", c1, "ip", "-o", "-4", "addr")
        assert daemon.docker("exec", c2, "ping", "-c1", "-W1", static).returncode != 0
        assert n2 not in json.loads(_ok(daemon, "inspect", "-f", "{{json .NetworkSettings.Networks}}", c1))
        # a stopped container can be connected; it gets its address when it starts
        _ok(daemon, "stop", "-t", "0", c2)
        _ok(daemon, "network", "connect", n1, c2)
        _ok(daemon, "start", c2)
        assert _ip(daemon, c2, n1) and _ip(daemon, c2, n2)


def test_network_rm_in_use_and_predefined(daemon, busybox, client) -> None:
    uid = _uid()
    net, c = f"busy-{uid}", f"user-{uid}"
    with _cleanup(daemon, [c], [net]):
        _ok(daemon, "network", "create", net)
        cid = _ok(daemon, "create", "--name", c, "--network", net, "busybox", "true")
        with pytest.raises(docker.errors.APIError) as err:
            client.networks.get(net).remove()
        assert err.value.status_code == 403
        assert err.value.explanation == (f"error while removing network: network {net} has active endpoints "
                                         f'(name:"{c}" id:"{cid[:12]}")')
        with pytest.raises(docker.errors.APIError) as err:
            client.networks.get("bridge").remove()
        assert err.value.status_code == 403
        assert err.value.explanation == "bridge is a pre-defined network and cannot be removed"
        _ok(daemon, "rm", c)
        _ok(daemon, "network", "rm", net)
        assert net not in _ok(daemon, "network", "ls", "--format", "{{.Name}}").split()


def test_network_ls_inspect_prune_and_events(daemon, busybox) -> None:
    uid = _uid()
    keep, drop = f"keep-{uid}", f"drop-{uid}"
    since = str(int(time.time()) - 1)
    c = f"holder-{uid}"
    with _cleanup(daemon, [c], [keep, drop]):
        nid = _ok(daemon, "network", "create", "--label", "team=a", keep)
        _ok(daemon, "network", "create", drop)
        _ok(daemon, "create", "--name", c, "--network", keep, "busybox", "true")
        rows = _ok(daemon, "network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}").splitlines()
        assert {"bridge bridge local", "host host local", "none null local", f"{keep} bridge local"} <= set(rows)
        assert _ok(daemon, "network", "ls", "-q", "--filter", "label=team=a") == nid[:12]
        info = json.loads(_ok(daemon, "network", "inspect", keep))[0]
        assert info["Id"] == nid and info["Driver"] == "bridge" and info["Labels"] == {"team": "a"}
        dup = daemon.docker("network", "create", keep)
        assert dup.returncode != 0 and f"network with name {keep} already exists" in dup.stderr
        pruned = _ok(daemon, "network", "prune", "-f")
        assert drop in pruned and keep not in pruned
        assert daemon.docker("network", "inspect", drop).returncode != 0
        events = _ok(daemon, "events", "--since", since, "--until", str(int(time.time()) + 1),
                     "--filter", "type=network", "--format", "{{.Action}} {{.Actor.Attributes.name}}")
        assert f"create {keep}" in events and f"destroy {drop}" in events


def test_network_none_and_host(daemon, busybox) -> None:
    out = _ok(daemon, "run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"]
    host_links = {line.split(":")[1].strip().split("@")[0] for line in
                  subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout.splitlines()}
    out = _ok(daemon, "run", "--rm", "--network", "host", "busybox", "ip", "-o", "link")
    seen = {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}
    assert {"lo", "eth0", f"pd{_tag(daemon)}0"} <= seen & host_links  # this daemon's own bridge included
    info = json.loads(_ok(daemon, "network", "inspect", "host"))[0]
    assert info["Driver"] == "host"


def test_a_bridge_deleted_behind_the_daemons_back_is_made_again(daemon, busybox) -> None:
    """A start plugs into the network's bridge in one request; when the bridge is gone (`ip link del`, a
    host reboot), it is made again and the container reaches its gateway through it."""
    from engine.network.bridge import BridgeDriver
    uid = _uid()
    net = f"gone-{uid}"
    with _cleanup(daemon, [], [net]):
        net_id = _ok(daemon, "network", "create", net)
        gateway = json.loads(_ok(daemon, "network", "inspect", net))[0]["IPAM"]["Config"][0]["Gateway"]
        device = BridgeDriver(daemon.data_root).bridge_name(net_id)
        _ok(daemon, "run", "--rm", "--network", net, "busybox", "true")
        subprocess.run(["ip", "link", "del", device], check=True)
        out = _ok(daemon, "run", "--rm", "--network", net, "busybox", "ping", "-c1", "-W2", gateway)
        assert "1 packets received" in out
        assert subprocess.run(["ip", "link", "show", device], capture_output=True, check=False).returncode == 0


def test_network_container_mode_shares_the_namespace(daemon, busybox) -> None:
    web = f"owner-{_uid()}"
    with _cleanup(daemon, [web]):
        _httpd(daemon, web)
        out = _ok(daemon, "run", "--rm", "--network", f"container:{web}", "busybox", "wget", "-qO-",
                  "http://127.0.0.1/index.html")
        assert out == f"hello {web}"
        cid = _ok(daemon, "create", "--network", f"container:{web}", "busybox", "true")
        try:
            mode = _ok(daemon, "inspect", "-f", "{{.HostConfig.NetworkMode}}", cid)
            assert mode == "container:" + _ok(daemon, "inspect", "-f", "{{.Id}}", web)
        finally:
            daemon.docker("rm", cid)
        proc = daemon.docker("run", "--rm", "--network", f"container:{web}", "--dns", "10.231.0.53", "busybox", "true")
        assert proc.returncode != 0 and "conflicting options: dns and the network mode" in proc.stderr
        _ok(daemon, "stop", "-t", "0", web)
        proc = daemon.docker("run", "--rm", "--network", f"container:{web}", "busybox", "true")
        assert proc.returncode != 0 and "cannot join network of a non running container" in proc.stderr


def test_extra_hosts_and_dns_options(daemon, busybox) -> None:
    out = _ok(daemon, "run", "--rm", "--add-host", "db.local:10.231.0.9", "--add-host", "gw:host-gateway",
              "--dns", "10.231.0.53", "--dns-search", "example.test", "--dns-option", "ndots:2",
              "busybox", "sh", "-c", "cat /etc/hosts /etc/resolv.conf")
    gateway = json.loads(_ok(daemon, "network", "inspect", "bridge"))[0]["IPAM"]["Config"][0]["Gateway"]
    assert "10.231.0.9\tdb.local" in out and f"{gateway}\tgw" in out
    assert "nameserver 10.231.0.53" in out and "search example.test" in out and "options ndots:2" in out


def test_bad_input_has_docker_errors_and_leaks_nothing(daemon, busybox, client) -> None:
    before = _host_state(daemon)
    count = len(_ok(daemon, "ps", "-aq").split())
    cases = [
        (["run", "--rm", "--network", "nope", "busybox", "true"],
         "failed to set up container networking: network nope not found"),
        (["run", "--rm", "--ip", "172.29.9.9", "busybox", "true"],
         "user specified IP address is supported on user defined networks only"),
    ]
    for args, message in cases:
        proc = daemon.docker(*args)
        assert proc.returncode != 0 and message in proc.stderr, (args, proc.stderr)
    api = client.api
    api_cases = [  # what the CLI already refuses itself, sent straight to the API
        ({"networking_config": api.create_networking_config({"bridge": api.create_endpoint_config(aliases=["x"])})},
         "network-scoped alias is supported only for containers in user defined networks"),
        ({"host_config": api.create_host_config(extra_hosts=["h:notanip"])},
         'invalid IP address in add-host: "notanip"'),
        ({"host_config": api.create_host_config(port_bindings={"99999/tcp": 80})}, "invalid port: 99999/tcp"),
        ({"host_config": api.create_host_config(dns=["not-an-ip"])}, "invalid IP address in DNS server: not-an-ip"),
    ]
    for kwargs, message in api_cases:
        with pytest.raises(docker.errors.APIError) as err:
            api.create_container("busybox", "true", **kwargs)
        assert err.value.status_code == 400 and err.value.explanation == message
    net = f"ovl-{_uid()}"
    with _cleanup(daemon, networks=[net]):
        bridge_subnet = json.loads(_ok(daemon, "network", "inspect", "bridge"))[0]["IPAM"]["Config"][0]["Subnet"]
        proc = daemon.docker("network", "create", "--subnet", bridge_subnet, net)
        assert proc.returncode != 0 and "Pool overlaps with other one on this address space" in proc.stderr
        proc = daemon.docker("network", "create", "-d", "nosuchdriver", net)
        assert proc.returncode != 0 and 'plugin "nosuchdriver" not found' in proc.stderr
    # a port already taken by another container fails the start cleanly
    name, other, port = f"p1-{_uid()}", f"p2-{_uid()}", _free_port()
    with _cleanup(daemon, [name, other]):
        _ok(daemon, "run", "-d", "--name", name, "-p", f"{port}:80", "busybox", "sleep", "60")
        proc = daemon.docker("run", "-d", "--name", other, "-p", f"{port}:80", "busybox", "sleep", "60")
        assert proc.returncode != 0 and "port is already allocated" in proc.stderr
    assert len(_ok(daemon, "ps", "-aq").split()) == count
    assert _host_state(daemon) == before


def test_no_strays_after_rm_and_daemon_restart(daemon, busybox) -> None:
    uid = _uid()
    net, web, peer = f"rs-{uid}", f"rsweb-{uid}", f"rspeer-{uid}"
    port = _free_port()
    baseline = _host_state(daemon)
    with _cleanup(daemon, [web, peer], [net]):
        _ok(daemon, "network", "create", net)
        _httpd(daemon, web, "--network", net, "-p", f"127.0.0.1:{port}:80")
        _ok(daemon, "run", "-d", "--name", peer, "--network", net, "busybox", "sleep", "300")
        running = _host_state(daemon)
        assert len(running["veths"]) == len(baseline["veths"]) + 2  # type: ignore[arg-type]
        assert running["dnat"] == baseline["dnat"] + 1  # type: ignore[operator]
        daemon.stop(9)  # a crash: nothing gets the chance to clean up
        daemon.start()
        assert _host_state(daemon) == running  # nothing duplicated, nothing dropped
        assert _http_get(f"http://127.0.0.1:{port}/index.html") == f"hello {web}\n"
        out = _ok(daemon, "exec", peer, "wget", "-qO-", f"http://{web}/index.html")
        assert out == f"hello {web}"
        # a container that dies while the daemon is down is cleaned up when it comes back
        peer_id, runtime = _ok(daemon, "inspect", "-f", "{{.Id}} {{.HostConfig.Runtime}}", peer).split()
        daemon.stop()
        subprocess.run([runtime, "--root", os.path.join(daemon.exec_root, runtime), "kill", peer_id, "KILL"],
                       check=True, capture_output=True)
        time.sleep(0.5)
        daemon.start()
        after = _host_state(daemon)
        assert len(after["veths"]) == len(baseline["veths"]) + 1  # type: ignore[arg-type]
        _ok(daemon, "rm", "-f", web, peer)
    assert _host_state(daemon) == baseline


# ---- pure parts -------------------------------------------------------------
def test_ipam_allocates_lowest_free_and_refuses_clashes() -> None:
    from ipaddress import IPv4Address, IPv4Network

    from engine.errors import Forbidden, InvalidParameter
    from engine.network import ipam
    net = IPv4Network("10.231.7.0/29")
    gw = ipam.gateway_for(net)
    assert str(gw) == "10.231.7.1"
    assert ipam.allocate(net, gw, set()) == "10.231.7.2"
    assert ipam.allocate(net, gw, {"10.231.7.2", "10.231.7.3"}) == "10.231.7.4"
    assert ipam.allocate(net, gw, set(), "10.231.7.6") == "10.231.7.6"
    with pytest.raises(Forbidden, match="Address already in use"):
        ipam.allocate(net, gw, {"10.231.7.6"}, "10.231.7.6")
    with pytest.raises(InvalidParameter):
        ipam.allocate(net, gw, set(), "10.9.9.9")
    with pytest.raises(Forbidden, match="no available IPv4 addresses"):
        ipam.allocate(net, gw, {f"10.231.7.{i}" for i in range(2, 7)})
    taken = [IPv4Network("172.29.0.0/16")]
    assert ipam.pick_subnet(taken, IPv4Network("172.29.0.0/16")) == IPv4Network("172.17.0.0/16")
    with pytest.raises(Forbidden, match="Pool overlaps"):
        ipam.check_overlap(IPv4Network("172.29.5.0/24"), [IPv4Network("172.29.0.0/16")])
    assert ipam.allocate(net, gw, set(), pool=ipam.check_range(net, "10.231.7.4/30")) == "10.231.7.5"
    with pytest.raises(InvalidParameter, match="within subnet"):
        ipam.check_range(net, "10.231.8.0/30")
    assert ipam.mac_for("172.17.0.2") == "02:42:ac:11:00:02"
    assert IPv4Address("10.231.7.1") == gw


def test_dns_answer_round_trip() -> None:
    from engine.network import dns
    query = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x02db\x05local\x00" + struct.pack("!HH", 1, 1)
    qid, name, qtype, end = dns.parse_query(query)  # type: ignore[misc]
    assert (qid, name, qtype, end) == (0x1234, "db.local", 1, len(query))
    reply = dns.build_answer(query, end, qtype, ["10.231.0.7"])
    assert struct.unpack("!HHHH", reply[:8]) == (0x1234, 0x8180, 1, 1)
    assert reply.endswith(socket.inet_aton("10.231.0.7"))
    aaaa = query[:-4] + struct.pack("!HH", 28, 1)
    assert struct.unpack("!H", dns.build_answer(aaaa, end, 28, ["10.231.0.7"])[6:8])[0] == 0  # NOERROR, no records
    assert dns.parse_query(b"\x00" * 5) is None


def test_firewall_table_is_rendered_whole_and_once() -> None:
    from engine.network import firewall as netfw
    bridges = [netfw.Bridge("pdx0", "172.29.0.0/16"), netfw.Bridge("pdx-a", "10.231.0.0/24", masquerade=False)]
    ports = [netfw.PortRule("tcp", "127.0.0.1", 8080, "172.29.0.2", 80, "pdx0"),
             netfw.PortRule("udp", "0.0.0.0", 5353, "172.29.0.3", 53, "pdx0")]
    text = netfw.render("pydock_x", bridges, ports)
    assert text.startswith("table ip pydock_x {}\ndelete table ip pydock_x\n")  # replaced in one transaction
    assert "ip daddr 127.0.0.1 tcp dport 8080 dnat to 172.29.0.2:80" in text
    assert "\n    udp dport 5353 dnat to 172.29.0.3:53" in text
    assert text.count("masquerade") == 5  # one subnet masqueraded, loopback and hairpin per bridge
    assert 'iifname "pdx-a" oifname != "pdx-a" oifname { "pdx0", "pdx-a" } drop' in text
    assert netfw.render("pydock_x", bridges, ports) == text
