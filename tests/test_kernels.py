"""Kernels inside images (`pydock-provisioner`), through a real Jupyter server, as a user adds and uses one.

The image is made offline from this machine's Debian packages (python3 and
ipykernel, plus busybox) by `python3 -m pydock_cli.pythonimage`, into the
server's own engine; `pydock kernel add` writes the kernelspec; then the
server starts, interrupts, restarts and shuts down kernels in containers.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from conftest import DEB_CACHE
from jupyter_client.blocking.client import BlockingKernelClient
from test_jupyter_server import JupyterServer, own_server
from test_notebooks import AUTH, Session, code, text

from pydock_cli import pythonimage

IMAGE = "pydock-test/pykernel:1"
KERNEL = "pyimg"


@pytest.fixture(scope="module")
def server() -> Iterator[JupyterServer]:
    # JUPYTER_DATA_DIR: where `pydock kernel add` writes, and where the server looks
    with own_server("pydock-kern-", env={"JUPYTER_DATA_DIR": "{root}/data-dir"}) as jp:
        env = {**os.environ, "DOCKER_HOST": jp.docker_host, "DOCKER_CONFIG": jp.docker_config}
        pythonimage.make(IMAGE, ipykernel=True, cache=DEB_CACHE, env=env)
        add = subprocess.run([sys.executable, "-m", "pydock_cli.main", "kernel", "add", "--name", KERNEL, IMAGE,
                              "-m", "256m", "-e", "FROM_SPEC=yes"], capture_output=True, text=True, env=env,
                             timeout=120, check=False)
        assert add.returncode == 0, add.stderr
        assert f"Installed kernelspec {KERNEL}" in add.stdout
        yield jp


def kernel_containers(server: JupyterServer, kernel_id: str) -> list[str]:
    return server.docker("ps", "-aq", "--filter", f"label=io.pydock.kernel={kernel_id}").stdout.split()


def test_the_kernelspec_names_the_provisioner_and_the_image(server):
    specs = requests.get(server.base + "api/kernelspecs", headers=AUTH, timeout=30).json()["kernelspecs"]
    spec = specs[KERNEL]["spec"]
    assert spec["display_name"] == f"Python ({IMAGE})"
    provisioner = spec["metadata"]["kernel_provisioner"]
    assert provisioner == {"provisioner_name": "pydock-provisioner",
                           "config": {"image": IMAGE, "run_options": ["-m", "256m", "-e", "FROM_SPEC=yes"]}}


def test_an_image_without_ipykernel_is_refused_with_advice(server, busybox_tar):
    env = {**os.environ, "DOCKER_HOST": server.docker_host, "DOCKER_CONFIG": server.docker_config}
    server.docker("import", busybox_tar, "busybox-only:1")  # no python3 at all
    out = subprocess.run([sys.executable, "-m", "pydock_cli.main", "kernel", "add", "busybox-only:1"],
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    assert out.returncode != 0 and "cannot host a Python kernel" in out.stderr and "pythonimage" in out.stderr


def test_a_notebook_runs_inside_the_image(server):
    session = Session(server, "in-image.ipynb")
    r = requests.patch(server.base + f"api/sessions/{session.id}", headers=AUTH, timeout=120,
                       json={"kernel": {"name": KERNEL}})
    r.raise_for_status()
    session.kernel_id = r.json()["kernel"]["id"]
    try:
        nb = session.run(code(
            "import os, socket\nprint(socket.gethostname())\nprint(open('/etc/os-release').read().split()[0])",
            "print(os.path.exists('/pydock-kernel/kernel.json'), os.environ.get('FROM_SPEC'))",
            "print(os.getcwd())\n_ = open('written-in-container.txt', 'w').write('hi from the image')"))
        cids = kernel_containers(server, session.kernel_id)
        assert len(cids) == 1
        info = json.loads(server.docker("inspect", cids[0]).stdout)[0]
        assert text(nb.cells[0]).split("\n")[0] == info["Config"]["Hostname"]
        assert text(nb.cells[0]).split("\n")[1].startswith("PRETTY_NAME=")
        assert text(nb.cells[1]) == "True yes\n"  # a file only the container has, and the spec's env
        assert text(nb.cells[2]) == os.path.join(server.root, "work") + "\n"
        with open(os.path.join(server.root, "work", "written-in-container.txt")) as f:
            assert f.read() == "hi from the image"
        assert info["HostConfig"]["Memory"] == 256 * 1024 * 1024
    finally:
        session.close()
    deadline = time.time() + 30
    while kernel_containers(server, session.kernel_id):
        assert time.time() < deadline, "the kernel's container outlived the kernel"
        time.sleep(0.2)


def _client(server: JupyterServer, kernel_id: str) -> BlockingKernelClient:
    """A client on the server's kernel; a kernel still starting (its ports not yet published) gets more tries."""
    for attempt in range(3):
        client = BlockingKernelClient(
            connection_file=os.path.join(server.root, "runtime", f"kernel-{kernel_id}.json"))
        client.load_connection_file()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=60)
            return client
        except RuntimeError:
            client.stop_channels()
            if attempt == 2:
                raise
            time.sleep(2)
    return client


def _reply(client: BlockingKernelClient, source: str, timeout: float = 60) -> dict[str, Any]:
    msg_id = client.execute(source)
    while True:
        reply = client.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"]


def test_interrupt_restart_and_shutdown(server):
    r = requests.post(server.base + "api/kernels", headers=AUTH, json={"name": KERNEL}, timeout=120)
    r.raise_for_status()
    kernel_id = r.json()["id"]
    try:
        client = _client(server, kernel_id)
        msg_id = client.execute("import time\ntime.sleep(60)")
        time.sleep(2)
        requests.post(server.base + f"api/kernels/{kernel_id}/interrupt", headers=AUTH, timeout=30).raise_for_status()
        while True:
            reply = client.get_shell_msg(timeout=30)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
        time.sleep(1)  # ipykernel aborts what arrives just after an error
        assert _reply(client, "x = 41")["status"] == "ok"
        before = kernel_containers(server, kernel_id)
        client.stop_channels()
        requests.post(server.base + f"api/kernels/{kernel_id}/restart", headers=AUTH, timeout=120).raise_for_status()
        after = kernel_containers(server, kernel_id)
        assert len(after) == 1 and after != before  # a fresh container; the old one is gone
        client = _client(server, kernel_id)
        assert _reply(client, "assert 'x' not in globals()")["status"] == "ok"
        client.stop_channels()
    finally:
        requests.delete(server.base + f"api/kernels/{kernel_id}", headers=AUTH, timeout=60)
    deadline = time.time() + 30
    while kernel_containers(server, kernel_id):
        assert time.time() < deadline, "the kernel's container outlived the kernel"
        time.sleep(0.2)

