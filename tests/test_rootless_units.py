"""Rootless mode's pure parts: the ID map, the user's paths, cgroup delegation, the limit refusal, the OCI spec,
upper directories written by either overlay."""
from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from engine.config import EngineConfig
from engine.container.archive import overlay_changes
from engine.errors import InvalidParameter
from engine.image import upperdir
from engine.image.layers import write_diff_tar
from engine.rootless import cgroups, idmap
from engine.rootless.paths import UnsafeDirectory, UserPaths, ensure_private_dir
from engine.runtime import resources, runc
from engine.runtime.spec import SpecOptions, build_spec
from engine.types.container import Resources
from pydock_common.userpaths import user_socket


def test_subordinate_ranges_by_name_or_id_in_file_order(tmp_path: Path) -> None:
    table = tmp_path / "subuid"
    table.write_text("other:100000:65536\nalice:165536:65536\n# comment\n1001:300000:10\nalice:bad:1\n"
                     "alice:400000:0\n")
    assert idmap.subordinate_ranges(str(table), "alice", 1001) == [idmap.IdRange(165536, 65536),
                                                                   idmap.IdRange(300000, 10)]
    assert idmap.subordinate_ranges(str(tmp_path / "missing"), "alice", 1001) == []


def test_namespace_map_puts_the_user_at_zero_then_the_ranges() -> None:
    maps = idmap.namespace_map(1001, [idmap.IdRange(165536, 65536), idmap.IdRange(300000, 10)])
    assert idmap.helper_args(maps) == ["0", "1001", "1", "1", "165536", "65536", "65537", "300000", "10"]
    assert not idmap.single_id(maps)
    assert idmap.single_id(idmap.namespace_map(1001, []))


def test_user_paths_follow_xdg_and_fall_back_to_a_private_tmp_dir(tmp_path: Path) -> None:
    uid = os.getuid()
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {"HOME": "/home/u", "XDG_RUNTIME_DIR": str(runtime), "XDG_DATA_HOME": "/data", "XDG_CONFIG_HOME": "rel"}
    paths = UserPaths.of(uid, env)
    assert paths == UserPaths(data_root="/data/pydock", exec_root=f"{runtime}/pydock",
                              socket=f"{runtime}/pydock.sock",
                              config_file="/home/u/.config/pydock/daemon.json")  # a relative XDG dir is ignored
    # a runtime directory that is not the user's own (e.g. kept through `su`) is not used
    other = UserPaths.of(uid + 1, env)
    assert other.socket == f"/tmp/pydock-{uid + 1}/pydock.sock" == user_socket(uid + 1, env)
    assert other.data_root == "/data/pydock"


def test_private_dir_must_be_the_users_and_closed(tmp_path: Path) -> None:
    path = tmp_path / "p"
    ensure_private_dir(str(path), os.getuid())
    assert (path.stat().st_mode & 0o777) == 0o700
    ensure_private_dir(str(path), os.getuid())  # an existing one that is right is fine
    path.chmod(0o755)
    with pytest.raises(UnsafeDirectory, match="open to other users"):
        ensure_private_dir(str(path), os.getuid())
    path.chmod(0o700)
    with pytest.raises(UnsafeDirectory, match="belongs to uid"):
        ensure_private_dir(str(path), os.getuid() + 1)
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(UnsafeDirectory, match="not a directory"):
        ensure_private_dir(str(link), os.getuid())


def _cgroup_tree(root: Path, own: str, controllers: str, writable: bool) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpu memory pids io cpuset\n")
    service = root / own.lstrip("/").split("/app.slice")[0]
    service.mkdir(parents=True)
    (service / "cgroup.controllers").write_text(controllers + "\n")
    if writable:  # (root writes any file whatever its mode, so the tests show "not ours" by its absence)
        (service / "cgroup.subtree_control").write_text("")
    proc = root / "self-cgroup"
    proc.write_text(f"0::{own}\n")
    return proc


def test_cgroup_access_v1_none_v2_the_delegated_subtree(tmp_path: Path) -> None:
    v1 = cgroups.rootless_access(root=str(tmp_path / "v1"), self_cgroup="/nonexistent", uid=1001)
    assert (v1.parent, v1.controllers, v1.reason) == ("", frozenset(), cgroups.V1_REASON)
    own = "/user.slice/user-1001.slice/user@1001.service/app.slice/pydockd.scope"
    proc = _cgroup_tree(tmp_path / "v2", own, "memory pids", writable=True)
    v2 = cgroups.rootless_access(root=str(tmp_path / "v2"), self_cgroup=str(proc), uid=1001)
    assert v2.parent == "user.slice/user-1001.slice/user@1001.service/pydock"
    assert v2.controllers == {"memory", "pids"}
    elsewhere = cgroups.rootless_access(root=str(tmp_path / "v2"), self_cgroup=str(proc), uid=1002)
    assert (elsewhere.parent, elsewhere.reason) == ("", cgroups.UNDELEGATED_REASON)


def test_cgroup_access_needs_a_writable_subtree(tmp_path: Path) -> None:
    own = "/user.slice/user-1001.slice/user@1001.service/app.slice/pydockd.scope"
    proc = _cgroup_tree(tmp_path, own, "memory pids", writable=False)
    assert cgroups.rootless_access(root=str(tmp_path), self_cgroup=str(proc), uid=1001).parent == ""


def test_limits_refused_per_missing_controller() -> None:
    r = Resources(memory=64 << 20, nano_cpus=500_000_000, pids_limit=10, memory_swap=-1, memory_swappiness=None,
                  oom_kill_disable=False)
    with pytest.raises(InvalidParameter) as e:
        resources.refuse_unavailable(r, frozenset(), cgroups.V1_REASON)
    assert e.value.message == ("cannot set --memory, --cpus, --pids-limit: rootless mode on cgroup v1 cannot apply "
                               "resource limits")
    with pytest.raises(InvalidParameter, match="^cannot set --cpus: why$"):
        resources.refuse_unavailable(r, frozenset({"memory", "pids"}), "why")
    resources.refuse_unavailable(r, None, "")  # root: every controller
    resources.refuse_unavailable(Resources(pids_limit=-1, memory_swap=-1), frozenset(), "unset values ask for nothing")


def _spec(**kw: object) -> dict:  # type: ignore[type-arg]
    return build_spec(SpecOptions(container_id="c" * 64, rootfs="/r", args=["sh"], **kw))  # type: ignore[arg-type]


def test_rootless_spec_without_cgroup_has_no_resources() -> None:
    rootful = _spec(cgroups_path="/pydock/c", resources={"memory": {"limit": 1 << 30}})
    assert rootful["linux"]["resources"]["memory"] == {"limit": 1 << 30}
    bare = _spec(rootless=True)
    assert "resources" not in bare["linux"] and bare["linux"]["cgroupsPath"] == ""
    delegated = _spec(rootless=True, cgroups_path="/user.slice/pydock/c", resources={"pids": {"limit": 5}})
    assert delegated["linux"]["resources"] == {"pids": {"limit": 5}}  # device rules are not a user's to load
    with open("/proc/self/oom_score_adj") as f:
        own = int(f.read())
    assert bare["process"]["oomScoreAdj"] == max(0, own)


# ---- upper directories of either overlay (engine.image.upperdir) ----------------------------------------
def _upper(root: Path, form: str) -> Path:
    """An upperdir after `rm /gone /d/old; rm -rf /d; mkdir /d; echo y > /d/y` as each overlay records it:
    "kernel" (0/0 character devices, user.overlay.opaque), "fuse" (fuse-overlayfs 1.10 where it may mknod,
    as measured here: a 0/0 device, user.fuseoverlayfs.opaque, a .wh..wh..opq file and a .wh..opq device)
    and "fuse-nomknod" (fuse-overlayfs where mknod is refused: .wh. files, the marker file alone)."""
    upper = root / form
    (upper / "d").mkdir(parents=True)
    (upper / "d" / "y").write_text("y\n")
    if form == "kernel":
        os.mknod(upper / "gone", stat.S_IFCHR, os.makedev(0, 0))
        os.setxattr(upper / "d", "user.overlay.opaque", b"y")
    elif form == "fuse":
        os.mknod(upper / "gone", stat.S_IFCHR, os.makedev(0, 0))
        os.setxattr(upper / "d", "user.fuseoverlayfs.opaque", b"y")
        (upper / "d" / ".wh..wh..opq").touch(mode=0o700)
        os.mknod(upper / "d" / ".wh..opq", stat.S_IFCHR | 0o700, os.makedev(0, 0))
    else:
        (upper / ".wh.gone").touch()
        (upper / "d" / ".wh..wh..opq").touch(mode=0o700)
    return upper


@pytest.mark.parametrize("form", ["kernel", "fuse", "fuse-nomknod"])
def test_an_upperdir_of_either_overlay_becomes_the_same_layer(tmp_path: Path, form: str) -> None:
    upper = _upper(tmp_path, form)
    buf = io.BytesIO()
    write_diff_tar(str(upper), buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        members = sorted((m.name, m.type) for m in tar.getmembers())
    assert members == [(".wh.gone", tarfile.REGTYPE), ("d", tarfile.DIRTYPE), ("d/.wh..wh..opq", tarfile.REGTYPE),
                       ("d/y", tarfile.REGTYPE)]


@pytest.mark.parametrize("form", ["kernel", "fuse", "fuse-nomknod"])
def test_docker_diff_reads_either_overlays_upperdir(tmp_path: Path, form: str) -> None:
    upper = _upper(tmp_path, form)
    lower = tmp_path / "lower"
    (lower / "d").mkdir(parents=True)
    (lower / "d" / "old").write_text("old\n")
    (lower / "gone").write_text("gone\n")
    changes = sorted(overlay_changes(str(upper), [str(lower)]), key=lambda c: str(c["Path"]))
    assert changes == [{"Path": "/d", "Kind": 2}, {"Path": "/d/y", "Kind": 1},
                                                         {"Path": "/gone", "Kind": 2}]


def test_whiteout_marks_are_not_content(tmp_path: Path) -> None:
    reg, dev = tmp_path / "reg", tmp_path / "dev"
    reg.touch()
    os.mknod(dev, stat.S_IFCHR, os.makedev(0, 0))
    assert upperdir.deleted_name(".wh.x", reg.lstat()) == "x" and upperdir.deleted_name("x", dev.lstat()) == "x"
    assert upperdir.deleted_name(".wh..wh..opq", reg.lstat()) is None
    assert upperdir.deleted_name(".wh..opq", dev.lstat()) is None
    assert upperdir.deleted_name("x", reg.lstat()) is None and not upperdir.is_content(".wh..opq")


@pytest.mark.parametrize("rootless, policy", [(True, os.SCHED_OTHER), (False, os.SCHED_IDLE)])
def test_spare_python_monitor_waits_under_the_daemons_own_policy(tmp_path: Path, rootless: bool,
                                                                 policy: int) -> None:
    """A rootless daemon cannot take a process back from SCHED_IDLE (that needs CAP_SYS_NICE in the host's
    user namespace), so its spare Python monitor never goes there: it would be thrown away at every start."""
    rt = runc.Runtime(EngineConfig(data_root=str(tmp_path / "data"), exec_root=str(tmp_path / "run"),
                                   monitor="python", rootless=rootless))
    try:
        rt._refill()
        spare = rt._spare
        assert spare is not None
        assert os.sched_getscheduler(spare.proc.pid) == policy
    finally:
        rt.close()


@pytest.mark.parametrize("key, value, choices", [("rootless-network", "vpnkit", "slirp4netns, pasta"),
                                                 ("storage-driver", "zfs", "overlay2, fuse-overlayfs")])
def test_daemon_json_choices_are_checked_like_the_flags(tmp_path: Path, key: str, value: str, choices: str) -> None:
    from engine.pydockd import parse_args
    config = tmp_path / "daemon.json"
    config.write_text(f'{{"{key}": "{value}"}}')
    with pytest.raises(SystemExit, match=f"invalid {key} '{value}': choose from {choices}"):
        parse_args(["--config-file", str(config)])
    config.write_text(f'{{"{key}": "{choices.split(", ")[-1]}"}}')
    assert getattr(parse_args(["--config-file", str(config)]), key.replace("-", "_")) == choices.split(", ")[-1]
