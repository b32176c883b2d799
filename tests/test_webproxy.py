"""Container web apps through Jupyter (`<base_url>/pydock/proxy/<container>/<port>/`), as a browser reaches them."""
from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import pytest
import requests
import tornado.httpclient
import tornado.websocket
from conftest import DEB_CACHE
from test_jupyter_server import TOKEN, JupyterServer, own_server

from pydock_cli import pythonimage

AUTH = {"Authorization": f"token {TOKEN}"}
ECHO = """
import tornado.ioloop, tornado.web, tornado.websocket
class Echo(tornado.websocket.WebSocketHandler):
    def on_message(self, message):
        self.write_message("echo: " + message)
class Hello(tornado.web.RequestHandler):
    def get(self):
        self.write({"path": self.request.path, "query": self.request.query,
                    "auth": self.request.headers.get("Authorization", "")})
tornado.web.Application([(r"/ws", Echo), (r"/.*", Hello)]).listen(8765)
tornado.ioloop.IOLoop.current().start()
"""


@pytest.fixture(scope="module")
def server(busybox_tar: str) -> Iterator[JupyterServer]:
    with own_server("pydock-web-") as jp:
        jp.docker("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest")
        yield jp


def _wait(url: str, **kwargs: object) -> requests.Response:
    deadline = time.time() + 30
    while True:
        r = requests.get(url, timeout=10, **kwargs)  # type: ignore[arg-type]
        if r.status_code != 502 or time.time() > deadline:
            return r
        time.sleep(0.2)  # the app is still starting


def test_http_app_through_jupyter(server):
    server.docker("run", "-d", "--name", "web1", "-p", "127.0.0.1::80", "busybox", "sh", "-c",
                  "mkdir /www && echo hello through jupyter > /www/index.html && httpd -f -p 80 -h /www")
    url = server.base + "pydock/proxy/web1/80/index.html"
    r = _wait(url, headers=AUTH)
    assert r.status_code == 200 and r.text == "hello through jupyter\n"
    assert requests.get(url, timeout=10).status_code == 403  # behind Jupyter's auth
    assert requests.get(url + "?token=wrong", timeout=10).status_code == 403
    assert _wait(url + f"?token={TOKEN}").text == "hello through jupyter\n"
    r = requests.get(server.base + "pydock/proxy/web1/81/", headers=AUTH, timeout=10)
    assert r.status_code == 404 and "does not publish port 81" in r.text
    assert requests.get(server.base + "pydock/proxy/nosuch/80/", headers=AUTH, timeout=10).status_code == 404


def test_websocket_app_through_jupyter_and_no_jupyter_credentials_leak(server):
    env = {**os.environ, "DOCKER_HOST": server.docker_host, "DOCKER_CONFIG": server.docker_config}
    pythonimage.make("webproxy-py:1", ipykernel=True, cache=DEB_CACHE, env=env)  # tornado comes with ipykernel
    server.docker("run", "-d", "--name", "ws1", "-p", "127.0.0.1::8765", "webproxy-py:1", "python3", "-c", ECHO)
    base = server.base + "pydock/proxy/ws1/8765"
    r = _wait(base + f"/some/path?x=1&token={TOKEN}")
    assert r.status_code == 200
    assert r.json() == {"path": "/some/path", "query": "x=1", "auth": ""}
    assert _wait(base + "/p", headers=AUTH).json()["auth"] == ""

    async def echo() -> str:
        url = base.replace("http", "ws") + f"/ws?token={TOKEN}"
        ws = await tornado.websocket.websocket_connect(url)
        await ws.write_message("ping")
        reply = await asyncio.wait_for(ws.read_message(), 30)
        ws.close()
        return str(reply)

    assert asyncio.run(echo()) == "echo: ping"

    async def refused() -> int:
        try:
            await tornado.websocket.websocket_connect(base.replace("http", "ws") + "/ws")
        except tornado.httpclient.HTTPClientError as e:
            return e.code
        return 0

    assert asyncio.run(refused()) == 403
