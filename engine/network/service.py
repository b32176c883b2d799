"""Container networking: bridge networks, endpoints, published ports, embedded DNS.

State lives in SQLite (networks, endpoints, sandboxes), the kernel objects
(bridges, veths, network namespaces, the nftables table) are derived from it:
every operation first records what should exist, then makes the kernel match,
and the daemon's start reconciles both ways (re-creates bridges and rules,
removes veths and namespaces of containers that no longer run). Names are
scoped by an instance tag so several daemons can share one host.

A container's network namespace is a bind mount under exec_root/netns that
the daemon creates before runc starts, so its veths and addresses exist
before the process does and survive a daemon restart unchanged.
"""
from __future__ import annotations

import errno
import hashlib
import ipaddress
import json
import logging
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from engine.config import EngineConfig
from engine.errors import Conflict, EngineError, Forbidden, InvalidParameter, NotFound, NotImplementedYet
from engine.events import EventBus
from engine.network import firewall as netfw
from engine.network import ipam, netns
from engine.network.dns import DnsServer, host_nameservers
from engine.network.peers import ContainerLookup, ContainersRef
from engine.store.db import MetaStore
from engine.timeutil import parse_api_time, parse_rfc3339_ns, rfc3339_ns

NETWORK_SCHEMA = """
CREATE TABLE IF NOT EXISTS networks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL              -- JSON: Docker's network inspect document (+ _device)
);
CREATE TABLE IF NOT EXISTS endpoints (
    network_id TEXT NOT NULL,
    container_id TEXT NOT NULL,
    ip TEXT,                        -- allocated address while the container's network is up, else NULL
    data TEXT NOT NULL,             -- JSON: aliases, requested address, endpoint id, MAC, container name
    PRIMARY KEY (network_id, container_id),
    UNIQUE (network_id, ip)
);
CREATE TABLE IF NOT EXISTS sandboxes (
    container_id TEXT PRIMARY KEY,  -- a container whose network namespace exists
    data TEXT NOT NULL              -- JSON: netns path, published port rules
);
"""

log = logging.getLogger(__name__)

PREDEFINED = ("bridge", "host", "none")
DEFAULT_ROOT = "/var/lib/pydock"
DEFAULT_BRIDGE_SUBNET = "172.29.0.0/16"
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
PROTOS = ("tcp", "udp")
DOCKER_DRIVERS = ("host", "null", "macvlan", "ipvlan", "overlay")  # Docker's other built-in drivers
HOSTS_BASE = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
              "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")


MTU_OPTION = "com.docker.network.driver.mtu"


def _check_mtu(options: dict[str, str]) -> None:
    """libnetwork's bridge driver parses the MTU option with strconv.Atoi when the network is created."""
    value = options.get(MTU_OPTION)
    if value is not None and not re.fullmatch(r"[+-]?[0-9]+", value, re.ASCII):
        raise InvalidParameter(f"failed to parse {MTU_OPTION} value: {value} "
                               f'(strconv.Atoi: parsing "{value}": invalid syntax)')


def _check_aux_addresses(network: str, subnet: IPv4Network, aux: dict[str, str]) -> None:
    """Auxiliary addresses are IPs of the network's pool, as libnetwork requires."""
    for host, value in aux.items():
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            raise InvalidParameter(f"non parsable secondary ip address ({host}:{value}) passed for network "
                                   f"{network}") from None
        if ip not in subnet:
            raise Forbidden(f"auxiliary address: ({host}:{value}) must belong to the master pool: {subnet}")


class NetworkService:
    def __init__(self, cfg: EngineConfig, meta: MetaStore, events: EventBus, containers: ContainersRef) -> None:
        """`containers` returns the container service, which is built after this one (see peers.py)."""
        self.cfg = cfg
        self.meta = meta
        meta.ensure_schema(NETWORK_SCHEMA)
        self.events = events
        self._containers_ref = containers
        default = os.path.realpath(cfg.data_root) == DEFAULT_ROOT
        tag = hashlib.sha256(os.path.realpath(cfg.data_root).encode()).hexdigest()[:4]
        self.table = "pydock" if default else f"pydock_{tag}"
        self.default_device = "pydock0" if default else f"pd{tag}0"
        self.bridge_prefix = "pydock-" if default else f"pd{tag}-"
        self.veth_prefix = f"pv{tag}"
        self.netns_dir = os.path.join(cfg.exec_root, "netns")
        self._guard = threading.Lock()
        self._locks: dict[str, threading.RLock] = {}
        self._fw = threading.Lock()
        self._pools = threading.Lock()
        self.dns: DnsServer | None = None

    # ---- daemon lifecycle --------------------------------------------
    def start(self) -> None:
        """Make the kernel match the stored networks (before containers are restored)."""
        netns.in_fresh_thread(self._start)

    def _start(self) -> None:
        os.makedirs(self.netns_dir, mode=0o711, exist_ok=True)
        self._collect_stale_bridges()
        self._ensure_predefined()
        self._apply_bip()
        netfw.set_sysctl("net/ipv4/ip_forward", "1")
        self.dns = DnsServer(self._dns_lookup)
        for net in self._networks():
            if net["Driver"] == "bridge":
                self._ensure_bridge(self._repool_if_taken(net))
        self._apply_firewall()

    def _collect_stale_bridges(self) -> None:
        """Delete the bridges (and rules) of daemons whose data root is gone, e.g. a killed test daemon's.

        Each bridge's alias names its daemon's table and data root; one with no
        port attached whose data root no longer exists can serve nobody again.
        """
        with IPRoute() as ip:
            links = ip.get_links()
            masters = {link.get_attr("IFLA_MASTER") for link in links}
            for link in links:
                alias = link.get_attr("IFLA_IFALIAS") or ""
                parts = alias.split(" ", 2)
                if len(parts) != 3 or parts[0] != "pydock" or parts[1] == self.table:
                    continue
                if link["index"] in masters or os.path.exists(parts[2]):
                    continue
                ip.link("del", index=link["index"])
                try:
                    netfw.remove(parts[1])
                except EngineError as e:
                    log.warning("removing stale firewall table %s: %s", parts[1], e)

    def _repool_if_taken(self, net: dict[str, Any]) -> dict[str, Any]:
        """An automatically chosen pool that another daemon took while our bridge was down is chosen anew."""
        if not net.get("_auto") or self._device_exists(net["_device"]):
            return net
        mine = IPv4Network(net["IPAM"]["Config"][0]["Subnet"])
        used = self._used_subnets(exclude=net["Id"])
        if not any(mine.overlaps(u) for u in used):
            return net
        subnet = ipam.pick_subnet(used)
        net["IPAM"]["Config"] = [{"Subnet": str(subnet), "Gateway": str(ipam.gateway_for(subnet))}]
        with self.meta.transaction() as db:
            db.execute("UPDATE networks SET data=? WHERE id=?", (json.dumps(net), net["Id"]))
        log.warning("network %s: pool %s is in use on this host now, moved to %s", net["Name"], mine, subnet)
        return net

    @staticmethod
    def _device_exists(name: str) -> bool:
        with IPRoute() as ip:
            return _index(ip, name) is not None

    def reconcile(self) -> None:
        """Drop what containers that no longer run left behind (after containers are restored)."""
        netns.in_fresh_thread(self._reconcile)

    def _reconcile(self) -> None:
        for row in self.meta.query("SELECT container_id FROM sandboxes"):
            cid = row["container_id"]
            if not self._running(cid):
                self.teardown(cid)
        live = {self._veth(ep["data"]["EndpointID"]) for ep in self._endpoints() if ep["ip"]}
        with IPRoute() as ip:
            for link in ip.get_links():
                name = link.get_attr("IFLA_IFNAME")
                if name.startswith(self.veth_prefix) and name not in live:
                    _delete_index(ip, link["index"])
        kept = {r["container_id"] for r in self.meta.query("SELECT container_id FROM sandboxes")}
        for name in os.listdir(self.netns_dir):
            if name not in kept:
                netns.remove(os.path.join(self.netns_dir, name))
        self._apply_firewall()

    def close(self) -> None:
        """Leave no trace on the host when nothing runs; otherwise keep serving containers as they are."""
        if self.dns is not None:
            self.dns.close()
        if self.meta.query_one("SELECT container_id FROM sandboxes") is not None:
            return
        try:
            netfw.remove(self.table)
            netns.in_fresh_thread(self._delete_bridges)
        except (EngineError, NetlinkError, OSError) as e:
            log.warning("network cleanup at shutdown: %s", e)

    def _delete_bridges(self) -> None:
        with IPRoute() as ip:
            for net in self._networks():
                if net.get("_device"):
                    _delete_link(ip, net["_device"])

    # ---- networks ----------------------------------------------------
    def _networks(self) -> list[dict[str, Any]]:
        return [json.loads(r["data"]) for r in self.meta.query("SELECT data FROM networks ORDER BY name")]

    def _ensure_predefined(self) -> None:
        have = {n["Name"] for n in self._networks()}
        for name in PREDEFINED:
            if name in have:
                continue
            if name == "bridge":
                subnet, gateway = self._bip()
                if subnet is None:
                    subnet = ipam.pick_subnet(self._used_subnets(), IPv4Network(DEFAULT_BRIDGE_SUBNET))
                net = self._new_network("bridge", "bridge", subnet, gateway, self.default_device, {
                    "com.docker.network.bridge.default_bridge": "true",
                    "com.docker.network.bridge.enable_icc": "true",
                    "com.docker.network.bridge.enable_ip_masquerade": "true",
                    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                    "com.docker.network.bridge.name": self.default_device,
                    "com.docker.network.driver.mtu": "1500"}, {}, False)
                net["_auto"] = not gateway
            else:
                net = self._new_network(name, "host" if name == "host" else "null", None, "", "", {}, {}, False)
            self._insert_network(net)

    def _bip(self) -> tuple[IPv4Network | None, str]:
        """The configured default bridge pool and gateway (--bip), if any."""
        if not self.cfg.bip:
            return None, ""
        try:
            iface = ipaddress.IPv4Interface(self.cfg.bip)
        except ValueError:
            raise InvalidParameter(f"invalid --bip {self.cfg.bip!r}: want an address with prefix, e.g. "
                                   "172.29.0.1/16") from None
        return iface.network, str(iface.ip)

    def _apply_bip(self) -> None:
        """A changed --bip moves the default bridge, unless a running container is on it."""
        subnet, gateway = self._bip()
        net = self.resolve("bridge")
        want = [{"Subnet": str(subnet), "Gateway": gateway}]
        if subnet is None or net["IPAM"]["Config"] == want:
            return
        if any(ep["ip"] for ep in self._endpoints(network_id=net["Id"])):
            log.warning("--bip %s not applied: containers are running on the default bridge", self.cfg.bip)
            return
        with IPRoute() as ip:
            _delete_link(ip, net["_device"])  # its old route must not count as a clash
        ipam.check_overlap(subnet, self._used_subnets(exclude=net["Id"]))
        net["IPAM"]["Config"], net["_auto"] = want, False
        with self.meta.transaction() as db:
            db.execute("UPDATE networks SET data=? WHERE id=?", (json.dumps(net), net["Id"]))

    @staticmethod
    def _new_network(name: str, driver: str, subnet: IPv4Network | None, gateway: str, device: str,
                     options: dict[str, str], labels: dict[str, str], internal: bool) -> dict[str, Any]:
        config = [] if subnet is None else [{"Subnet": str(subnet), "Gateway": str(ipam.gateway_for(subnet, gateway))}]
        return {"Name": name, "Id": secrets.token_hex(32), "Created": rfc3339_ns(), "Scope": "local",
                "Driver": driver, "EnableIPv4": True, "EnableIPv6": False,
                "IPAM": {"Driver": "default", "Options": None if name in PREDEFINED else {}, "Config": config},
                "Internal": internal, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
                "ConfigOnly": False, "Options": options, "Labels": labels, "_device": device}

    def _insert_network(self, net: dict[str, Any]) -> None:
        with self.meta.transaction() as db:
            if db.execute("SELECT 1 FROM networks WHERE name=?", (net["Name"],)).fetchone():
                raise Conflict(f"network with name {net['Name']} already exists")
            db.execute("INSERT INTO networks(id, name, data) VALUES (?,?,?)", (net["Id"], net["Name"], json.dumps(net)))

    def _used_subnets(self, exclude: str = "") -> list[IPv4Network]:
        """Pools of our networks and the host's routes (other daemons' bridges included)."""
        ours = [n for n in self._networks() if n["Id"] != exclude]
        used = [IPv4Network(c["Subnet"]) for n in ours for c in n["IPAM"]["Config"]]
        with IPRoute() as ip:
            for r in ip.get_routes(family=socket.AF_INET, table=254):
                dst = r.get_attr("RTA_DST")
                if dst and r["dst_len"]:
                    used.append(IPv4Network(f"{dst}/{r['dst_len']}", strict=False))
        return used

    def resolve(self, ref: str) -> dict[str, Any]:
        """Docker's lookup order: full ID, exact name, then unique ID prefix."""
        if not isinstance(ref, str) or not ref or len(ref) > 300:
            raise NotFound(f"network {str(ref)[:300]} not found")
        row = self.meta.query_one("SELECT data FROM networks WHERE id=?", (ref,)) or \
            self.meta.query_one("SELECT data FROM networks WHERE name=?", (ref,))
        if row is None and all(c in "0123456789abcdef" for c in ref):
            rows = self.meta.query("SELECT data FROM networks WHERE id LIKE ?", (ref + "%",))
            if len(rows) > 1:
                raise InvalidParameter(f"network {ref} is ambiguous ({len(rows)} matches found based on ID prefix)")
            row = rows[0] if rows else None
        if row is None:
            raise NotFound(f"network {ref} not found")
        return json.loads(row["data"])

    def create(self, body: dict[str, Any]) -> dict[str, str]:
        name = body.get("Name") or ""
        if not name:
            raise InvalidParameter("invalid name: name is empty")
        if not NAME_RE.match(name) or len(name) > 255:
            raise InvalidParameter(f'invalid network name "{name[:255]}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
        driver = body.get("Driver") or "bridge"
        if driver in DOCKER_DRIVERS:
            raise NotImplementedYet(f"network driver {driver} is not supported by pydock; use bridge")
        if driver != "bridge":
            raise NotFound(f'plugin "{driver}" not found')
        if body.get("EnableIPv6"):
            raise NotImplementedYet("IPv6 networks are not supported")
        options = body.get("Options") or {}
        _check_mtu(options)
        labels = body.get("Labels") or {}
        configs = (body.get("IPAM") or {}).get("Config") or []
        if len(configs) > 1:
            raise InvalidParameter("invalid IPAM config: at most one IPv4 pool is supported")
        auto = not (configs and configs[0].get("Subnet"))
        gateway = str(configs[0].get("Gateway") or "") if configs else ""
        with self._pools:  # choosing a pool and recording it is one step
            used = self._used_subnets()
            if auto:
                subnet = ipam.pick_subnet(used)
            else:
                subnet = ipam.parse_subnet(str(configs[0]["Subnet"]))
                ipam.check_overlap(subnet, used)
            net = self._new_network(name, "bridge", subnet, gateway, "", options, labels, bool(body.get("Internal")))
            net.update(Attachable=bool(body.get("Attachable")), _auto=auto)
            if configs:
                _check_aux_addresses(name, subnet, configs[0].get("AuxiliaryAddresses") or {})
            ip_range = str(configs[0].get("IPRange") or "") if configs else ""
            if ip_range:
                ipam.check_range(subnet, ip_range)
                net["IPAM"]["Config"][0]["IPRange"] = ip_range
            device = options.get("com.docker.network.bridge.name") or \
                self.bridge_prefix + net["Id"][:15 - len(self.bridge_prefix)]
            if len(device) > 15 or not NAME_RE.match(device):
                raise InvalidParameter(f"invalid bridge name {device}")
            net["_device"] = device
            self._insert_network(net)
        try:
            self._ensure_bridge(net)
            self._apply_firewall()
        except BaseException:
            self._delete_network(net)
            raise
        self.events.publish("network", "create", net["Id"], {"name": name, "type": "bridge"})
        return {"Id": net["Id"], "Warning": ""}

    def remove(self, ref: str) -> None:
        net = self.resolve(ref)
        if net["Name"] in PREDEFINED:
            raise Forbidden(f"{net['Name']} is a pre-defined network and cannot be removed")
        self._delete_network(net)
        self.events.publish("network", "destroy", net["Id"], {"name": net["Name"], "type": "bridge"})

    def _delete_network(self, net: dict[str, Any]) -> None:
        with self.meta.transaction() as db:  # the check and the delete are one step against concurrent connects
            users = db.execute("SELECT container_id, data FROM endpoints WHERE network_id=?", (net["Id"],)).fetchall()
            if users:
                eps = ", ".join(f'name:"{json.loads(u["data"])["Name"]}" id:"{u["container_id"][:12]}"'
                                for u in users)
                raise Forbidden(f"error while removing network: network {net['Name']} has active endpoints ({eps})")
            db.execute("DELETE FROM networks WHERE id=?", (net["Id"],))
        if self.dns is not None:
            self.dns.forget(net["Id"])
        with IPRoute() as ip:
            _delete_link(ip, net["_device"])
        self._apply_firewall()

    def prune(self, filters: dict[str, list[str]]) -> dict[str, Any]:
        deleted = []
        for net in self.list(filters):
            if net["Name"] in PREDEFINED:
                continue
            try:
                self.remove(net["Id"])
                deleted.append(net["Name"])
            except EngineError:
                continue
        self.events.publish("network", "prune", "", {})
        return {"NetworksDeleted": deleted or None}

    def list(self, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        filters = filters or {}
        out = []
        for net in self._networks():
            if self._match(net, filters):
                out.append(self._public(net, containers=False))
        return out

    def _match(self, net: dict[str, Any], filters: dict[str, list[str]]) -> bool:
        for key, values in filters.items():
            if not values:
                continue
            if key == "name":
                ok = any(v in net["Name"] for v in values)
            elif key == "id":
                ok = any(net["Id"].startswith(v) for v in values)
            elif key == "driver":
                ok = net["Driver"] in values
            elif key == "scope":
                ok = "local" in values
            elif key == "type":
                ok = ("builtin" if net["Name"] in PREDEFINED else "custom") in values
            elif key == "label":
                ok = all(_label_matches(net["Labels"], val) for val in values)
            elif key == "dangling":
                busy = self.meta.query_one("SELECT 1 FROM endpoints WHERE network_id=?", (net["Id"],)) is not None
                ok = any((v in ("true", "1")) == (not busy and net["Name"] not in PREDEFINED) for v in values)
            elif key == "until":
                ok = all(parse_rfc3339_ns(net["Created"]) < _until_ns(v) for v in values)
            else:
                raise InvalidParameter(f"invalid filter '{key}'")
            if not ok:
                return False
        return True

    def inspect(self, ref: str) -> dict[str, Any]:
        return self._public(self.resolve(ref), containers=True)

    def _public(self, net: dict[str, Any], containers: bool) -> dict[str, Any]:
        out = {k: v for k, v in net.items() if not k.startswith("_")}
        out["Containers"] = {}
        if containers:
            prefix = net["IPAM"]["Config"][0]["Subnet"].split("/")[1] if net["IPAM"]["Config"] else ""
            for ep in self._endpoints(net["Id"]):
                if ep["ip"] or (net["Driver"] != "bridge" and self._running(ep["container_id"])):
                    d = ep["data"]
                    out["Containers"][ep["container_id"]] = {
                        "Name": self._name(ep), "EndpointID": d["EndpointID"], "MacAddress": d["MacAddress"],
                        "IPv4Address": f"{ep['ip']}/{prefix}" if ep["ip"] else "", "IPv6Address": ""}
        return out

    # ---- kernel objects ------------------------------------------------
    def _ensure_bridge(self, net: dict[str, Any]) -> None:
        cfg = net["IPAM"]["Config"][0]
        prefix = int(cfg["Subnet"].split("/")[1])
        with IPRoute() as ip:
            if _index(ip, net["_device"]) is None:
                ip.link("add", ifname=net["_device"], kind="bridge")
            idx = _index(ip, net["_device"])
            have = {a.get_attr("IFA_ADDRESS") for a in ip.get_addr(index=idx, family=socket.AF_INET)}
            if cfg["Gateway"] not in have:
                ip.addr("add", index=idx, address=cfg["Gateway"], prefixlen=prefix)
            ip.link("set", index=idx, state="up", ifalias=f"pydock {self.table} {os.path.realpath(self.cfg.data_root)}")
        netfw.set_sysctl(f"net/ipv4/conf/{net['_device']}/route_localnet", "1")
        if self.dns is not None and net["Name"] != "bridge":
            self.dns.listen(net["Id"], cfg["Gateway"])

    def _apply_firewall(self) -> None:
        bridges = [netfw.Bridge(n["_device"], n["IPAM"]["Config"][0]["Subnet"], not n["Internal"])
                   for n in self._networks() if n["Driver"] == "bridge"]
        ports = [netfw.PortRule(**p) for r in self.meta.query("SELECT data FROM sandboxes")
                 for p in json.loads(r["data"])["ports"]]
        with self._fw:
            netfw.apply(self.table, bridges, ports)

    def _veth(self, endpoint_id: str) -> str:
        return self.veth_prefix + endpoint_id[:15 - len(self.veth_prefix)]

    # ---- endpoints -----------------------------------------------------
    def _endpoints(self, network_id: str | None = None, container_id: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT network_id, container_id, ip, data FROM endpoints WHERE 1=1", []
        if network_id:
            sql, args = sql + " AND network_id=?", args + [network_id]
        if container_id:
            sql, args = sql + " AND container_id=?", args + [container_id]
        rows = self.meta.query(sql + " ORDER BY rowid", tuple(args))
        return [{"network_id": r["network_id"], "container_id": r["container_id"], "ip": r["ip"],
                 "data": json.loads(r["data"])} for r in rows]

    def _lock(self, cid: str) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(cid, threading.RLock())

    @property
    def containers(self) -> ContainerLookup:
        return self._containers_ref()

    def _name(self, ep: dict[str, Any]) -> str:
        """The endpoint's container name now (a rename shows at once, as in Docker's DNS)."""
        try:
            return self.containers.get(ep["container_id"])["Name"].lstrip("/")
        except EngineError:
            return ep["data"]["Name"]

    def _running(self, cid: str) -> bool:
        try:
            return bool(self.containers.get(cid)["State"]["Running"])
        except EngineError:
            return False

    # ---- container create --------------------------------------------
    def plan(self, body: dict[str, Any], host: dict[str, Any]) -> dict[str, Any]:
        """Validate a create request's networking; returns what `register` stores. Normalizes `host`."""
        mode = host.get("NetworkMode") or "default"
        if not isinstance(mode, str):
            raise InvalidParameter("invalid NetworkMode")
        if mode == "default":
            mode = "bridge"
        if mode.startswith("container:"):
            host["NetworkMode"] = self._plan_shared(body, host, mode[len("container:"):])
            return {"network": None, "endpoint": None}
        host["NetworkMode"] = mode
        try:
            net: dict[str, Any] | None = self.resolve(mode)
        except NotFound:
            net = None  # as Docker: a missing network fails the start, not the create
        nc = body.get("NetworkingConfig") or {}
        eps = nc.get("EndpointsConfig") if isinstance(nc, dict) else None
        eps = eps or {}
        if not isinstance(eps, dict) or not all(isinstance(v, dict) or v is None for v in eps.values()):
            raise InvalidParameter("invalid NetworkingConfig")
        if len(eps) > 1:
            raise InvalidParameter("Container cannot be connected to network endpoints: "
                                   + ", ".join(eps))
        cfg = next(iter(eps.values()), None) or {}
        first = next(iter(eps), "")
        if net and eps and self.resolve("bridge" if first == "default" else first)["Id"] != net["Id"]:
            raise InvalidParameter("Container cannot be connected to network endpoints other than its NetworkMode")
        endpoint = self._endpoint_config(net, cfg) if net else None
        _port_bindings(host.get("PortBindings"))
        _exposed(body.get("ExposedPorts"))
        for h in host.get("ExtraHosts") or []:
            _parse_extra_host(h)
        for d in host.get("Dns") or []:
            ipam.parse_address(d, "IP address in DNS server")
        if host.get("Links"):
            raise NotImplementedYet("HostConfig.Links is not supported yet")
        return {"network": net, "endpoint": endpoint}

    def _plan_shared(self, body: dict[str, Any], host: dict[str, Any], ref: str) -> str:
        """`--network container:<ref>`: Docker's conflicts, then the mode with the full ID."""
        if not ref:
            raise InvalidParameter("Invalid network mode: invalid container format container:<name|id>")
        conflicts = [(body.get("Hostname"), "hostname and the network mode"),
                     (host.get("Dns"), "dns and the network mode"),
                     (host.get("ExtraHosts"), "custom host-to-IP mapping and the network mode"),
                     (host.get("PortBindings") or host.get("PublishAllPorts"),
                      "port publishing and the container type network mode"),
                     (body.get("ExposedPorts"), "port exposing and the container type network mode")]
        for value, what in conflicts:
            if value:
                raise InvalidParameter(f"conflicting options: {what}")
        return "container:" + self.containers.resolve(ref)

    def _shared_with(self, c: dict[str, Any]) -> dict[str, Any] | None:
        """The running container whose network namespace a `container:<id>` container joins."""
        mode = c["HostConfig"]["NetworkMode"]
        if not mode.startswith("container:"):
            return None
        other = self.containers.get(mode[len("container:"):])
        if not other["State"]["Running"]:
            raise Conflict(f"cannot join network of a non running container: {other['Id']}")
        return other

    def _endpoint_config(self, net: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
        ipam_cfg = cfg.get("IPAMConfig") or {}
        if not isinstance(ipam_cfg, dict):
            raise InvalidParameter("invalid IPAMConfig")
        requested = ipam_cfg.get("IPv4Address") or ""
        if requested:
            if net["Name"] in PREDEFINED:
                raise InvalidParameter("user specified IP address is supported on user defined networks only")
            addr = ipam.parse_address(str(requested))
            if addr not in IPv4Network(net["IPAM"]["Config"][0]["Subnet"]):
                raise InvalidParameter(f"no configured subnet or ip-range contain the IP address {requested}")
        aliases = cfg.get("Aliases") or []
        if aliases and net["Name"] in PREDEFINED:
            raise InvalidParameter("network-scoped alias is supported only for containers in user defined networks")
        return {"IPAMConfig": {"IPv4Address": str(requested)} if requested else None, "Aliases": aliases or None,
                "EndpointID": "", "MacAddress": "", "Name": ""}

    def register(self, cid: str, name: str, plan: dict[str, Any]) -> None:
        """Store the planned endpoint (inside the caller's create transaction)."""
        if plan["network"] is not None:
            self._add_endpoint(plan["network"], cid, name, plan["endpoint"])

    def _add_endpoint(self, net: dict[str, Any], cid: str, name: str, endpoint: dict[str, Any]) -> None:
        endpoint = dict(endpoint, Name=name.lstrip("/"))
        with self.meta.transaction() as db:
            if db.execute("SELECT 1 FROM endpoints WHERE network_id=? AND container_id=?",
                          (net["Id"], cid)).fetchone():
                raise Forbidden(f"endpoint with name {endpoint['Name']} already exists in network {net['Name']}")
            db.execute("INSERT INTO endpoints(network_id, container_id, ip, data) VALUES (?,?,NULL,?)",
                       (net["Id"], cid, json.dumps(endpoint)))

    def forget(self, cid: str) -> None:
        """A removed container's endpoints (its sandbox is already gone)."""
        self.teardown(cid)
        with self.meta.transaction() as db:
            db.execute("DELETE FROM endpoints WHERE container_id=?", (cid,))
        with self._guard:
            self._locks.pop(cid, None)

    # ---- container start / exit ----------------------------------------
    def setup(self, c: dict[str, Any]) -> str:
        """Build the container's network before runc runs; returns SpecOptions.network."""
        cid = c["Id"]
        mode = c["HostConfig"]["NetworkMode"]
        if mode == "host":
            return "host"
        if mode == "none":
            return ""
        other = self._shared_with(c)
        if other is not None:
            return "host" if other["HostConfig"]["NetworkMode"] == "host" else f"/proc/{other['State']['Pid']}/ns/net"
        with self._lock(cid):
            self.teardown(cid)  # a crashed earlier start may have left a half sandbox
            if not self._endpoints(container_id=cid):
                self._join_late(c)
            path = os.path.join(self.netns_dir, cid)
            with self.meta.transaction() as db:
                db.execute("INSERT INTO sandboxes(container_id, data) VALUES (?,?)",
                           (cid, json.dumps({"path": path, "ports": []})))
            try:
                netns.create(path)
                steps = [_loopback_up]
                for i, ep in enumerate(self._endpoints(container_id=cid)):
                    steps += self._plug(c, ep, path, f"eth{i}", default_route=i == 0)
                # one visit inside the namespace for all of its configuration
                netns.run_in(path, lambda: [step() for step in steps])
                self._publish(c)
            except BaseException:
                self.teardown(cid)
                raise
        return path

    def _join_late(self, c: dict[str, Any]) -> None:
        """A container created before its network existed joins it now, or cannot start."""
        mode = c["HostConfig"]["NetworkMode"]
        try:
            net = self.resolve(mode)
        except NotFound:
            raise NotFound(f"failed to set up container networking: network {mode} not found") from None
        self._add_endpoint(net, c["Id"], c["Name"], self._endpoint_config(net, {}))

    def _plug(self, c: dict[str, Any], ep: dict[str, Any], path: str, ifname: str,
              default_route: bool) -> list[Callable[[], None]]:
        """Allocate an address and wire a veth from the network's bridge into the sandbox.

        Returns the steps still to run inside the namespace, so a caller can
        batch them into one visit.
        """
        net = self.resolve(ep["network_id"])
        if net["Driver"] != "bridge":
            return []
        cfg = net["IPAM"]["Config"][0]
        subnet = IPv4Network(cfg["Subnet"])
        requested = (ep["data"].get("IPAMConfig") or {}).get("IPv4Address") or ""
        data = dict(ep["data"], EndpointID=secrets.token_hex(32), Name=c["Name"].lstrip("/"))
        with self.meta.transaction() as db:
            taken = {r["ip"] for r in db.execute("SELECT ip FROM endpoints WHERE network_id=? AND ip IS NOT NULL",
                                                  (net["Id"],)).fetchall()}
            pool = IPv4Network(cfg["IPRange"]) if cfg.get("IPRange") else subnet
            ip = ipam.allocate(subnet, IPv4Address(cfg["Gateway"]), taken, requested, pool)
            data["MacAddress"] = ipam.mac_for(ip)
            db.execute("UPDATE endpoints SET ip=?, data=? WHERE network_id=? AND container_id=?",
                       (ip, json.dumps(data), net["Id"], c["Id"]))
        veth = self._veth(data["EndpointID"])
        with IPRoute() as host:
            host.link("add", ifname=veth, kind="veth",
                      peer={"ifname": ifname, "net_ns_fd": path, "address": data["MacAddress"]})
            bridge = _index(host, net["_device"])
            if bridge is None:
                self._ensure_bridge(net)
                bridge = _index(host, net["_device"])
            host.link("set", index=_index(host, veth), master=bridge, state="up")
        gateway = cfg["Gateway"] if default_route and not net["Internal"] else ""
        self.events.publish("network", "connect", net["Id"], {"container": c["Id"], "name": net["Name"],
                                                               "type": "bridge"})
        return [lambda: _configure(ifname, ip, subnet.prefixlen, gateway)]

    def teardown(self, cid: str) -> None:
        """Undo `setup`: veths, addresses, namespace, port rules. Safe to repeat."""
        with self._lock(cid):
            row = self.meta.query_one("SELECT data FROM sandboxes WHERE container_id=?", (cid,))
            if row is None:
                return
            eps = [ep for ep in self._endpoints(container_id=cid) if ep["ip"]]
            sandbox = json.loads(row["data"])
            # No veth is deleted one by one: the container's processes are gone, so
            # unmounting its namespace destroys it, and the kernel removes every
            # veth pair with an end inside (deleting each first cost ~30 ms a run).
            netns.remove(sandbox["path"])
            with self.meta.transaction() as db:
                for ep in eps:
                    data = dict(ep["data"], EndpointID="", MacAddress="")
                    db.execute("UPDATE endpoints SET ip=NULL, data=? WHERE network_id=? AND container_id=?",
                               (json.dumps(data), ep["network_id"], cid))
                db.execute("DELETE FROM sandboxes WHERE container_id=?", (cid,))
            if sandbox["ports"]:
                self._apply_firewall()
            for ep in eps:
                self.events.publish("network", "disconnect", ep["network_id"], {"container": cid, "type": "bridge"})

    # ---- published ports -------------------------------------------------
    def _publish(self, c: dict[str, Any]) -> None:
        host = c["HostConfig"]
        bindings = _port_bindings(host.get("PortBindings"))
        if host.get("PublishAllPorts"):
            for port in _exposed(c["Config"].get("ExposedPorts")):
                bindings.setdefault(port, [{"HostIp": "", "HostPort": ""}])
        if not bindings:
            return
        ep = next((e for e in self._endpoints(container_id=c["Id"]) if e["ip"]), None)
        if ep is None:
            return
        net = self.resolve(ep["network_id"])
        with self._fw:
            taken = {(p["proto"], p["host_port"]) for r in self.meta.query("SELECT data FROM sandboxes")
                     for p in json.loads(r["data"])["ports"]}
            rules = []
            for port, binds in bindings.items():
                cport, proto = _split_port(port)
                for b in binds:
                    hip = b.get("HostIp") or ""
                    if ":" in hip:
                        continue  # IPv6 bindings: pydock publishes over IPv4 only
                    hport = _host_port(b.get("HostPort") or "", proto, taken, hip)
                    taken.add((proto, hport))
                    rules.append({"proto": proto, "host_ip": hip or "0.0.0.0", "host_port": hport,
                                  "container_ip": ep["ip"], "container_port": cport, "bridge": net["_device"]})
            with self.meta.transaction() as db:
                row = db.execute("SELECT data FROM sandboxes WHERE container_id=?", (c["Id"],)).fetchone()
                data = dict(json.loads(row["data"]), ports=rules)
                db.execute("UPDATE sandboxes SET data=? WHERE container_id=?", (json.dumps(data), c["Id"]))
        self._apply_firewall()

    def port_map(self, cid: str) -> dict[str, list[dict[str, str]]]:
        row = self.meta.query_one("SELECT data FROM sandboxes WHERE container_id=?", (cid,))
        out: dict[str, list[dict[str, str]]] = {}
        for p in json.loads(row["data"])["ports"] if row else []:
            out.setdefault(f"{p['container_port']}/{p['proto']}", []).append(
                {"HostIp": p["host_ip"], "HostPort": str(p["host_port"])})
        return out

    # ---- views for container inspect / ps ---------------------------------
    def settings(self, c: dict[str, Any]) -> dict[str, Any]:
        """NetworkSettings as Docker's inspect shows it."""
        cid = c["Id"]
        running = c["State"]["Running"]
        row = self.meta.query_one("SELECT data FROM sandboxes WHERE container_id=?", (cid,))
        ports: dict[str, Any] = {}
        if running and _own_namespace(c):
            ports = {p: None for p in _exposed(c["Config"].get("ExposedPorts"))}
            ports.update(self.port_map(cid))
        networks = {}
        for ep in self._endpoints(container_id=cid):
            try:
                net = self.resolve(ep["network_id"])
            except NotFound:
                continue
            networks[net["Name"]] = self._endpoint_view(net, ep, c)
        out = {"Bridge": "", "SandboxID": hashlib.sha256(cid.encode()).hexdigest() if row else "",
               "SandboxKey": json.loads(row["data"])["path"] if row else "", "HairpinMode": False,
               "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": ports,
               "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None}
        legacy = networks.get("bridge") or {}
        for key in ("EndpointID", "Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen", "IPAddress",
                    "IPPrefixLen", "IPv6Gateway", "MacAddress"):
            out[key] = legacy.get(key, 0 if key.endswith("PrefixLen") else "")
        out["Networks"] = networks
        return out

    @staticmethod
    def _endpoint_view(net: dict[str, Any], ep: dict[str, Any], c: dict[str, Any]) -> dict[str, Any]:
        d = ep["data"]
        up = bool(ep["ip"])
        cfg = net["IPAM"]["Config"][0] if net["IPAM"]["Config"] else {}
        user = net["Name"] not in PREDEFINED
        dns_names = [c["Name"].lstrip("/"), c["Id"][:12], *(d.get("Aliases") or [])] if user and up else None
        return {"IPAMConfig": d.get("IPAMConfig"), "Links": None, "Aliases": d.get("Aliases"),
                "MacAddress": d["MacAddress"] if up else "", "DriverOpts": None, "GwPriority": 0,
                "NetworkID": net["Id"], "EndpointID": d["EndpointID"] if up else "",
                "Gateway": cfg.get("Gateway", "") if up else "", "IPAddress": ep["ip"] or "",
                "IPPrefixLen": int(cfg["Subnet"].split("/")[1]) if up and cfg else 0,
                "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": dns_names}

    def ports_list(self, c: dict[str, Any]) -> list[dict[str, Any]]:
        """The `Ports` of GET /containers/json (the PORTS column of `docker ps`)."""
        if not c["State"]["Running"] or not _own_namespace(c):
            return []
        published = self.port_map(c["Id"])
        out: list[dict[str, Any]] = []
        for port in sorted(set(_exposed(c["Config"].get("ExposedPorts"))) | set(published)):
            cport, proto = _split_port(port)
            binds = published.get(port)
            if not binds:
                out.append({"PrivatePort": cport, "Type": proto})
            for b in binds or []:
                out.append({"IP": b["HostIp"], "PrivatePort": cport, "PublicPort": int(b["HostPort"]), "Type": proto})
        return out

    # ---- /etc files --------------------------------------------------------
    def etc_files(self, c: dict[str, Any]) -> dict[str, str]:
        """hostname, hosts and resolv.conf for a container whose network is set up."""
        other = self._shared_with(c)
        if other is not None:
            return self.etc_files(other)  # as Docker: the namespace's owner's files
        cfg, host = c["Config"], c["HostConfig"]
        mode = host["NetworkMode"]
        hostname = os.uname().nodename if mode == "host" else cfg["Hostname"]
        if mode == "host":
            hosts = _read("/etc/hosts") or HOSTS_BASE
        else:
            hosts = HOSTS_BASE
            for h in host.get("ExtraHosts") or []:
                name, addr = _parse_extra_host(h)
                hosts += f"{self._gateway() if addr == 'host-gateway' else addr}\t{name}\n"
            eps = [ep for ep in self._endpoints(container_id=c["Id"]) if ep["ip"]]
            fqdn = f"{hostname}.{cfg['Domainname']}\t" if cfg.get("Domainname") else ""
            hosts += "".join(f"{ep['ip']}\t{fqdn}{hostname}\n" for ep in eps[:1])
        return {"hostname": hostname + "\n", "hosts": hosts, "resolv.conf": self._resolv_conf(c)}

    def _gateway(self) -> str:
        return self.resolve("bridge")["IPAM"]["Config"][0]["Gateway"]

    def _resolv_conf(self, c: dict[str, Any]) -> str:
        host = c["HostConfig"]
        host_text = _read("/etc/resolv.conf")
        search = host.get("DnsSearch") or [w for line in host_text.splitlines() if line.startswith("search")
                                           for w in line.split()[1:]]
        options = list(host.get("DnsOptions") or [])
        if host["NetworkMode"] == "host" and not host.get("Dns"):
            return host_text
        embedded = self._embedded_dns(c)
        if embedded:
            servers = [embedded]
            options = options or ["ndots:0"]
        else:
            servers = host.get("Dns") or [s for s in host_nameservers() if not s.startswith("127.")] \
                or ["8.8.8.8", "8.8.4.4"]
        text = "".join(f"nameserver {s}\n" for s in servers)
        text += f"search {' '.join(search)}\n" if search else ""
        text += f"options {' '.join(options)}\n" if options else ""
        return text

    def _embedded_dns(self, c: dict[str, Any]) -> str:
        for ep in self._endpoints(container_id=c["Id"]):
            net = self.resolve(ep["network_id"])
            if net["Name"] not in PREDEFINED and ep["ip"]:
                return net["IPAM"]["Config"][0]["Gateway"]
        return ""

    def _dns_lookup(self, src: str, network_id: str, name: str) -> tuple[list[str] | None, list[str]] | None:
        """Names on the querier's user-defined networks; unknown names go to its --dns or the host's.

        Only our containers get answers (None: ignore the query), so the resolver on
        the gateway address is no open relay for whoever can route to it.
        """
        me = self.meta.query_one("SELECT container_id FROM endpoints WHERE network_id=? AND ip=?", (network_id, src))
        if me is None:
            return None
        nets = [ep["network_id"] for ep in self._endpoints(container_id=me["container_id"])
                if self.resolve(ep["network_id"])["Name"] not in PREDEFINED]  # "bridge" has no names
        upstream: list[str] = []
        try:
            upstream = self.containers.get(me["container_id"])["HostConfig"].get("Dns") or []
        except EngineError:
            pass
        found = []
        for nid in nets:
            for ep in self._endpoints(network_id=nid):
                if not ep["ip"]:
                    continue
                aliases = ep["data"].get("Aliases") or []
                if name in {self._name(ep).lower(), ep["container_id"][:12], *(a.lower() for a in aliases)}:
                    found.append(ep["ip"])
        return (found or None), upstream

    # ---- connect / disconnect -------------------------------------------------
    def connect(self, net_ref: str, container_ref: str, config: dict[str, Any]) -> None:
        net = self.resolve(net_ref)
        c = self.containers.get(container_ref)
        if not isinstance(config, dict):
            raise InvalidParameter("invalid EndpointConfig")
        mode = c["HostConfig"]["NetworkMode"]
        if "host" in (mode, net["Driver"]):
            raise Forbidden("container cannot be disconnected from host network or connected to host network")
        if not _own_namespace(c) or net["Driver"] != "bridge":
            raise Forbidden("container sharing network namespace with another container or host cannot be "
                            "connected to any other network")
        endpoint = self._endpoint_config(net, config)
        with self._lock(c["Id"]):
            self._add_endpoint(net, c["Id"], c["Name"], endpoint)
            row = self.meta.query_one("SELECT data FROM sandboxes WHERE container_id=?", (c["Id"],))
            if row is None:
                return
            path = json.loads(row["data"])["path"]
            ep = next(e for e in self._endpoints(container_id=c["Id"]) if e["network_id"] == net["Id"])
            try:
                steps = self._plug(c, ep, path, self._free_ifname(path), default_route=False)
                netns.run_in(path, lambda: [step() for step in steps])
            except BaseException:
                self._unplug(c["Id"], ep)
                with self.meta.transaction() as db:
                    db.execute("DELETE FROM endpoints WHERE network_id=? AND container_id=?", (net["Id"], c["Id"]))
                raise

    @staticmethod
    def _free_ifname(path: str) -> str:
        names = netns.run_in(path, _link_names)
        return next(f"eth{i}" for i in range(1000) if f"eth{i}" not in names)

    def disconnect(self, net_ref: str, container_ref: str, force: bool = False) -> None:
        net = self.resolve(net_ref)
        try:
            c = self.containers.get(container_ref)
        except NotFound:
            if not force:
                raise
            with self.meta.transaction() as db:
                db.execute("DELETE FROM endpoints WHERE network_id=? AND container_id LIKE ?",
                           (net["Id"], container_ref + "%"))
            return
        with self._lock(c["Id"]):
            ep = next((e for e in self._endpoints(container_id=c["Id"]) if e["network_id"] == net["Id"]), None)
            if ep is None:
                raise Forbidden(f"container {c['Id']} is not connected to network {net['Name']}")
            if net["Name"] == "host":
                raise Forbidden("container cannot be disconnected from host network or connected to host network")
            self._unplug(c["Id"], ep)
            with self.meta.transaction() as db:
                db.execute("DELETE FROM endpoints WHERE network_id=? AND container_id=?", (net["Id"], c["Id"]))
        if ep["ip"]:
            self.events.publish("network", "disconnect", net["Id"], {"container": c["Id"], "name": net["Name"],
                                                                      "type": "bridge"})

    def _unplug(self, cid: str, ep: dict[str, Any]) -> None:
        if not ep["ip"] and not ep["data"].get("EndpointID"):
            return
        if ep["data"].get("EndpointID"):
            with IPRoute() as ip:
                _delete_link(ip, self._veth(ep["data"]["EndpointID"]))


# ---- helpers -----------------------------------------------------------------
def _label_matches(labels: dict[str, str], spec: str) -> bool:
    key, has_value, value = spec.partition("=")
    return key in labels and (not has_value or labels[key] == value)


def _until_ns(value: str) -> int:
    """An `until` filter: a timestamp, or a duration before now ("24h", "90m", "30s") as Docker accepts."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([hms])", value.strip())
    if m:
        return time.time_ns() - int(float(m.group(1)) * {"h": 3600, "m": 60, "s": 1}[m.group(2)] * 1e9)
    try:
        return parse_api_time(value)
    except (ValueError, EngineError):
        raise InvalidParameter(f"invalid filter 'until={value}'") from None


def _own_namespace(c: dict[str, Any]) -> bool:
    """Whether the container has a network namespace of its own that pydock wires (bridge networks)."""
    mode = c["HostConfig"]["NetworkMode"]
    return mode not in ("host", "none") and not mode.startswith("container:")


def _index(ip: IPRoute, name: str) -> int | None:
    """A link's index by a targeted query (link_lookup dumps every link with its stats)."""
    try:
        return ip.link("get", ifname=name)[0]["index"]
    except NetlinkError as e:
        if e.code == errno.ENODEV:
            return None
        raise


def _delete_link(ip: IPRoute, name: str) -> None:
    idx = _index(ip, name)
    if idx is not None:
        _delete_index(ip, idx)


def _delete_index(ip: IPRoute, index: int) -> None:
    """Delete a link that may be gone already: the kernel drops a veth pair with its namespace's end."""
    try:
        ip.link("del", index=index)
    except NetlinkError as e:
        if e.code != errno.ENODEV:
            raise


# these run inside a container's network namespace (netns.run_in)
def _loopback_up() -> None:
    with IPRoute() as ns:
        ns.link("set", index=1, state="up")  # lo is always index 1 in a new namespace


def _configure(ifname: str, address: str, prefixlen: int, gateway: str) -> None:
    with IPRoute() as ns:
        idx = _index(ns, ifname)
        ns.addr("add", index=idx, address=address, prefixlen=prefixlen)
        ns.link("set", index=idx, state="up")
        if gateway:
            ns.route("add", dst="default", gateway=gateway)


def _link_names() -> set[str]:
    with IPRoute() as ns:
        return {link.get_attr("IFLA_IFNAME") for link in ns.get_links()}


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _split_port(spec: str) -> tuple[int, str]:
    port, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in PROTOS:
        raise InvalidParameter(f"invalid proto: {proto}")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidParameter(f"invalid port: {spec}")
    return int(port), proto


def _exposed(value: Any) -> list[str]:
    if not value:
        return []
    if not isinstance(value, dict):
        raise InvalidParameter("invalid ExposedPorts: must be an object")
    out = []
    for spec in value:
        port, proto = _split_port(spec)
        out.append(f"{port}/{proto}")
    return out


def _port_bindings(value: Any) -> dict[str, list[dict[str, str]]]:
    if not value:
        return {}
    if not isinstance(value, dict):
        raise InvalidParameter("invalid PortBindings: must be an object")
    out: dict[str, list[dict[str, str]]] = {}
    for spec, binds in value.items():
        port, proto = _split_port(spec)
        if binds is None:
            binds = [{}]
        if not isinstance(binds, list) or not all(isinstance(b, dict) for b in binds):
            raise InvalidParameter(f"invalid PortBindings for {spec}")
        for b in binds:
            hip, hport = b.get("HostIp") or "", b.get("HostPort") or ""
            if not isinstance(hip, str) or not isinstance(hport, str):
                raise InvalidParameter(f"invalid PortBindings for {spec}")
            if hip and ":" not in hip:
                ipam.parse_address(hip, "host IP")
            if hport and (not hport.isdigit() or not 0 <= int(hport) < 65536):
                raise InvalidParameter(f"invalid port specification: \"{hport}\"")
        out[f"{port}/{proto}"] = [{"HostIp": b.get("HostIp") or "", "HostPort": b.get("HostPort") or ""} for b in binds]
    return out


def _host_port(requested: str, proto: str, taken: set[tuple[str, int]], host_ip: str) -> int:
    """The requested host port if free, else a free one from the kernel's ephemeral range, as Docker."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    if requested and int(requested):
        port = int(requested)
        if (proto, port) in taken or not _bindable(host_ip, port, kind):
            raise EngineError(f"driver failed programming external connectivity: Bind for "
                              f"{host_ip or '0.0.0.0'}:{port} failed: port is already allocated")
        return port
    lo, hi = (int(x) for x in _read("/proc/sys/net/ipv4/ip_local_port_range").split() or (32768, 60999))
    for _ in range(200):
        port = lo + secrets.randbelow(hi - lo + 1)
        if (proto, port) not in taken and _bindable(host_ip, port, kind):
            return port
    raise EngineError("no free host port to publish")


def _bindable(host_ip: str, port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((host_ip or "0.0.0.0", port))
        except OSError:
            return False
    return True


def _parse_extra_host(spec: str) -> tuple[str, str]:
    name, sep, addr = spec.partition(":") if "=" not in spec else spec.partition("=")
    if not sep or not name or not addr:
        raise InvalidParameter(f"invalid extra host: {spec}")
    if addr != "host-gateway":
        try:
            IPv4Address(addr)
        except ValueError:
            if ":" not in addr:
                raise InvalidParameter(f'invalid IP address in add-host: "{addr}"') from None
    return name, addr
