"""ipywidgets views of the engine: container and image tables, a live log viewer, pull and build progress.

The tables follow the engine's event stream (`GET /events`) in a background
thread and refresh only what an event names, so they stay current without
polling; the log viewer follows `GET /containers/{id}/logs?follow=1`.
"""
from __future__ import annotations

import html
import os
import re
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import ipywidgets as w
from IPython.display import display

from .connection import Endpoint, find_endpoint

LOG_LIMIT = 200_000
PROXY_ENV = "PYDOCK_PROXY_URL"  # `<base_url>pydock/proxy/`, set by the Jupyter server that hosts the engine
_STEP = re.compile(r"^Step (\d+)/(\d+) :", re.MULTILINE)


def _pre(text: str) -> str:
    return f"<pre style='margin:0;max-height:24em;overflow:auto'>{html.escape(text)}</pre>"


def _tail_pre(text: str) -> str:
    """A log box that stays scrolled to its end as text arrives (a reversed flex column anchors the bottom)."""
    return ("<div style='max-height:24em;overflow:auto;display:flex;flex-direction:column-reverse'>"
            f"<pre style='margin:0'>{html.escape(text)}</pre></div>")


def _label(text: str, width: str) -> w.Label:
    return w.Label(text, layout=w.Layout(width=width, overflow="hidden"))


def readable(e: BaseException) -> str:
    """An API error as one line: the daemon's message ("No such container: x"), not the HTTP client's text."""
    return str(getattr(e, "explanation", None) or e).splitlines()[0] if str(e) else type(e).__name__


CONFIRM_SECONDS = 5.0  # how long a "confirm remove" button waits for the second click


class _Row(w.HBox):
    """One object's row, made once and updated in place: events change its labels and which buttons show."""

    def __init__(self, table: _EventTable, ident: str) -> None:
        self.ident = ident
        self.labels: list[w.Label | w.HTML] = [_label("", width) for _, width in table.columns]
        if table.links_column:
            self.labels.append(w.HTML("", layout=w.Layout(width="14em", overflow="hidden")))
        self.buttons = {a: w.Button(description=a, layout=w.Layout(width="auto")) for a in table.actions}
        for action, button in self.buttons.items():
            button.on_click(lambda _b, a=action: table.clicked(self, a))
        super().__init__([*self.labels, *self.buttons.values()])
        self._armed: threading.Timer | None = None

    def update(self, texts: list[str], actions: set[str], links: str = "") -> None:
        if len(self.labels) > len(texts):  # the links cell (HTML) follows the text cells
            texts = [*texts, links]
        for label, text in zip(self.labels, texts):
            if label.value != text:
                label.value = text
        for action, button in self.buttons.items():
            display_value = "" if action in actions else "none"
            if button.layout.display != display_value:
                button.layout.display = display_value

    def arm(self, action: str) -> bool:
        """First click of a destructive action: ask for a second one. True when this click confirms."""
        if self._armed is not None:
            self._disarm(action)
            return True
        button = self.buttons[action]
        button.description, button.button_style = f"confirm {action}?", "danger"
        self._armed = threading.Timer(CONFIRM_SECONDS, self._disarm, args=(action,))
        self._armed.daemon = True
        self._armed.start()
        return False

    def _disarm(self, action: str) -> None:
        if self._armed is not None:
            self._armed.cancel()
            self._armed = None
        button = self.buttons[action]
        button.description, button.button_style = action, ""

    def close_all(self) -> None:
        if self._armed is not None:
            self._armed.cancel()
        for child in [*self.labels, *self.buttons.values()]:
            child.close()
        self.close()


class _EventTable(w.VBox):
    """A table kept current by one events stream; `rows` maps ids to the API's list entries.

    Each object has one row of widgets for its lifetime, updated in place, so
    a busy engine (every `docker run --rm` is half a dozen events) costs a few
    attribute changes per event, not a new set of widget models.
    """

    event_type = ""
    columns: ClassVar[list[tuple[str, str]]] = []
    actions: ClassVar[list[str]] = []
    confirmed: ClassVar[set[str]] = {"remove"}

    def __init__(self, endpoint: Endpoint | None = None) -> None:
        super().__init__()
        self.api = (endpoint or find_endpoint()).api_client()
        self.rows: dict[str, dict[str, Any]] = {}
        self._widgets: dict[str, _Row] = {}
        titles = [_label(title, width) for title, width in self.columns]
        if self.links_column:
            titles.append(_label(self.links_column, "14em"))
        self.header = w.HBox(titles)
        self.message = w.HTML()
        self.detail = w.VBox()
        self._lock = threading.Lock()  # the rows' widgets: changed on the events thread, closed by `close`
        self._closed = False
        # Subscribe before listing, so nothing that happens in between is missed.
        self._events = self.api.events(decode=True, filters={"type": [self.event_type]})
        self._reload()
        self._thread = threading.Thread(target=self._follow, daemon=True, name=f"pydock-{self.event_type}-events")
        self._thread.start()

    def _list(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _on_event(self, event: dict[str, Any]) -> None:
        self._reload()

    def _follow(self) -> None:
        try:
            for event in self._events:
                self._on_event(event)
        except Exception as e:  # noqa: BLE001 - the stream ended (close(), engine gone); say so in the widget
            self.message.value = f"<i>event stream ended: {html.escape(readable(e))}</i>"

    def _reload(self) -> None:
        with self._lock:
            if self._closed:  # an event that came in as the table closed
                return
            self._show({item["Id"]: item for item in self._list()})

    def _show(self, rows: dict[str, dict[str, Any]]) -> None:
        """Updates the rows in place (new ones made, gone ones closed), then publishes `rows`: whoever sees
        `rows` change also finds them drawn."""
        for ident, item in rows.items():
            row = self._widgets.get(ident)
            if row is None:
                row = self._widgets[ident] = _Row(self, ident)
            row.update(self.cells(item), self.actions_for(item), self.links(item))
        for ident in [i for i in self._widgets if i not in rows]:
            self._widgets.pop(ident).close_all()
            self._gone(ident)
        children = (self.header, *self._body(rows), self.message, self.detail)
        if tuple(self.children) != children:
            self.children = children
        self.rows = rows

    def _body(self, rows: dict[str, dict[str, Any]]) -> list[w.Widget]:
        """The table's rows in order (a subclass may group them under titles)."""
        return [self._widgets[i] for i in rows]

    def _gone(self, ident: str) -> None:
        """An object's row went away."""

    def cells(self, item: dict[str, Any]) -> list[str]:
        raise NotImplementedError

    links_column = ""  # the title of a last column of HTML links, if the table has one

    def links(self, item: dict[str, Any]) -> str:
        """The links cell's HTML."""
        return ""

    def actions_for(self, item: dict[str, Any]) -> set[str]:
        """The buttons that fit the object's state."""
        return set(self.actions)

    def clicked(self, row: _Row, action: str) -> None:
        """A button: destructive actions take a second click; clicks arrive on the kernel's main thread and a
        stop may take seconds, so the action runs elsewhere."""
        if action in self.confirmed and not row.arm(action):
            return
        threading.Thread(target=self.act, args=(action, row.ident), daemon=True).start()

    def act(self, action: str, ident: str) -> None:
        """Runs one row action; the table itself changes when the engine's event comes back."""
        try:
            self._action(action)(ident)
            self.message.value = ""
        except Exception as e:  # noqa: BLE001 - shown in the widget as one line, like the CLI would print it
            self.message.value = f"<span style='color:#c00'>{html.escape(readable(e))}</span>"

    def _action(self, action: str) -> Callable[[str], Any]:
        raise NotImplementedError

    def close(self) -> None:
        self._events.close()
        with self._lock:  # a reload under way on the events thread ends first, and none follows
            self._closed = True
            self._close_rows()
        for child in (self.header, self.message, self.detail):
            child.close()
        self.api.close()
        super().close()

    def _close_rows(self) -> None:
        """Close what the events thread changes (under `_lock`): the rows' widgets."""
        for row in self._widgets.values():
            row.close_all()
        self._widgets.clear()


# the actions that fit each container state (`docker ps` State)
_CONTAINER_ACTIONS = {
    "running": {"stop", "restart", "logs"},
    "paused": {"unpause", "logs"},
    "restarting": {"stop", "logs"},
    "created": {"start", "remove", "logs"},
    "exited": {"start", "remove", "logs"},
    "dead": {"remove", "logs"},
}


PROJECT_LABEL = "com.docker.compose.project"


class Containers(_EventTable):
    """All containers, each with the buttons that fit its state (removing asks for a second click);
    `group_by_project` puts docker-compose projects' containers together under the project's name."""

    event_type = "container"
    columns: ClassVar[list[tuple[str, str]]] = [("CONTAINER ID", "9em"), ("NAME", "12em"), ("IMAGE", "12em"),
                                                 ("STATUS", "16em")]
    actions: ClassVar[list[str]] = ["start", "stop", "restart", "unpause", "remove", "logs"]

    viewer: LogViewer | None = None

    def __init__(self, endpoint: Endpoint | None = None, group_by_project: bool = False) -> None:
        self.group_by_project = group_by_project
        self._titles: dict[str, w.HTML] = {}
        super().__init__(endpoint)

    def _body(self, rows: dict[str, dict[str, Any]]) -> list[w.Widget]:
        if not self.group_by_project:
            return super()._body(rows)
        groups: dict[str, list[str]] = {}
        for ident, item in rows.items():
            groups.setdefault((item.get("Labels") or {}).get(PROJECT_LABEL, ""), []).append(ident)
        for project in [p for p in self._titles if p not in groups]:
            self._titles.pop(project).close()
        out: list[w.Widget] = []
        for project in sorted(groups, key=lambda p: (p == "", p)):  # projects by name, then the rest
            title = self._titles.get(project)
            if title is None:
                text = f"<b>{html.escape(project)}</b> (compose project)" if project else "<b>other containers</b>"
                title = self._titles[project] = w.HTML(text)
            out += [title, *(self._widgets[i] for i in groups[project])]
        return out

    def _list(self) -> list[dict[str, Any]]:
        return self.api.containers(all=True)

    def _on_event(self, event: dict[str, Any]) -> None:
        """Only the container the event names is listed again: one small request per event."""
        cid = (event.get("Actor") or {}).get("ID") or event.get("id", "")
        found = self.api.containers(all=True, filters={"id": cid}) if cid else []
        with self._lock:
            if found and cid not in self.rows:
                rows = {cid: found[0], **self.rows}  # newest first, as `docker ps`
            else:
                rows = dict(self.rows)
                if found:
                    rows[cid] = found[0]
                else:
                    rows.pop(cid, None)
            self._show(rows)

    def cells(self, item: dict[str, Any]) -> list[str]:
        names = [n.lstrip("/") for n in item.get("Names") or []]
        return [item["Id"][:12], ", ".join(names), item.get("Image", ""), item.get("Status", "")]

    def actions_for(self, item: dict[str, Any]) -> set[str]:
        return _CONTAINER_ACTIONS.get(item.get("State", ""), {"remove", "logs"})

    links_column = "PORTS"

    def links(self, item: dict[str, Any]) -> str:
        """Each published TCP port, linked through Jupyter's proxy when the kernel knows its server's prefix."""
        name = (item.get("Names") or [item["Id"]])[0].lstrip("/")
        prefix = os.environ.get(PROXY_ENV, "")
        out = []
        for p in item.get("Ports") or []:
            if not p.get("PublicPort"):
                continue
            text = html.escape(f"{p['PublicPort']}->{p['PrivatePort']}/{p.get('Type', 'tcp')}")
            if prefix and p.get("Type", "tcp") == "tcp":
                href = html.escape(f"{prefix}{name}/{p['PrivatePort']}/", quote=True)
                text = f"<a href='{href}' target='_blank' rel='noopener'>{text}</a>"
            out.append(text)
        return ", ".join(out)

    def _action(self, action: str) -> Callable[[str], Any]:
        return {"start": self.api.start, "stop": self.api.stop, "restart": self.api.restart,
                "unpause": self.api.unpause, "remove": lambda cid: self.api.remove_container(cid, force=True),
                "logs": self.show_logs}[action]

    def show_logs(self, cid: str) -> LogViewer:
        """The container's logs below the table, replacing (and closing) the viewer shown before."""
        viewer = LogViewer(cid, api=self.api)
        old, self.viewer = self.viewer, viewer
        self.detail.children = (viewer,)
        if old is not None:
            old.close()
        return viewer

    def _gone(self, ident: str) -> None:
        if self.viewer is not None and self.viewer.container == ident:
            self.viewer.close()
            self.viewer = None
            self.detail.children = ()

    def _close_rows(self) -> None:
        """Also the logs viewer and the project titles, which a reload changes too."""
        if self.viewer is not None:
            self.viewer.close()
        for title in self._titles.values():
            title.close()
        super()._close_rows()


class Images(_EventTable):
    """All images with a remove button; any image event lists them again (tags move between images)."""

    event_type = "image"
    columns: ClassVar[list[tuple[str, str]]] = [("REPOSITORY:TAG", "18em"), ("IMAGE ID", "9em"), ("SIZE", "7em")]
    actions: ClassVar[list[str]] = ["remove"]

    def _list(self) -> list[dict[str, Any]]:
        return self.api.images()

    def cells(self, item: dict[str, Any]) -> list[str]:
        tags = [t for t in item.get("RepoTags") or [] if t != "<none>:<none>"] or ["<none>:<none>"]
        return [", ".join(tags), item["Id"].split(":")[-1][:12], f"{item.get('Size', 0) / 1e6:.1f}MB"]

    def _action(self, action: str) -> Callable[[str], Any]:
        return {"remove": lambda iid: self.api.remove_image(iid, force=True)}[action]


class LogViewer(w.VBox):
    """A container's logs, followed live (the box stays at the end) until the container stops or the viewer
    is closed, which also closes the log stream."""

    def __init__(self, container: str, endpoint: Endpoint | None = None, api: Any = None, tail: str = "all") -> None:
        super().__init__()
        self.api = api or (endpoint or find_endpoint()).api_client()
        self.container = container
        self.text = ""
        self.ended = threading.Event()
        self.title = w.HTML(f"<b>logs of {html.escape(container[:12])}</b>")
        self.output = w.HTML(_tail_pre(""))
        self.children = [self.title, self.output]
        self._stream = self.api.logs(container, stream=True, follow=True, tail=tail)
        threading.Thread(target=self._follow, daemon=True, name="pydock-logs").start()

    def _follow(self) -> None:
        try:
            for chunk in self._stream:
                self.append(chunk.decode(errors="replace"))
        except Exception as e:  # noqa: BLE001 - closed or engine gone: the viewer keeps what it has
            if not self.ended.is_set():
                self.append(f"\n[log stream ended: {readable(e)}]\n")
        finally:
            self.ended.set()

    def append(self, text: str) -> None:
        self.text = (self.text + text)[-LOG_LIMIT:]
        self.output.value = _tail_pre(self.text)

    def close(self) -> None:
        self.ended.set()
        self._stream.close()
        self.title.close()
        self.output.close()
        super().close()


class PullProgress(w.VBox):
    """`docker pull` progress: one bar per layer, fed the JSON messages of `POST /images/create`."""

    def __init__(self, ref: str) -> None:
        super().__init__()
        self.status = w.HTML(f"Pulling <b>{html.escape(ref)}</b>")
        self.layers: dict[str, w.IntProgress] = {}
        self.error = ""
        self.children = [self.status]

    @classmethod
    def shown(cls, ref: str) -> PullProgress:
        progress = cls(ref)
        display(progress)
        return progress

    def feed(self, msg: dict[str, Any]) -> None:
        if "error" in msg:
            self.fail(msg["error"])
            return
        layer, status = msg.get("id"), msg.get("status", "")
        if layer and layer in self.layers or layer and status in ("Pulling fs layer", "Waiting"):
            self._layer(layer, status, msg.get("progressDetail") or {})
        else:
            self.status.value = html.escape(f"{layer}: {status}" if layer else status)

    def _layer(self, layer: str, status: str, detail: dict[str, Any]) -> None:
        bar = self.layers.get(layer)
        if bar is None:
            bar = self.layers[layer] = w.IntProgress(value=0, max=1, description=layer[:12])
            self.children = [*self.children, bar]
        if detail.get("total"):
            bar.max, bar.value = int(detail["total"]), int(detail.get("current", 0))
        if status in ("Download complete", "Pull complete", "Already exists"):
            bar.value = bar.max
            bar.bar_style = "success" if status != "Download complete" else "info"
        bar.description = f"{layer[:12]}"
        bar.tooltip = status

    def fail(self, message: str) -> None:
        self.error = message
        self.status.value = f"<span style='color:#c00'>{html.escape(message)}</span>"


class BuildProgress(w.VBox):
    """Build output as a step bar plus the log; a text stream, so the CLI's `build` can write into it."""

    def __init__(self) -> None:
        super().__init__()
        self.bar = w.IntProgress(value=0, max=1, description="Step 0/?")
        self.text = ""
        self.output = w.HTML(_pre(""))
        self.children = [self.bar, self.output]

    @classmethod
    def shown(cls) -> BuildProgress:
        progress = cls()
        display(progress)
        return progress

    def write(self, text: str) -> int:
        for step, total in _STEP.findall(text):
            self.bar.max, self.bar.value = int(total), int(step)
            self.bar.description = f"Step {step}/{total}"
        if text.startswith("Successfully built") or "\nSuccessfully built" in text:
            self.bar.value, self.bar.bar_style = self.bar.max, "success"
        self.text = (self.text + text)[-LOG_LIMIT:]
        self.output.value = _pre(self.text)
        return len(text)

    def flush(self) -> None:
        """Each write is shown at once; nothing is buffered."""
