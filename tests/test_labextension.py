"""The JupyterLab extension: its client-model unit tests and the panel in a real browser.

The end-to-end test drives Debian's chromium through playwright against a
real Jupyter server with the pydock server extension, and checks every
action it takes in the UI through the docker CLI.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest
import requests
from conftest import REPO, _cleanup_root, new_daemon
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright
from test_jupyter_server import TOKEN, JupyterServer, free_port, jupyter  # noqa: F401  (jupyter is a fixture)
from test_registry import Registry, busybox_layer, registry  # noqa: F401  (registry is a fixture)

LABEXT = os.path.join(REPO, "labextension")
ARTIFACTS = os.path.join(REPO, "artifacts")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
NAME = "lab-e2e"


def test_client_model_unit_tests() -> None:
    out = subprocess.run(["npm", "test"], cwd=LABEXT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "NO_COLOR": "1"}, check=False)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert re.search(r"Tests\s+\d+ passed", out.stdout), out.stdout[-2000:]


def test_extension_is_installed_prebuilt() -> None:
    """JupyterLab finds the built extension without a rebuild of its own."""
    out = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True,
                         timeout=60, check=False)
    listing = out.stdout + out.stderr
    assert "pydock-labextension" in listing
    line = next(ln for ln in listing.splitlines() if "pydock-labextension" in ln)
    assert "enabled" in line and "OK" in line, line


@pytest.fixture(scope="module")
def lab_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keeps the theme the test switches to out of the user's own JupyterLab settings.

    Requested before `jupyter` so the server starts with these variables.
    """
    root = tmp_path_factory.mktemp("lab-settings")
    # No "get notified about Jupyter news?" toast over the screenshots.
    notification = root / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false"}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTERLAB_SETTINGS_DIR", str(root / "settings"))
        mp.setenv("JUPYTERLAB_WORKSPACES_DIR", str(root / "workspaces"))
        yield


@pytest.fixture(scope="module")
def lab(lab_settings: None, jupyter: JupyterServer) -> JupyterServer:  # noqa: F811
    return jupyter


@pytest.fixture
def page(lab: JupyterServer) -> Iterator[object]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 850})
            page.goto(f"{lab.base}lab?token={TOKEN}")
            # The sidebar tab exists once every plugin, this one included, has activated.
            page.wait_for_selector('.jp-SideBar [data-id="pydock-containers"]', timeout=60_000)
            # Until the layout is restored, restoring it may take focus and close the palette.
            page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=60_000)
            yield page
        finally:
            browser.close()


def run_command(page, label: str) -> None:  # type: ignore[no-untyped-def]
    """Runs a command the way a user does: through the command palette. A late focus change can close
    the palette between typing and clicking (the item is then detached): open it again and retry."""
    palette = page.locator(".lm-CommandPalette-input")
    for _ in range(10):
        page.locator("#jp-top-panel").click(position={"x": 1000, "y": 10})  # an empty spot: focus the page
        page.keyboard.press("Control+Shift+C")
        try:
            palette.wait_for(timeout=2_000)
            palette.fill(label, timeout=2_000)
            page.locator(".lm-CommandPalette-item", has_text=label).first.click(timeout=5_000)
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError(f"the command palette never ran {label!r}")


def sidebar_width(page, px: int) -> None:  # type: ignore[no-untyped-def]
    """Drags the handle between the left sidebar and the main area until the panel is `px` wide."""
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle:not(.lm-mod-hidden)").first
    box = handle.bounding_box()
    y = box["y"] + 200
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(page.locator(".jp-PydockPanel").bounding_box()["x"] + px, y, steps=5)
    page.mouse.up()


def show_panel(page, width: int = 420) -> None:  # type: ignore[no-untyped-def]
    """Opens the panel through its sidebar tab (the palette's "Show Containers Panel" is tested once, in
    test_panel_shows_and_stops_a_container), wide enough for its rows' actions to show as buttons (at
    JupyterLab's narrowest sidebar, the default 250 px, they are a menu)."""
    panel = page.locator(".jp-PydockPanel")
    if not panel.is_visible():
        page.locator('.jp-SideBar [data-id="pydock-containers"]').click()
    panel.wait_for()
    sidebar_width(page, width)


def state(lab: JupyterServer, name: str) -> dict:
    out = lab.docker("inspect", name)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)[0]["State"]


def screenshot(page, name: str) -> str:  # type: ignore[no-untyped-def]
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, name)
    page.screenshot(path=path)
    return path


@pytest.mark.slow
def test_panel_shows_and_stops_a_container(lab: JupyterServer, page) -> None:  # type: ignore[no-untyped-def]
    script = "trap 'echo bye; exit 0' TERM; echo hello-from-e2e; echo oops >&2; while :; do sleep 0.2; done"
    port = free_port()
    out = lab.docker("run", "-d", "--name", NAME, "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c", script)
    assert out.returncode == 0, out.stderr
    # A second one keeps running, so the screenshots show both states.
    assert lab.docker("run", "-d", "--name", f"{NAME}-idle", "busybox", "sleep", "1000").returncode == 0
    try:
        run_command(page, "Show Containers Panel")
        show_panel(page)
        row = page.locator(f'.jp-PydockContainer[data-name="{NAME}"]')
        row.and_(page.locator('[data-state="running"]')).wait_for(timeout=30_000)
        assert "busybox" in row.inner_text()
        assert f"127.0.0.1:{port}->80/tcp" in row.inner_text()
        link = row.locator("a", has_text=f"127.0.0.1:{port}->80/tcp")  # opens through Jupyter's proxy
        assert (link.get_attribute("href") or "").endswith(f"pydock/proxy/{NAME}/80/")
        page.locator(".jp-PydockImage", has_text="busybox:latest").wait_for(timeout=10_000)

        row.get_by_title("Logs", exact=True).click()
        logs = page.locator(".jp-PydockLogs")
        logs.get_by_text("hello-from-e2e").wait_for(timeout=30_000)
        assert logs.locator(".jp-PydockLogs-line.jp-mod-stderr", has_text="oops").count() == 1

        row.get_by_title("Stop", exact=True).click()
        row.and_(page.locator('[data-state="exited"]')).wait_for(timeout=30_000)
        st = state(lab, NAME)
        assert st["Running"] is False and st["Status"] == "exited"
        assert st["ExitCode"] == 0  # stopped by SIGTERM through the trap, not killed
        # The live log tab saw the container's last words and the stream's end.
        logs.get_by_text("bye").wait_for(timeout=10_000)
        logs.get_by_text("waiting for it to start again").wait_for(timeout=10_000)
        row.get_by_title("Start", exact=True).wait_for()
        assert row.get_by_title("Exec", exact=True).count() == 0  # only a running container takes commands
        screenshot(page, "labextension.png")

        run_command(page, "JupyterLab Dark")
        page.wait_for_function("document.body.dataset.jpThemeLight === 'false'", timeout=30_000)
        page.wait_for_timeout(500)
        screenshot(page, "labextension-dark.png")
        run_command(page, "JupyterLab Light")  # the theme is a saved setting: leave it as found
        page.wait_for_function("document.body.dataset.jpThemeLight === 'true'", timeout=30_000)
    finally:
        lab.docker("rm", "-f", NAME, f"{NAME}-idle")


@pytest.mark.slow
def test_remove_asks_for_confirmation(lab: JupyterServer, page) -> None:  # type: ignore[no-untyped-def]
    name = "lab-e2e-rm"
    assert lab.docker("create", "--name", name, "busybox", "true").returncode == 0
    try:
        show_panel(page)
        row = page.locator(f'.jp-PydockContainer[data-name="{name}"]')
        row.wait_for(timeout=30_000)
        row.get_by_title("Remove", exact=True).click()
        page.locator(".jp-Dialog").get_by_role("button", name="Cancel").click()
        assert lab.docker("inspect", name).returncode == 0
        row.get_by_title("Remove", exact=True).click()
        page.locator(".jp-Dialog").get_by_role("button", name="Remove").click()
        row.wait_for(state="detached", timeout=30_000)
        assert lab.docker("inspect", name).returncode != 0
    finally:
        lab.docker("rm", "-f", name)


@pytest.mark.slow
def test_pull_and_remove_an_image(lab: JupyterServer, page, registry: Registry,  # type: ignore[no-untyped-def]  # noqa: F811
                                  busybox_tar: str) -> None:
    registry.push_image("lab/pulled", "v1", [busybox_layer(busybox_tar)])
    ref = f"{registry.host}/lab/pulled:v1"
    show_panel(page)
    page.get_by_label("Image to pull").fill(ref)
    page.get_by_title("Pull", exact=True).click()
    image = page.locator(".jp-PydockImage", has_text=ref)
    image.wait_for(timeout=60_000)
    assert page.locator(".jp-PydockPull").count() == 0  # a finished pull leaves no progress row
    assert lab.docker("image", "inspect", ref).returncode == 0

    image.get_by_title("Remove image", exact=True).click()
    page.locator(".jp-Dialog").get_by_role("button", name="Remove").click()
    image.wait_for(state="detached", timeout=30_000)
    assert lab.docker("image", "inspect", ref).returncode != 0


@pytest.mark.slow
def test_failed_pull_shows_the_engine_error(lab: JupyterServer, page) -> None:  # type: ignore[no-untyped-def]
    ref = f"127.0.0.1:{free_port()}/nothing/here:v1"  # nothing listens there
    run_command(page, "Pull Image")
    page.locator(".jp-Dialog input").fill(ref)
    page.locator(".jp-Dialog").get_by_role("button", name="Ok").click()
    failed = page.locator(".jp-PydockPull.jp-mod-error", has_text=ref)
    failed.wait_for(timeout=60_000)
    expected = lab.docker("pull", ref).stderr.strip().removeprefix("Error response from daemon: ")
    assert expected and expected in failed.inner_text()
    failed.get_by_title("Dismiss", exact=True).click()
    failed.wait_for(state="detached")


def container_requests(page) -> list[str]:  # type: ignore[no-untyped-def]
    """Records the panel's requests for container lists and inspects (not stats) from now on."""
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if re.search(r"/containers/(json|[^/]+/json)", r.url) else None)
    return seen


def row_menu(page, row, label: str) -> None:  # type: ignore[no-untyped-def]
    """Runs a row action through its "Actions" menu, as a narrow sidebar offers it."""
    row.get_by_title("Actions", exact=True).click()
    page.locator(".jp-PydockMenu").get_by_role("button", name=label, exact=True).click()


@pytest.mark.slow
def test_panel_lists_filters_groups_and_acts(lab: JupyterServer, page) -> None:  # type: ignore[no-untyped-def]
    """One page session: grouping, colours, filter and search, ageing status, stats, links, inspect, the run
    dialog, stop in progress, image history, volume and network create/remove, and the narrow-sidebar menu."""
    port, run_port = free_port(), free_port()
    long_name = "lab-a-container-with-a-name-far-too-long-for-a-narrow-sidebar"
    setup = [
        ("run", "-d", "--name", "shop-web", "-l", "com.docker.compose.project=shop", "-p", f"127.0.0.1:{port}:80",
         "busybox", "sh", "-c", "while :; do :; done"),  # busy: its CPU % is far above zero
        ("run", "-d", "--name", "shop-db", "-l", "com.docker.compose.project=shop", "--stop-timeout", "3",
         "busybox", "sleep", "1000"),  # PID 1 ignores SIGTERM: a stop takes the 3 s timeout
        ("run", "--name", "lab-exited", "busybox", "sh", "-c", "exit 3"),
        ("create", "--name", long_name, "busybox", "true"),
        ("run", "-d", "--name", "lab-paused", "busybox", "sleep", "1000"),
        ("pause", "lab-paused"),
    ]
    names = ["shop-web", "shop-db", "lab-exited", long_name, "lab-paused", "lab-sick", "lab-restarting", "lab-run"]
    try:
        for args in setup:
            out = lab.docker(*args)
            assert out.returncode == (3 if "lab-exited" in args else 0), out.stderr
        show_panel(page)
        panel = page.locator(".jp-PydockPanel")

        def row(name: str):  # type: ignore[no-untyped-def]
            return page.locator(f'.jp-PydockContainer[data-name="{name}"]')

        row("lab-paused").and_(page.locator('[data-state="paused"]')).wait_for(timeout=30_000)
        # The status text ages on a timer, without asking the engine again (while no event says anything
        # changed: the health check started below sends events every second).
        status = row("shop-db").locator(".jp-PydockContainer-status")
        before = status.inner_text()
        assert re.fullmatch(r"Up (Less than a second|\d+ seconds?)", before), before
        asked = container_requests(page)
        page.wait_for_function("([el, t]) => el.textContent !== t", arg=[status.element_handle(), before],
                               timeout=5_000)
        assert asked == [], asked

        assert lab.docker("run", "-d", "--name", "lab-sick", "--health-cmd", "false", "--health-interval", "1s",
                          "--health-retries", "1", "busybox", "sleep", "1000").returncode == 0
        row("lab-sick").and_(page.locator('[data-display-state="unhealthy"]')).wait_for(timeout=30_000)

        # Compose projects group their containers; the others follow ungrouped.
        shop = page.locator('.jp-PydockGroup[data-project="shop"]')
        assert shop.locator(".jp-PydockGroup-name").inner_text() == "shop"
        assert shop.locator(".jp-PydockContainer").evaluate_all("rs => rs.map(r => r.dataset.name)") == [
            "shop-db", "shop-web"]
        assert page.locator('.jp-PydockGroup[data-project=""] .jp-PydockContainer[data-name="lab-exited"]').count() == 1

        # Each state has its own colour.
        expected = {"shop-web": "running", "lab-sick": "unhealthy", "lab-paused": "paused", "lab-exited": "exited",
                    long_name: "created"}
        colours = {}
        for name, display in expected.items():
            assert row(name).get_attribute("data-display-state") == display, name
            colours[display] = row(name).locator(".jp-PydockState").evaluate("e => getComputedStyle(e).backgroundColor")
        assert len(set(colours.values())) == len(colours), colours
        assert "(Paused)" in row("lab-paused").inner_text()

        # CPU and memory of running containers, from the stats polls.
        web = row("shop-web")
        web.locator(".jp-PydockContainer-cpu", has_text=re.compile(r"CPU \d+\.\d\d%")).wait_for(timeout=15_000)
        cpu_text = web.locator(".jp-PydockContainer-cpu").inner_text()
        assert float(cpu_text.split()[1].rstrip("%")) > 10, cpu_text
        page.wait_for_function("([el, t]) => el.textContent !== t",  # the next poll's figure
                               arg=[web.locator(".jp-PydockContainer-cpu").element_handle(), cpu_text], timeout=10_000)
        assert re.search(r"MEM \d[\d.]*[kMG]?B", web.inner_text())
        assert row("lab-exited").locator(".jp-PydockContainer-usage").count() == 0
        # ID, command, and the port as a link through Jupyter's proxy.
        web_id = json.loads(lab.docker("inspect", "shop-web").stdout)[0]["Id"]
        assert web.locator(".jp-PydockContainer-id").inner_text() == web_id[:12]
        assert "sh -c while :; do :; done" in web.locator(".jp-PydockContainer-command").inner_text()
        link = web.locator("a", has_text=f"127.0.0.1:{port}->80/tcp")
        assert (link.get_attribute("href") or "").endswith(f"pydock/proxy/shop-web/{80}/")

        # Filter and search.
        page.get_by_role("radio", name="running").click()
        row("lab-exited").wait_for(state="detached")
        assert row(long_name).count() == 0 and row("lab-paused").count() == 1 and web.count() == 1
        page.get_by_role("radio", name="stopped").click()
        web.wait_for(state="detached")
        assert row("lab-exited").count() == 1 and row(long_name).count() == 1
        page.get_by_role("radio", name="all").click()
        page.get_by_label("Search containers").fill("shop")
        row("lab-exited").wait_for(state="detached")
        assert row("shop-db").count() == 1 and web.count() == 1
        page.get_by_label("Search containers").fill("")
        screenshot(page, "labextension-list.png")

        # Inspect: the container's JSON in a main-area tab, with a copy button.
        web.locator(".jp-PydockContainer-id").click()
        inspect_view = page.locator(".jp-PydockInspect")
        inspect_view.locator(".jp-PydockDoc-json").wait_for(timeout=10_000)
        shown = json.loads(inspect_view.locator(".jp-PydockDoc-json").inner_text())
        cli = json.loads(lab.docker("inspect", "shop-web").stdout)[0]
        assert (shown["Id"], shown["Name"], shown["Config"]["Labels"]) == (cli["Id"], cli["Name"],
                                                                           cli["Config"]["Labels"])
        page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        inspect_view.get_by_role("button", name="Copy").click()
        inspect_view.get_by_role("button", name="Copied").wait_for()
        assert json.loads(page.evaluate("navigator.clipboard.readText()"))["Id"] == web_id
        screenshot(page, "labextension-inspect.png")

        # Stop shows "stopping…" with the row's actions disabled until the engine is done.
        db = row("shop-db")
        db.get_by_title("Stop", exact=True).click()
        db.locator(".jp-PydockContainer-status", has_text="stopping…").wait_for(timeout=5_000)
        assert db.get_by_title("Restart", exact=True).is_disabled()
        db.and_(page.locator('[data-state="exited"]')).wait_for(timeout=30_000)
        assert state(lab, "shop-db")["Status"] == "exited"
        assert not db.get_by_title("Start", exact=True).is_disabled()

        # Run from an image: the dialog's fields become the container's configuration.
        image = page.locator(".jp-PydockImage", has_text="busybox:latest")
        image.get_by_title("Run", exact=True).click()
        dialog = page.locator(".jp-Dialog")
        dialog.get_by_label("Name").fill("lab-run")
        dialog.get_by_label("Ports").fill(f"127.0.0.1:{run_port}:80")
        dialog.get_by_label("Environment").fill("GREETING=hello there\nLEVEL=2")
        dialog.get_by_label("Volumes").fill("lab-run-data:/data")
        dialog.get_by_label("Command").fill("sh -c 'sleep 1000'")
        screenshot(page, "labextension-run.png")
        dialog.get_by_role("button", name="Run").click()
        row("lab-run").and_(page.locator('[data-state="running"]')).wait_for(timeout=30_000)
        ran = json.loads(lab.docker("inspect", "lab-run").stdout)[0]
        assert ran["State"]["Running"] and ran["Config"]["Image"] == "busybox:latest"
        assert {"GREETING=hello there", "LEVEL=2"} <= set(ran["Config"]["Env"])
        assert ran["Config"]["Cmd"] == ["sh", "-c", "sleep 1000"]
        assert ran["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(run_port)}]}
        assert [(m["Type"], m["Name"], m["Destination"]) for m in ran["Mounts"]] == [("volume", "lab-run-data", "/data")]
        # The engine's refusal comes back in the dialog, in the engine's words.
        image.get_by_title("Run", exact=True).click()
        dialog.get_by_label("Name").fill("lab-run")
        dialog.get_by_role("button", name="Run").click()
        conflict = lab.docker("create", "--name", "lab-run", "busybox").stderr
        message = re.search(r"Error response from daemon: (.*)", conflict).group(1).strip()  # type: ignore[union-attr]
        dialog.locator(".jp-PydockRun-error").wait_for(timeout=10_000)
        assert dialog.locator(".jp-PydockRun-error").inner_text() == message
        assert dialog.get_by_label("Name").input_value() == "lab-run"  # what was typed is kept
        dialog.get_by_role("button", name="Cancel").click()

        # Image history, as `docker history` lists it.
        image.get_by_title("History", exact=True).click()
        history = page.locator(".jp-PydockHistory tbody tr")
        history.first.wait_for(timeout=10_000)
        cli_history = lab.docker("history", "-q", "busybox:latest").stdout.split()
        assert history.count() == len(cli_history)

        # Volumes and networks: create and remove, checked through the CLI.
        for noun, inspect_cmd in (("volume", "volume"), ("network", "network")):
            name = f"lab-{noun}-made"
            page.get_by_label(f"New {noun} name").fill(name)
            page.get_by_title(f"Create {noun}", exact=True).click()
            made = page.locator(f'.jp-PydockResource-{noun}[data-name="{name}"]')
            made.wait_for(timeout=10_000)
            assert lab.docker(inspect_cmd, "inspect", name).returncode == 0
            made.get_by_title(f"Remove {noun}", exact=True).click()
            page.locator(".jp-Dialog").get_by_role("button", name="Remove").click()
            made.wait_for(state="detached", timeout=10_000)
            assert lab.docker(inspect_cmd, "inspect", name).returncode != 0
        assert page.locator('.jp-PydockResource-volume[data-name="lab-run-data"]').count() == 1
        bridge = page.locator('.jp-PydockResource-network[data-name="bridge"]')
        assert bridge.get_by_title("Remove network", exact=True).count() == 0  # predefined: not removable

        # A container stuck restarting gets the restarting colour.
        assert lab.docker("run", "-d", "--name", "lab-restarting", "--restart", "always", "busybox", "sh", "-c",
                          "exit 1").returncode == 0
        # Its row flips between restarting and running every fraction of a second: the state and the colour
        # are read together, in one evaluation, or the colour may be the next render's.
        colour = page.wait_for_function("""() => {
            const r = document.querySelector('.jp-PydockContainer[data-name="lab-restarting"]');
            return r !== null && r.dataset.displayState === "restarting"
                && getComputedStyle(r.querySelector(".jp-PydockState")).backgroundColor;
        }""", timeout=30_000).json_value()
        assert colour not in colours.values()
        screenshot(page, "labextension-states.png")

        # Narrow: names truncate with the full name on hover, actions move into a menu.
        sidebar_width(page, 250)
        long_row = row(long_name)
        title = long_row.locator(".jp-PydockPanel-title")
        assert title.get_attribute("title") == long_name
        assert title.evaluate("e => e.scrollWidth > e.clientWidth")
        assert not long_row.get_by_title("Start", exact=True).is_visible()
        assert long_row.get_by_title("Actions", exact=True).is_visible()
        long_row.get_by_title("Actions", exact=True).click()
        page.locator(".jp-PydockMenu").get_by_role("button", name="Inspect", exact=True).wait_for()
        page.keyboard.press("Escape")
        page.locator(".jp-PydockMenu").wait_for(state="detached")
        # The start request is held back here, so "starting…" and the disabled menu can be seen.
        held: list = []

        def hold(route) -> None:  # type: ignore[no-untyped-def]
            held.append(route)

        page.route("**/containers/*/start*", hold)
        row_menu(page, long_row, "Start")
        long_row.locator(".jp-PydockContainer-status", has_text="starting…").wait_for(timeout=5_000)
        assert long_row.get_by_title("Actions", exact=True).is_disabled()
        assert len(held) == 1
        held[0].continue_()
        page.unroute("**/containers/*/start*", hold)
        long_row.and_(page.locator('[data-state="exited"]')).wait_for(timeout=30_000)  # `true` ran and ended
        assert state(lab, long_name)["StartedAt"] != "0001-01-01T00:00:00Z"
        screenshot(page, "labextension-narrow.png")
        assert panel.locator(".jp-PydockUnreachable").count() == 0
    finally:
        lab.docker("unpause", "lab-paused")  # pydock's `rm -f` of a paused container fails ("container not paused")
        lab.docker("rm", "-f", *names)
        lab.docker("volume", "rm", "lab-run-data")


@pytest.mark.slow
def test_empty_and_unreachable_states(lab_settings: None, busybox_tar: str) -> None:
    """A Jupyter server forwarding to a pydockd of its own: with no containers the panel invites a run; with
    pydockd stopped it says the engine is not reachable, and Retry brings it back once pydockd is up again."""
    d = new_daemon("pydock-labx-")
    d.start()
    root = tempfile.mkdtemp(prefix="pydock-labx-jp-", dir="/tmp")
    server = JupyterServer(root, (f"--PydockExtension.daemon_socket={d.socket}",))
    server.start()
    try:
        assert d.docker("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest").returncode == 0
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 850})
                page.goto(f"{server.base}lab?token={TOKEN}")
                page.wait_for_selector('.jp-SideBar [data-id="pydock-containers"]', timeout=60_000)
                page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=60_000)
                show_panel(page)
                empty = page.locator(".jp-PydockEmpty")
                empty.get_by_text("No containers — run one from an image.").wait_for(timeout=30_000)
                screenshot(page, "labextension-empty.png")
                empty.get_by_role("button", name="Run a container…").click()
                dialog = page.locator(".jp-Dialog")
                dialog.get_by_label("Image").fill("busybox:latest")
                dialog.get_by_label("Name").fill("first")
                dialog.get_by_label("Command").fill("sleep 1000")
                dialog.get_by_role("button", name="Run").click()
                page.locator('.jp-PydockContainer[data-name="first"][data-state="running"]').wait_for(timeout=30_000)
                assert d.docker("inspect", "-f", "{{.State.Running}}", "first").stdout.strip() == "true"

                events: list[str] = []
                page.on("request", lambda r: events.append(r.url) if re.search(r"/events(\?\d*)?$", r.url) else None)
                d.stop()
                gone = page.locator(".jp-PydockUnreachable")
                gone.get_by_text("Engine not reachable").wait_for(timeout=30_000)
                reason = requests.get(server.base + "pydock/v1.47/_ping", timeout=10,
                                      headers={"Authorization": f"token {TOKEN}"})
                assert reason.status_code == 503  # the engine is unavailable, not broken
                assert gone.locator(".jp-PydockUnreachable-reason").inner_text() == reason.json()["message"]
                assert page.locator(".jp-PydockContainer").count() == 0  # nothing stale is shown as if live
                screenshot(page, "labextension-unreachable.png")

                # The panel keeps trying, pausing twice as long after each failure (2, 4, 8, 16 s): after three
                # failed tries the next is 16 s away, so a recovery within two seconds of Retry is the button's doing.
                for _ in range(300):
                    if len(events) >= 3:
                        break
                    page.wait_for_timeout(100)
                assert len(events) >= 3, events
                d.start()
                tries = len(events)
                gone.get_by_role("button", name="Retry").click()
                page.locator('.jp-PydockContainer[data-name="first"]').wait_for(timeout=2_000)
                assert len(events) == tries + 1
                assert page.locator(".jp-PydockPanel-conn").inner_text() == "live"
            finally:
                browser.close()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        _cleanup_root(d)
