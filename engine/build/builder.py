"""Dockerfile builds with the behaviour and output of dockerd's classic builder.

`docker build` with DOCKER_BUILDKIT=0 and the SDK's `images.build()` read a
stream of JSON messages ("Step 1/3 : ...", " ---> Using cache", the RUN
output, an `aux` image ID, "Successfully built ..."), so the builder is a
generator of those messages. Every instruction commits an image whose parent
is the previous step's image; those intermediate images are the layer cache:
a step is a hit when a `build_cache` row maps (parent image, step key) to an
image that still exists. The key is the history `created_by` text Docker
records (the expanded instruction, the build args a RUN sees, a content hash
for COPY/ADD) plus the few inputs that text leaves out.

RUN executes in a real container of the ContainerService (runc, the build's
network mode); its upperdir becomes the layer. COPY, ADD and WORKDIR change
files in an overlay of the parent image without any container (buildfs).
Only the target stage and the stages it depends on are built.

The work is split by concern: state.py (options, stage state, messages),
job.py (a build run: stages, FROM, commit), cache.py (the step cache),
metadata.py, files.py and run.py (the instructions), and this module (the
service, and `Job`, which joins the instruction handlers into one table).
"""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any, ClassVar

from engine.build import dockerfile
from engine.build import fs as buildfs
from engine.build.cache import BuildCache
from engine.build.files import FileSteps
from engine.build.metadata import MetadataSteps
from engine.build.run import RunSteps
from engine.build.state import Build, BuildError, BuildOptions, Message, PullFn, stream
from engine.config import EngineConfig
from engine.container.service import ContainerService
from engine.errors import InvalidParameter
from engine.image.layers import LayerStore, chain_ids
from engine.image.service import ImageService, decompress_to
from engine.linux.mounts import umount
from engine.linux.overlay import Overlay
from engine.types.results import Pruned

__all__ = ["Build", "BuildError", "BuildOptions", "BuilderService", "Job"]


class BuilderService:
    def __init__(self, cfg: EngineConfig, cache: BuildCache, images: ImageService, layers: LayerStore,
                 containers: ContainerService, pull: PullFn, overlay: Overlay) -> None:
        """`pull` fetches a FROM image that is not local (or every FROM image with `--pull`); `overlay`
        mounts the image roots COPY, ADD and WORKDIR change."""
        self.cfg = cfg
        self.overlay = overlay
        self.cache = cache
        self.images = images
        self.layers = layers
        self.containers = containers
        self.pull = pull

    def prepare(self, body: IO[bytes], options: BuildOptions) -> Build:
        """Unpack the context and parse the Dockerfile; failures here are plain HTTP errors."""
        root = tempfile.mkdtemp(dir=self.cfg.tmp_dir, prefix="build-")
        try:
            tar_path = os.path.join(root, "context.tar")
            with open(tar_path, "wb") as f:
                decompress_to(body, f)
            context = os.path.join(root, "context")
            os.mkdir(context)
            if os.path.getsize(tar_path) and tarfile.is_tarfile(tar_path):
                data = buildfs.extract_context(tar_path, context, options.dockerfile)
            else:  # `docker build - < Dockerfile`: the body is the Dockerfile, the context is empty
                with open(tar_path, "rb") as f:
                    data = f.read()
            os.unlink(tar_path)
            df = dockerfile.parse(data, options.dockerfile)
            if options.target and df.stage_index(options.target) is None:
                raise InvalidParameter(f"failed to reach build target {options.target} in Dockerfile")
            return Build(root, context, df, options)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise

    def run(self, build: Build, cancel: threading.Event) -> Iterator[Message]:
        """The build's message stream; a failure is raised (as BuildError or EngineError) after its output.

        The generator owns the build directory: it is removed when the stream ends, fails or is closed.
        """
        job = Job(self, build, cancel)
        try:
            if not build.options.quiet:
                yield from job.execute()
                return
            held: list[Message] = []
            try:
                held.extend(job.execute())
            except BaseException:
                yield from held  # as dockerd: a quiet build shows its output when it fails
                raise
            yield stream(job.final_id + "\n")
        finally:
            build.close()

    def release_mounts(self) -> None:
        """Unmount overlays a crashed daemon left in build directories, before its temp dir is cleared."""
        prefix = os.path.join(self.cfg.tmp_dir, "build-")
        with open("/proc/self/mountinfo") as f:
            targets = [line.split()[4] for line in f]
        for target in sorted((t for t in targets if t.startswith(prefix)), reverse=True):
            umount(target)

    def prune_cache(self) -> Pruned:
        """`docker builder prune`."""
        return self.cache.prune()

    def ancestors(self, image_id: str) -> set[str]:
        out: set[str] = set()
        while image_id and image_id not in out:
            out.add(image_id)
            image_id = self.images.parent(image_id)
        return out

    def lowers(self, config: dict[str, Any]) -> list[str]:
        chains = chain_ids((config.get("rootfs") or {}).get("diff_ids") or [])
        return self.layers.lower_dirs(chains[-1] if chains else "")


class Job(MetadataSteps, FileSteps, RunSteps):
    """A build run with every instruction: the table maps a Dockerfile keyword to its handler."""

    instructions: ClassVar[Mapping[str, Callable[..., Iterator[Message]]]] = {
        "ENV": MetadataSteps._do_env,
        "LABEL": MetadataSteps._do_label,
        "MAINTAINER": MetadataSteps._do_maintainer,
        "CMD": MetadataSteps._do_cmd,
        "ENTRYPOINT": MetadataSteps._do_entrypoint,
        "EXPOSE": MetadataSteps._do_expose,
        "USER": MetadataSteps._do_user,
        "VOLUME": MetadataSteps._do_volume,
        "STOPSIGNAL": MetadataSteps._do_stopsignal,
        "SHELL": MetadataSteps._do_shell,
        "ONBUILD": MetadataSteps._do_onbuild,
        "HEALTHCHECK": MetadataSteps._do_healthcheck,
        "ARG": MetadataSteps._do_arg,
        "WORKDIR": FileSteps._do_workdir,
        "COPY": FileSteps._do_copy,
        "ADD": FileSteps._do_add,
        "RUN": RunSteps._do_run,
    }
