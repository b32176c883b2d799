"""Image commands through the real docker CLI."""
from __future__ import annotations

import json
import uuid

import pytest


def test_import_with_changes_and_inspect(daemon, busybox, busybox_tar):
    tag = f"imp{uuid.uuid4().hex[:6]}:v1"
    out = daemon.docker("import", "-c", "ENV GREETING=hello", "-c", 'CMD ["sh", "-c", "echo $GREETING"]',
                        "-m", "my import", busybox_tar, tag, check=True)
    image_id = out.stdout.strip()
    assert image_id.startswith("sha256:")
    data = json.loads(daemon.docker("image", "inspect", tag, check=True).stdout)[0]
    assert data["Id"] == image_id
    assert data["RepoTags"] == [tag]
    assert "GREETING=hello" in data["Config"]["Env"]
    assert data["Comment"] == "my import"
    assert data["RootFS"]["Type"] == "layers" and len(data["RootFS"]["Layers"]) == 1
    assert daemon.docker("run", "--rm", tag).stdout == "hello\n"
    daemon.docker("rmi", tag, check=True)


def test_import_from_stdin_same_content_same_id(daemon, busybox, busybox_tar):
    with open(busybox_tar, "rb") as f:
        data = f.read()
    import subprocess
    out = subprocess.run(["docker", "import", "-", "stdin-img:1"], input=data, capture_output=True,
                         env=daemon.env, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    layers = json.loads(daemon.docker("image", "inspect", "stdin-img:1").stdout)[0]["RootFS"]["Layers"]
    base = json.loads(daemon.docker("image", "inspect", "busybox").stdout)[0]["RootFS"]["Layers"]
    assert layers == base  # same tar, same diff ID: the layer is shared
    daemon.docker("rmi", "stdin-img:1", check=True)


def test_images_list_tag_and_rmi_rules(daemon, busybox):
    daemon.docker("tag", "busybox", "localhost:5000/team/bb:2", check=True)
    listing = daemon.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert "busybox:latest" in listing and "localhost:5000/team/bb:2" in listing
    # an image with two tags cannot be removed by ID without force
    out = daemon.docker("rmi", busybox[7:19])
    assert out.returncode == 1 and "must be forced" in out.stderr
    assert "Untagged: localhost:5000/team/bb:2" in daemon.docker("rmi", "localhost:5000/team/bb:2").stdout
    assert daemon.docker("image", "inspect", "busybox").returncode == 0


def test_rmi_conflict_with_container(daemon, busybox, busybox_tar):
    tag = f"used{uuid.uuid4().hex[:6]}"
    daemon.docker("import", busybox_tar, tag, check=True)
    cid = daemon.docker("create", tag, "true", check=True).stdout.strip()
    out = daemon.docker("rmi", tag)
    assert out.returncode == 1
    assert "conflict: unable to remove repository reference" in out.stderr and cid[:12] in out.stderr
    daemon.docker("rm", cid, check=True)
    out = daemon.docker("rmi", tag, check=True)
    assert "Untagged:" in out.stdout


def test_history_and_no_such_image(daemon, busybox):
    out = daemon.docker("image", "history", "busybox", check=True)
    assert "Imported from -" in out.stdout
    out = daemon.docker("image", "inspect", "nosuchimage:1")
    assert out.returncode == 1 and "No such image: nosuchimage:1" in out.stderr


def test_image_prune_dangling(daemon, busybox, busybox_tar):
    tag = f"dangle{uuid.uuid4().hex[:6]}"
    image_id = daemon.docker("import", "-c", "ENV X=1", busybox_tar, tag, check=True).stdout.strip()
    daemon.docker("import", "-c", "ENV X=2", busybox_tar, tag, check=True)  # moves the tag: first is dangling
    out = daemon.docker("image", "prune", "-f", check=True)
    assert image_id in out.stdout
    assert daemon.docker("image", "inspect", image_id).returncode == 1
    daemon.docker("rmi", tag, check=True)


def test_daemon_restart_collects_orphans_of_a_crash(daemon, busybox):
    """Files a crash left without their SQLite row are removed; referenced data stays."""
    import os
    blob = os.path.join(daemon.data_root, "blobs", "sha256", "ab" * 32)
    layer_dir = os.path.join(daemon.data_root, "layers", "deadbeefdeadbeefdeadbeef")
    cont_dir = os.path.join(daemon.data_root, "containers", "cd" * 32)
    daemon.stop(9)
    for d in (layer_dir, cont_dir):
        os.makedirs(os.path.join(d, "diff"))
    with open(blob, "wb") as f:
        f.write(b"orphan")
    daemon.start()
    assert not os.path.exists(blob) and not os.path.exists(layer_dir) and not os.path.exists(cont_dir)
    assert daemon.docker("run", "--rm", "busybox", "true").returncode == 0


def test_images_reference_filter_lists_only_matching_tags(daemon, busybox):
    daemon.docker("tag", "busybox", "refonly:1", check=True)
    out = daemon.docker("images", "refonly", "--format", "{{.Repository}}:{{.Tag}}", check=True).stdout.split()
    assert out == ["refonly:1"]
    daemon.docker("rmi", "refonly:1", check=True)


def test_unknown_route_is_json_404(daemon):
    import http.client
    import socket

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(daemon.socket)

    conn = Conn("localhost")
    conn.request("GET", "/v1.47/no/such/route")
    resp = conn.getresponse()
    assert resp.status == 404
    assert json.loads(resp.read()) == {"message": "page not found"}


# ---- untagged parents (build steps) go with their last child ------------------

def _build(daemon, ctx, files, tag):
    """A classic build of `FROM busybox` plus one COPY per file: each step makes a layer and an image."""
    import subprocess

    from conftest import DOCKER
    ctx.mkdir()
    for name, data in files.items():
        (ctx / name).write_text(data)
    (ctx / "Dockerfile").write_text("FROM busybox\n" + "".join(f"COPY {name} /{name}\n" for name in files))
    out = subprocess.run([DOCKER, "build", "-q", "-t", tag, str(ctx)], capture_output=True, text=True, timeout=120,
                         env={**daemon.env, "DOCKER_BUILDKIT": "0"}, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _all_images(daemon):
    return set(daemon.docker("images", "-aq", "--no-trunc", check=True).stdout.split())


def _deleted(out):
    return {line.removeprefix("Deleted: ") for line in out.splitlines() if line.startswith("Deleted: ")}


def test_rmi_removes_untagged_parents_nothing_else_uses(daemon, busybox, tmp_path):
    before = _all_images(daemon)
    base = f"par{uuid.uuid4().hex[:6]}"
    shared = uuid.uuid4().hex * 500
    a = _build(daemon, tmp_path / "a", {"one": shared, "two": uuid.uuid4().hex}, f"{base}-a")
    after_a = _all_images(daemon)
    assert len(after_a - before) == 2  # the image and its intermediate (COPY one)
    # the same first step comes from the build cache: one intermediate image, parent of both
    b = _build(daemon, tmp_path / "b", {"one": shared, "three": uuid.uuid4().hex}, f"{base}-b")
    assert _all_images(daemon) - after_a == {b}

    out = daemon.docker("rmi", f"{base}-a", check=True).stdout
    assert out.splitlines()[0] == f"Untagged: {base}-a:latest"
    assert _deleted(out) == {a}  # the intermediate still has a child
    out = daemon.docker("rmi", f"{base}-b", check=True).stdout
    assert _deleted(out) == (after_a - before - {a}) | {b}
    assert _all_images(daemon) == before
    assert daemon.docker("image", "inspect", "busybox").returncode == 0  # a tagged parent stays

    # --no-prune keeps the parent, which a later rmi of it by ID then removes
    c = _build(daemon, tmp_path / "c", {"one": uuid.uuid4().hex, "two": uuid.uuid4().hex}, f"{base}-c")
    (parent,) = _all_images(daemon) - before - {c}
    assert _deleted(daemon.docker("rmi", "--no-prune", f"{base}-c", check=True).stdout) == {c}
    assert _deleted(daemon.docker("rmi", parent, check=True).stdout) == {parent}
    assert _all_images(daemon) == before


@pytest.fixture
def own_daemon(busybox_tar):
    """A daemon of its own holding only busybox:latest, for counts the session daemon's other images would blur."""
    from conftest import _cleanup_root, new_daemon
    d = new_daemon("pydock-images-")
    try:
        d.start()
        d.docker("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest", check=True)
        yield d
    finally:
        _cleanup_root(d)


def _sizes(daemon, *refs):
    return [json.loads(daemon.docker("image", "inspect", "-f", "{{json .Size}}", ref, check=True).stdout)
            for ref in refs]


def _two_builds_sharing_a_step(daemon, tmp_path):
    """busybox <- step <- a and busybox <- step <- b; returns the IDs and layer sizes (L0 busybox, L1 the
    shared step, L2 a's own, L3 b's own), each derived from the images' sizes."""
    shared = uuid.uuid4().hex * 500
    a = _build(daemon, tmp_path / "a", {"one": shared, "two": uuid.uuid4().hex * 300}, "img-a")
    b = _build(daemon, tmp_path / "b", {"one": shared, "three": uuid.uuid4().hex * 400}, "img-b")
    busybox = daemon.docker("image", "inspect", "-f", "{{.Id}}", "busybox", check=True).stdout.strip()
    (step,) = _all_images(daemon) - {busybox, a, b}
    l0, s_step, s_a, s_b = _sizes(daemon, busybox, step, a, b)
    return {"busybox": busybox, "step": step, "a": a, "b": b}, [l0, s_step - l0, s_a - s_step, s_b - s_step]


def test_system_df_counts_shared_layers_once(own_daemon, tmp_path):
    import docker
    d = own_daemon
    client = docker.DockerClient(base_url=d.url, timeout=60)
    try:
        a = _build(d, tmp_path / "single", {"one": uuid.uuid4().hex * 100}, "single")
        usage = {i["Id"]: i for i in client.api.df()["Images"]}
        assert len(usage) == 2  # busybox and the build: its intermediate image is part of it
        (l0,) = _sizes(d, "busybox")
        assert usage[a]["SharedSize"] == l0  # only busybox's layer: the intermediate image does not share
        d.docker("rmi", "single", check=True)

        ids, layers = _two_builds_sharing_a_step(d, tmp_path)
        assert all(size > 0 for size in layers)
        usage = client.api.df()
        images = {i["Id"]: i for i in usage["Images"]}
        assert set(images) == {ids["busybox"], ids["a"], ids["b"]}
        assert usage["LayersSize"] == sum(layers)  # every layer once, however many images use it
        assert images[ids["busybox"]]["SharedSize"] == layers[0]
        assert images[ids["a"]]["SharedSize"] == images[ids["b"]]["SharedSize"] == layers[0] + layers[1]
    finally:
        client.close()
    rows = {r["Type"]: r for r in map(json.loads, d.docker(
        "system", "df", "--format", "{{json .}}", check=True).stdout.splitlines())}
    assert rows["Images"]["TotalCount"] == "3"


def test_image_prune_all_removes_parents_and_counts_layers_once(own_daemon, tmp_path):
    d = own_daemon
    ids, layers = _two_builds_sharing_a_step(d, tmp_path)
    d.docker("create", "--name", "keeps-busybox", "busybox", "true", check=True)
    import docker
    client = docker.DockerClient(base_url=d.url, timeout=60)
    try:
        report = client.images.prune(filters={"dangling": False})
    finally:
        client.close()
    deleted = {x["Deleted"] for x in report["ImagesDeleted"] if "Deleted" in x}
    assert deleted == {ids["a"], ids["b"], ids["step"]}
    assert report["SpaceReclaimed"] == sum(layers[1:])  # the shared step's layer counted once
    assert _all_images(d) == {ids["busybox"]}
