"""Volumes and mounts through the real docker CLI: named and anonymous volumes, binds, tmpfs, volumes-from."""
from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import tempfile
import time
import uuid

import docker.errors
import pytest

from engine.errors import InvalidParameter
from engine.types.container import TmpfsOptions
from engine.volume import mountspec


def uniq(prefix: str = "v") -> str:
    return prefix + uuid.uuid4().hex[:10]


def ok(daemon, *args: str, input: str | None = None) -> str:
    out = daemon.docker(*args, input=input)
    assert out.returncode == 0, f"docker {' '.join(args)}: {out.stderr}"
    return out.stdout


def fails(daemon, *args: str) -> str:
    out = daemon.docker(*args)
    assert out.returncode != 0, f"docker {' '.join(args)} unexpectedly succeeded: {out.stdout}"
    return out.stderr


def volume_names(daemon) -> set[str]:
    return set(ok(daemon, "volume", "ls", "-q").split())


def inspect(daemon, ref: str) -> dict:
    return json.loads(ok(daemon, "inspect", ref))[0]


def derived_image(daemon, busybox_tar: str, tag: str, extra: list[tarfile.TarInfo], changes: list[str]) -> str:
    """busybox plus extra entries (symlinks, directories), imported with Dockerfile-style changes."""
    fd, path = tempfile.mkstemp(suffix=".tar")
    os.close(fd)
    try:
        with tarfile.open(busybox_tar) as src, tarfile.open(path, "w") as dst:
            for member in src.getmembers():
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
            for info in extra:
                dst.addfile(info, io.BytesIO(b"secret-in-image\n") if info.isfile() else None)
        args = [a for c in changes for a in ("-c", c)]
        ok(daemon, "import", *args, path, tag)
    finally:
        os.unlink(path)
    return tag


def symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


# ---- docker volume ------------------------------------------------------------
def test_volume_create_ls_inspect_rm(daemon, busybox):
    name = uniq()
    assert ok(daemon, "volume", "create", "--label", "team=a", name).strip() == name
    assert ok(daemon, "volume", "create", name).strip() == name  # existing: returned as it is
    vol = json.loads(ok(daemon, "volume", "inspect", name))[0]
    assert vol["Driver"] == "local" and vol["Scope"] == "local" and vol["Name"] == name
    assert vol["Labels"] == {"team": "a"}
    assert vol["Mountpoint"] == os.path.join(daemon.data_root, "volumes", name, "_data")
    assert os.path.isdir(vol["Mountpoint"])
    assert vol["CreatedAt"].endswith("Z") or "+" in vol["CreatedAt"]
    assert name in volume_names(daemon)
    assert ok(daemon, "volume", "ls", "-q", "--filter", "label=team=a").split() == [name]
    assert name not in ok(daemon, "volume", "ls", "-q", "--filter", "label=team=b")
    assert name in ok(daemon, "volume", "ls", "-q", "--filter", "dangling=true", "--filter", f"name={name}")
    assert "invalid filter 'bogus'" in fails(daemon, "volume", "ls", "--filter", "bogus=1")
    ok(daemon, "volume", "rm", name)
    assert not os.path.exists(os.path.dirname(vol["Mountpoint"]))
    assert f"get {name}: no such volume" in fails(daemon, "volume", "inspect", name)
    assert f"get {name}: no such volume" in fails(daemon, "volume", "rm", name)
    ok(daemon, "volume", "rm", "-f", name)  # force: a missing volume is not an error


def test_volume_names_are_validated(daemon, client):
    err = fails(daemon, "volume", "create", "../x")
    assert ('create ../x: "../x" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed') in err
    for bad in ("../x", "a/b", "x" * 300, "-x", "a"):
        with pytest.raises(docker.errors.APIError) as exc:
            client.volumes.create(name=bad)
        assert exc.value.status_code == 400
    assert not os.path.exists(os.path.join(daemon.data_root, "x"))
    with pytest.raises(docker.errors.NotFound):
        client.volumes.create(name=uniq(), driver="nosuchdriver")
    with pytest.raises(docker.errors.APIError) as exc:
        client.volumes.create(name=uniq(), driver_opts={"bogus": "1"})
    assert exc.value.status_code == 400 and 'invalid option: "bogus"' in str(exc.value)


def test_volume_api_through_the_sdk(client):
    name = uniq()
    vol = client.volumes.create(name=name, labels={"k": "v"})
    assert vol.attrs["Labels"] == {"k": "v"} and vol.attrs["Options"] is None
    assert [v.name for v in client.volumes.list(filters={"label": "k=v", "name": name})] == [name]
    report = client.volumes.prune(filters={"all": ["true"], "label": ["k=v"]})
    assert report["VolumesDeleted"] == [name] and report["SpaceReclaimed"] == 0
    anonymous = client.volumes.create()
    assert len(anonymous.name) == 64 and "com.docker.volume.anonymous" in anonymous.attrs["Labels"]
    assert anonymous.name in client.volumes.prune()["VolumesDeleted"]
    with pytest.raises(docker.errors.APIError) as exc:
        client.volumes.prune(filters={"bogus": ["1"]})
    assert exc.value.status_code == 400


def test_volume_in_use_cannot_be_removed(daemon, client, busybox):
    name = uniq()
    cid = ok(daemon, "create", "-v", f"{name}:/data", "busybox").strip()
    err = fails(daemon, "volume", "rm", name)
    assert f"Error response from daemon: remove {name}: volume is in use - [{cid}]" in err
    with pytest.raises(docker.errors.APIError) as exc:
        client.volumes.get(name).remove(force=True)
    assert exc.value.status_code == 409
    ok(daemon, "rm", cid)
    ok(daemon, "volume", "rm", name)


# ---- named volumes -------------------------------------------------------------
def test_named_volume_data_survives_container_removal(daemon, busybox):
    name = uniq()
    ok(daemon, "run", "--name", name, "-v", f"{name}:/data", "busybox", "sh", "-c", "echo kept > /data/f")
    ok(daemon, "rm", name)
    assert name in volume_names(daemon)
    assert ok(daemon, "run", "--rm", "-v", f"{name}:/data", "busybox", "cat", "/data/f") == "kept\n"
    ok(daemon, "volume", "rm", name)


def test_named_volume_is_prepopulated_from_the_image(daemon, busybox):
    name = uniq()
    out = ok(daemon, "run", "--rm", "-v", f"{name}:/etc", "busybox", "grep", "^user:", "/etc/passwd")
    assert out.startswith("user:x:1000:")
    data = json.loads(ok(daemon, "volume", "inspect", name))[0]["Mountpoint"]
    st = os.stat(os.path.join(data, "passwd"))
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o644)
    ok(daemon, "run", "--rm", "-v", f"{name}:/home", "busybox", "true")
    assert not os.path.exists(os.path.join(data, "user"))  # not empty any more: no second copy
    nocopy = uniq()
    assert ok(daemon, "run", "--rm", "-v", f"{nocopy}:/etc:nocopy", "busybox", "ls", "/etc").split() \
        == ["hostname", "hosts", "resolv.conf"]
    ok(daemon, "volume", "rm", name, nocopy)


def test_mount_flag_volume_and_readonly(daemon, busybox):
    name = uniq()
    ok(daemon, "run", "--rm", "--mount", f"type=volume,src={name},dst=/v", "busybox", "sh", "-c", "echo a > /v/a")
    err = fails(daemon, "run", "--rm", "--mount", f"type=volume,src={name},dst=/v,readonly", "busybox",
                "sh", "-c", "echo b > /v/b")
    assert "Read-only file system" in err
    ok(daemon, "volume", "rm", name)


# ---- anonymous volumes ------------------------------------------------------------
@pytest.fixture(scope="module")
def volume_image(daemon, busybox_tar, busybox) -> str:
    data = tarfile.TarInfo("data")
    data.type, data.mode = tarfile.DIRTYPE, 0o750
    seed = tarfile.TarInfo("data/seed")
    seed.size = len(b"secret-in-image\n")
    return derived_image(daemon, busybox_tar, "volimage:latest", [data, seed],
                         ["VOLUME /data", 'CMD ["sh"]'])


def test_anonymous_volume_from_image_is_removed_by_rm_v(daemon, volume_image):
    before = volume_names(daemon)
    name = uniq("c")
    ok(daemon, "run", "--name", name, "volimage", "sh", "-c", "cat /data/seed; echo x > /data/new")
    mounts = inspect(daemon, name)["Mounts"]
    assert len(mounts) == 1 and mounts[0]["Type"] == "volume" and mounts[0]["Destination"] == "/data"
    assert mounts[0]["RW"] is True and mounts[0]["Driver"] == "local" and len(mounts[0]["Name"]) == 64
    vol = json.loads(ok(daemon, "volume", "inspect", mounts[0]["Name"]))[0]
    assert vol["Labels"] == {"com.docker.volume.anonymous": ""}
    assert sorted(os.listdir(vol["Mountpoint"])) == ["new", "seed"]
    assert os.stat(vol["Mountpoint"]).st_mode & 0o777 == 0o750  # the image directory's mode
    ps = json.loads(ok(daemon, "ps", "-a", "--filter", f"name={name}", "--format", "{{json .}}"))
    assert mounts[0]["Name"][:5] in ps["Mounts"]
    for key in (mounts[0]["Name"], "/data"):
        found = ok(daemon, "ps", "-aq", "--no-trunc", "--filter", f"volume={key}").split()
        assert found == [inspect(daemon, name)["Id"]]
    assert volume_names(daemon) - before == {mounts[0]["Name"]}
    ok(daemon, "rm", "-v", name)
    assert volume_names(daemon) == before


def test_anonymous_volume_removed_with_autoremove_and_kept_by_plain_rm(daemon, volume_image):
    before = volume_names(daemon)
    ok(daemon, "run", "--rm", "-v", "/scratch", "volimage", "true")
    assert volume_names(daemon) == before
    name = uniq("c")
    ok(daemon, "run", "--name", name, "volimage", "true")
    ok(daemon, "rm", name)
    kept = volume_names(daemon) - before
    assert len(kept) == 1
    assert ok(daemon, "volume", "prune", "-f").count(kept.pop()) == 1
    assert volume_names(daemon) == before


def test_prune_keeps_named_and_used_volumes_unless_all(daemon, busybox):
    named, used = uniq(), uniq()
    ok(daemon, "volume", "create", named)
    cid = ok(daemon, "create", "-v", f"{used}:/x", "busybox").strip()
    out = ok(daemon, "volume", "prune", "-f")
    assert named not in out and used not in out
    out = ok(daemon, "volume", "prune", "-af")
    assert named in out and used not in out
    assert used in volume_names(daemon) and named not in volume_names(daemon)
    ok(daemon, "rm", cid)
    ok(daemon, "volume", "rm", used)


# ---- binds -----------------------------------------------------------------------------
def test_bind_mount_rw_and_ro(daemon, busybox, tmp_path):
    host = tmp_path / "shared"
    host.mkdir()
    (host / "in").write_text("from host\n")
    out = ok(daemon, "run", "--rm", "-v", f"{host}:/b", "busybox", "sh", "-c", "cat /b/in; echo out > /b/out")
    assert out == "from host\n" and (host / "out").read_text() == "out\n"
    err = fails(daemon, "run", "--rm", "-v", f"{host}:/b:ro", "busybox", "touch", "/b/x")
    assert "Read-only file system" in err
    assert not (host / "x").exists()
    (host / "sub").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(host / "sub")], check=True)
    try:
        err = fails(daemon, "run", "--rm", "-v", f"{host}:/b:ro", "busybox", "touch", "/b/sub/x")
        assert "Read-only file system" in err  # recursively read-only, as Docker on kernels >= 5.12
        ok(daemon, "run", "--rm", "--mount", f"type=bind,src={host},dst=/b,readonly,bind-recursive=writable",
           "busybox", "touch", "/b/sub/x")
    finally:
        subprocess.run(["umount", str(host / "sub")], check=True)
    mounts = inspect(daemon, ok(daemon, "create", "--name", uniq("c"), "-v", f"{host}:/b:ro", "busybox").strip())
    assert mounts["Mounts"] == [{"Type": "bind", "Source": str(host), "Destination": "/b", "Mode": "ro",
                                 "RW": False, "Propagation": "rprivate"}]
    ok(daemon, "rm", mounts["Id"])


def test_bind_sources_missing(daemon, busybox, tmp_path):
    missing = tmp_path / "nope"
    err = fails(daemon, "run", "--rm", "--mount", f"type=bind,src={missing},dst=/x", "busybox", "true")
    assert f'invalid mount config for type "bind": bind source path does not exist: {missing}' in err
    assert not missing.exists()
    ok(daemon, "run", "--rm", "-v", f"{missing}:/x", "busybox", "true")  # -v creates the host directory
    assert missing.is_dir()


def test_invalid_mount_specs(daemon, busybox, tmp_path):
    assert "Duplicate mount point: /x" in fails(daemon, "run", "--rm", "-v", f"{tmp_path}:/x", "-v", "dupv:/x",
                                                "busybox", "true")
    assert "Duplicate mount point: /x" in fails(daemon, "run", "--rm", "-v", f"{tmp_path}:/x", "--mount",
                                                f"type=bind,src={tmp_path},dst=/x", "busybox", "true")
    assert "mount path must be absolute" in fails(daemon, "run", "--rm", "-v", f"{tmp_path}:rel", "busybox", "true")
    assert "invalid mode: bogus" in fails(daemon, "run", "--rm", "-v", f"{tmp_path}:/x:bogus", "busybox", "true")
    assert "No such container: nosuchctr" in fails(daemon, "run", "--rm", "--volumes-from", "nosuchctr",
                                                   "busybox", "true")
    assert "dupv" not in volume_names(daemon)  # nothing created for a refused container


def test_invalid_mounts_answer_400(client):
    for mounts in ([{"Type": "bind", "Source": "/nonexistent-src", "Target": "/x"}],
                   [{"Type": "tmpfs", "Source": "x", "Target": "/x"}],
                   [{"Type": "bogus", "Target": "/x"}],
                   [{"Type": "volume", "Target": "relative"}],
                   [{"Type": "volume", "Target": "/"}]):
        with pytest.raises(docker.errors.APIError) as exc:
            client.api.create_container("busybox", host_config={"Mounts": mounts})
        assert exc.value.status_code == 400, mounts


# ---- tmpfs -----------------------------------------------------------------------------
def test_tmpfs_mounts(daemon, busybox):
    out = ok(daemon, "run", "--rm", "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m", "busybox",
             "sh", "-c", "grep ' /t ' /proc/mounts")
    assert out.startswith("tmpfs /t tmpfs ") and "size=1024k" in out and "noexec" in out
    out = ok(daemon, "run", "--rm", "--tmpfs", "/run:size=1m,exec", "busybox", "sh", "-c", "grep ' /run ' /proc/mounts")
    assert "size=1024k" in out and "noexec" not in out and "nosuid" in out
    name = uniq("c")
    ok(daemon, "create", "--name", name, "--tmpfs", "/run", "busybox")
    assert inspect(daemon, name)["Mounts"] == []  # as Docker: --tmpfs is not a mount point
    ok(daemon, "rm", name)


def test_local_driver_tmpfs_volume(daemon, busybox):
    name = uniq()
    ok(daemon, "volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=2m,noexec", name)
    vol = json.loads(ok(daemon, "volume", "inspect", name))[0]
    assert vol["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=2m,noexec"}
    out = ok(daemon, "run", "--rm", "-v", f"{name}:/t", "busybox", "sh", "-c", "grep ' /t ' /proc/mounts")
    assert "tmpfs" in out and "size=2048k" in out and "noexec" in out
    with open("/proc/self/mountinfo") as f:
        assert vol["Mountpoint"] not in f.read()  # unmounted once no container runs with it
    ok(daemon, "volume", "rm", name)


# ---- volumes-from --------------------------------------------------------------------------
def test_volumes_from(daemon, busybox, tmp_path):
    src, vol = uniq("c"), uniq()
    ok(daemon, "run", "--name", src, "-v", f"{vol}:/shared", "-v", f"{tmp_path}:/b", "busybox",
       "sh", "-c", "echo hello > /shared/m")
    out = ok(daemon, "run", "--rm", "--volumes-from", src, "busybox", "sh", "-c", "cat /shared/m; ls -d /b")
    assert out == "hello\n/b\n"
    err = fails(daemon, "run", "--rm", "--volumes-from", f"{src}:ro", "busybox", "touch", "/shared/z")
    assert "Read-only file system" in err
    ok(daemon, "rm", src)
    ok(daemon, "volume", "rm", vol)


# ---- hostile images ------------------------------------------------------------------------
def test_mount_destination_through_image_symlink_stays_inside(daemon, busybox_tar, busybox, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    derived_image(daemon, busybox_tar, "escape:latest", [symlink("escape", str(outside)), symlink("root-link", "/")],
                  ['CMD ["sh"]'])
    host = tmp_path / "src"
    host.mkdir()
    (host / "marker").write_text("m\n")
    out = ok(daemon, "run", "--rm", "-v", f"{host}:/escape/pwned", "escape",
             "sh", "-c", f"cat {outside}/pwned/marker; grep -c pwned /proc/mounts")
    assert out == "m\n1\n"
    assert list(outside.iterdir()) == []  # runc resolved the destination inside the rootfs
    ok(daemon, "run", "--rm", "-v", f"{host}:/root-link/via-link", "escape", "cat", "/via-link/marker")


def test_copy_up_does_not_follow_image_symlinks_out(daemon, busybox_tar, busybox, tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("host secret\n")
    derived_image(daemon, busybox_tar, "copyup:latest", [symlink("data", str(secret)), symlink("etc/evil", "/")],
                  ["VOLUME /data", 'CMD ["sh"]'])
    name = uniq()
    ok(daemon, "run", "--rm", "-v", f"{name}:/data", "copyup", "true")
    data = json.loads(ok(daemon, "volume", "inspect", name))[0]["Mountpoint"]
    assert os.listdir(data) == []
    etc = uniq()
    ok(daemon, "run", "--rm", "-v", f"{etc}:/etc", "copyup", "true")
    etc_data = json.loads(ok(daemon, "volume", "inspect", etc))[0]["Mountpoint"]
    assert os.readlink(os.path.join(etc_data, "evil")) == "/"  # copied as a link, never followed
    ok(daemon, "volume", "rm", name, etc)


# ---- views -----------------------------------------------------------------------------------
def test_system_df_and_events(daemon, busybox):
    name = uniq()
    ok(daemon, "run", "--rm", "-v", f"{name}:/d", "busybox", "sh", "-c", "head -c 5000 /dev/zero > /d/z")
    df = json.loads(ok(daemon, "system", "df", "-v", "--format", "{{json .}}"))
    vols = {v["Name"]: v for v in df["Volumes"]}
    assert vols[name]["Links"] == "0" and vols[name]["Size"] == "5kB"
    ok(daemon, "volume", "rm", name)
    events = ok(daemon, "events", "--since", "2m", "--until", str(time.time() + 1), "--filter", "type=volume",
                "--filter", f"volume={name}", "--format", "{{.Action}}").split()
    assert events == ["create", "mount", "unmount", "destroy"]


def test_volumes_survive_daemon_restart_and_orphans_are_collected(daemon, busybox):
    kept, mem, ctr = uniq(), uniq(), uniq("c")
    ok(daemon, "run", "--rm", "-v", f"{kept}:/d", "busybox", "sh", "-c", "echo persisted > /d/f")
    ok(daemon, "volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", mem)
    ok(daemon, "run", "-d", "--name", ctr, "-v", f"{mem}:/m", "busybox", "sleep", "100")
    orphan = os.path.join(daemon.data_root, "volumes", uniq("orphan"))
    os.makedirs(os.path.join(orphan, "_data"))  # what a crash after "delete the row" leaves
    daemon.stop()
    daemon.start()
    assert not os.path.exists(orphan)
    assert ok(daemon, "run", "--rm", "-v", f"{kept}:/d", "busybox", "cat", "/d/f") == "persisted\n"
    mountpoint = os.path.join(daemon.data_root, "volumes", mem, "_data")
    with open("/proc/self/mountinfo") as f:
        assert mountpoint in f.read()  # still mounted for the container that kept running
    ok(daemon, "rm", "-f", ctr)
    with open("/proc/self/mountinfo") as f:
        assert mountpoint not in f.read()
    ok(daemon, "volume", "rm", kept, mem)


def test_no_stray_mounts_or_volume_dirs_left(daemon, busybox):
    """Runs last in this module: everything above cleaned up after itself."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    assert not [p for p in points if p.startswith(os.path.join(daemon.data_root, "volumes"))]
    assert not [p for p in points if p.startswith(os.path.join(daemon.data_root, "tmp"))]
    known = volume_names(daemon)
    assert set(os.listdir(os.path.join(daemon.data_root, "volumes"))) == known


# ---- parsing units -------------------------------------------------------------------------------
def test_parse_bind_units():
    mp = mountspec.parse_bind("/src:/dst:ro,rshared")
    assert (mp.type, mp.source, mp.destination, mp.rw, mp.propagation) == ("bind", "/src", "/dst", False, "rshared")
    mp = mountspec.parse_bind("vol:/d/:nocopy")
    assert (mp.type, mp.name, mp.destination, mp.copy_data, mp.mode) == ("volume", "vol", "/d", False, "nocopy")
    for raw, msg in (("/a:rw", "invalid volume specification: '/a:rw'"), ("/a:/b:ro,rw", "invalid mode: ro,rw"),
                     ("/a:/", "destination can't be '/'"), (":/b", "invalid volume specification"),
                     ("/a:/b:c:d", "invalid volume specification")):
        with pytest.raises(InvalidParameter) as exc:
            mountspec.parse_bind(raw)
        assert msg in exc.value.message, raw
    assert mountspec.parse_volumes_from("c:ro") == ("c", False)
    with pytest.raises(InvalidParameter):
        mountspec.parse_volumes_from("c:rshared")


def test_tmpfs_option_units():
    assert mountspec.tmpfs_options(TmpfsOptions(size_bytes=1 << 20, mode=0o1777), True) == "ro,mode=1777,size=1m"
    assert mountspec.tmpfs_options(TmpfsOptions(size_bytes=1000), False) == "size=1000"
    assert mountspec.tmpfs_oci("/t", "exec,size=1m")["options"] == ["nosuid", "nodev", "rprivate", "exec", "size=1m"]
    mounts = mountspec.sort_mounts([{"destination": "/a/b"}, {"destination": "/a"}, {"destination": "/c"}])
    assert [m["destination"] for m in mounts] == ["/a", "/c", "/a/b"]
