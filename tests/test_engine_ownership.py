"""One engine per data root, and a shutdown that ends open streams before the store closes."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest
import requests
from conftest import DOCKER, REPO, Daemon, _cleanup_mounts, busybox_daemon
from test_jupyter_server import TOKEN, JupyterServer


@pytest.fixture
def own_daemon(busybox_tar: str) -> Iterator[Daemon]:
    """A daemon of this test's own, since the tests stop and restart it."""
    with busybox_daemon(busybox_tar, "pydock-own-") as d:
        yield d


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _second_pydockd(d: Daemon) -> subprocess.CompletedProcess[str]:
    sock = os.path.join(d.root, "second.sock")
    return subprocess.run([sys.executable, "-m", "engine.pydockd", "--data-root", d.data_root, "--exec-root",
                           d.exec_root, "-H", f"unix://{sock}"],
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False)


def test_second_pydockd_on_a_data_root_is_refused(own_daemon):
    assert own_daemon.proc is not None
    out = _second_pydockd(own_daemon)
    assert out.returncode != 0
    assert (f"pydockd: data root {own_daemon.data_root} is in use by pid {own_daemon.proc.pid} (pydockd)"
            in out.stderr)
    assert own_daemon.docker("ps").returncode == 0, "the owner keeps serving"


def test_restarted_daemon_takes_the_lock_while_containers_run(own_daemon):
    """Container monitors outlive the daemon: they must not inherit its lock."""
    cid = own_daemon.docker("run", "-d", "busybox", "sleep", "100", check=True).stdout.strip()
    own_daemon.stop()
    assert not os.path.exists(own_daemon.socket)  # as dockerd's: a client finds no engine, not a dead one
    own_daemon.start()
    assert cid in own_daemon.docker("ps", "-q", "--no-trunc").stdout
    assert own_daemon.proc is not None
    assert f"pid {own_daemon.proc.pid} (pydockd)" in _second_pydockd(own_daemon).stderr


def test_jupyter_on_a_pydockd_data_root_serves_no_engine(own_daemon):
    server = JupyterServer(own_daemon.root)  # the same data and exec roots as the daemon's
    try:
        with pytest.raises(RuntimeError):
            _start_until_ping(server)
        assert own_daemon.proc is not None
        r = requests.get(server.base + "pydock/v1.41/containers/json", headers={"Authorization": f"token {TOKEN}"},
                         timeout=10)
        assert r.status_code == 503
        message = f"data root {own_daemon.data_root} is in use by pid {own_daemon.proc.pid} (pydockd)"
        assert r.json() == {"message": message}
        assert message in _read(os.path.join(own_daemon.root, "jupyter.log"))
        assert own_daemon.docker("ps").returncode == 0
    finally:
        server.stop()


def _start_until_ping(server: JupyterServer) -> None:
    """`JupyterServer.start`, failing fast: a server that serves no engine never answers the ping with 200."""
    server.start_timeout = 15.0
    server.start()


def test_jupyter_shutdown_ends_open_streams_first(busybox_tar):
    """Stopping Jupyter with logs -f, events and wait open: they end, and the store closes after them."""
    root = tempfile.mkdtemp(prefix="pydock-jps-", dir="/tmp")
    server = JupyterServer(root)
    server.start()
    env = {**os.environ, "DOCKER_HOST": server.docker_host, "DOCKER_CONFIG": server.docker_config}
    followers: list[subprocess.Popen[bytes]] = []
    try:
        assert server.docker("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest").returncode == 0
        cid = server.docker("run", "-d", "busybox", "sh", "-c",
                            "while true; do echo tick; sleep 0.2; done").stdout.strip()
        assert cid
        for args in (("logs", "-f", cid), ("events",), ("wait", cid), ("stats", cid)):
            followers.append(subprocess.Popen([DOCKER, *args], env=env, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL))
        # a running kernel keeps the server's loop alive after the extension stopped, as in real use:
        # a stream still reading the closed store would have its error logged then
        r = requests.post(server.base + "api/kernels", headers={"Authorization": f"token {TOKEN}"}, json={},
                          timeout=60)
        assert r.status_code == 201, r.text
        time.sleep(2)
        assert all(p.poll() is None for p in followers)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 20
        log = _read(os.path.join(root, "jupyter.log"))
        # the server's log also holds its kernels' stderr (ipykernel may trip over its own closed sockets at
        # shutdown): what must not be there is a traceback through pydock's code
        assert not re.search(r'File "[^"]*/(engine|pydock_ext|pydock_cli|pydock_common)/', log), log[-3000:]
        assert "closed database" not in log
        for p in followers[:3]:  # `docker stats` keeps showing the last numbers after its stream ends
            p.wait(timeout=20)
    finally:
        for p in followers:
            if p.poll() is None:
                p.kill()
        server.stop()
        server.start()
        server.docker("rm", "-f", *server.docker("ps", "-aq").stdout.split())
        server.stop()
        _cleanup_mounts(root)
        shutil.rmtree(root, ignore_errors=True)


def test_pydockd_shutdown_ends_open_streams_first(own_daemon):
    """pydockd closes the engine off its loop: streams, attach included, end and the daemon exits promptly."""
    cid = own_daemon.docker("run", "-d", "busybox", "sleep", "100", check=True).stdout.strip()
    followers = [subprocess.Popen([DOCKER, *args], env=own_daemon.env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
                 for args in (("logs", "-f", cid), ("events",), ("wait", cid), ("attach", cid))]
    try:
        time.sleep(2)
        assert all(p.poll() is None for p in followers)
        started = time.monotonic()
        own_daemon.stop()
        assert time.monotonic() - started < 10, "closing must not wait on streams that need the stopped loop"
        for p in followers:
            p.wait(timeout=20)
        log = _read(own_daemon.log_path)
        assert "Traceback" not in log and "closed database" not in log, log[-3000:]
    finally:
        for p in followers:
            if p.poll() is None:
                p.kill()
        own_daemon.start()


def test_open_streams_are_cancelled_and_awaited():
    import threading

    from engine.openstreams import OpenStreams, ShuttingDown
    streams = OpenStreams()
    cancel, woken, stuck_cancel = threading.Event(), threading.Event(), threading.Event()

    def polite() -> None:
        with streams.track(cancel, woken.set):
            cancel.wait(10)

    def stuck() -> None:
        with streams.track(stuck_cancel):
            time.sleep(1.5)  # ignores its cancel for a while

    threads = [threading.Thread(target=polite), threading.Thread(target=stuck)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    assert streams.end_all(timeout=0.3) == 1  # the polite one ended, the stuck one outlived the grace
    assert woken.is_set() and stuck_cancel.is_set()
    with pytest.raises(ShuttingDown), streams.track(threading.Event()):
        pass
    for t in threads:
        t.join()


def test_data_root_lock_is_released_on_close(tmp_path):
    from engine.store.rootlock import DataRootInUse, DataRootLock
    first = DataRootLock(str(tmp_path), "first")
    with pytest.raises(DataRootInUse, match=rf"data root {tmp_path} is in use by pid {os.getpid()} \(first\)"):
        DataRootLock(str(tmp_path), "second")
    first.release()
    DataRootLock(str(tmp_path), "second").release()
