"""Isolation and Docker's default security, checked from inside containers via the real docker CLI."""
from __future__ import annotations

import json
import os

import docker.errors
import pytest


def run(daemon, *args: str):
    return daemon.docker("run", "--rm", *args, timeout=60)


def sh(daemon, script: str, *opts: str):
    return run(daemon, *opts, "busybox", "sh", "-c", script)


def test_pid_namespace_shows_only_container_processes(daemon, busybox):
    out = sh(daemon, "ps -o pid,comm")
    assert out.returncode == 0, out.stderr
    pids = [line.split()[0] for line in out.stdout.splitlines()[1:]]
    assert pids[0] == "1" and len(pids) <= 3, out.stdout  # sh, ps (and nothing of the host)


def test_cannot_mount(daemon, busybox):
    out = sh(daemon, "mount -t tmpfs none /mnt")
    assert out.returncode != 0
    assert "permission denied" in out.stderr.lower()


def test_cannot_load_kernel_modules(daemon, busybox):
    script = "head -c 4096 /dev/zero > /tmp/x.ko; insmod /tmp/x.ko"
    out = sh(daemon, script)
    assert out.returncode != 0
    assert "Operation not permitted" in out.stderr
    # with every privilege the same call reaches the kernel, which answers differently
    assert "Operation not permitted" not in sh(daemon, script, "--privileged").stderr


def test_cannot_change_network(daemon, busybox):
    out = sh(daemon, "ip link set lo down; ip link add d0 type dummy")
    assert out.returncode != 0
    assert out.stderr.count("Operation not permitted") == 2, out.stderr
    # NET_ADMIN acts on the container's own network namespace only
    out = sh(daemon, "ip link set lo down && ip link show lo", "--cap-add", "NET_ADMIN")
    assert out.returncode == 0, out.stderr
    assert "LOOPBACK" in out.stdout and ",UP" not in out.stdout
    with open("/sys/class/net/lo/operstate") as f:
        assert f.read().strip() in ("unknown", "up")


def test_cannot_read_outside_rootfs(daemon, busybox):
    out = sh(daemon, "readlink /proc/1/root; ls /proc/1/root/ /; ls /proc/1/root/../..", "--hostname", "inside")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    assert lines[0] == "/"
    assert "work" not in lines and "bin" in lines  # the host has /work; the image has no such dir


def test_masked_and_readonly_proc_paths(daemon, busybox):
    masked = [p for p in ("/proc/interrupts", "/proc/timer_list", "/proc/keys") if os.path.exists(p)]
    out = sh(daemon, f"cat {' '.join(masked)} | wc -c; echo x > /proc/sys/kernel/hostname")
    assert out.stdout.split()[0] == "0"
    assert "Read-only file system" in out.stderr
    out = sh(daemon, f"cat {masked[0]} | wc -c", "--security-opt", "systempaths=unconfined")
    assert int(out.stdout.split()[0]) > 0


def test_inspect_shows_masked_paths(daemon, busybox):
    cid = daemon.docker("create", "busybox", "true", check=True).stdout.strip()
    try:
        host = json.loads(daemon.docker("inspect", cid, check=True).stdout)[0]["HostConfig"]
        assert "/proc/kcore" in host["MaskedPaths"] and "/proc/sys" in host["ReadonlyPaths"]
    finally:
        daemon.docker("rm", cid)


def test_seccomp_default_profile_blocks_unshare(daemon, busybox):
    out = sh(daemon, "grep Seccomp: /proc/self/status; unshare -m true")
    assert "Seccomp:\t2" in out.stdout
    assert out.returncode != 0 and "Operation not permitted" in out.stderr
    # SYS_ADMIN alone passes the capability check but the profile only opens unshare for it
    assert sh(daemon, "unshare -m true", "--security-opt", "seccomp=unconfined", "--cap-add", "SYS_ADMIN").returncode == 0
    assert sh(daemon, "unshare -m true", "--cap-add", "SYS_ADMIN").returncode == 0
    assert sh(daemon, "unshare -m true", "--privileged").returncode == 0
    assert sh(daemon, "unshare -m true", "--security-opt", "seccomp=unconfined").returncode != 0  # no caps


def test_seccomp_custom_profile(daemon, busybox, tmp_path):
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    out = sh(daemon, "mkdir /x", "--security-opt", f"seccomp={profile}")
    assert out.returncode != 0 and "Operation not permitted" in out.stderr
    assert sh(daemon, "unshare -m true", "--security-opt", f"seccomp={profile}", "--cap-add", "SYS_ADMIN").returncode == 0


def test_cap_drop_chown(daemon, busybox):
    assert sh(daemon, "touch /f && chown 1000 /f").returncode == 0
    out = sh(daemon, "touch /f && chown 1000 /f", "--cap-drop", "CHOWN")
    assert out.returncode != 0 and "Operation not permitted" in out.stderr


def test_no_new_privileges(daemon, busybox):
    assert "NoNewPrivs:\t0" in sh(daemon, "grep NoNewPrivs /proc/self/status").stdout
    for opt in ("no-new-privileges", "no-new-privileges=true", "no-new-privileges:true"):
        out = sh(daemon, "grep NoNewPrivs /proc/self/status", "--security-opt", opt)
        assert "NoNewPrivs:\t1" in out.stdout, (opt, out.stderr)


def test_device_mapping(daemon, busybox):
    out = sh(daemon, "ls -l /dev/mynull && echo hi > /dev/mynull && echo written", "--device", "/dev/null:/dev/mynull")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("crw") and "1,   3" in out.stdout and "written" in out.stdout
    # a read-only mapping of a device outside runc's default set: the devices cgroup refuses writes
    out = sh(daemon, "ls /dev/mykmsg && echo x > /dev/mykmsg", "--device", "/dev/kmsg:/dev/mykmsg:r")
    assert out.stdout == "/dev/mykmsg\n" and "Operation not permitted" in out.stderr


def test_missing_device_fails_start_like_docker(daemon, busybox):
    out = sh(daemon, "true", "--device", "/dev/nope")
    assert out.returncode == 127  # the CLI's code for any "no such file or directory" message
    assert ('error gathering device information while adding custom device "/dev/nope": '
            "no such file or directory") in out.stderr


def test_privileged_gets_host_devices_and_writable_sys(daemon, busybox):
    host_devs = [d for d in ("/dev/kmsg", "/dev/loop0", "/dev/fuse") if os.path.exists(d)]
    out = sh(daemon, f"ls {' '.join(host_devs)}; grep Seccomp: /proc/self/status; "
                     "grep -E ' /sys (sysfs|cgroup)' /proc/mounts", "--privileged")
    assert all(d in out.stdout for d in host_devs), out.stderr
    assert "Seccomp:\t0" in out.stdout and " rw," in out.stdout
    assert sh(daemon, f"ls {host_devs[0]}").returncode != 0


def test_group_add(daemon, busybox):
    out = sh(daemon, "id -G", "--group-add", "wheel", "--group-add", "4242")
    assert out.returncode == 0, out.stderr
    assert {"10", "4242"} <= set(out.stdout.split())
    out = sh(daemon, "true", "--group-add", "nosuchgroup")
    assert out.returncode != 0 and "Unable to find group nosuchgroup" in out.stderr


def test_security_opt_validation_as_docker(client, busybox):
    for opt, message in (("bogus", 'invalid --security-opt 1: "bogus"'),
                         ("foo=bar", 'invalid --security-opt 2: "foo=bar"'),
                         ("seccomp={not json", "Decoding seccomp profile failed")):
        with pytest.raises(docker.errors.APIError) as err:
            client.api.create_container("busybox", "true",
                                        host_config=client.api.create_host_config(security_opt=[opt]))
        assert err.value.status_code == 400 and message in err.value.explanation
    # AppArmor is absent here: accepted and ignored, as by dockerd on such hosts
    c = client.containers.run("busybox", "true", security_opt=["apparmor=unconfined"], detach=True)
    try:
        assert c.wait(timeout=30)["StatusCode"] == 0
    finally:
        c.remove(force=True)


# ---- the spec itself (no runc): how Docker's profile conditions resolve
def _syscall_names(spec: dict) -> dict[str, list[dict]]:
    rules: dict[str, list[dict]] = {}
    for rule in spec["linux"]["seccomp"]["syscalls"]:
        for n in rule["names"]:
            rules.setdefault(n, []).append(rule)
    return rules


def test_default_seccomp_conditions_follow_capabilities():
    from engine.runtime.spec import SpecOptions, build_spec

    def spec(**kw):
        return build_spec(SpecOptions(container_id="c" * 64, rootfs="/r", args=["sh"], **kw))

    plain = spec()
    sec = plain["linux"]["seccomp"]
    assert sec["defaultAction"] == "SCMP_ACT_ERRNO" and sec["defaultErrnoRet"] == 1
    if os.uname().machine == "x86_64":
        assert sec["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    rules = _syscall_names(plain)
    assert "read" in rules and "unshare" not in rules and "init_module" not in rules
    assert rules["clone3"] == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    assert any(r.get("args") for r in rules["clone"])  # namespace flags masked out
    admin = _syscall_names(spec(cap_add=["SYS_ADMIN", "SYS_MODULE"]))
    assert "unshare" in admin and "mount" in admin and "init_module" in admin
    assert all(not r.get("args") for r in admin["clone"]) and "clone3" in admin  # allowed outright
    assert "seccomp" not in spec(privileged=True)["linux"]
    assert "seccomp" not in spec(seccomp_profile=None)["linux"]
