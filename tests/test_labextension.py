"""The JupyterLab extension: its client-model unit tests and the panel in a real browser.

The end-to-end test drives Debian's chromium through playwright against a
real Jupyter server with the pydock server extension, and checks every
action it takes in the UI through the docker CLI.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from conftest import REPO
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
    """Runs a command the way a user does: through the command palette."""
    palette = page.locator(".lm-CommandPalette-input")
    for _ in range(10):
        page.locator("#jp-top-panel").click(position={"x": 1000, "y": 10})  # an empty spot: focus the page
        page.keyboard.press("Control+Shift+C")
        try:
            palette.wait_for(timeout=2_000)
            palette.fill(label, timeout=2_000)
            break
        except PlaywrightTimeout:  # a late focus change closed it: open it again
            continue
    page.locator(".lm-CommandPalette-item", has_text=label).first.click()


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
        row = page.locator(f'.jp-PydockContainer[data-name="{NAME}"]')
        row.and_(page.locator('[data-state="running"]')).wait_for(timeout=30_000)
        assert "busybox" in row.inner_text()
        assert f"127.0.0.1:{port}->80/tcp" in row.inner_text()
        link = row.locator("a", has_text=f"127.0.0.1:{port}->80/tcp")  # opens through Jupyter's proxy
        assert (link.get_attribute("href") or "").endswith(f"pydock/proxy/{NAME}/80/")
        assert page.locator(".jp-PydockImage", has_text="busybox:latest").count() == 1

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
        run_command(page, "Show Containers Panel")
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
    run_command(page, "Show Containers Panel")
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
