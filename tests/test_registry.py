"""Pull, push and login against real registries on loopback.

Each registry is Debian's `docker-registry` (the Distribution registry that
Docker Hub's protocol is defined by): one open, one with htpasswd basic auth,
one with token auth served by a small JWT issuer in this file, and HTTPS ones
(server certificates from a throwaway CA made with openssl, one demanding
client certificates) on a non-loopback address. The docker CLI
drives the daemon; images with unusual shapes (multi-platform index, zstd
layer, corrupted blob, a big layer) are put into the registry directly over
its HTTP API.
"""
from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import http.server
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import zstandard
from conftest import Daemon, _cleanup_root

from engine.distribution.errors import RegistryError
from engine.distribution.tls import is_insecure, tls_context
from engine.image.layers import INIT_LAYER

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_TAR = "application/vnd.oci.image.layer.v1.tar"
USER, PASSWORD = "pyuser", "s3cret-pw"
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Registry:
    host: str
    storage: str
    proc: subprocess.Popen[bytes]
    auth: tuple[str, str] | None = None
    token_url: str = ""
    scheme: str = "http"

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}{path}"

    def _headers(self, repo: str) -> dict[str, str]:
        if not self.token_url:
            return {}
        resp = requests.get(self.token_url, params={"service": "pydock-test", "scope": f"repository:{repo}:pull,push"},
                            auth=self.auth, timeout=10)
        return {"Authorization": "Bearer " + resp.json()["token"]}

    def put_blob(self, repo: str, data: bytes) -> str:
        auth = None if self.token_url else self.auth
        hdrs = self._headers(repo)
        resp = requests.post(self.url(f"/v2/{repo}/blobs/uploads/"), auth=auth, headers=hdrs, timeout=30)
        assert resp.status_code == 202, resp.text
        loc = urllib.parse.urljoin(self.url("/"), resp.headers["Location"])
        digest = sha256(data)
        resp = requests.put(loc + ("&" if "?" in loc else "?") + "digest=" + digest, data=data, auth=auth,
                            headers=hdrs, timeout=120)
        assert resp.status_code == 201, resp.text
        return digest

    def put_manifest(self, repo: str, ref: str, manifest: dict[str, Any]) -> str:
        raw = json.dumps(manifest).encode()
        resp = requests.put(self.url(f"/v2/{repo}/manifests/{ref}"), data=raw, auth=self.auth,
                            headers={"Content-Type": manifest["mediaType"]}, timeout=30)
        assert resp.status_code == 201, resp.text
        return sha256(raw)

    def blob_path(self, digest: str) -> str:
        hexd = digest.split(":", 1)[1]
        return os.path.join(self.storage, "docker/registry/v2/blobs/sha256", hexd[:2], hexd, "data")

    def push_image(self, repo: str, tag: str, layers: list[tuple[bytes, bytes, str]], arch: str = ARCH,
                   cmd: list[str] | None = None) -> tuple[str, dict[str, Any]]:
        """Upload an OCI image: `layers` are (plain tar, blob, media type); returns (manifest digest, descriptor)."""
        config = {"architecture": arch, "os": "linux", "config": {"Cmd": cmd or ["sh"]},
                  "created": "2024-01-01T00:00:00Z",
                  "rootfs": {"type": "layers", "diff_ids": [sha256(plain) for plain, _, _ in layers]}}
        config_raw = json.dumps(config, indent=2).encode()  # not compact: the ID must be the raw bytes' digest
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "digest": self.put_blob(repo, config_raw),
                               "size": len(config_raw)},
                    "layers": [{"mediaType": mt, "digest": self.put_blob(repo, blob), "size": len(blob)}
                               for _, blob, mt in layers]}
        digest = self.put_manifest(repo, tag, manifest)
        size = len(json.dumps(manifest).encode())
        return digest, {"mediaType": OCI_MANIFEST, "digest": digest, "size": size,
                        "platform": {"architecture": arch, "os": "linux"}, "config_digest": sha256(config_raw)}


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def start_registry(root: str, auth_yaml: str = "", addr: str = "127.0.0.1", tls: tuple[str, str] | None = None,
                   tls_extra: str = "") -> Registry:
    """A registry on `addr`; with `tls` (certificate, key) it serves HTTPS only."""
    port = free_port()
    tls_yaml = f"  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}\n{tls_extra}" if tls else ""
    scheme = "https" if tls else "http"
    storage = os.path.join(root, "storage")
    os.makedirs(storage, exist_ok=True)
    config = os.path.join(root, "config.yml")
    with open(config, "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {storage}\n"
                f"  delete:\n    enabled: true\nhttp:\n  addr: {addr}:{port}\n{tls_yaml}{auth_yaml}")
    log_path = os.path.join(root, "registry.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([REGISTRY_BIN, "serve", config], stdout=log, stderr=log, start_new_session=True)
    deadline = time.time() + 20
    while True:
        try:
            socket.create_connection((addr, port), timeout=1).close()
            break
        except OSError as e:
            if proc.poll() is not None or time.time() > deadline:
                with open(log_path) as f:
                    raise RuntimeError("registry did not start: " + f.read()[-2000:]) from e
            time.sleep(0.1)
    return Registry(f"{addr}:{port}", storage, proc, scheme=scheme)


def stop_registry(reg: Registry) -> None:
    reg.proc.terminate()
    reg.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(str(tmp_path_factory.mktemp("registry")))
    yield reg
    stop_registry(reg)


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    root = str(tmp_path_factory.mktemp("basic-registry"))
    line = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], capture_output=True, text=True, check=True).stdout
    with open(os.path.join(root, "htpasswd"), "w") as f:
        f.write(line.strip() + "\n")
    reg = start_registry(root, f"auth:\n  htpasswd:\n    realm: basic-realm\n    path: {root}/htpasswd\n")
    reg.auth = (USER, PASSWORD)
    yield reg
    stop_registry(reg)


class TokenIssuer(http.server.ThreadingHTTPServer):
    """The token endpoint of the registry's token auth: RS256 JWTs with an x5c chain, signed by openssl."""

    def __init__(self, root: str) -> None:
        self.key = os.path.join(root, "token.key")
        self.cert = os.path.join(root, "token.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key, "-out",
                        self.cert, "-days", "2", "-subj", "/CN=pydock-test-token"], check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", self.cert, "-outform", "DER"], check=True,
                             capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        super().__init__(("127.0.0.1", 0), TokenHandler)

    def sign(self, claims: dict[str, Any]) -> str:
        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key], input=signing_input.encode(),
                             capture_output=True, check=True).stdout
        return signing_input + "." + b64(sig)


class TokenHandler(http.server.BaseHTTPRequestHandler):
    server: TokenIssuer

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        header = self.headers.get("Authorization", "")
        user = ""
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if (user, password) != (USER, PASSWORD):
                return self._send(401, {"details": "incorrect username or password"})
        access = []
        for scope in query.get("scope", []) if user else []:
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": "pydock-test-issuer", "sub": user, "aud": query.get("service", [""])[0],
                  "exp": now + 300, "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        self._send(200, {"token": self.server.sign(claims), "expires_in": 300})

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    root = str(tmp_path_factory.mktemp("token-registry"))
    issuer = TokenIssuer(root)
    threading.Thread(target=issuer.serve_forever, daemon=True).start()
    realm = f"http://127.0.0.1:{issuer.server_address[1]}/token"
    reg = start_registry(root, f"auth:\n  token:\n    realm: {realm}\n    service: pydock-test\n"
                               f"    issuer: pydock-test-issuer\n    rootcertbundle: {issuer.cert}\n")
    reg.auth, reg.token_url = (USER, PASSWORD), realm
    yield reg
    stop_registry(reg)
    issuer.shutdown()


def inspect(daemon: Daemon, ref: str) -> dict[str, Any]:
    out = daemon.docker("image", "inspect", ref, check=True).stdout
    return json.loads(out)[0]


def login(daemon: Daemon, reg: Registry, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
    return daemon.docker("login", reg.host, "-u", USER, "--password-stdin", input=password)


def busybox_layer(busybox_tar: str) -> tuple[bytes, bytes, str]:
    with open(busybox_tar, "rb") as f:
        plain = f.read()
    return plain, gzip.compress(plain, mtime=0), OCI_GZIP


def data_root_state(daemon: Daemon) -> tuple[set[str], list[str]]:
    layers = set(os.listdir(os.path.join(daemon.data_root, "layers")))
    return layers, os.listdir(os.path.join(daemon.data_root, "tmp"))


# ---- open registry ----------------------------------------------------
def test_push_rmi_pull_same_image(daemon: Daemon, busybox: str, registry: Registry, tmp_path: Any) -> None:
    layer = tmp_path / "layer.tar"
    layer.write_bytes(tar_of({"unique.txt": uuid.uuid4().hex.encode()}))
    image_id = daemon.docker("import", "-c", "CMD [\"sh\"]", str(layer), "roundtrip:1", check=True).stdout.strip()
    ref = f"{registry.host}/test/bb:1"
    daemon.docker("tag", "roundtrip:1", ref, check=True)
    out = daemon.docker("push", ref, check=True).stdout
    assert f"The push refers to repository [{registry.host}/test/bb]" in out
    assert ": Pushed" in out
    pushed = inspect(daemon, ref)
    resp = requests.head(registry.url("/v2/test/bb/manifests/1"),
                         headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    digest = resp.headers["Docker-Content-Digest"]
    assert pushed["RepoDigests"] == [f"{registry.host}/test/bb@{digest}"]
    assert f"1: digest: {digest} size: " in out

    again = daemon.docker("push", ref, check=True).stdout
    assert ": Layer already exists" in again and ": Pushed" not in again
    daemon.docker("tag", ref, f"{registry.host}/other/bb:2", check=True)
    mounted = daemon.docker("push", f"{registry.host}/other/bb:2", check=True).stdout
    assert ": Mounted from test/bb" in mounted

    rmi = daemon.docker("rmi", "roundtrip:1", f"{registry.host}/other/bb:2", ref, check=True).stdout
    assert f"Untagged: {registry.host}/test/bb@{digest}" in rmi and f"Deleted: {image_id}" in rmi
    pulled = daemon.docker("pull", ref, check=True).stdout
    assert "1: Pulling from test/bb" in pulled and ": Pull complete" in pulled
    assert f"Digest: {digest}" in pulled
    assert f"Status: Downloaded newer image for {ref}" in pulled
    back = inspect(daemon, ref)
    assert back["Id"] == pushed["Id"] == image_id
    assert back["RepoDigests"] == pushed["RepoDigests"]
    assert back["RepoTags"] == [ref]
    again = daemon.docker("pull", ref, check=True).stdout
    assert f"Status: Image is up to date for {ref}" in again
    by_digest = daemon.docker("pull", f"{registry.host}/test/bb@{digest}", check=True).stdout
    assert f"{digest}: Pulling from test/bb" in by_digest
    daemon.docker("rmi", ref, check=True)


def test_run_pulls_missing_image(daemon: Daemon, busybox: str, registry: Registry) -> None:
    ref = f"{registry.host}/test/runme:latest"
    daemon.docker("tag", "busybox", ref, check=True)
    daemon.docker("push", ref, check=True)
    daemon.docker("rmi", ref, check=True)
    proc = daemon.docker("run", "--rm", ref, "echo", "pulled-and-ran", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "pulled-and-ran" in proc.stdout
    assert f"Unable to find image '{ref}' locally" in proc.stderr


def test_pull_progress_messages(daemon: Daemon, busybox_tar: str, registry: Registry) -> None:
    """The JSON stream the CLI renders: per-layer states with Docker's ids, sizes and bar."""
    import docker
    layer = tar_of({"progress.txt": os.urandom(300_000)})
    registry.push_image("test/progress", "1", [busybox_layer(busybox_tar), (layer, layer, OCI_TAR)])
    api = docker.APIClient(base_url=daemon.url)
    msgs = list(api.pull(f"{registry.host}/test/progress", tag="1", stream=True, decode=True))
    statuses = [(m.get("id"), m.get("status")) for m in msgs]
    layer_id = sha256(layer)[7:19]
    assert ("1", "Pulling from test/progress") == statuses[0]
    for state in ("Pulling fs layer", "Verifying Checksum", "Download complete", "Extracting", "Pull complete"):
        assert (layer_id, state) in statuses
    downloading = [m for m in msgs if m.get("status") == "Downloading" and m["id"] == layer_id]
    assert downloading and downloading[-1]["progressDetail"] == {"current": len(layer), "total": len(layer)}
    assert downloading[-1]["progress"].startswith("[" + "=" * 50 + ">] ")
    assert msgs[-1]["status"] == f"Status: Downloaded newer image for {registry.host}/test/progress:1"
    api.close()


def test_pull_all_tags(daemon: Daemon, registry: Registry) -> None:
    for tag in ("a", "b"):
        plain = tar_of({"tag.txt": tag.encode()})
        registry.push_image("test/alltags", tag, [(plain, gzip.compress(plain), OCI_GZIP)])
    proc = daemon.docker("pull", "--all-tags", f"{registry.host}/test/alltags", check=True)
    assert "a: Pulling from test/alltags" in proc.stdout and "b: Pulling from test/alltags" in proc.stdout
    tags = daemon.docker("images", "--format", "{{.Tag}}", f"{registry.host}/test/alltags", check=True).stdout
    assert sorted(tags.split()) == ["a", "b"]


def test_pull_unknown_manifest(daemon: Daemon, registry: Registry) -> None:
    proc = daemon.docker("pull", f"{registry.host}/test/nothing:here")
    assert proc.returncode == 1
    assert (f"Error response from daemon: manifest for {registry.host}/test/nothing:here not found: "
            "manifest unknown") in proc.stderr


def test_search_not_supported(daemon: Daemon) -> None:
    proc = daemon.docker("search", "busybox")
    assert proc.returncode == 1
    assert "searching registries is not supported" in proc.stderr


def test_multi_arch_index_platform(daemon: Daemon, registry: Registry) -> None:
    descs = []
    for arch in ("amd64", "arm64"):
        plain = tar_of({"arch.txt": arch.encode()})
        _, desc = registry.push_image("test/multi", f"only-{arch}", [(plain, gzip.compress(plain), OCI_GZIP)], arch)
        descs.append(desc)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [{k: v for k, v in d.items() if k != "config_digest"} for d in descs]}
    index_digest = registry.put_manifest("test/multi", "latest", index)
    ref = f"{registry.host}/test/multi"

    out = daemon.docker("pull", "--platform", "linux/arm64", ref, check=True).stdout
    assert f"Digest: {index_digest}" in out
    img = inspect(daemon, ref)
    assert img["Architecture"] == "arm64"
    assert img["Id"] == descs[1]["config_digest"]
    assert img["RepoDigests"] == [f"{ref}@{index_digest}"]

    daemon.docker("rmi", ref, check=True)
    if ARCH in ("amd64", "arm64"):
        daemon.docker("pull", ref, check=True)
        assert inspect(daemon, ref)["Architecture"] == ARCH
        daemon.docker("rmi", ref, check=True)
    proc = daemon.docker("pull", "--platform", "linux/s390x", ref)
    assert proc.returncode == 1
    assert "no matching manifest for linux/s390x in the manifest list entries" in proc.stderr


def test_distribution_inspect(daemon: Daemon, registry: Registry) -> None:
    """`GET /distribution/{name}/json` through the SDK: a tag's manifest descriptor and platforms, nothing pulled."""
    import docker
    descs = {}
    for arch in ("amd64", "arm64"):
        plain = tar_of({"arch.txt": arch.encode()})
        _, descs[arch] = registry.push_image("test/dist", arch, [(plain, gzip.compress(plain), OCI_GZIP)], arch)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [{k: v for k, v in d.items() if k != "config_digest"} for d in descs.values()]}
    index_digest = registry.put_manifest("test/dist", "multi", index)
    ref = f"{registry.host}/test/dist"
    client = docker.DockerClient(base_url=daemon.url, timeout=60)
    try:
        data = client.images.get_registry_data(f"{ref}:multi")
        assert data.id == index_digest
        assert data.attrs == {
            "Descriptor": {"mediaType": OCI_INDEX, "digest": index_digest, "size": len(json.dumps(index))},
            "Platforms": [{"architecture": "amd64", "os": "linux"}, {"architecture": "arm64", "os": "linux"}]}
        assert data.has_platform("linux/arm64") and not data.has_platform("linux/s390x")

        single = client.images.get_registry_data(f"{ref}:arm64")
        assert single.attrs["Descriptor"] == {k: descs["arm64"][k] for k in ("mediaType", "digest", "size")}
        assert single.attrs["Platforms"] == [{"architecture": "arm64", "os": "linux"}]
        # by digest, the same manifest
        assert client.images.get_registry_data(f"{ref}@{descs['arm64']['digest']}").attrs == single.attrs

        with pytest.raises(docker.errors.NotFound) as err:
            client.images.get_registry_data(f"{ref}:nothing")
        assert err.value.explanation == "manifest unknown: manifest unknown"
        with pytest.raises(docker.errors.APIError) as bad:
            client.api.inspect_distribution("a" * 64)
        assert (bad.value.status_code, bad.value.explanation) == (400, "no manifest found for full image ID")
        with pytest.raises(docker.errors.APIError) as bad:
            client.api.inspect_distribution("Upper/Case")
        assert bad.value.status_code == 400
    finally:
        client.close()
    assert daemon.docker("image", "inspect", f"{ref}:arm64").returncode == 1  # looked up, never pulled


def test_distribution_inspect_with_registry_auth(daemon: Daemon, basic_registry: Registry) -> None:
    """X-Registry-Auth as for a pull: without it the registry refuses (401), with it the descriptor comes back."""
    import docker
    reg = basic_registry
    plain = tar_of({"secret.txt": b"x"})
    digest, _ = reg.push_image("private/dist", "1", [(plain, gzip.compress(plain), OCI_GZIP)])
    client = docker.DockerClient(base_url=daemon.url, timeout=60)
    try:
        with pytest.raises(docker.errors.APIError) as err:
            client.images.get_registry_data(f"{reg.host}/private/dist:1")
        assert err.value.status_code == 401
        data = client.images.get_registry_data(f"{reg.host}/private/dist:1",
                                               auth_config={"username": USER, "password": PASSWORD})
        assert data.id == digest
    finally:
        client.close()


def test_zstd_layer(daemon: Daemon, busybox_tar: str, registry: Registry) -> None:
    plain = tar_of({"hello.txt": b"hello from zstd\n"})
    registry.push_image("test/zstd", "1", [busybox_layer(busybox_tar),
                                           (plain, zstandard.ZstdCompressor().compress(plain), OCI_ZSTD)])
    ref = f"{registry.host}/test/zstd:1"
    daemon.docker("pull", ref, check=True)
    proc = daemon.docker("run", "--rm", ref, "cat", "/hello.txt", check=True)
    assert proc.stdout == "hello from zstd\n"


def test_corrupted_blob_fails_clean(daemon: Daemon, busybox: str, registry: Registry) -> None:
    plain = tar_of({"data.bin": os.urandom(200_000)})
    blob = gzip.compress(plain)
    registry.push_image("test/corrupt", "1", [(plain, blob, OCI_GZIP)])
    path = registry.blob_path(sha256(blob))
    with open(path, "r+b") as f:  # same size, different bytes: only the digest can tell
        f.seek(len(blob) // 2)
        f.write(b"\x00" * 64)
    before, _ = data_root_state(daemon)
    proc = daemon.docker("pull", f"{registry.host}/test/corrupt:1")
    assert proc.returncode == 1
    assert f"filesystem layer verification failed for digest {sha256(blob)}" in proc.stderr
    after, tmp = data_root_state(daemon)
    assert after == before and tmp == []
    assert daemon.docker("image", "inspect", f"{registry.host}/test/corrupt:1").returncode == 1


class DroppingProxy(http.server.ThreadingHTTPServer):
    """Forwards GETs to a registry, cutting the first download of `digest` off halfway."""

    def __init__(self, upstream: str, digest: str, honor_range: bool = True) -> None:
        self.upstream, self.digest, self.honor_range = upstream, digest, honor_range
        self.ranges: list[str] = []
        super().__init__(("127.0.0.1", 0), DroppingHandler)


class DroppingHandler(http.server.BaseHTTPRequestHandler):
    server: DroppingProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        forward = ("accept", "range", "authorization") if self.server.honor_range else ("accept", "authorization")
        headers = {k: v for k, v in self.headers.items() if k.lower() in forward}
        resp = requests.get(f"http://{self.server.upstream}{self.path}", headers=headers, timeout=30)
        body = resp.content
        cut = self.path.endswith(self.server.digest) and not self.server.ranges and "Range" not in self.headers
        if self.path.endswith(self.server.digest):
            self.server.ranges.append(self.headers.get("Range", ""))
        self.send_response(resp.status_code)
        for k, v in resp.headers.items():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if cut else body)
        if cut:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)


@pytest.mark.parametrize("honor_range", [True, False], ids=["range", "no-range"])
def test_dropped_download_resumes_with_range(daemon: Daemon, registry: Registry, honor_range: bool) -> None:
    """A registry that answers the Range request with the whole blob (200) works too: the bytes
    already received are skipped, so the streaming decompression carries on."""
    plain = tar_of({"resume.bin": os.urandom(3 << 20)})
    blob = gzip.compress(plain, compresslevel=1)
    registry.push_image("test/resume", "1", [(plain, blob, OCI_GZIP)])
    proxy = DroppingProxy(registry.host, sha256(blob), honor_range)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        ref = f"127.0.0.1:{proxy.server_address[1]}/test/resume:1"
        out = daemon.docker("pull", ref, check=True).stdout
        assert ": Pull complete" in out
        assert proxy.ranges[0] == "" and proxy.ranges[1].startswith("bytes=")
        assert int(proxy.ranges[1][6:].rstrip("-")) > 0
        assert inspect(daemon, ref)["RootFS"]["Layers"] == [sha256(plain)]
        daemon.docker("rmi", ref, check=True)
    finally:
        proxy.shutdown()


# ---- authentication ---------------------------------------------------
def test_basic_auth_login_push_pull_logout(daemon: Daemon, busybox: str, basic_registry: Registry) -> None:
    reg = basic_registry
    ref = f"{reg.host}/private/bb:1"
    daemon.docker("tag", "busybox", ref, check=True)
    proc = daemon.docker("push", ref, input="")
    assert proc.returncode == 1 and "no basic auth credentials" in proc.stdout + proc.stderr

    bad = login(daemon, reg, "wrong")
    assert bad.returncode == 1
    assert f"login attempt to http://{reg.host}/v2/ failed with status: 401 Unauthorized" in bad.stderr
    good = login(daemon, reg)
    assert good.returncode == 0, good.stderr
    assert "Login Succeeded" in good.stdout
    try:
        daemon.docker("push", ref, check=True)
        daemon.docker("rmi", ref, check=True)
        daemon.docker("pull", ref, check=True)
        assert inspect(daemon, ref)["Id"] == busybox
    finally:
        daemon.docker("logout", reg.host, check=True)
    daemon.docker("rmi", ref, check=True)
    proc = daemon.docker("pull", ref, input="")
    assert proc.returncode == 1 and "no basic auth credentials" in proc.stderr


def test_bearer_token_flow(daemon: Daemon, busybox: str, token_registry: Registry) -> None:
    reg = token_registry
    ref = f"{reg.host}/tok/bb:1"
    daemon.docker("tag", "busybox", ref, check=True)
    anonymous = daemon.docker("push", ref, input="")
    assert anonymous.returncode == 1
    assert "unauthorized" in (anonymous.stdout + anonymous.stderr).lower()

    bad = login(daemon, reg, "wrong")
    assert bad.returncode == 1 and "incorrect username or password" in bad.stderr
    assert login(daemon, reg).returncode == 0
    try:
        out = daemon.docker("push", ref, check=True).stdout
        assert ": Pushed" in out
        daemon.docker("rmi", ref, check=True)
        daemon.docker("pull", ref, check=True)
        assert inspect(daemon, ref)["Id"] == busybox
    finally:
        daemon.docker("logout", reg.host, check=True)
    daemon.docker("rmi", ref, check=True)
    proc = daemon.docker("pull", ref, input="")
    assert proc.returncode == 1 and "unauthorized" in proc.stderr.lower()


# ---- interruption -----------------------------------------------------
BIG = 96 << 20


@pytest.fixture(scope="module")
def big_image(busybox_tar: str, registry: Registry) -> tuple[str, str]:
    """(reference, image ID) of busybox plus one ~96 MB uncompressed layer."""
    big = tar_of({"big.bin": os.urandom(BIG)})
    _, desc = registry.push_image("test/big", "1", [busybox_layer(busybox_tar), (big, big, OCI_TAR)])
    return f"{registry.host}/test/big:1", desc["config_digest"]


def _pull_until_downloading(url: str, ref: str) -> Any:
    """Start a pull through the API and return its client once the big layer is mid-download."""
    import docker
    api = docker.APIClient(base_url=url, timeout=120)
    name, tag = ref.rsplit(":", 1)
    for msg in api.pull(name, tag=tag, stream=True, decode=True):
        detail = msg.get("progressDetail") or {}
        if msg.get("status") == "Downloading" and detail.get("total", 0) > BIG > detail.get("current", 0):
            return api
    raise AssertionError("pull finished before it could be interrupted")


def test_client_disconnect_cancels_pull(daemon: Daemon, busybox: str, big_image: tuple[str, str]) -> None:
    ref, image_id = big_image
    api = _pull_until_downloading(daemon.url, ref)
    api.close()
    deadline = time.time() + 20
    while data_root_state(daemon)[1] and time.time() < deadline:
        time.sleep(0.1)
    assert data_root_state(daemon)[1] == []
    assert daemon.docker("image", "inspect", ref).returncode == 1
    daemon.docker("pull", ref, check=True, timeout=180)
    assert inspect(daemon, ref)["Id"] == image_id
    size = daemon.docker("run", "--rm", ref, "stat", "-c", "%s", "/big.bin", check=True).stdout.strip()
    assert size == str(BIG)
    daemon.docker("rmi", ref, check=True)


def test_push_large_layer_in_chunks(daemon: Daemon, big_image: tuple[str, str], registry: Registry) -> None:
    """A pulled uncompressed layer is pushed gzip-compressed, in chunked PATCH uploads."""
    ref, image_id = big_image
    copy = f"{registry.host}/test/bigcopy:1"
    daemon.docker("pull", ref, check=True, timeout=180)
    daemon.docker("tag", ref, copy, check=True)
    out = daemon.docker("push", copy, check=True, timeout=300).stdout
    assert ": Pushed" in out
    manifest = requests.get(registry.url("/v2/test/bigcopy/manifests/1"), timeout=10, headers={
        "Accept": "application/vnd.docker.distribution.manifest.v2+json"}).json()
    assert manifest["config"]["digest"] == image_id
    top = manifest["layers"][-1]
    assert top["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip" and top["size"] > 16 << 20
    blob = requests.get(registry.url(f"/v2/test/bigcopy/blobs/{top['digest']}"), timeout=60).content
    assert sha256(blob) == top["digest"]
    assert sha256(gzip.decompress(blob)) == inspect(daemon, copy)["RootFS"]["Layers"][-1]
    daemon.docker("rmi", ref, copy, check=True)


def test_daemon_killed_mid_pull_leaves_no_image(big_image: tuple[str, str]) -> None:
    ref, image_id = big_image
    root = tempfile.mkdtemp(prefix="pydock-regkill-", dir="/tmp")
    d = Daemon(root=root, log_path=os.path.join(root, "pydockd.log"))
    d.env = {**os.environ, "DOCKER_HOST": d.url, "DOCKER_CONFIG": os.path.join(root, "docker-config")}
    d.env.pop("DOCKER_CONTEXT", None)
    d.start()
    try:
        _pull_until_downloading(d.url, ref)
        d.stop(signal.SIGKILL)
        d.start()
        assert d.docker("images", "-qa", check=True).stdout == ""
        assert data_root_state(d) == ({"empty", INIT_LAYER}, [])
        out = d.docker("pull", ref, check=True, timeout=180).stdout
        assert f"Status: Downloaded newer image for {ref}" in out
        assert inspect(d, ref)["Id"] == image_id
    finally:
        _cleanup_root(d)


# ---- TLS and insecure registries ---------------------------------------
# Loopback registries are always insecure (TLS unverified), as with dockerd, so
# the TLS tests need an address that is not loopback yet stays on this
# machine: one from the benchmarking range, added to `lo` for this module.
SECURE_ADDR = "198.18.77.1"


@pytest.fixture(scope="module")
def secure_addr() -> Iterator[str]:
    add = subprocess.run(["ip", "addr", "add", f"{SECURE_ADDR}/32", "dev", "lo"], capture_output=True, text=True,
                         check=False)
    assert add.returncode == 0 or "File exists" in add.stderr, add.stderr
    yield SECURE_ADDR
    subprocess.run(["ip", "addr", "del", f"{SECURE_ADDR}/32", "dev", "lo"], capture_output=True, check=False)


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca_and_server_cert(root: str, ip: str) -> tuple[str, str, str]:
    """(CA certificate, server certificate, server key): a private CA signing a certificate for `ip`."""
    ca_key, ca = os.path.join(root, "ca.key"), os.path.join(root, "ca.crt")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
            "-subj", "/CN=pydock test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    cert, key = sign_cert(root, "server", f"subjectAltName=IP:{ip}\nextendedKeyUsage=serverAuth\n")
    return ca, cert, key


def sign_cert(root: str, name: str, extensions: str) -> tuple[str, str]:
    """(certificate, key) named `name`, signed by the CA in `root`."""
    key, csr, cert, ext = (os.path.join(root, name + s) for s in (".key", ".csr", ".crt", ".ext"))
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
    with open(ext, "w") as f:
        f.write(extensions + "basicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", csr, "-CA", os.path.join(root, "ca.crt"), "-CAkey", os.path.join(root, "ca.key"),
            "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext)
    return cert, key


@dataclass
class TLSRegistry:
    reg: Registry
    ca: str
    root: str


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory, secure_addr: str) -> Iterator[TLSRegistry]:
    root = str(tmp_path_factory.mktemp("tls-registry"))
    ca, cert, key = make_ca_and_server_cert(root, secure_addr)
    reg = start_registry(root, addr=secure_addr, tls=(cert, key))
    yield TLSRegistry(reg, ca, root)
    stop_registry(reg)


@pytest.fixture(scope="module")
def mtls_registry(tmp_path_factory: pytest.TempPathFactory, secure_addr: str) -> Iterator[TLSRegistry]:
    """HTTPS that also demands a client certificate signed by the same CA."""
    root = str(tmp_path_factory.mktemp("mtls-registry"))
    ca, cert, key = make_ca_and_server_cert(root, secure_addr)
    sign_cert(root, "client", "extendedKeyUsage=clientAuth\n")
    reg = start_registry(root, addr=secure_addr, tls=(cert, key), tls_extra=f"    clientcas:\n      - {ca}\n")
    yield TLSRegistry(reg, ca, root)
    stop_registry(reg)


@pytest.fixture(scope="module")
def plain_secure_addr_registry(tmp_path_factory: pytest.TempPathFactory, secure_addr: str) -> Iterator[Registry]:
    """Plain HTTP on an address that is not loopback: usable only when listed as insecure."""
    reg = start_registry(str(tmp_path_factory.mktemp("plain-registry")), addr=secure_addr)
    yield reg
    stop_registry(reg)


@contextlib.contextmanager
def private_daemon(busybox_tar: str, *args: str) -> Iterator[Daemon]:
    """A daemon of its own with extra pydockd options, holding busybox:latest."""
    root = tempfile.mkdtemp(prefix="pydock-regtls-", dir="/tmp")
    d = Daemon(root=root, log_path=os.path.join(root, "pydockd.log"), extra_args=list(args))
    d.env = {**os.environ, "DOCKER_HOST": d.url, "DOCKER_CONFIG": os.path.join(root, "docker-config")}
    d.env.pop("DOCKER_CONTEXT", None)
    try:
        d.start()
        d.docker("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest", check=True)
        yield d
    finally:
        _cleanup_root(d)


def test_https_registry_trusted_through_certs_dir(busybox_tar: str, tls_registry: TLSRegistry,
                                                  tmp_path: Any) -> None:
    host = tls_registry.reg.host
    os.makedirs(tmp_path / "certs.d" / host)
    shutil.copy(tls_registry.ca, tmp_path / "certs.d" / host / "ca.crt")
    with private_daemon(busybox_tar, "--certs-dir", str(tmp_path / "certs.d")) as d:
        ref = f"{host}/tls/bb:1"
        d.docker("tag", "busybox", ref, check=True)
        assert ": Pushed" in d.docker("push", ref, check=True).stdout
        image_id = inspect(d, ref)["Id"]
        d.docker("rmi", ref, "busybox", check=True)
        out = d.docker("pull", ref, check=True).stdout
        assert ": Pull complete" in out and f"Status: Downloaded newer image for {ref}" in out
        assert inspect(d, ref)["Id"] == image_id
        proc = d.docker("run", "--rm", ref, "echo", "over-https", timeout=120)
        assert proc.returncode == 0 and proc.stdout == "over-https\n", proc.stderr
    # the registry really speaks TLS, with the test CA
    assert requests.get(tls_registry.reg.url("/v2/tls/bb/tags/list"), verify=tls_registry.ca,
                        timeout=10).json()["tags"] == ["1"]


def test_https_registry_unknown_authority(daemon: Daemon, tls_registry: TLSRegistry) -> None:
    host = tls_registry.reg.host
    for args in (("pull", f"{host}/tls/bb:1"), ("login", host, "-u", USER, "--password-stdin")):
        proc = daemon.docker(*args, input=PASSWORD)
        assert proc.returncode == 1
        assert (f'Get "https://{host}/v2/": tls: failed to verify certificate: '
                "x509: certificate signed by unknown authority") in proc.stderr, proc.stderr


def test_plain_http_needs_insecure_registries(daemon: Daemon, plain_secure_addr_registry: Registry) -> None:
    host = plain_secure_addr_registry.host
    proc = daemon.docker("pull", f"{host}/plain/bb:1")
    assert proc.returncode == 1
    assert f'Get "https://{host}/v2/": http: server gave HTTP response to HTTPS client' in proc.stderr


def test_insecure_registries_in_config_file(busybox_tar: str, tls_registry: TLSRegistry,
                                            plain_secure_addr_registry: Registry, tmp_path: Any) -> None:
    """daemon.json's insecure-registries: a CIDR covers both; TLS is then unverified and HTTP allowed."""
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({"insecure-registries": [f"{SECURE_ADDR}/32"]}))
    with private_daemon(busybox_tar, "--config-file", str(config), "--certs-dir", str(tmp_path / "none")) as d:
        for reg in (tls_registry.reg, plain_secure_addr_registry):
            ref = f"{reg.host}/insecure/bb:1"
            d.docker("tag", "busybox", ref, check=True)
            d.docker("push", ref, check=True)
            d.docker("rmi", ref, check=True)
            assert f"Status: Downloaded newer image for {ref}" in d.docker("pull", ref, check=True).stdout
        info = json.loads(d.docker("info", "--format", "{{json .RegistryConfig}}", check=True).stdout)
        assert f"{SECURE_ADDR}/32" in info["InsecureRegistryCIDRs"] and "127.0.0.0/8" in info["InsecureRegistryCIDRs"]
    config.write_text(json.dumps({"insecure-registries": ["x"], "no-such-option": 1}))
    bad = Daemon(root=str(tmp_path / "bad"), log_path=str(tmp_path / "bad.log"), extra_args=["--config-file",
                                                                                          str(config)])
    with pytest.raises(RuntimeError, match="the following directives don't match any configuration option: "
                                           "no-such-option"):
        bad.start()


def test_https_client_certificate_from_certs_dir(busybox_tar: str, mtls_registry: TLSRegistry, tmp_path: Any) -> None:
    """`client.cert`/`client.key` next to `ca.crt` authenticate pydockd to a registry that demands it."""
    host = mtls_registry.reg.host
    certs = tmp_path / "certs.d" / host
    os.makedirs(certs)
    shutil.copy(mtls_registry.ca, certs / "ca.crt")
    shutil.copy(os.path.join(mtls_registry.root, "client.crt"), certs / "client.cert")
    with private_daemon(busybox_tar, "--certs-dir", str(tmp_path / "certs.d")) as d:
        ref = f"{host}/mtls/bb:1"
        d.docker("tag", "busybox", ref, check=True)
        missing_key = d.docker("push", ref)
        assert missing_key.returncode == 1
        assert ("missing key client.key for client certificate client.cert. "
                "CA certificates must use the extension .crt") in missing_key.stdout + missing_key.stderr
        shutil.copy(os.path.join(mtls_registry.root, "client.key"), certs / "client.key")
        assert ": Pushed" in d.docker("push", ref, check=True).stdout
        d.docker("rmi", ref, "busybox", check=True)
        assert ": Pull complete" in d.docker("pull", ref, check=True).stdout
        os.unlink(certs / "client.cert")
        os.unlink(certs / "client.key")
        d.docker("rmi", ref, check=True)
        refused = d.docker("pull", ref)
        assert refused.returncode == 1
        # which alert the server sends depends on its Go and TLS versions
        assert re.search(rf'Get "https://{re.escape(host)}/v2/": remote error: tls: '
                         r"(bad certificate|certificate required)$", refused.stderr, re.MULTILINE), refused.stderr


def test_insecure_registry_rules() -> None:
    """dockerd's isSecureIndex: exact index names, CIDRs (names resolved), loopback always, Hub never."""
    assert is_insecure("127.0.0.1:5000") and is_insecure("localhost:5000") and is_insecure("[::1]:5000")
    assert not is_insecure("198.18.77.1:5000")
    assert is_insecure("198.18.77.1:5000", ["198.18.77.1:5000"])
    assert not is_insecure("198.18.77.1:5001", ["198.18.77.1:5000"])  # index names match exactly
    assert not is_insecure("198.18.77.1:5000", ["198.18.77.1"])
    assert is_insecure("198.18.77.1:5000", ["198.18.0.0/15"])
    assert not is_insecure("docker.io", ["0.0.0.0/0"])


def test_certs_dir_key_without_certificate(tmp_path: Any) -> None:
    host = tmp_path / "reg.example:5000"
    host.mkdir()
    (host / "client.key").write_text("not used")
    with pytest.raises(RegistryError, match="missing client certificate client.cert for key client.key"):
        tls_context(str(tmp_path), "reg.example:5000", insecure=False)
    assert tls_context(str(tmp_path), "other:5000", insecure=False).verify_mode.name == "CERT_REQUIRED"


def test_registry_mirror_serves_docker_hub_pulls(busybox_tar: str, registry: Registry, tmp_path: Any) -> None:
    """Docker Hub is unreachable here, so a Hub image can only come from the mirror in daemon.json."""
    plain = tar_of({"mirrored.txt": b"from the mirror\n"})
    registry.push_image("library/pydock-mirrored", "1", [busybox_layer(busybox_tar), (plain, plain, OCI_TAR)],
                        cmd=["cat", "/mirrored.txt"])
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({"registry-mirrors": ["http://127.0.0.1:1", f"http://{registry.host}"]}))
    with private_daemon(busybox_tar, "--config-file", str(config)) as d:
        out = d.docker("pull", "pydock-mirrored:1", check=True, timeout=120).stdout
        assert "Status: Downloaded newer image for pydock-mirrored:1" in out
        assert inspect(d, "pydock-mirrored:1")["RepoDigests"][0].startswith("pydock-mirrored@sha256:")
        proc = d.docker("run", "--rm", "pydock-mirrored:1", timeout=120)
        assert proc.returncode == 0 and proc.stdout == "from the mirror\n", proc.stderr
        missing = d.docker("pull", "pydock-not-mirrored:1")
        assert missing.returncode == 1 and "registry-1.docker.io" in missing.stderr, missing.stderr
