"""Image commands through the real docker CLI."""
from __future__ import annotations

import json
import uuid


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
