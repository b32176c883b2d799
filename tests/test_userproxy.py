"""The user-space port relay of rootless mode (engine/network/userproxy.py, portproxy.py), against echo servers
in a network namespace of their own, as a container's would be behind the engine's bridges."""
from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import InternalError
from engine.network import netns
from engine.network.bridge import BridgeDriver
from engine.network.userproxy import UserlandProxy, _is_relay

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def ns(tmp_path: object) -> Iterator[str]:
    """A network namespace with loopback up, where TCP and UDP echo servers listen on 127.0.0.1:7."""
    path = os.path.join(str(tmp_path), "ns")
    netns.create(path)
    BridgeDriver.configure(path, [], loopback=True)

    def bind(kind: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, kind)
        sock.bind(("127.0.0.1", 7))
        return sock
    tcp, udp = netns.run_in(path, lambda: bind(socket.SOCK_STREAM)), netns.run_in(path, lambda: bind(socket.SOCK_DGRAM))
    tcp.listen(8)

    def serve_tcp() -> None:
        while True:
            try:
                conn, _ = tcp.accept()
            except OSError:
                return
            with conn:
                data = b""
                while chunk := conn.recv(4096):  # until the client's half-close, then answer
                    data += chunk
                conn.sendall(data.upper())

    def serve_udp() -> None:
        while True:
            try:
                data, peer = udp.recvfrom(4096)
            except OSError:
                return
            udp.sendto(data.upper(), peer)
    for target in (serve_tcp, serve_udp):
        threading.Thread(target=target, daemon=True).start()
    yield path
    tcp.close()
    udp.close()
    netns.remove(path)


def test_relays_tcp_and_udp_and_frees_the_ports(ns: str, tmp_path: object) -> None:
    proxy = UserlandProxy(str(tmp_path), ns)
    tport, uport = _free_port(socket.SOCK_STREAM), _free_port(socket.SOCK_DGRAM)
    rules = [{"proto": "tcp", "host_ip": "127.0.0.1", "host_port": tport, "container_ip": "127.0.0.1",
              "container_port": 7},
             {"proto": "udp", "host_ip": "127.0.0.1", "host_port": uport, "container_ip": "127.0.0.1",
              "container_port": 7}]
    proxy.open("c1", rules)
    try:
        with socket.create_connection(("127.0.0.1", tport), timeout=5) as c:
            c.sendall(b"over tcp")
            c.shutdown(socket.SHUT_WR)  # the half-close reaches the server, its answer still comes back
            assert c.recv(100) == b"OVER TCP"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(5)
            u.sendto(b"over udp", ("127.0.0.1", uport))
            assert u.recvfrom(100) == (b"OVER UDP", ("127.0.0.1", uport))
        with pytest.raises(InternalError, match="failed"):  # the port is the relay's now
            UserlandProxy(str(tmp_path), ns).open("c2", rules[:1])
        pid = int(Path(str(tmp_path), "ports", "c1").read_text())
        assert _is_relay(pid, "c1")
    finally:
        proxy.close("c1")
    assert not os.path.exists(os.path.join(str(tmp_path), "ports", "c1"))
    with socket.socket() as s:  # free again at once
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", tport))


def test_a_later_daemon_stops_relays_it_did_not_start(ns: str, tmp_path: object) -> None:
    port = _free_port(socket.SOCK_STREAM)
    rule = {"proto": "tcp", "host_ip": "127.0.0.1", "host_port": port, "container_ip": "127.0.0.1",
            "container_port": 7}
    UserlandProxy(str(tmp_path), ns).open("gone", [rule])
    pid = int(Path(str(tmp_path), "ports", "gone").read_text())
    later = UserlandProxy(str(tmp_path), ns)  # as after a daemon restart: not its child
    later.close_others({"other"})
    deadline = time.time() + 5
    while _is_relay(pid, "gone") and time.time() < deadline:
        time.sleep(0.05)
    assert not _is_relay(pid, "gone")
    os.waitpid(pid, 0)  # (here it is this process's child after all: reap it)
