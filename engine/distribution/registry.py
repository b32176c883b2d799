"""HTTP client for the OCI distribution protocol (registry API v2).

One `Registry` talks to one host with one set of credentials. Like dockerd it
pings `/v2/` first: the answer tells which scheme works (HTTPS, or plain HTTP
for insecure registries) and which authentication the registry wants (none,
Basic, or a Bearer token from the realm in its WWW-Authenticate challenge).
Tokens are cached per scope so a pull with three concurrent downloads asks
the token endpoint once.

TLS trust works as in dockerd: the system CAs plus every `*.crt` in
`<certs dir>/<host:port>/`, and a `*.cert`/`*.key` pair there as the client
certificate. A registry is insecure (TLS unverified, plain HTTP allowed) only
when its address is loopback or listed in insecure-registries.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import requests
import requests.adapters
import urllib3

from engine.distribution.errors import AuthFailed, RegistryError, RegistryUnreachable
from engine.distribution.tls import DOCKER_HUB, HUB_ENDPOINT, TLSAdapter, tls_context
from engine.errors import EngineError, InvalidParameter, NotFound, Unauthorized

MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_TYPES = (MEDIA_DOCKER_MANIFEST, MEDIA_OCI_MANIFEST)
INDEX_TYPES = (MEDIA_DOCKER_LIST, MEDIA_OCI_INDEX)
ACCEPT = ", ".join(MANIFEST_TYPES + INDEX_TYPES)

HUB_AUTH_ADDRESS = "https://index.docker.io/v1/"
CHUNK = 1 << 20
UPLOAD_CHUNK = 16 << 20
TIMEOUT = (15, 60)  # connect, read

# Insecure registries are contacted with TLS verification off (and over plain
# HTTP as a fallback); urllib3 would warn on every such request.
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


@dataclass(frozen=True)
class AuthConfig:
    username: str = ""
    password: str = ""
    identitytoken: str = ""
    serveraddress: str = ""

    @classmethod
    def from_header(cls, value: str) -> AuthConfig:
        """Decode X-Registry-Auth: base64url JSON, padding optional, as the docker CLI sends it."""
        if not value:
            return cls()
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            data = json.loads(raw) if raw.strip() else {}
        except (binascii.Error, ValueError) as e:
            raise InvalidParameter(f"invalid X-Registry-Auth header: {e}") from None
        return cls.from_dict(data if isinstance(data, dict) else {})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuthConfig:
        return cls(str(data.get("username") or ""), str(data.get("password") or ""),
                   str(data.get("identitytoken") or ""), str(data.get("serveraddress") or ""))




_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic", "bearer" or "" for an open registry
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge:
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)).replace('\\"', '"')
              for m in _PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params)


def registry_errors(resp: requests.Response) -> str:
    """Docker's rendering of a registry error body: `code: message` (lowercased code)."""
    try:
        errors = resp.json().get("errors") or []
    except ValueError:
        errors = []
    parts = []
    for e in errors:
        if isinstance(e, dict):
            code = str(e.get("code", "")).lower().replace("_", " ")
            msg = str(e.get("message", ""))
            parts.append(f"{code}: {msg}" if code and msg else code or msg)
    return ", ".join(parts) or f"{resp.status_code} {resp.reason}"


class Registry:
    """A session with one registry host."""

    def __init__(self, host: str, auth: AuthConfig | None = None, insecure: bool = False,
                 certs_dir: str = "", mirror: str = "") -> None:
        """`mirror`, a URL such as http://10.0.0.2:5000, serves `host`'s repositories (pulls only)."""
        self.host = host
        url = urllib.parse.urlsplit(mirror)
        self.endpoint = url.netloc if mirror else HUB_ENDPOINT if host == DOCKER_HUB else host
        self.schemes = (url.scheme,) if mirror else ("https", "http") if insecure else ("https",)
        self.auth = auth or AuthConfig()
        self.insecure = insecure
        self.session = requests.Session()
        self.session.mount("https://", TLSAdapter(tls_context(certs_dir, self.endpoint, insecure)))
        self.session.headers["User-Agent"] = "pydock/0.1 (distribution)"
        self.base = ""
        self.challenge = Challenge("", {})
        self._tokens: dict[str, str] = {}
        self._last_ping: requests.Response | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self.session.close()

    # ---- connection and authentication -------------------------------
    def ping(self) -> requests.Response:
        """GET /v2/ once: pick the scheme and learn the auth challenge."""
        with self._lock:
            if self.base and self._last_ping is not None:
                return self._last_ping
            schemes = self.schemes
            error: Exception | None = None
            for scheme in schemes:
                url = f"{scheme}://{self.endpoint}/v2/"
                try:
                    resp = self.session.get(url, timeout=TIMEOUT, verify=not self.insecure)
                except requests.RequestException as e:
                    error = e
                    continue
                self.base = f"{scheme}://{self.endpoint}"
                header = resp.headers.get("WWW-Authenticate", "")
                if resp.status_code == 401 and header:
                    self.challenge = parse_challenge(header)
                self._last_ping = resp
                return resp
            raise RegistryUnreachable(f'Get "{schemes[-1]}://{self.endpoint}/v2/": {_reason(error)}')

    def _authorization(self, scopes: tuple[str, ...], url: str) -> str:
        if self.challenge.scheme == "basic":
            if not self.auth.username:
                raise AuthFailed(f'{_method_url("GET", url)}: no basic auth credentials')
            return _basic(self.auth.username, self.auth.password)
        if self.challenge.scheme == "bearer":
            return "Bearer " + self.token(scopes, url)
        return ""

    def token(self, scopes: tuple[str, ...], url: str) -> str:
        key = " ".join(sorted(scopes))
        with self._lock:
            cached = self._tokens.get(key)
        if cached:
            return cached
        params = self.challenge.params
        realm = params.get("realm", "")
        if not realm:
            raise RegistryError(f"{self.host}: bearer challenge without realm")
        query: list[tuple[str, str]] = [("service", params.get("service", ""))] if params.get("service") else []
        query += [("scope", s) for s in scopes]
        headers = {}
        if self.auth.username:
            query.append(("account", self.auth.username))
            headers["Authorization"] = _basic(self.auth.username, self.auth.password)
        try:
            resp = self.session.get(realm, params=query, headers=headers, timeout=TIMEOUT, verify=not self.insecure)
        except requests.RequestException as e:
            raise RegistryError(f'Get "{realm}": {_reason(e)}') from None
        if resp.status_code in (401, 403):
            raise AuthFailed(f'{_method_url("GET", url)}: unauthorized: {_token_error(resp)}')
        if resp.status_code != 200:
            raise RegistryError(f'Get "{realm}": unexpected status from token endpoint: {resp.status_code}')
        body = resp.json()
        tok = body.get("token") or body.get("access_token") or ""
        if not tok:
            raise RegistryError(f'Get "{realm}": token endpoint answered without a token')
        with self._lock:
            self._tokens[key] = tok
        return tok

    def login(self) -> None:
        """Check the credentials the way `docker login` does."""
        resp = self.ping()
        if self.challenge.scheme == "bearer":
            try:
                self.token((), self.base + "/v2/")
            except AuthFailed as e:
                raise Unauthorized(e.message) from None
            return
        if self.challenge.scheme == "basic":
            resp = self.session.get(self.base + "/v2/", timeout=TIMEOUT, verify=not self.insecure,
                                    headers={"Authorization": _basic(self.auth.username, self.auth.password)})
        if resp.status_code != 200:
            raise Unauthorized(f"login attempt to {self.base}/v2/ failed with status: "
                               f"{resp.status_code} {resp.reason}")

    # ---- requests -----------------------------------------------------
    def request(self, method: str, path: str, scopes: tuple[str, ...], *, ok: tuple[int, ...] = (200,),
                headers: dict[str, str] | None = None, stream: bool = False, **kw: Any) -> requests.Response:
        """One authenticated request; a 401 with a fresh challenge is answered once, as dockerd does."""
        self.ping()
        url = path if "://" in path else self.base + path
        for attempt in (0, 1):
            hdrs = dict(headers or {})
            authz = self._authorization(scopes, url)
            if authz:
                hdrs["Authorization"] = authz
            try:
                resp = self.session.request(method, url, headers=hdrs, stream=stream, timeout=TIMEOUT,
                                            verify=not self.insecure, **kw)
            except requests.RequestException as e:
                raise RegistryUnreachable(f"{_method_url(method, url)}: {_reason(e)}") from None
            if resp.status_code == 401 and attempt == 0 and resp.headers.get("WWW-Authenticate"):
                fresh = parse_challenge(resp.headers["WWW-Authenticate"])
                with self._lock:
                    if fresh.scheme != self.challenge.scheme or "error" in fresh.params:
                        self._tokens.clear()
                    self.challenge = Challenge(fresh.scheme, {**self.challenge.params, **fresh.params})
                if fresh.scheme == "bearer" and "error" not in fresh.params:
                    resp.close()
                    continue
            if resp.status_code in ok:
                return resp
            raise self._error(method, url, resp)
        raise AssertionError("unreachable")

    def _error(self, method: str, url: str, resp: requests.Response) -> EngineError:
        detail = registry_errors(resp) if method != "HEAD" else f"{resp.status_code} {resp.reason}"
        resp.close()
        if resp.status_code in (401, 403):
            if method == "HEAD":
                detail = "unauthorized: authentication required" if resp.status_code == 401 else "denied"
            return AuthFailed(f"{_method_url(method, url)}: {detail}")
        if resp.status_code == 404:
            return NotFound(f"{_method_url(method, url)}: {detail}")
        return RegistryError(f"{_method_url(method, url)}: {detail}")

    # ---- protocol operations -----------------------------------------
    def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str, str]:
        """Raw manifest bytes, media type and digest (verified when `reference` is a digest)."""
        resp = self.request("GET", f"/v2/{repo}/manifests/{reference}", (pull_scope(repo),),
                            ok=(200,), headers={"Accept": ACCEPT})
        raw = resp.content
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(f"manifest verification failed for digest {reference}")
        media = resp.headers.get("Content-Type", "").split(";")[0].strip()
        try:
            body = json.loads(raw)
        except ValueError:
            raise RegistryError(f"invalid manifest for {repo}:{reference}: not JSON") from None
        if not isinstance(body, dict):
            raise RegistryError(f"invalid manifest for {repo}:{reference}: not a JSON object")
        return raw, body.get("mediaType") or media, digest

    def put_manifest(self, repo: str, reference: str, raw: bytes, media_type: str) -> str:
        resp = self.request("PUT", f"/v2/{repo}/manifests/{reference}", (push_scope(repo),), ok=(201, 200),
                            headers={"Content-Type": media_type}, data=raw)
        return resp.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(raw).hexdigest()

    def blob_exists(self, repo: str, digest: str, scopes: tuple[str, ...] | None = None) -> bool:
        try:
            self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scopes or (pull_scope(repo),),
                         allow_redirects=True)
        except NotFound:
            return False
        return True

    def open_blob(self, repo: str, digest: str, offset: int = 0) -> requests.Response:
        """Stream a blob; with `offset`, ask for the rest (status 206) or get it all again (200)."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        return self.request("GET", f"/v2/{repo}/blobs/{digest}", (pull_scope(repo),), ok=(200, 206),
                            headers=headers, stream=True)

    def read_blob(self, repo: str, digest: str, limit: int = 64 << 20) -> bytes:
        """A small blob (a config) in memory, verified."""
        resp = self.open_blob(repo, digest)
        data = bytearray()
        with resp:
            for chunk in resp.iter_content(CHUNK):
                data += chunk
                if len(data) > limit:
                    raise RegistryError(f"blob {digest} is larger than {limit} bytes")
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise RegistryError(f"blob verification failed for digest {digest}")
        return bytes(data)

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Cross-repository mount: True when the registry linked the blob without an upload."""
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/?mount={digest}&from={from_repo}",
                            (push_scope(repo), pull_scope(from_repo)), ok=(201, 202))
        if resp.status_code == 202:
            self._cancel_upload(resp, repo)
            return False
        return True

    def _cancel_upload(self, resp: requests.Response, repo: str) -> None:
        location = resp.headers.get("Location")
        if location:
            try:
                self.request("DELETE", self._absolute(location), (push_scope(repo),), ok=(204, 404))
            except EngineError:
                pass  # the registry expires abandoned uploads itself

    def upload_blob(self, repo: str, digest: str, src: IO[bytes], size: int,
                    progress: Callable[[int], None] = lambda n: None,
                    cancelled: Callable[[], bool] = lambda: False) -> None:
        """Monolithic PUT for small blobs, chunked PATCHes with Content-Range for larger ones."""
        scopes = (push_scope(repo),)
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/", scopes, ok=(202,))
        location = self._absolute(resp.headers["Location"])
        if size <= UPLOAD_CHUNK:
            data = src.read()
            self.request("PUT", _with_digest(location, digest), scopes, ok=(201,), data=data,
                         headers={"Content-Type": "application/octet-stream"})
            progress(len(data))
            return
        sent = 0
        while True:
            if cancelled():
                raise RegistryError("push cancelled")
            chunk = src.read(UPLOAD_CHUNK)
            if not chunk:
                break
            resp = self.request("PATCH", location, scopes, ok=(202,), data=chunk, headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{sent}-{sent + len(chunk) - 1}",
                "Content-Length": str(len(chunk))})
            location = self._absolute(resp.headers.get("Location", location))
            sent += len(chunk)
            progress(sent)
        self.request("PUT", _with_digest(location, digest), scopes, ok=(201,), data=b"")

    def tags(self, repo: str) -> list[str]:
        resp = self.request("GET", f"/v2/{repo}/tags/list", (pull_scope(repo),))
        return list(resp.json().get("tags") or [])

    def _absolute(self, location: str) -> str:
        return urllib.parse.urljoin(self.base + "/", location)


def pull_scope(repo: str) -> str:
    return f"repository:{repo}:pull"


def push_scope(repo: str) -> str:
    return f"repository:{repo}:pull,push"


def _with_digest(location: str, digest: str) -> str:
    return location + ("&" if "?" in location else "?") + "digest=" + urllib.parse.quote(digest)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _method_url(method: str, url: str) -> str:
    return f'{method.capitalize()} "{url}"'


def _reason(e: Exception | None) -> str:
    """The innermost cause of a connection failure in Go's words, without urllib3's object reprs."""
    tls = _tls_reason(e)
    if tls:
        return tls
    text = str(e) if e else "unreachable"
    m = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    return m.group(1).strip().lower() if m else text


# OpenSSL verify codes and what Go's crypto/x509 says for them
_X509_ERRORS = {
    2: "certificate signed by unknown authority",  # unable to get issuer certificate
    18: "certificate signed by unknown authority",  # self-signed leaf
    19: "certificate signed by unknown authority",  # self-signed certificate in chain
    20: "certificate signed by unknown authority",  # unable to get local issuer certificate
    21: "certificate signed by unknown authority",  # unable to verify the first certificate
    9: "certificate has expired or is not yet valid",
    10: "certificate has expired or is not yet valid",
}

# OpenSSL's alert names where Go's differ
_TLS_ALERTS = {"unknown ca": "unknown certificate authority", "protocol version": "protocol version not supported"}


def _tls_reason(e: BaseException | None) -> str:
    """Render a TLS failure as dockerd's message (Go's tls/x509 errors)."""
    seen: set[int] = set()
    stack: list[Any] = [e]
    while stack:
        cur = stack.pop()
        if not isinstance(cur, BaseException) or id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, ssl.SSLCertVerificationError):
            code = cur.verify_code
            detail = _X509_ERRORS.get(code) or str(cur.verify_message or cur.reason)
            return f"tls: failed to verify certificate: x509: {detail}"
        if isinstance(cur, ssl.SSLError) and cur.reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE"):
            return "http: server gave HTTP response to HTTPS client"
        alert = re.fullmatch(r"(?:SSLV3|TLSV1|TLSV13)_ALERT_(\w+)", str(getattr(cur, "reason", "")))
        if isinstance(cur, ssl.SSLError) and alert:
            text = alert.group(1).lower().replace("_", " ")
            return "remote error: tls: " + _TLS_ALERTS.get(text, text)
        stack.extend(a for a in cur.args if isinstance(a, BaseException))
        stack.extend(x for x in (getattr(cur, "reason", None), cur.__cause__, cur.__context__))
    return ""


def _token_error(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:200] or "authentication required"
    if isinstance(body, dict):
        if body.get("details") or body.get("message"):
            return str(body.get("details") or body.get("message"))
        return registry_errors(resp)
    return "authentication required"


class Retrying:
    """Bounded retries with backoff for dropped connections during a blob download."""

    def __init__(self, attempts: int = 5) -> None:
        self.left = attempts

    def again(self) -> bool:
        self.left -= 1
        if self.left <= 0:
            return False
        time.sleep(0.5 * (5 - self.left))
        return True
