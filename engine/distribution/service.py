"""`docker pull`, `docker push` and `docker login` against v2 registries.

The service is what the API router sees; the work is in pull.py and push.py,
which share the registry sessions made here and the record of where each
layer's compressed blob lives (locations.py), so pushing a pulled or already
pushed layer is a HEAD or a cross-repository mount, not an upload.
"""
from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

from engine.config import EngineConfig
from engine.distribution.errors import AuthFailed
from engine.distribution.inspect import inspect, parse_named
from engine.distribution.locations import BlobLocations
from engine.distribution.plan import PullPlan, PushPlan
from engine.distribution.progress import Message
from engine.distribution.pull import Puller
from engine.distribution.push import Pusher
from engine.distribution.registry import AuthConfig, Registry
from engine.distribution.tls import is_insecure, registry_host
from engine.errors import Unauthorized
from engine.events import EventBus
from engine.image.layers import LayerStore
from engine.image.service import ImageService
from engine.store.db import BlobStore


class DistributionService:
    def __init__(self, cfg: EngineConfig, locations: BlobLocations, blobs: BlobStore, layers: LayerStore,
                 images: ImageService, events: EventBus) -> None:
        self.cfg = cfg
        self.puller = Puller(cfg, self.registry, blobs, layers, images, locations, events)
        self.pusher = Pusher(cfg, self.registry, blobs, images, locations, events)

    def registry(self, host: str, auth: AuthConfig, mirror: str = "") -> Registry:
        """A session with `host`, or with a mirror of it (a URL: its scheme is the one to use)."""
        address = urllib.parse.urlsplit(mirror).netloc if mirror else host
        return Registry(host, auth, is_insecure(address, self.cfg.insecure_registries), self.cfg.certs_dir, mirror)

    def login(self, auth: AuthConfig) -> dict[str, str]:
        reg = self.registry(registry_host(auth.serveraddress), auth)
        try:
            reg.login()
        finally:
            reg.close()
        return {"IdentityToken": "", "Status": "Login Succeeded"}

    def inspect(self, name: str, auth: AuthConfig) -> dict[str, Any]:
        """`GET /distribution/{name}/json`: the manifest's descriptor and platforms, nothing pulled.

        Refused credentials are a 401 here (dockerd passes the registry's
        error through), not the 500 a pull answers with.
        """
        ref = parse_named(name)
        reg = self.registry(ref.domain, auth)
        try:
            return inspect(reg, ref)
        except AuthFailed as e:
            raise Unauthorized(e.message.split(": ", 1)[-1]) from None
        finally:
            reg.close()

    def resolve_pull(self, name: str, auth: AuthConfig, platform: str = "") -> PullPlan:
        """Fetch and check the manifest; every failure here is an HTTP error, before any progress."""
        return self.puller.resolve(name, auth, platform)

    def pull_all_tags(self, name: str, auth: AuthConfig, platform: str,
                      cancel: threading.Event) -> Iterator[Message]:
        return self.puller.pull_all_tags(name, auth, platform, cancel)

    def pull(self, plan: PullPlan, cancel: threading.Event) -> Iterator[Message]:
        return self.puller.pull(plan, cancel)

    def resolve_push(self, name: str, tag: str, auth: AuthConfig) -> PushPlan:
        return self.pusher.resolve(name, tag, auth)

    def push(self, plan: PushPlan, cancel: threading.Event) -> Iterator[Message]:
        return self.pusher.push(plan, cancel)
