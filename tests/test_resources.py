"""Resource limits through the real docker CLI, read back from the container's cgroup (v1 here)."""
from __future__ import annotations

import json
import uuid

import docker.errors
import pytest

MB = 1024 * 1024


def sh(daemon, script: str, *opts: str):
    return daemon.docker("run", "--rm", *opts, "busybox", "sh", "-c", script, timeout=90)


def inspect(daemon, ref: str) -> dict:
    return json.loads(daemon.docker("inspect", ref, check=True).stdout)[0]


def host_cgroup_file(pid: int, controller: str, name: str) -> str:
    """The container's cgroup file, found from the host through its init process."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(","):
                with open(f"/sys/fs/cgroup/{controller}{path}/{name}") as cg:
                    return cg.read().strip()
    raise AssertionError(f"no {controller} cgroup for {pid}")


def test_memory_limit_inside_and_in_inspect(daemon, busybox):
    name = "m" + uuid.uuid4().hex[:8]
    out = daemon.docker("run", "--name", name, "--memory", "32m", "busybox", "cat",
                        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                        "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", timeout=60)
    try:
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == [str(32 * MB), str(64 * MB)]  # Docker's default swap: twice the memory
        host = inspect(daemon, name)["HostConfig"]
        assert (host["Memory"], host["MemorySwap"], host["ShmSize"]) == (32 * MB, 64 * MB, 64 * MB)
        assert host["OomKillDisable"] is False and host["PidsLimit"] is None
    finally:
        daemon.docker("rm", "-f", name)


def test_oom_kill_is_reported(daemon, busybox):
    name = "o" + uuid.uuid4().hex[:8]
    out = daemon.docker("run", "--name", name, "--memory", "16m", "--memory-swap", "16m", "busybox", "sh", "-c",
                        'x=$(head -c 100000000 /dev/zero | tr "\\0" x); echo survived', timeout=90)
    try:
        assert out.returncode == 137 and "survived" not in out.stdout
        state = inspect(daemon, name)["State"]
        assert state["OOMKilled"] is True and state["ExitCode"] == 137
    finally:
        daemon.docker("rm", "-f", name)


def test_pids_limit_bounds_a_fork_bomb(daemon, busybox):
    # the forks fail once the limit is reached; shell builtins then read the counters without forking
    script = ("(for i in $(seq 30); do sleep 5 & done) 2>/dev/null; "
              "read m < /sys/fs/cgroup/pids/pids.max; read c < /sys/fs/cgroup/pids/pids.current; echo $m $c")
    out = sh(daemon, script, "--pids-limit", "10")
    assert out.returncode == 0, out.stderr
    limit, current = out.stdout.split()
    assert limit == "10" and 5 <= int(current) <= 10


def test_cpu_limits(daemon, busybox):
    out = sh(daemon, "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us "
                     "/sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpuset/cpuset.cpus",
             "--cpus", "0.5", "--cpu-shares", "512", "--cpuset-cpus", "0")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["50000", "100000", "512", "0"]


def test_ulimit_and_shm_size(daemon, busybox):
    out = sh(daemon, "ulimit -n; ulimit -Hn; df -k /dev/shm | tail -1", "--ulimit", "nofile=100:200",
             "--shm-size", "1m")
    assert out.returncode == 0, out.stderr
    soft, hard, df = out.stdout.split("\n", 2)
    assert (soft, hard) == ("100", "200")
    assert df.split()[1] == "1024"


def test_sysctl_namespaced(daemon, busybox):
    out = sh(daemon, "cat /proc/sys/kernel/shmmax", "--sysctl", "kernel.shmmax=1000000")
    assert out.stdout.strip() == "1000000", out.stderr


def test_update_running_container(daemon, busybox):
    cid = daemon.docker("run", "-d", "--memory", "32m", "busybox", "sleep", "60", check=True).stdout.strip()
    try:
        pid = inspect(daemon, cid)["State"]["Pid"]
        out = daemon.docker("update", "--memory", "64m", "--memory-swap", "128m", "--cpus", "0.5",
                            "--pids-limit", "20", "--restart", "on-failure:3", cid)
        assert out.returncode == 0, out.stderr
        assert host_cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(64 * MB)
        assert host_cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == "50000"
        assert host_cgroup_file(pid, "pids", "pids.max") == "20"
        host = inspect(daemon, cid)["HostConfig"]
        assert (host["Memory"], host["MemorySwap"], host["NanoCpus"], host["PidsLimit"]) == \
            (64 * MB, 128 * MB, 500_000_000, 20)
        assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
        # dockerd's conflict: the memory may not outgrow the swap limit already set
        out = daemon.docker("update", "--memory", "256m", cid)
        assert out.returncode != 0
        assert "Memory limit should be smaller than already set memoryswap limit" in out.stderr
        out = daemon.docker("update", "--cpu-period", "50000", cid)
        assert "CPU Period cannot be updated as NanoCPUs has already been set" in out.stderr
    finally:
        daemon.docker("rm", "-f", cid)


def test_update_stopped_container_applies_at_start(daemon, busybox):
    cid = daemon.docker("create", "busybox", "cat", "/sys/fs/cgroup/pids/pids.max", check=True).stdout.strip()
    try:
        assert daemon.docker("update", "--pids-limit", "33", cid).returncode == 0
        out = daemon.docker("start", "-a", cid)
        assert out.stdout.strip() == "33", out.stderr
    finally:
        daemon.docker("rm", "-f", cid)


@pytest.mark.parametrize("host_config, message", [
    ({"Memory": 1 * MB}, "Minimum memory limit allowed is 6MB"),
    ({"Memory": 32 * MB, "MemorySwap": 16 * MB}, "Minimum memoryswap limit should be larger than memory limit"),
    ({"MemorySwap": 16 * MB}, "You should always set the Memory limit when using Memoryswap limit"),
    ({"MemoryReservation": MB}, "Minimum memory reservation allowed is 6MB"),
    ({"NanoCpus": 1000 * 10**9}, "Range of CPUs is from 0.01 to"),
    ({"NanoCpus": 10**9, "CpuPeriod": 50000}, "Conflicting options: Nano CPUs and CPU Period cannot both be set"),
    ({"NanoCpus": 10**9, "CpuQuota": 50000}, "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
    ({"CpuPeriod": 10}, "CPU cfs period can not be less than 1ms"),
    ({"CpusetCpus": "64"}, "Requested CPUs are not available - requested 64, available: "),
    ({"CpusetCpus": "0-x"}, "Invalid value 0-x for cpuset cpus"),
    ({"ShmSize": -1}, "SHM size can not be less than 0"),
    ({"Ulimits": [{"Name": "bogus", "Soft": 1, "Hard": 1}]}, "invalid ulimit type: bogus"),
    ({"Sysctls": {"kernel.hostname": "x"}}, "sysctl 'kernel.hostname' is not allowed"),
])
def test_docker_validation_errors(client, busybox, host_config, message):
    with pytest.raises(docker.errors.APIError) as err:
        client.api.create_container("busybox", "true", host_config=host_config)
    assert err.value.status_code == 400
    assert message in err.value.explanation


def test_cli_shows_docker_messages(daemon, busybox):
    out = sh(daemon, "true", "--cpuset-cpus", "5")
    assert out.returncode == 125
    assert "Requested CPUs are not available - requested 5, available: " in out.stderr
    out = sh(daemon, "true", "--memory", "1m")
    assert "Minimum memory limit allowed is 6MB" in out.stderr


def test_oom_kill_disable_without_memory_warns(client, busybox):
    c = client.api.create_container("busybox", "true", host_config={"OomKillDisable": True})
    try:
        warning = ("OOM killer is disabled for the container, but no memory limit is set, "
                   "this can result in the system running out of resources.")
        assert c["Warnings"] == [warning]
    finally:
        client.api.remove_container(c["Id"])


def test_update_conflicts_are_409_with_docker_messages(client, busybox):
    cid = client.api.create_container("busybox", "true", host_config={"NanoCpus": 10**9, "AutoRemove": True})["Id"]
    try:
        for kwargs, message in (
                ({"cpu_period": 50000}, "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set"),
                ({"restart_policy": {"Name": "always"}},
                 "Restart policy cannot be updated because AutoRemove is enabled for the container")):
            with pytest.raises(docker.errors.APIError) as err:
                client.api.update_container(cid, **kwargs)
            assert err.value.status_code == 409
            assert err.value.explanation == f"Cannot update container {cid}: {message}"
        with pytest.raises(docker.errors.APIError) as err:
            client.api.update_container(cid, mem_limit=MB)
        assert err.value.status_code == 400 and err.value.explanation == "Minimum memory limit allowed is 6MB"
    finally:
        client.api.remove_container(cid, force=True)


def test_host_config_round_trips_in_inspect(daemon, busybox):
    cid = daemon.docker("create", "--cpu-shares", "256", "--cpus", "1.5", "--cpuset-cpus", "0-1", "--pids-limit", "50",
                        "--memory-reservation", "20m", "--ulimit", "nproc=10:20", "--shm-size", "2m",
                        "--device", "/dev/null:/dev/n:rw", "--security-opt", "no-new-privileges",
                        "--cap-add", "NET_ADMIN", "--group-add", "wheel", "busybox", "true", check=True).stdout.strip()
    try:
        host = inspect(daemon, cid)["HostConfig"]
        assert (host["CpuShares"], host["NanoCpus"], host["CpusetCpus"], host["PidsLimit"]) == (256, 1_500_000_000, "0-1", 50)
        assert host["MemoryReservation"] == 20 * MB and host["ShmSize"] == 2 * MB
        assert host["Ulimits"] == [{"Name": "nproc", "Hard": 20, "Soft": 10}]
        assert host["Devices"] == [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/n", "CgroupPermissions": "rw"}]
        assert host["SecurityOpt"] == ["no-new-privileges"] and host["CapAdd"] == ["CAP_NET_ADMIN"]  # as the CLI sends it
        assert host["GroupAdd"] == ["wheel"]
    finally:
        daemon.docker("rm", "-f", cid)
