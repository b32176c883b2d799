"""`docker save` / `docker load` through the real docker CLI and SDK.

Tarballs are checked member by member, and hand-built archives cover the
formats pydock must read besides its own: the pre-25 Docker layout, a pure
OCI layout with compressed layers, and hostile archives.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import time
import uuid
from typing import Any

import pytest
from conftest import DOCKER, Daemon


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def add_symlink(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    tar.addfile(info)


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            add_file(tar, name, data)
    return buf.getvalue()


def make_tar(path: str, files: dict[str, bytes], symlinks: dict[str, str] | None = None) -> str:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            add_file(tar, name, data)
        for name, target in (symlinks or {}).items():
            add_symlink(tar, name, target)
    return path


def read_members(path: str) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def image_config(diff_ids: list[str], cmd: list[str] | None = None) -> bytes:
    return json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
        "config": {"Cmd": cmd or ["sh"], "Env": ["PATH=/bin:/usr/bin"]},
        "history": [{"created": "2024-01-02T03:04:05Z", "created_by": f"layer {i}"} for i in range(len(diff_ids))],
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }).encode()


def inspect(daemon: Daemon, ref: str) -> dict[str, Any] | None:
    out = daemon.docker("image", "inspect", ref)
    return json.loads(out.stdout)[0] if out.returncode == 0 else None


def store_state(daemon: Daemon) -> dict[str, list[str]]:
    """What a failed load must not change: images, layer dirs, blobs, temp files."""
    root = daemon.data_root
    return {
        "images": sorted(daemon.docker("images", "-aq", "--no-trunc").stdout.split()),
        "layers": sorted(os.listdir(os.path.join(root, "layers"))),
        "blobs": sorted(os.listdir(os.path.join(root, "blobs", "sha256"))),
        "tmp": sorted(os.listdir(os.path.join(root, "tmp"))),
    }


@pytest.fixture
def unique_image(daemon: Daemon, busybox_tar: str, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A tag whose single layer exists nowhere else: busybox plus one unique file."""
    token = uuid.uuid4().hex[:10]
    path = str(tmp_path / "unique.tar")
    with tarfile.open(busybox_tar) as src, tarfile.open(path, "w") as dst:
        for m in src:
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        add_file(dst, "unique", token.encode())
    tag = f"uniq{token}:v1"
    daemon.docker("import", "-c", 'CMD ["cat", "/unique"]', path, tag, check=True)
    yield tag
    daemon.docker("rmi", "-f", tag)


def test_save_writes_docker_archive_and_oci_layout(daemon, busybox, tmp_path):
    out = str(tmp_path / "x.tar")
    daemon.docker("save", "busybox", "-o", out, check=True)
    members = read_members(out)
    for name, data in members.items():
        if name.startswith("blobs/sha256/"):
            assert sha256(data) == "sha256:" + name.rsplit("/", 1)[1], name
    info = inspect(daemon, "busybox")
    assert info is not None
    manifest = json.loads(members["manifest.json"])
    assert manifest == [{"Config": f"blobs/sha256/{busybox[7:]}", "RepoTags": ["busybox:latest"],
                         "Layers": [f"blobs/sha256/{d[7:]}" for d in info["RootFS"]["Layers"]]}]
    assert json.loads(members["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    top = info["RootFS"]["Layers"][-1]
    assert json.loads(members["repositories"]) == {"busybox": {"latest": top[7:]}}
    index = json.loads(members["index.json"])
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    (desc,) = index["manifests"]
    assert desc["annotations"] == {"io.containerd.image.name": "docker.io/library/busybox:latest",
                                   "org.opencontainers.image.ref.name": "latest"}
    oci = json.loads(members["blobs/sha256/" + desc["digest"][7:]])
    assert oci["mediaType"] == desc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert oci["config"]["digest"] == busybox
    assert [(layer["mediaType"], layer["digest"]) for layer in oci["layers"]] == \
        [("application/vnd.oci.image.layer.v1.tar", d) for d in info["RootFS"]["Layers"]]
    assert all(layer["size"] == len(members["blobs/sha256/" + layer["digest"][7:]]) for layer in oci["layers"])


def test_rmi_then_load_restores_image(daemon, unique_image, tmp_path):
    image_id = inspect(daemon, unique_image)["Id"]  # type: ignore[index]
    layers_before = store_state(daemon)["layers"]
    out = str(tmp_path / "u.tar")
    since = time.time()
    daemon.docker("save", "-o", out, unique_image, check=True)
    daemon.docker("rmi", unique_image, check=True)
    assert inspect(daemon, image_id) is None
    assert len(store_state(daemon)["layers"]) == len(layers_before) - 1  # its unique layer went too
    loaded = daemon.docker("load", "-i", out, check=True)
    assert loaded.stdout == f"Loaded image: {unique_image}\n"
    assert inspect(daemon, unique_image)["Id"] == image_id  # type: ignore[index]
    assert daemon.docker("run", "--rm", unique_image, check=True).stdout == unique_image[4:14]
    events = daemon.docker("events", "--since", str(since - 1), "--until", str(time.time() + 1),
                           "--filter", "type=image", "--filter", f"image={image_id}",
                           "--format", "{{.Action}}").stdout
    assert [e for e in events.split() if e in ("save", "load")] == ["save", "load"]


def test_save_pipe_to_load_and_gzip(daemon, unique_image, tmp_path):
    image_id = inspect(daemon, unique_image)["Id"]  # type: ignore[index]
    gz = tmp_path / "u.tar.gz"

    def sh(pipeline: str) -> str:
        out = subprocess.run(pipeline, shell=True, capture_output=True, text=True, env=daemon.env, timeout=120,
                             check=False)
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert sh(f"{DOCKER} save {unique_image} | {DOCKER} load") == f"Loaded image: {unique_image}\n"
    sh(f"{DOCKER} save {unique_image} | gzip > {gz}")
    daemon.docker("rmi", unique_image, check=True)
    assert sh(f"gunzip -c {gz} | {DOCKER} load") == f"Loaded image: {unique_image}\n"
    assert inspect(daemon, unique_image)["Id"] == image_id  # type: ignore[index]


def test_sdk_save_and_load(daemon, client, unique_image):
    image = client.images.get(unique_image)
    data = b"".join(image.save(named=True))
    client.images.remove(unique_image)
    (loaded,) = client.images.load(data)
    assert loaded.id == image.id and loaded.tags == [unique_image]
    untagged = b"".join(client.api.get_image(image.id[7:19]))
    with tarfile.open(fileobj=io.BytesIO(untagged)) as tar:
        assert json.load(tar.extractfile("manifest.json"))[0]["RepoTags"] is None  # type: ignore[arg-type]
        assert "repositories" not in tar.getnames()


def test_two_images_sharing_a_layer_store_it_once(daemon, busybox, busybox_tar, tmp_path):
    daemon.docker("import", "-c", 'CMD ["true"]', busybox_tar, "sharer:two", check=True)
    try:
        out = str(tmp_path / "two.tar")
        daemon.docker("save", "-o", out, "busybox", "sharer:two", check=True)
        with tarfile.open(out) as tar:
            names = tar.getnames()
        manifest = json.loads(read_members(out)["manifest.json"])
        assert len(manifest) == 2 and manifest[0]["Layers"] == manifest[1]["Layers"]
        assert len(names) == len(set(names))
        # two configs, two OCI manifests, one shared layer
        assert len([n for n in names if n.startswith("blobs/sha256/")]) == 5
        assert sorted(t for m in manifest for t in m["RepoTags"]) == ["busybox:latest", "sharer:two"]
    finally:
        daemon.docker("rmi", "sharer:two")


def test_load_legacy_docker_archive(daemon, busybox_tar, tmp_path):
    """Docker < 25: `<id>/layer.tar`, a `<config hex>.json`, and symlinked duplicate layers."""
    with open(busybox_tar, "rb") as f:
        base = f.read()
    extra = layer_tar({"hello": b"legacy\n"})
    diff_ids = [sha256(base), sha256(extra), sha256(extra)]
    config = image_config(diff_ids, ["cat", "/hello"])
    ids = [uuid.uuid4().hex * 2 for _ in range(3)]
    tag = f"legacy{uuid.uuid4().hex[:6]}:old"
    files = {f"{ids[0]}/layer.tar": base, f"{ids[1]}/layer.tar": extra,
             f"{sha256(config)[7:]}.json": config,
             "manifest.json": json.dumps([{"Config": f"{sha256(config)[7:]}.json", "RepoTags": [tag],
                                           "Layers": [f"{i}/layer.tar" for i in ids]}]).encode()}
    files.update({f"{i}/VERSION": b"1.0" for i in ids})
    path = make_tar(str(tmp_path / "legacy.tar"), files, {f"{ids[2]}/layer.tar": f"../{ids[1]}/layer.tar"})
    try:
        assert daemon.docker("load", "-i", path, check=True).stdout == f"Loaded image: {tag}\n"
        info = inspect(daemon, tag)
        assert info["Id"] == sha256(config) and info["RootFS"]["Layers"] == diff_ids  # type: ignore[index]
        assert daemon.docker("run", "--rm", tag).stdout == "legacy\n"
    finally:
        daemon.docker("rmi", tag)


def oci_layout(path: str, layers: list[bytes], compress: Any, annotations: dict[str, str] | None,
               diff_ids: list[str]) -> tuple[str, str]:
    """A pure OCI image layout (no manifest.json); returns (path, image ID)."""
    config = image_config(diff_ids, ["cat", "/hello"])
    blobs = [compress(layer) for layer in layers]
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(b),
                    "size": len(b)} for b in blobs]}).encode()
    desc: dict[str, Any] = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "digest": sha256(manifest), "size": len(manifest)}
    if annotations:
        desc["annotations"] = annotations
    files = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
             "index.json": json.dumps({"schemaVersion": 2, "manifests": [desc]}).encode()}
    for blob in [config, manifest, *blobs]:
        files[f"blobs/sha256/{sha256(blob)[7:]}"] = blob
    return make_tar(path, files), sha256(config)


def test_load_pure_oci_layout_with_gzip_layers(daemon, busybox_tar, tmp_path):
    with open(busybox_tar, "rb") as f:
        base = f.read()
    extra = layer_tar({"hello": b"oci\n"})
    tag = f"ocitest{uuid.uuid4().hex[:6]}:v1"
    path, image_id = oci_layout(str(tmp_path / "oci.tar"), [base, extra], gzip.compress,
                                {"io.containerd.image.name": f"docker.io/library/{tag}",
                                 "org.opencontainers.image.ref.name": "v1"}, [sha256(base), sha256(extra)])
    try:
        assert daemon.docker("load", "-i", path, check=True).stdout == f"Loaded image: {tag}\n"
        assert inspect(daemon, tag)["Id"] == image_id  # type: ignore[index]
        assert daemon.docker("run", "--rm", tag).stdout == "oci\n"
    finally:
        daemon.docker("rmi", tag)


def test_load_untagged_oci_layout_with_zstd_layer(daemon, busybox, busybox_tar, tmp_path):
    zstandard = pytest.importorskip("zstandard")
    with open(busybox_tar, "rb") as f:
        base = f.read()
    extra = layer_tar({"hello": uuid.uuid4().hex.encode()})
    path, image_id = oci_layout(str(tmp_path / "zst.tar"), [base, extra], zstandard.ZstdCompressor().compress,
                                None, [sha256(base), sha256(extra)])
    try:
        assert daemon.docker("load", "-i", path, check=True).stdout == f"Loaded image ID: {image_id}\n"
        assert inspect(daemon, image_id)["RepoTags"] == []  # type: ignore[index]
    finally:
        daemon.docker("rmi", image_id)


def test_tampered_layer_is_rejected_without_leftovers(daemon, unique_image, tmp_path):
    out = str(tmp_path / "t.tar")
    daemon.docker("save", "-o", out, unique_image, check=True)
    members = read_members(out)
    manifest = json.loads(members["manifest.json"])
    layer_name = manifest[0]["Layers"][-1]
    with tarfile.open(fileobj=io.BytesIO(members[layer_name])) as layer:
        files = {m.name: layer.extractfile(m).read() for m in layer if m.isfile()}  # type: ignore[union-attr]
    files["unique"] = b"tampered!!"
    members[layer_name] = layer_tar(files)  # same name, other content
    image_id = inspect(daemon, unique_image)["Id"]  # type: ignore[index]
    daemon.docker("rmi", unique_image, check=True)
    before = store_state(daemon)
    bad = daemon.docker("load", "-i", make_tar(str(tmp_path / "bad.tar"), members))
    assert bad.returncode == 1
    expected = json.loads(members[manifest[0]["Config"]])["rootfs"]["diff_ids"][-1]
    assert f'invalid diffID for layer 0: expected "{expected}", got "{sha256(members[layer_name])}"' in bad.stderr
    assert store_state(daemon) == before
    assert inspect(daemon, image_id) is None


def test_hostile_layer_after_a_good_one_leaves_nothing(daemon, busybox, tmp_path):
    """Both layers match their diff IDs, the second one's tar escapes: the first is rolled back."""
    good = layer_tar({"good": uuid.uuid4().hex.encode()})
    evil = layer_tar({"../../escape": b"x"})
    config = image_config([sha256(good), sha256(evil)])
    files = {"a/layer.tar": good, "b/layer.tar": evil, "config.json": config,
             "manifest.json": json.dumps([{"Config": "config.json", "RepoTags": ["hostile:1"],
                                           "Layers": ["a/layer.tar", "b/layer.tar"]}]).encode()}
    before = store_state(daemon)
    out = daemon.docker("load", "-i", make_tar(str(tmp_path / "evil.tar"), files))
    assert out.returncode == 1 and "escapes the layer" in out.stderr
    assert store_state(daemon) == before
    assert inspect(daemon, "hostile:1") is None


@pytest.mark.parametrize("layers,symlinks", [
    (["../../etc/passwd"], {}),
    (["/etc/passwd"], {}),
    (["blobs/../../etc/passwd"], {}),
    (["x/layer.tar"], {"x/layer.tar": "../../../etc/passwd"}),
])
def test_paths_escaping_the_archive_are_rejected(daemon, busybox, tmp_path, layers, symlinks):
    with open("/etc/passwd", "rb") as f:
        config = image_config([sha256(f.read())])
    files = {"config.json": config,
             "manifest.json": json.dumps([{"Config": "config.json", "RepoTags": ["escape:1"],
                                           "Layers": layers}]).encode()}
    before = store_state(daemon)
    out = daemon.docker("load", "-i", make_tar(str(tmp_path / "esc.tar"), files, symlinks))
    assert out.returncode == 1
    assert out.stderr.startswith("invalid archive path"), out.stderr  # in the 200 stream, as dockerd
    assert "must be a relative path inside the archive" in out.stderr
    assert store_state(daemon) == before


def test_load_of_garbage_is_an_error_in_the_stream(daemon, client, tmp_path):
    """dockerd answers 200 and reports the failure as an errorDetail message; nothing is stored."""
    import docker
    before = store_state(daemon)
    for body in (b"this is not a tarball", gzip.compress(b"nor is this")):
        [message] = client.api.load_image(body)
        assert message["error"].startswith("invalid tar archive"), message
        assert message["errorDetail"] == {"message": message["error"]}
        with pytest.raises(docker.errors.ImageLoadError, match="invalid tar archive"):
            client.images.load(body)
        (tmp_path / "garbage").write_bytes(body)
        out = daemon.docker("load", "-i", str(tmp_path / "garbage"))
        assert (out.returncode, out.stdout) == (1, "")
        assert out.stderr.startswith("invalid tar archive"), out.stderr
    assert store_state(daemon) == before


def test_save_unknown_image_is_404(daemon, busybox):
    out = subprocess.run([DOCKER, "save", "no-such-image:nope"], capture_output=True, env=daemon.env, timeout=60,
                         check=False)
    assert out.returncode == 1
    assert b"No such image: no-such-image:nope" in out.stderr
    assert out.stdout == b""
