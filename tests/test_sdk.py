"""The docker Python SDK (PyPI `docker`) against pydockd, unchanged."""
from __future__ import annotations

import time

import docker
import pytest


def test_ping_version_info(client):
    assert client.ping() is True
    assert client.version()["ApiVersion"] == "1.47"
    assert client.info()["Driver"] == "overlay2"


def test_run_returns_output(client):
    assert client.containers.run("busybox", ["echo", "hi"], remove=True) == b"hi\n"


def test_run_failure_raises_container_error(client):
    with pytest.raises(docker.errors.ContainerError) as exc:
        client.containers.run("busybox", ["sh", "-c", "echo boom >&2; exit 4"], remove=True, stderr=True)
    assert exc.value.exit_status == 4


def test_detached_lifecycle(client):
    c = client.containers.run("busybox", ["sh", "-c", "echo ready; sleep 100"], detach=True, labels={"k": "v"})
    try:
        deadline = time.time() + 10
        while b"ready" not in c.logs() and time.time() < deadline:
            time.sleep(0.05)
        c.reload()
        assert c.status == "running" and c.labels == {"k": "v"}
        assert c in client.containers.list(filters={"label": "k=v"})
        c.stop(timeout=1)
        assert c.wait()["StatusCode"] == 137
        c.reload()
        assert c.status == "exited"
        assert c.logs(stdout=True, stderr=False) == b"ready\n"
    finally:
        c.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(c.id)


def test_logs_stream_follow(client):
    c = client.containers.run("busybox", ["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.1; done"], detach=True)
    try:
        assert b"".join(c.logs(stream=True, follow=True)) == b"1\n2\n3\n"
    finally:
        c.remove(force=True)


def test_images_api(client):
    img = client.images.get("busybox")
    assert "busybox:latest" in img.tags
    assert img.id in [i.id for i in client.images.list()]
    img.tag("sdk-tag", "x")
    assert "sdk-tag:x" in client.images.get("sdk-tag:x").tags
    client.images.remove("sdk-tag:x")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("sdk-tag:x")


def test_api_errors_map_to_sdk_exceptions(client):
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("no-such-container")
    c = client.containers.create("busybox", "true", name="sdk-dup")
    try:
        with pytest.raises(docker.errors.APIError) as exc:
            client.containers.create("busybox", "true", name="sdk-dup")
        assert exc.value.status_code == 409
    finally:
        c.remove()
