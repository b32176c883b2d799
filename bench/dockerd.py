"""A private dockerd for the benchmarks to measure pydockd against, started and removed by the benchmark itself.

The host's own Docker (if any) is never used: a benchmark must not depend on
what happens to run on /var/run/docker.sock, nor create or remove anything
there. Instead `start_dockerd` runs Debian's dockerd (`make bench` installs
`docker.io` when it is missing) on the benchmark's scratch root with
everything of its own:

- socket, data root, exec root, pidfile and daemon.json (with the trust key
  path, which otherwise lands in /etc/docker) under the scratch root; dockerd
  starts its own containerd under that exec root;
- a bridge of its own (`pdbench<pid>`, on a /24 no route uses yet), made here
  and given to dockerd with `--bridge`, so it neither makes nor deletes
  `docker0`;
- `--iptables=false --ip-forward=false --ip-masq=false`: no chains, rules or
  FORWARD policy change on the host and no sysctl written. A container still
  gets what a `docker run` on the default bridge costs (a network namespace,
  a veth pair on the bridge, an address); only the NAT rules dockerd would
  add once, at start, are missing, and none are added per container;
- `--cgroup-parent pydock-bench-<pid>`, whose cgroups are removed after.

The ExitStack it is given stops dockerd (which stops its containerd), then
removes the bridge, the cgroups and, with the scratch root, every mount.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import signal
import subprocess
from contextlib import ExitStack

from common import (
    REPO,
    docker,
    docker_env,
    remove_all_containers,
    start_pydockd,
    stop_process,
    unmount_under,
    wait_until_answering,
)

DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"
CGROUP_ROOT = "/sys/fs/cgroup"
SUBNETS = ipaddress.ip_network("10.213.0.0/16")


def available() -> bool:
    """Whether dockerd is installed (`make bench` installs Debian's docker.io when it is not)."""
    return os.access(DOCKERD, os.X_OK)


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 of 10.213.0.0/16 that no route of the host overlaps."""
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], check=True, capture_output=True,
                            text=True).stdout.split("\n")
    used = [ipaddress.ip_network(r.split()[0], strict=False) for r in routes
            if r and r.split()[0][0].isdigit()]
    for net in SUBNETS.subnets(new_prefix=24):
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError(f"no free /24 left in {SUBNETS} for the benchmark's dockerd bridge")


def make_bridge(name: str, stack: ExitStack) -> None:
    net = free_subnet()
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    stack.callback(subprocess.run, ["ip", "link", "del", name], check=False, capture_output=True)
    subprocess.run(["ip", "addr", "add", f"{net[1]}/{net.prefixlen}", "dev", name], check=True)
    subprocess.run(["ip", "link", "set", name, "up"], check=True)


def remove_cgroups(parent: str) -> None:
    """The cgroup-parent directories dockerd made in each hierarchy (v1 controllers or the v2 tree)."""
    tops = [os.path.join(CGROUP_ROOT, c) for c in os.listdir(CGROUP_ROOT)] + [CGROUP_ROOT]
    for top in tops:
        path = os.path.join(top, parent)
        if not os.path.isdir(path):
            continue
        for sub, dirs, _ in os.walk(path, topdown=False):  # children first: a cgroup with children stays
            for d in dirs:
                _rmdir(os.path.join(sub, d))
        _rmdir(path)


def _rmdir(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass  # still populated: nothing of ours to force


def start_dockerd(root: str, stack: ExitStack) -> str:
    """A private dockerd on `root` (see the module docstring); returns its DOCKER_HOST."""
    if not available():
        raise RuntimeError(f"dockerd is not installed ({DOCKERD}); `make bench` installs Debian's docker.io")
    droot = os.path.join(root, "dockerd")
    os.makedirs(droot)
    sock = os.path.join(droot, "docker.sock")
    config = os.path.join(droot, "daemon.json")
    with open(config, "w") as f:
        json.dump({"deprecated-key-path": os.path.join(droot, "key.json")}, f)
    bridge = f"pdbench{os.getpid() % 100_000}"
    cgroup_parent = f"pydock-bench-{os.getpid()}"
    make_bridge(bridge, stack)
    stack.callback(remove_cgroups, cgroup_parent)
    stack.callback(unmount_under, droot)  # netns files and overlays of containers it did not get to remove
    with open(os.path.join(droot, "dockerd.log"), "ab") as log:  # the daemon keeps its own copy
        proc = subprocess.Popen(
            [DOCKERD, "--config-file", config, "--data-root", os.path.join(droot, "data"),
             "--exec-root", os.path.join(droot, "run"), "--pidfile", os.path.join(droot, "dockerd.pid"),
             "-H", f"unix://{sock}", "--bridge", bridge, "--iptables=false", "--ip-forward=false",
             "--ip-masq=false", "--cgroup-parent", cgroup_parent, "--log-level", "warn"],
            stdout=log, stderr=log, start_new_session=True)
    stack.callback(stop_dockerd, proc)
    wait_until_answering(proc, sock, "the benchmark's dockerd did not start; see " + log.name)
    return f"unix://{sock}"


def stop_dockerd(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM stops its containers and its containerd; anything of its session left after that is killed."""
    stop_process(proc)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def add_option(parser: argparse.ArgumentParser) -> None:
    """`--no-dockerd`, for the quick runs of the smoke tests; `make bench` always measures against dockerd."""
    parser.add_argument("--no-dockerd", dest="dockerd", action="store_false",
                        help="measure pydockd alone, without the private dockerd to compare against")


def daemons(stack: ExitStack, root: str, rootfs_tar: str, config_dir: str, with_dockerd: bool,
            repo: str = REPO, import_args: tuple[str, ...] = ()) -> dict[str, dict[str, str]]:
    """A private pydockd (of `repo`) and, `with_dockerd`, a private dockerd, each with the busybox rootfs
    imported as busybox:latest (`import_args`, e.g. a CMD, passed on): the docker CLI environment of each,
    by name. Their containers are removed before they stop."""
    envs = {"pydockd": docker_env(start_pydockd(root, stack, repo), config_dir)}
    if with_dockerd:
        envs["dockerd"] = docker_env(start_dockerd(root, stack), config_dir)
    for env in envs.values():
        stack.callback(remove_all_containers, env)
        docker(env, "import", *import_args, rootfs_tar, "busybox:latest")
    return envs
