"""Widget state driven by real engine events: containers and images changed with the docker CLI show up."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from pydock_ext.connection import Endpoint
from pydock_ext.widgets import BuildProgress, Containers, Images, LogViewer, PullProgress


def eventually(check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "widget state did not change"
        time.sleep(0.05)


@pytest.fixture
def endpoint(daemon, busybox) -> Endpoint:
    return Endpoint(daemon.url)


@pytest.fixture
def containers(endpoint) -> Iterator[Containers]:
    widget = Containers(endpoint)
    yield widget
    widget.close()


def test_containers_follow_the_event_stream(containers, daemon):
    cid = daemon.docker("run", "-d", "--name", "widget-watch", "busybox", "sleep", "60", check=True).stdout.strip()
    try:
        eventually(lambda: cid in containers.rows and containers.rows[cid]["State"] == "running")
        assert containers.cells(containers.rows[cid])[1] == "widget-watch"
        daemon.docker("stop", "-t", "0", cid, check=True)
        eventually(lambda: containers.rows[cid]["State"] == "exited")
        assert containers.rows[cid]["Status"].startswith("Exited (137)")
        daemon.docker("rm", cid, check=True)
        eventually(lambda: cid not in containers.rows)
    finally:
        daemon.docker("rm", "-f", cid)


def test_widget_updates_come_from_events_not_polling(containers, daemon, endpoint):
    """The only requests the table makes after startup are the ones an event triggers."""
    calls: list[str] = []
    lister = containers.api.containers

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(json.dumps(kwargs.get("filters")))
        return lister(*args, **kwargs)

    containers.api.containers = counting
    time.sleep(1.5)
    assert calls == []
    cid = daemon.docker("create", "busybox", "true", check=True).stdout.strip()
    try:
        eventually(lambda: cid in containers.rows)
        assert calls and all(cid in c for c in calls)
    finally:
        daemon.docker("rm", "-f", cid)


def test_container_actions(containers, daemon):
    cid = daemon.docker("create", "busybox", "sh", "-c", "trap exit TERM; sleep 60 & wait", check=True).stdout.strip()
    try:
        eventually(lambda: cid in containers.rows)
        assert containers.rows[cid]["State"] == "created"
        row = next(r for r in containers.children[1:] if getattr(r, "children", None)
                   and r.children[0].value == cid[:12])
        start = next(b for b in row.children if getattr(b, "description", "") == "start")
        start.click()
        eventually(lambda: containers.rows[cid]["State"] == "running")
        containers.act("restart", cid)
        eventually(lambda: containers.rows[cid]["State"] == "running")
        containers.act("stop", cid)
        eventually(lambda: containers.rows[cid]["State"] == "exited")
        containers.act("remove", cid)
        eventually(lambda: cid not in containers.rows)
        containers.act("start", cid)
        assert "No such container" in containers.message.value
    finally:
        daemon.docker("rm", "-f", cid)


def test_log_viewer_streams_live(endpoint, daemon):
    cid = daemon.docker("run", "-d", "busybox", "sh", "-c", "echo one; sleep 2; echo two", check=True).stdout.strip()
    viewer = LogViewer(cid, endpoint)
    try:
        eventually(lambda: viewer.text == "one\n")
        assert not viewer.ended.is_set()
        eventually(lambda: viewer.ended.is_set())
        assert viewer.text == "one\ntwo\n"
        assert "one\ntwo\n" in viewer.output.value
    finally:
        viewer.close()
        daemon.docker("rm", "-f", cid)


def test_logs_action_opens_a_viewer(containers, daemon):
    cid = daemon.docker("run", "-d", "busybox", "echo", "from-logs-button", check=True).stdout.strip()
    try:
        eventually(lambda: cid in containers.rows)
        viewer = containers.show_logs(cid)
        eventually(lambda: viewer.ended.is_set())
        assert viewer.text == "from-logs-button\n"
    finally:
        daemon.docker("rm", "-f", cid)


def test_images_follow_tag_and_remove(endpoint, daemon):
    images = Images(endpoint)
    try:
        tags = lambda: {t for item in images.rows.values() for t in item.get("RepoTags") or []}
        assert "busybox:latest" in tags()
        daemon.docker("tag", "busybox", "widget-tag:1", check=True)
        eventually(lambda: "widget-tag:1" in tags())
        images.act("remove", "widget-tag:1")
        eventually(lambda: "widget-tag:1" not in tags())
        assert "busybox:latest" in tags()
    finally:
        images.close()
        daemon.docker("rmi", "widget-tag:1")


def test_closed_table_stops_following(endpoint, daemon):
    widget = Containers(endpoint)
    widget.close()
    widget._thread.join(10)
    assert not widget._thread.is_alive()


def test_pull_progress_per_layer():
    progress = PullProgress("example/app:1")
    for msg in [{"status": "Pulling from example/app", "id": "1"},
                {"status": "Pulling fs layer", "progressDetail": {}, "id": "aaa"},
                {"status": "Pulling fs layer", "progressDetail": {}, "id": "bbb"},
                {"status": "Downloading", "progressDetail": {"current": 50, "total": 200}, "id": "aaa"},
                {"status": "Download complete", "progressDetail": {}, "id": "bbb"}]:
        progress.feed(msg)
    assert set(progress.layers) == {"aaa", "bbb"}
    assert (progress.layers["aaa"].value, progress.layers["aaa"].max) == (50, 200)
    assert progress.layers["bbb"].value == progress.layers["bbb"].max
    progress.feed({"error": "manifest unknown"})
    assert progress.error == "manifest unknown"


def test_build_progress_reads_the_build_stream():
    progress = BuildProgress()
    progress.write("Step 1/3 : FROM busybox\n ---> abc\n")
    assert (progress.bar.value, progress.bar.max) == (1, 3)
    progress.write("Step 3/3 : CMD sh\nSuccessfully built abc\n")
    assert progress.bar.value == 3 and progress.bar.bar_style == "success"
    assert "Successfully built" in progress.text


def test_event_thread_is_the_only_thread_per_table(endpoint):
    before = {t.name for t in threading.enumerate()}
    widget = Containers(endpoint)
    try:
        started = [t.name for t in threading.enumerate() if t.name not in before]
        assert started == ["pydock-container-events"]
    finally:
        widget.close()


def _row(table, ident: str):  # type: ignore[no-untyped-def]
    return table._widgets[ident]


def _shown(row) -> set[str]:  # type: ignore[no-untyped-def]
    return {a for a, b in row.buttons.items() if b.layout.display != "none"}


def test_rows_are_updated_in_place_and_widget_models_stay_bounded(containers, daemon):
    """50 containers and 100 events: each container keeps its one row of widgets (the old table made new
    widgets for every row on every event: 22,071 models for ten `docker run --rm`)."""
    from ipywidgets.widgets.widget import _instances
    ids = [daemon.docker("create", "--name", f"bounded-{i}", "busybox", "true", check=True).stdout.strip()
           for i in range(50)]
    try:
        eventually(lambda: all(cid in containers.rows for cid in ids), timeout=60)
        rows = {cid: _row(containers, cid) for cid in ids}
        models = len(_instances)
        for round_ in range(2):
            for i, cid in enumerate(ids):
                daemon.docker("rename", cid, f"bounded-{round_}-{i}", check=True)
        eventually(lambda: containers.cells(containers.rows[ids[-1]])[1] == "bounded-1-49", timeout=60)
        assert all(_row(containers, cid) is rows[cid] for cid in ids)
        assert len(_instances) <= models + 5
    finally:
        daemon.docker("rm", "-f", *ids)
    eventually(lambda: not any(cid in containers.rows for cid in ids), timeout=60)
    assert len(_instances) < models - 50 * 5  # the rows' widgets were closed with their containers


def test_buttons_fit_the_state_and_remove_asks_twice(containers, daemon):
    cid = daemon.docker("run", "-d", "busybox", "sleep", "60", check=True).stdout.strip()
    try:
        eventually(lambda: cid in containers.rows and containers.rows[cid]["State"] == "running")
        row = _row(containers, cid)
        eventually(lambda: _shown(row) == {"stop", "restart", "logs"})
        daemon.docker("stop", "-t", "0", cid, check=True)
        eventually(lambda: _shown(row) == {"start", "remove", "logs"})
        row.buttons["remove"].click()
        assert row.buttons["remove"].description == "confirm remove?"
        time.sleep(0.5)
        assert cid in containers.rows  # one click removes nothing
        row.buttons["remove"].click()
        eventually(lambda: cid not in containers.rows)
    finally:
        daemon.docker("rm", "-f", cid)


def test_errors_are_one_readable_line(containers):
    containers.act("start", "no-such-container-anywhere")
    assert "No such container: no-such-container-anywhere" in containers.message.value
    assert "Client Error" not in containers.message.value and "http" not in containers.message.value


def test_logs_button_shows_the_viewer_and_closes_it_with_the_container(containers, daemon):
    cid = daemon.docker("run", "-d", "busybox", "sh", "-c", "echo from-the-button; sleep 60", check=True).stdout.strip()
    try:
        eventually(lambda: cid in containers.rows)
        _row(containers, cid).buttons["logs"].click()  # clicks run the action off the main thread
        eventually(lambda: containers.viewer is not None and containers.viewer.text == "from-the-button\n")
        viewer = containers.viewer
        assert containers.detail.children == (viewer,)
        daemon.docker("rm", "-f", cid, check=True)
        eventually(lambda: viewer.ended.is_set() and containers.detail.children == ())
    finally:
        daemon.docker("rm", "-f", cid)


def test_published_ports_link_through_the_jupyter_proxy(endpoint, daemon, monkeypatch):
    monkeypatch.setenv("PYDOCK_PROXY_URL", "/jp/pydock/proxy/")
    table = Containers(endpoint)
    cid = daemon.docker("run", "-d", "--name", "widget-web", "-p", "127.0.0.1::80", "busybox", "sleep", "60",
                        check=True).stdout.strip()
    try:
        eventually(lambda: cid in table.rows and table.rows[cid]["State"] == "running")
        eventually(lambda: "href" in _row(table, cid).labels[-1].value)
        port = daemon.docker("port", cid, "80", check=True).stdout.split(":")[-1].strip()
        assert _row(table, cid).labels[-1].value == (
            f"<a href='/jp/pydock/proxy/widget-web/80/' target='_blank' rel='noopener'>{port}-&gt;80/tcp</a>")
    finally:
        table.close()
        daemon.docker("rm", "-f", cid)
