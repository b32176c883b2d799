"""The `pydock` CLI's network, volume, exec/attach/port/update commands and run's port, network, mount and
resource flags, checked against the real docker CLI on the same daemon."""
from __future__ import annotations

import io
import json
import socket
import time
import urllib.request
import uuid

import pytest

from pydock_cli import flagvalues, runflags
from pydock_cli.main import main
from pydock_cli.sortorder import natural_key


def pydock(daemon, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(["-H", daemon.url, *args], stdout=out, stderr=err, stdin=io.BytesIO(stdin))
    return rc, out.getvalue(), err.getvalue()


def docker(daemon, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    proc = daemon.docker(*args, input=stdin)
    return proc.returncode, proc.stdout, proc.stderr


def same(daemon, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    """Runs both CLIs; asserts identical (exit code, stdout, stderr) and returns it."""
    ours = pydock(daemon, *args, stdin=stdin)
    assert ours == docker(daemon, *args, stdin=stdin), args
    return ours


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def running(daemon, busybox):
    """A long-running busybox container, removed afterwards."""
    name = unique("more")
    daemon.docker("run", "-d", "--name", name, "busybox", "sleep", "300", check=True)
    yield name
    daemon.docker("rm", "-f", name)


# --- pure parsing ------------------------------------------------------------

def test_flag_value_parsers() -> None:
    assert [flagvalues.ram_in_bytes(v) for v in ("64m", "1g", "1.5k", "100", "2MiB")] == [
        64 << 20, 1 << 30, 1536, 100, 2 << 20]
    assert flagvalues.nano_cpus("1.5") == 1_500_000_000
    with pytest.raises(ValueError, match="too precise"):
        flagvalues.nano_cpus("0.0000000001")
    assert flagvalues.ulimit("nofile=10") == {"Name": "nofile", "Hard": 10, "Soft": 10}
    with pytest.raises(ValueError, match="soft limit must be less"):
        flagvalues.ulimit("nofile=10:5")
    exposed, bindings = runflags.port_bindings(["127.0.0.1:8000-8001:80-81/udp", "90", "[::1]:5000:53"])
    assert list(exposed) == ["80/udp", "81/udp", "90/tcp", "53/tcp"]
    assert bindings["81/udp"] == [{"HostIp": "127.0.0.1", "HostPort": "8001"}]
    assert bindings["90/tcp"] == [{"HostIp": "", "HostPort": ""}]
    assert bindings["53/tcp"] == [{"HostIp": "::1", "HostPort": "5000"}]
    assert flagvalues.mount("type=bind,src=/a,dst=/b,ro,bind-propagation=rshared") == {
        "Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": True, "BindOptions": {"Propagation": "rshared"}}
    with pytest.raises(ValueError, match="cannot mix"):
        flagvalues.mount("type=bind,dst=/b,volume-nocopy")
    assert runflags.capabilities(["net_admin", "CAP_CHOWN", "chown"], ["mknod", "net_admin"]) == (
        ["CAP_CHOWN", "CAP_NET_ADMIN"], ["CAP_MKNOD"])
    assert sorted(["v10", "v9", "a", "10", "9b"], key=natural_key) == ["9b", "10", "a", "v9", "v10"]
    assert [flagvalues.go_duration(v) for v in ("0", "1m30s", "1.5s", ".5ms", "-2h", "1µs", "3ns")] == [
        0, 90_000_000_000, 1_500_000_000, 500_000, -7_200_000_000_000, 1_000, 3]
    for bad, reason in (("5", "missing unit"), ("5x", 'unknown unit "x"'), ("", "invalid duration"),
                        ("2562048h", "invalid duration")):
        with pytest.raises(ValueError, match=reason):
            flagvalues.go_duration(bad)


# --- networks -------------------------------------------------------------

def test_network_create_ls_inspect_rm(daemon, busybox) -> None:
    name = unique("net")
    rc, out, err = pydock(daemon, "network", "create", "--subnet", "10.231.7.0/24", "--gateway", "10.231.7.254",
                          "--ip-range", "10.231.7.128/25", "--internal", "--attachable", "--label", "a=1",
                          name)  # one label: docker joins several in Go's random map order
    assert (rc, err) == (0, "")
    try:
        net = json.loads(same(daemon, "network", "inspect", name)[1])[0]
        assert net["Id"] == out.strip()
        assert net["IPAM"]["Config"] == [{"Subnet": "10.231.7.0/24", "Gateway": "10.231.7.254",
                                          "IPRange": "10.231.7.128/25"}]
        assert (net["Internal"], net["Attachable"], net["Labels"]) == (True, True, {"a": "1"})
        same(daemon, "network", "ls")
        same(daemon, "network", "ls", "-q", "--no-trunc")
        same(daemon, "network", "ls", "--filter", f"name={name}", "--format",
             "{{.ID}}|{{.Name}}|{{.Driver}}|{{.Scope}}|{{.IPv6}}|{{.Internal}}|{{.Labels}}|{{.Label \"a\"}}")
        same(daemon, "network", "ls", "--format", "json")
        assert same(daemon, "network", "inspect", "-f", "{{.Name}} {{.Driver}}", name, "cli-nonet")[0] == 1
    finally:
        assert pydock(daemon, "network", "rm", name) == (0, name + "\n", "")
    assert same(daemon, "network", "rm", "cli-nonet") == (
        1, "", "Error response from daemon: network cli-nonet not found\nexit status 1\n")
    assert pydock(daemon, "network", "rm", "-f", "cli-nonet") == (0, "", "")


def test_network_connect_disconnect(daemon, running) -> None:
    name = unique("net")
    daemon.docker("network", "create", "--subnet", "10.231.8.0/24", name, check=True)
    try:
        assert pydock(daemon, "network", "connect", "--ip", "10.231.8.77", "--alias", "webby", name, running) == (
            0, "", "")
        settings = json.loads(daemon.docker("inspect", running).stdout)[0]["NetworkSettings"]["Networks"][name]
        assert settings["IPAddress"] == "10.231.8.77"
        assert "webby" in settings["Aliases"]
        ping = pydock(daemon, "exec", running, "ping", "-c1", "-W2", "10.231.8.254")
        assert ping[0] in (0, 1)  # the exec ran; the gateway may not answer ICMP
        assert pydock(daemon, "network", "disconnect", name, running) == (0, "", "")
        assert same(daemon, "network", "disconnect", name, running)[0] == 1
        assert same(daemon, "network", "connect", "cli-nonet", running)[0] == 1
        assert same(daemon, "network", "connect", name, "cli-noctr")[0] == 1
    finally:
        daemon.docker("network", "rm", name)


def test_network_prune_with_filter(daemon, busybox) -> None:
    label = unique("prune")
    name = unique("net")
    daemon.docker("network", "create", "--label", label, name, check=True)
    assert pydock(daemon, "network", "prune", "-f", "--filter", f"label={label}") == (
        0, f"Deleted Networks:\n{name}\n\n", "")


def test_run_unknown_network_matches_docker(daemon, busybox) -> None:
    rc, _, err = same(daemon, "run", "--rm", "--network", "cli-nonet", "busybox", "true")
    assert rc == 125 and "network cli-nonet not found" in err
    rc, _, err = same(daemon, "create", "--network-alias", "x", "busybox")
    assert rc == 125 and "only supported for user-defined networks" in err


# --- volumes --------------------------------------------------------------

def test_volume_create_ls_inspect_rm(daemon, busybox) -> None:
    name = unique("vol")
    assert pydock(daemon, "volume", "create", "--label", "k=v", "-o", "type=tmpfs", "-o", "device=tmpfs",
                  "-o", "o=size=1m", name) == (0, name + "\n", "")
    try:
        vol = json.loads(same(daemon, "volume", "inspect", name)[1])[0]
        assert (vol["Labels"], vol["Options"]) == ({"k": "v"}, {"device": "tmpfs", "o": "size=1m", "type": "tmpfs"})
        same(daemon, "volume", "ls")
        same(daemon, "volume", "ls", "-q")
        same(daemon, "volume", "ls", "--filter", f"name={name}", "--format",
             "{{.Name}}|{{.Driver}}|{{.Scope}}|{{.Mountpoint}}|{{.Labels}}|{{.Links}}|{{.Size}}|{{.Status}}")
        assert same(daemon, "volume", "inspect", "cli-novol")[0] == 1
        assert pydock(daemon, "volume", "create", "a", "b")[0] == docker(daemon, "volume", "create", "a", "b")[0] == 1
    finally:
        rc, out, err = pydock(daemon, "volume", "rm", "cli-novol", name)
    assert (rc, out, err) == (1, name + "\n", "Error response from daemon: get cli-novol: no such volume\n")


def test_volume_prune_and_anonymous_name(daemon, busybox) -> None:
    label = unique("prune")
    rc, anon, _ = pydock(daemon, "volume", "create", "--label", label)
    assert rc == 0 and len(anon.strip()) == 64
    named = unique("vol")
    pydock(daemon, "volume", "create", "--label", label, named)
    assert pydock(daemon, "volume", "prune", "-f", "--filter", f"label={label}") == (
        0, f"Deleted Volumes:\n{anon.strip()}\n\nTotal reclaimed space: 0B\n", "")
    assert pydock(daemon, "volume", "prune", "-af", "--filter", f"label={label}") == (
        0, f"Deleted Volumes:\n{named}\n\nTotal reclaimed space: 0B\n", "")


def test_named_volume_persists_between_containers(daemon, busybox) -> None:
    name = unique("vol")
    try:
        assert pydock(daemon, "run", "--rm", "-v", f"{name}:/data", "busybox", "sh", "-c",
                      "echo kept > /data/f") == (0, "", "")
        assert pydock(daemon, "run", "--rm", "--mount", f"src={name},dst=/mnt,readonly", "busybox", "sh", "-c",
                      "cat /mnt/f; touch /mnt/g 2>/dev/null || echo ro") == (0, "kept\nro\n", "")
    finally:
        daemon.docker("volume", "rm", name)


# --- exec, attach, port, update --------------------------------------------

def test_exec_output_stdin_and_exit_codes(daemon, running) -> None:
    assert same(daemon, "exec", running, "sh", "-c", "echo out; echo err >&2; exit 5") == (5, "out\n", "err\n")
    assert same(daemon, "exec", "-i", running, "sh", "-c", "cat; echo done", stdin=b"a\nb\n") == (
        0, "a\nb\ndone\n", "")
    assert same(daemon, "exec", "-u", "1000", "-w", "/tmp", "-e", "A=1", running, "sh", "-c",
                "id -u; pwd; echo $A") == (0, "1000\n/tmp\n1\n", "")
    for cmd, code in (("cli-nosuch", 127), ("/etc", 126)):  # the daemon's message ends in \r\n, as dockerd's
        rc, out, err = pydock(daemon, "exec", running, cmd)
        assert (rc, out.replace("\r\n", "\n"), err) == docker(daemon, "exec", running, cmd)
        assert rc == code
    no_such = "Error response from daemon: No such container: cli-noctr\n"
    assert same(daemon, "exec", "cli-noctr", "true") == (1, "", no_such)
    assert same(daemon, "exec", "-it", running, "sh")[0] == 1
    assert pydock(daemon, "exec", "-d", running, "sh", "-c", "echo bg > /tmp/bg") == (0, "", "")
    time.sleep(0.5)
    assert pydock(daemon, "exec", running, "cat", "/tmp/bg") == (0, "bg\n", "")


def test_exec_in_stopped_container(daemon, busybox) -> None:
    name = unique("stopped")
    daemon.docker("create", "--name", name, "busybox", check=True)
    try:
        rc, _, err = same(daemon, "exec", name, "true")
        assert rc == 1 and "is not running" in err
    finally:
        daemon.docker("rm", "-f", name)


def test_attach_streams_and_exit_code(daemon, busybox) -> None:
    name = unique("attach")
    daemon.docker("run", "-d", "-i", "--name", name, "busybox", "sh", "-c", "read x; echo got $x; echo e >&2; exit 3",
                  check=True)
    try:
        assert pydock(daemon, "attach", name, stdin=b"hello\n") == (3, "got hello\n", "e\n")
        assert same(daemon, "attach", name) == (1, "", "You cannot attach to a stopped container, start it first\n")
    finally:
        daemon.docker("rm", "-f", name)


def test_publish_serves_httpd_and_port_lists_it(daemon, busybox) -> None:
    name, port = unique("web"), free_port()
    rc, _, err = pydock(daemon, "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:80", "-p", "127.0.0.1::53/udp",
                        "busybox", "sh", "-c", "mkdir /www && echo hello-web > /www/index.html && "
                                               "exec httpd -f -p 80 -h /www")
    assert rc == 0, err
    try:
        body = b""
        for _ in range(50):
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2).read()
                break
            except OSError:
                time.sleep(0.1)
        assert body == b"hello-web\n"
        out = same(daemon, "port", name)[1]
        assert f"80/tcp -> 127.0.0.1:{port}\n" in out and "53/udp -> 127.0.0.1:" in out
        assert same(daemon, "port", name, "80") == (0, f"127.0.0.1:{port}\n", "")
        assert same(daemon, "port", name, "8080/tcp") == (
            1, "", f"Error: No public port '8080/tcp' published for {name}\n")
    finally:
        daemon.docker("rm", "-f", name)


def test_update_resources_and_restart_policy(daemon, running) -> None:
    assert pydock(daemon, "update", "--memory", "100m", "--memory-swap", "200m", "--cpus", "0.5", "--pids-limit", "50",
                  "--restart", "on-failure:3", running) == (0, running + "\n", "")
    host = json.loads(daemon.docker("inspect", running).stdout)[0]["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"], host["PidsLimit"]) == (
        100 << 20, 200 << 20, 500_000_000, 50)
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert same(daemon, "update", running) == (1, "", "you must provide one or more flags when using this command\n")
    assert same(daemon, "update", "--pids-limit", "60", "cli-noctr", running) == (
        1, running + "\n", "Error response from daemon: No such container: cli-noctr\n")


# --- run/create flags -------------------------------------------------------

BROAD_FLAGS = [
    "-p", "18080:80", "-p", "127.0.0.1:19000-19001:9000-9001/udp", "-P", "--expose", "7000-7001",
    "--add-host", "foo:1.2.3.4", "--add-host", "bar=::1", "--dns", "8.8.8.8", "--dns-search", "example.com", "--dns-option", "ndots:2",
    "-v", "/tmp:/hosttmp:ro", "--mount", "type=bind,src=/tmp,dst=/b2,readonly",
    "--mount", "type=tmpfs,dst=/t2,tmpfs-size=1m,tmpfs-mode=1777",
    "--mount", "dst=/v2,volume-opt=type=tmpfs,volume-opt=device=tmpfs,src=cli-more-vol,volume-label=b=1,volume-nocopy", "--tmpfs", "/run:rw,size=64k", "--tmpfs", "/a",
    "-m", "64m", "--memory-swap", "128m", "--memory-reservation", "32m", "--cpus", "1.5", "--cpu-shares", "512",
    "--cpuset-cpus", "0", "--pids-limit", "100", "--ulimit", "nofile=1024:2048", "--ulimit", "nproc=50",
    "--shm-size", "32m", "--cap-add", "net_admin", "--cap-drop", "MKNOD", "--security-opt", "no-new-privileges",
    "--device", "/dev/null:/dev/xnull:rw", "--group-add", "1000", "--sysctl", "net.ipv4.ip_forward=1",
    "--sysctl", "net.core.somaxconn=100", "-l", "b=2", "-l", "a=1", "-e", "X=1", "--init", "--stop-timeout", "3",
]


def _comparable(daemon, name: str) -> dict:
    info = json.loads(daemon.docker("inspect", name).stdout)[0]
    for key in ("Id", "Created", "Name", "ResolvConfPath", "HostnamePath", "HostsPath", "LogPath", "GraphDriver"):
        info.pop(key, None)
    info["Config"].pop("Hostname")
    info["NetworkSettings"].pop("SandboxKey", None)
    return info


@pytest.mark.parametrize("flags", [
    [],
    BROAD_FLAGS,
    ["--network", "host", "--privileged", "--cap-add", "ALL", "--read-only"],
    ["--network", "none", "--dns", "1.1.1.1", "-v", "/anon", "--shm-size", "1k"],
    ["--health-cmd", "true", "--health-interval", "1m30s", "--health-timeout", "1.5s", "--health-start-period", "2s",
     "--health-start-interval", "300ms", "--health-retries", "4"],
    ["--health-interval", "1s"],
    ["--no-healthcheck"],
], ids=["defaults", "broad", "host", "none", "health", "health-interval", "no-healthcheck"])
def test_create_matches_docker_inspect(daemon, busybox, flags) -> None:
    """Same flags through both CLIs: the daemon stores identical Config, HostConfig and NetworkSettings."""
    theirs, ours = unique("cmp-docker"), unique("cmp-pydock")
    try:
        daemon.docker("create", "--name", theirs, *flags, "busybox", "true", check=True)
        rc, _, err = pydock(daemon, "create", "--name", ours, *flags, "busybox", "true")
        assert rc == 0, err
        a, b = _comparable(daemon, theirs), _comparable(daemon, ours)
        if "-v" in flags:  # anonymous volumes get fresh names
            a.pop("Mounts"), b.pop("Mounts")
        assert json.dumps(b, indent=1) == json.dumps(a, indent=1)  # same keys, values and order
    finally:
        daemon.docker("rm", "-f", "-v", theirs, ours)
        daemon.docker("volume", "rm", "cli-more-vol")


def test_create_on_user_network_with_ip_and_alias(daemon, busybox) -> None:
    net, theirs, ours = unique("net"), unique("cmp-docker"), unique("cmp-pydock")
    daemon.docker("network", "create", "--subnet", "10.231.9.0/24", net, check=True)
    try:
        for cli, name, ip in ((daemon.docker, theirs, "10.231.9.10"), (None, ours, "10.231.9.11")):
            args = ("run", "-d", "--name", name, "--network", net, "--ip", ip, "--network-alias", "svc",
                    "busybox", "sleep", "60")
            assert (cli(*args).returncode if cli else pydock(daemon, *args)[0]) == 0
        a = json.loads(daemon.docker("inspect", theirs).stdout)[0]["NetworkSettings"]["Networks"][net]
        b = json.loads(daemon.docker("inspect", ours).stdout)[0]["NetworkSettings"]["Networks"][net]
        assert (b["IPAddress"], b["IPAMConfig"]) == ("10.231.9.11", {"IPv4Address": "10.231.9.11"})
        assert b["Aliases"] == a["Aliases"] and "svc" in b["Aliases"]
    finally:
        daemon.docker("rm", "-f", theirs, ours)
        daemon.docker("network", "rm", net)


@pytest.mark.parametrize("flags", [
    ["-p", "x"], ["-p", "1-2:3-5"], ["-m", "lots"], ["--ulimit", "nofile"], ["--ulimit", "bogus=1"],
    ["--mount", "type=bind"], ["--mount", "src=a,dst=/b,bogus=1"], ["--cpus", "x"], ["--sysctl", "kernel.x=1"],
    ["--dns", "not-an-ip"], ["--add-host", "nohost"], ["--expose", "1-y"], ["--device", "/a:/b:rwx"],
    ["--device", "/dev/null:rel"], ["--network-alias", "x"], ["--health-interval", "5"], ["--health-timeout", "-1s"],
    ["--health-retries", "-1"], ["--no-healthcheck", "--health-cmd", "true"], ["--health-start-period", "1y"],
])
def test_bad_flag_values_match_docker(daemon, busybox, flags) -> None:
    for command in ("run", "create"):
        rc, _, _ = same(daemon, command, *flags, "busybox", "true")
        assert rc == 125
