"""Composition root: builds the engine's services and wires them together.

This is the only place that knows every service; each service receives just
the collaborators it needs, so they can be tested and replaced one by one.
"""
from __future__ import annotations

import os
import shutil

from .config import EngineConfig
from .containers import ContainerService
from .events import EventBus
from .images import ImageService
from .layers import LayerStore
from .runtime import Runtime
from .store import BlobStore, MetaStore
from .system import SystemService


class Engine:
    def __init__(self, cfg: EngineConfig) -> None:
        cfg.ensure_dirs()
        self.cfg = cfg
        self.meta = MetaStore(cfg.db_path)
        self.blobs = BlobStore(cfg.blobs_dir, cfg.tmp_dir)
        self.events = EventBus()
        self.layers = LayerStore(cfg.layers_dir, self.meta, self.blobs)
        self.images = ImageService(self.meta, self.blobs, self.layers, self.events, cfg.tmp_dir)
        self.runtime = Runtime(cfg)
        self.containers = ContainerService(cfg, self.meta, self.images, self.layers, self.runtime, self.events)
        self.system = SystemService(cfg, self.meta, self.images, self.containers)

    def start(self) -> None:
        """Recover from whatever the previous daemon left: temp files, half layers, running containers."""
        for name in os.listdir(self.cfg.tmp_dir):
            path = os.path.join(self.cfg.tmp_dir, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
        for name in os.listdir(self.cfg.layers_dir):
            if name.startswith(".tmp-"):
                shutil.rmtree(os.path.join(self.cfg.layers_dir, name), ignore_errors=True)
        self.containers.restore()

    def close(self) -> None:
        self.meta.close()
