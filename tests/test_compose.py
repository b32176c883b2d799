"""docker-compose (Debian's package, a real client) against pydock: the CLI itself and the %%compose magic."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from test_magics import run
from test_widgets import eventually

from pydock_ext.compose import ComposeError
from pydock_ext.connection import Endpoint
from pydock_ext.widgets import Containers

COMPOSE_FILE = """\
services:
  web:
    image: busybox
    command: sh -c "mkdir -p /www && echo hello from web > /www/index.html && httpd -f -p 80 -h /www"
    ports: ["127.0.0.1::80"]
    volumes: ["data:/data"]
  client:
    image: busybox
    command: sleep 1000
    depends_on: [web]
volumes:
  data: {}
"""
BUILT_SERVICE = """\
  built:
    build: ./app
    command: sleep 1000
"""

pytestmark = pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")


def compose(daemon: Any, project_dir: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker-compose", "--project-name", "dc", *args], cwd=project_dir, env=daemon.env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def project(daemon: Any, busybox: str, tmp_path: Any) -> Iterator[str]:
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_FILE.replace("volumes:\n", BUILT_SERVICE + "volumes:\n"))
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM busybox\nRUN echo built by compose > /built.txt\n")
    yield str(tmp_path)
    compose(daemon, str(tmp_path), "down", "-v")


def test_compose_project_lifecycle(daemon, project):
    def ok(*args: str) -> str:
        out = compose(daemon, project, *args)
        assert out.returncode == 0, f"docker-compose {' '.join(args)}: {out.stderr}"
        return out.stdout + out.stderr

    assert "dc_web_1" in ok("up", "-d", "--build")
    assert ok("exec", "-T", "built", "cat", "/built.txt") == "built by compose\n"
    ps = ok("ps")
    assert "dc_web_1" in ps and "dc_client_1" in ps and "Up" in ps
    port = ok("port", "web", "80").strip()
    assert port.startswith("127.0.0.1:")
    eventually(lambda: subprocess.run(["wget", "-qO-", f"http://{port}/index.html"], capture_output=True,
                                      text=True, check=False).stdout == "hello from web\n")
    assert ok("exec", "-T", "web", "cat", "/www/index.html") == "hello from web\n"
    # a one-off container reaches its dependency by service name: compose's run creates it with links to it
    one_off = compose(daemon, project, "run", "--rm", "client", "wget", "-qO-", "http://web/index.html")
    assert (one_off.returncode, one_off.stdout) == (0, "hello from web\n"), one_off.stderr
    assert "httpd -f -p 80" in ok("top", "web")
    assert "Attaching to dc_web_1" in ok("logs", "web")
    ok("restart", "web")
    ok("stop")
    assert "Exit" in ok("ps")
    ok("start")
    labels = json.loads(daemon.docker("inspect", "dc_web_1", check=True).stdout)[0]["Config"]["Labels"]
    assert labels["com.docker.compose.project"] == "dc" and labels["com.docker.compose.service"] == "web"
    ok("down", "-v")
    assert "dc_web_1" not in daemon.docker("ps", "-a").stdout
    assert "dc_data" not in daemon.docker("volume", "ls", "-q").stdout


def test_compose_magic_up_ps_logs_down(shell, daemon, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table = Containers(Endpoint(daemon.url), group_by_project=True)
    try:
        result, out, err = run(shell, "%%compose nbproj\n" + COMPOSE_FILE)
        assert result.success, out + err
        assert "Creating nbproj_web_1" in out and "done" in out
        result, out, _ = run(shell, "%compose nbproj ps")
        assert result.success and "nbproj_web_1" in out and "nbproj_client_1" in out
        # the widget groups the project's containers under its name
        eventually(lambda: any(getattr(c, "value", "") == "<b>nbproj</b> (compose project)" for c in table.children))
        titles = [i for i, c in enumerate(table.children) if getattr(c, "value", "").startswith("<b>nbproj</b>")]
        names = {table.cells(table.rows[r.ident])[1] for r in table.children[titles[0] + 1:titles[0] + 3]}
        assert names == {"nbproj_web_1", "nbproj_client_1"}
        result, out, _ = run(shell, "%compose nbproj logs web")
        assert result.success and "Attaching to nbproj_web_1" in out
        result, out, _ = run(shell, "%compose nbproj down -v")
        assert result.success and "Removing nbproj_web_1" in out
        assert "nbproj_web_1" not in daemon.docker("ps", "-a").stdout
        eventually(lambda: not any(getattr(c, "value", "").startswith("<b>nbproj</b>") for c in table.children))
    finally:
        table.close()
        daemon.docker("rm", "-f", "nbproj_web_1", "nbproj_client_1")


def test_compose_magic_errors_are_one_line(shell, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result, out, err = run(shell, "%%compose broken\nservices: [not, a, mapping\n")
    assert isinstance(result.error_in_exec, ComposeError) and "Traceback" not in out + err
    assert "ComposeError: docker-compose up exited with status 1" in out
    result, out, _ = run(shell, "%compose never-seen ps")
    assert isinstance(result.error_in_exec, ComposeError) and "run a %%compose never-seen cell first" in out


def test_compose_files_go_as_the_kernel_exits(tmp_path: Any) -> None:
    """The files %%compose cells write live in one directory of the kernel's, removed as the kernel exits."""
    code = ("from pydock_ext.compose import ComposeMagics; m = ComposeMagics(None); m._write('p', 'services: {}'); "
            "print(m._write('p', 'services: {}')); print(m._write('q', 'services: {}'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "TMPDIR": str(tmp_path)})
    paths = out.stdout.split()
    assert len(paths) == 2 and all(p.startswith(str(tmp_path) + "/pydock-compose-") for p in paths), out
    assert os.listdir(tmp_path) == []
