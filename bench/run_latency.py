"""`docker run --rm busybox true` latency: pydockd against bare `runc run`.

Absolute times depend on the machine, so the result is a ratio measured side
by side in one run: the same rootfs is started by `runc run` directly (`runc`
with `runc spec`'s defaults; `runc-sc` also with Docker's default seccomp
profile, which pydockd and dockerd apply and runc compiles at every start:
the floor for a default `docker run`) and by
the docker CLI through a private pydockd and through a private dockerd
(bench/dockerd.py; `--no-dockerd` leaves it out, for quick smoke runs). Runs
are interleaved so that machine noise hits every contender alike, and medians
keep the odd slow run out.

pydockd runs three ways: `pydockd` on the default bridge network (what
`docker run` gets: a network namespace, veth, address, NAT rules),
`pd-none` with `--network none` (the cost without networking) and `pd-user`
on a user-defined bridge network (plus its embedded DNS), so the price of
networking shows as the difference between the rows. dockerd runs two ways,
`dockerd` on its default bridge and `dk-none` with `--network none`.

Two more rows measure the floor under any engine the docker CLI drives:
`cli`, the CLI's own cost for one request (`docker version` against
pydockd), and `runc-2`, the same container as `runc-sc` run by the two
runc calls a monitor that outlives its runc must make (pydock's, which
holds the container's stdio: `run --detach` at start, `delete` once it has
exited; containerd's shim and conmon make three, create, start and delete),
each run from a sealed in-memory copy of the binary, as pydock runs them
(engine/runtime/sealedexe.py: runc and crun then skip copying or
bind-mounting themselves at every call; `runc` and `runc-sc` run the binary
by its path, as a user does). Their sum is the floor, with its ratio to `runc`: the best `pydockd/runc`
that a CLI-driven run could show.

pydockd runs containers under crun by default where crun is installed and
can run (engine/runtime/oci.py), else under runc; the first line says which.
Under crun, `crun-2` is the floor's runtime calls (`run --detach`,
`delete`) of the seccomp bundle with the filter compiled beforehand, as
pydock hands it to crun, so `floor` is `cli` + `crun-2`; runc stays
measured beside it: `pd-runc` and `pdr-none` (`docker run --runtime runc`,
default bridge and none) against `floor-runc` (`cli` + `runc-2`).

With `--rootless-user USER` two more rows run as that user, interleaved with
the others: `rl-pydockd`, the user's own (rootless) pydockd on its default
bridge, against `rl-runc`, bare rootless `runc run` of the same rootfs (a
`runc spec --rootless` bundle), so rootless mode gets its own ratio. The user
needs subordinate IDs, and `--rootless-python` (with PYTHONPATH, passed on)
must import this checkout's engine as that user.

    python3 bench/run_latency.py [--runs 25] [--warmup 3] [--no-dockerd] [--rootless-user USER [--rootless-python PY]]
"""
from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dockerd
from common import DOCKER, REPO, docker, measure, scratch, stop_process, timed, wait_until_answering

from engine.runtime import oci
from engine.runtime import seccomp as seccomp_profiles
from engine.runtime.sealedexe import exe_path, seal_copy

RUNC = oci.find(oci.RUNC) or "/usr/sbin/runc"


def make_runc_bundle(bundle: str, rootfs_tar: str, user: RootlessUser | None = None, seccomp: bool = False,
                     runtime: str = oci.RUNC) -> None:
    """The busybox rootfs with `runc spec`'s defaults, running `true` without a terminal; for `user`, that
    user's own bundle with `runc spec --rootless` (whose ID maps name the user who runs it). `seccomp` adds
    Docker's default seccomp profile as pydock's spec gives it to `runtime` (runc compiles it at every
    start; crun gets it compiled)."""
    rootfs = os.path.join(bundle, "rootfs")
    os.makedirs(rootfs)
    with tarfile.open(rootfs_tar) as tar:
        tar.extractall(rootfs, filter="fully_trusted")  # our own tar, built just now
    if user is None:
        subprocess.run([RUNC, "spec"], cwd=bundle, check=True)
    else:
        user.own(bundle)
        subprocess.run(user.argv(RUNC, "spec", "--rootless"), cwd=bundle, check=True)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        spec = json.load(f)
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["true"]
    if seccomp:
        caps = spec["process"]["capabilities"]["bounding"]
        spec["linux"]["seccomp"] = seccomp_profiles.to_oci(seccomp_profiles.default_profile(), caps)
        oci.prepare_spec(runtime, spec)
    with open(path, "w") as f:
        json.dump(spec, f)


# the ratios the issue sets targets for (issue 17), printed with the target so a run reads as met or not
TARGETS = {("pydockd", "runc"): 2.0, ("pd-none", "runc"): 1.5}


def report(samples: dict[str, list[float]], default_runtime: str = oci.RUNC) -> None:
    """Medians, floors and ratios; `floor` is that of pydockd's default runtime, `floor-runc` runc's beside
    crun's."""
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, med in medians.items():
        print(f"{name:10s} median {med * 1000:8.1f} ms  over {len(samples[name])} runs")
    floors = [("floor", f"{default_runtime}-2")] + ([("floor-runc", "runc-2")] if default_runtime != oci.RUNC else [])
    for floor_name, calls in floors:
        if "cli" in medians and calls in medians:
            floor = medians["cli"] + medians[calls]
            print(f"{floor_name:10s} median {floor * 1000:8.1f} ms  (cli + {calls})")
            medians[floor_name] = floor
    pairs = [(name, "rl-runc" if name.startswith("rl-") else "runc") for name in medians
             if name not in ("runc-sc", "runc-2", "crun-2", "cli")]  # rootless vs rootless
    pairs += [("pydockd", "runc-sc"), ("pd-none", "runc-sc"), ("pydockd", "dockerd"), ("pd-none", "dk-none"),
              ("pd-none", "floor"), ("pydockd", "pd-runc"), ("pd-none", "pdr-none"), ("pdr-none", "floor-runc")]
    for name, base in pairs:
        if name != base and name in medians and base in medians:
            target = TARGETS.get((name, base))
            aim = f" (target <= {target}x)" if target else ""
            print(f"{name}/{base} ratio: {medians[name] / medians[base]:.2f}x{aim}")


def runc_contender(root: str, rootfs_tar: str, stack: ExitStack, seccomp: bool = False) -> Callable[[], float]:
    bundle = os.path.join(root, "bundle-seccomp" if seccomp else "bundle")
    make_runc_bundle(bundle, rootfs_tar, seccomp=seccomp)
    runc_root = os.path.join(root, "runc")
    runc_id = f"pydock-bench-{os.getpid()}{'-sc' if seccomp else ''}"
    stack.callback(subprocess.run, [RUNC, "--root", runc_root, "delete", "--force", runc_id],
                   check=False, capture_output=True)
    argv = [RUNC, "--root", runc_root, "run", "--bundle", bundle, runc_id]
    return lambda: timed(argv)


def runc_split_contender(root: str, rootfs_tar: str, stack: ExitStack, runtime: str = oci.RUNC,
                         binary: str = RUNC) -> Callable[[], float]:
    """`run --detach`, then `delete --force` (which waits for `true` to be gone) of the seccomp bundle as
    pydock gives it to `runtime`, run from a sealed copy of the binary as pydock runs it (sealedexe.py): the
    runtime calls of a monitor that outlives its runtime."""
    bundle = os.path.join(root, f"bundle-seccomp-{runtime}")
    if not os.path.isdir(bundle):
        make_runc_bundle(bundle, rootfs_tar, seccomp=True, runtime=runtime)
    state_root = os.path.join(root, runtime)
    runc_id = f"pydock-bench-{os.getpid()}-2"
    stack.callback(subprocess.run, [binary, "--root", state_root, "delete", "--force", runc_id],
                   check=False, capture_output=True)
    fd = seal_copy(binary)
    stack.callback(os.close, fd)
    calls = [[exe_path(fd), "--root", state_root, "run", "--detach", "--bundle", bundle, runc_id],
             [exe_path(fd), "--root", state_root, "delete", "--force", runc_id]]
    # the container's init keeps run's stdio: nothing may wait for its EOF
    return lambda: sum(timed(argv, capture=False, pass_fds=(fd,)) for argv in calls)


def docker_contender(env: dict[str, str], image: str, network: str = "", runtime: str = "") -> Callable[[], float]:
    argv = [DOCKER, "run", "--rm", *(["--network", network] if network else []),
            *(["--runtime", runtime] if runtime else []), image, "true"]
    return lambda: timed(argv, env)


@dataclass
class RootlessUser:
    """The user the rootless rows run as, and the Python its pydockd runs with."""

    name: str
    python: str

    def argv(self, *args: str) -> list[str]:
        pw = pwd.getpwnam(self.name)
        return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", *args]

    def own(self, path: str) -> None:
        pw = pwd.getpwnam(self.name)
        subprocess.run(["chown", "-R", f"{pw.pw_uid}:{pw.pw_gid}", path], check=True)

    def env(self, **extra: str) -> dict[str, str]:
        return {"HOME": pwd.getpwnam(self.name).pw_dir, "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "PYTHONPATH": os.environ.get("PYTHONPATH", REPO), **extra}


def rootless_contenders(user: RootlessUser, rootfs_tar: str, stack: ExitStack) -> dict[str, Callable[[], float]]:
    """rl-runc and rl-pydockd, both run by `user` in a scratch root of its own."""
    root = tempfile.mkdtemp(prefix="pydock-bench-rl-", dir="/tmp")
    stack.callback(shutil.rmtree, root, True)
    user.own(root)
    bundle = os.path.join(root, "bundle")
    make_runc_bundle(bundle, rootfs_tar, user)
    runc_id = f"pydock-bench-rl-{os.getpid()}"
    runc_root = os.path.join(root, "runc")
    stack.callback(subprocess.run, user.argv(RUNC, "--root", runc_root, "delete", "--force", runc_id),
                   check=False, capture_output=True)
    runc_argv = user.argv(RUNC, "--root", runc_root, "run", "--bundle", bundle, runc_id)
    sock = os.path.join(root, "pydock.sock")
    exec_root = os.path.join(root, "run")
    with open(os.path.join(root, "pydockd.log"), "ab") as log:
        proc = subprocess.Popen(user.argv(user.python, "-m", "engine.pydockd", "--data-root", os.path.join(root, "data"),
                                          "--exec-root", exec_root, "-H", f"unix://{sock}", "--log-level", "warning"),
                                cwd=root, env=user.env(), stdout=log, stderr=log, start_new_session=True)
    # last in, first out: the daemon stops, then what rootless mode leaves running for the next daemon
    stack.callback(stop_holder, exec_root)
    stack.callback(stop_process, proc)
    wait_until_answering(proc, sock, "the rootless pydockd did not start; see " + log.name)
    env = user.env(DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=os.path.join(root, "docker-config"))
    subprocess.run(user.argv(DOCKER, "import", rootfs_tar, "busybox:latest"), env=env, check=True,
                   capture_output=True, timeout=120)
    docker_argv = user.argv(DOCKER, "run", "--rm", "busybox:latest", "true")
    return {"rl-runc": lambda: timed(runc_argv), "rl-pydockd": lambda: timed(docker_argv, env)}


def stop_holder(exec_root: str) -> None:
    """End the namespace holder and network relay a rootless daemon leaves for its successor (none will come)."""
    for name in ("slirp4netns.pid", "pasta.pid", "holder.pid"):
        try:
            with open(os.path.join(exec_root, name)) as f:
                os.kill(int(f.read().strip()), signal.SIGKILL)
        except (OSError, ValueError):
            continue


def run(runs: int, warmup: int, with_dockerd: bool, rootless: RootlessUser | None = None) -> None:
    with ExitStack() as stack:
        root, rootfs_tar, config_dir = scratch(stack)
        contenders = {"runc": runc_contender(root, rootfs_tar, stack),
                      "runc-sc": runc_contender(root, rootfs_tar, stack, seccomp=True),
                      "runc-2": runc_split_contender(root, rootfs_tar, stack)}
        envs = dockerd.daemons(stack, root, rootfs_tar, config_dir, with_dockerd)
        env = envs["pydockd"]
        contenders["cli"] = lambda: timed([DOCKER, "version"], env)
        contenders["pydockd"] = docker_contender(env, "busybox:latest")
        contenders["pd-none"] = docker_contender(env, "busybox:latest", "none")
        docker(env, "network", "create", "pydock-bench")
        contenders["pd-user"] = docker_contender(env, "busybox:latest", "pydock-bench")
        default_runtime = docker(env, "info", "--format", "{{.DefaultRuntime}}").strip()
        print(f"pydockd runs containers under {default_runtime} by default here")
        if default_runtime == oci.CRUN:
            contenders["crun-2"] = runc_split_contender(root, rootfs_tar, stack, oci.CRUN, oci.find(oci.CRUN))
            contenders["pd-runc"] = docker_contender(env, "busybox:latest", runtime=oci.RUNC)
            contenders["pdr-none"] = docker_contender(env, "busybox:latest", "none", oci.RUNC)
        if "dockerd" in envs:
            contenders["dockerd"] = docker_contender(envs["dockerd"], "busybox:latest")
            contenders["dk-none"] = docker_contender(envs["dockerd"], "busybox:latest", "none")
        if rootless is not None:
            os.chmod(rootfs_tar, 0o644)
            os.chmod(root, 0o755)  # the user reads the rootfs tar from here
            contenders.update(rootless_contenders(rootless, rootfs_tar, stack))
        report(measure(contenders, runs, warmup), default_runtime)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=25, help="measured runs per contender (default 25)")
    p.add_argument("--warmup", type=int, default=3, help="unmeasured runs per contender first (default 3)")
    p.add_argument("--rootless-user", metavar="USER", help="also measure rootless mode, as USER")
    p.add_argument("--rootless-python", metavar="PY", default=sys.executable,
                   help="the Python the rootless pydockd runs with (it must import this checkout as USER)")
    dockerd.add_option(p)
    args = p.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        p.error("--runs must be >= 1 and --warmup >= 0")
    rootless = RootlessUser(args.rootless_user, args.rootless_python) if args.rootless_user else None
    run(args.runs, args.warmup, args.dockerd, rootless)


if __name__ == "__main__":
    main()
