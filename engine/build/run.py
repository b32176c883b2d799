"""RUN: the command runs in a real container of the container service; its upperdir becomes the layer."""
from __future__ import annotations

import codecs
import copy
import os
import select
import struct
from collections.abc import Generator, Iterator
from typing import Any

from engine.build import dockerfile
from engine.build import fs as buildfs
from engine.build.dockerfile import Instruction
from engine.build.job import JobCore
from engine.build.state import (
    BUILDKIT_ONLY,
    PROXY_ARGS,
    BuildError,
    Message,
    StageState,
    env_dict,
    stream,
)
from engine.errors import EngineError
from engine.image.layers import chain_ids
from engine.types.container import ContainerConfig, ContainerCreateRequest, HostConfig

STDOUT, STDERR = 1, 2  # the stream byte of the attach stream's frame header
STDERR_COLOUR = "\033[91m{}\033[0m"


class RunSteps(JobCore):
    # ---- RUN ------------------------------------------------------------------
    def _run_env(self, st: StageState, history: bool) -> list[str]:
        """Build args a RUN sees (or records in history): declared ones not shadowed by ENV, plus proxies."""
        image_env = env_dict(st.run.get("Env"))
        values = {k: v for k, v in st.args.items() if v is not None and k not in image_env}
        if not history:
            for k in PROXY_ARGS:
                if self.opts.build_args.get(k) is not None and k not in image_env:
                    values.setdefault(k, self.opts.build_args[k] or "")
        return sorted(f"{k}={v}" for k, v in values.items())

    def _do_run(self, st: StageState, ins: Instruction) -> Iterator[Message]:
        flags, rest = ins.flags()
        for flag in flags:
            raise BuildError(BUILDKIT_ONLY.format(flag))
        exec_form = dockerfile.json_array(rest)
        cmd = exec_form if exec_form is not None else self._shell(st) + [rest]
        recorded = self._run_env(st, history=True)
        saved = ([f"|{len(recorded)}", *recorded] if recorded else []) + cmd
        created_by = " ".join(saved)
        key = self._cache_key(created_by, self.opts.network)
        if (yield from self._probe(st, key)):
            return
        if not st.image_id:  # RUN straight after FROM scratch: the container needs an image row
            st.image_id = self.svc.images.create(st.config)
        diff_id = yield from self._run_container(st, cmd, self._run_env(st, history=False))
        self._adopt(st, key, self._commit(st, created_by, copy.deepcopy(st.run), diff_id))

    def _run_container(self, st: StageState, cmd: list[str], env: list[str]) -> Generator[Message, None, str | None]:
        containers = self.svc.containers
        keep = not self.opts.remove and not self.opts.force_remove
        cid, _ = containers.create(ContainerCreateRequest(
            config=ContainerConfig(image=st.image_id, entrypoint=[], cmd=cmd, env=env, attach_stdout=True,
                                   attach_stderr=True, labels={}),
            host_config=HostConfig(network_mode=self.opts.network or "default",
                                   extra_hosts=self.opts.extra_hosts or None)), intermediate=not keep)
        try:
            yield stream(f" ---> Running in {cid[:12]}\n")
            _, att = containers.attach(cid, False, True, True)
            wait = containers.begin_wait(cid, "next-exit")
            try:
                containers.start(cid)
            except BaseException:
                containers.detach_pending(cid, att)
                raise
            yield from self._pump(att, cid)
            code = int(wait.result()["StatusCode"])
            if self.cancel.is_set():
                raise BuildError("build cancelled")
            if code != 0:
                raise BuildError(f"The command '{' '.join(cmd)}' returned a non-zero code: {code}", code)
            upper = os.path.join(containers.dir(cid), "upper")
            buildfs.drop_run_artifacts(upper)
            chains = chain_ids(st.config.get("rootfs", {}).get("diff_ids") or [])
            diff_id = buildfs.layer_from_upper(upper, self.svc.layers, self.svc.cfg.tmp_dir,
                                               chains[-1] if chains else "")
        finally:
            if not keep:
                try:
                    containers.remove(cid, force=True, volumes=True)
                except EngineError:
                    pass
        if not keep:
            yield stream(f" ---> Removed intermediate container {cid[:12]}\n")
        return diff_id

    def _pump(self, att: Any, cid: str) -> Iterator[Message]:
        """Relay the container's multiplexed output as stream messages until it closes or the build is cancelled.

        As dockerd's classic builder (streamformatter.NewStderrWriter), what the
        step writes to stderr is wrapped in the terminal's bright red, so the
        docker CLI shows it apart from stdout.
        """
        while not att.ready.wait(0.5):
            if self.cancel.is_set():
                raise BuildError("build cancelled")
        sock = att.sock
        if sock is None:
            raise BuildError(att.error or f"container {cid[:12]} could not be attached")
        decoders = {kind: codecs.getincrementaldecoder("utf-8")("replace") for kind in (STDOUT, STDERR)}
        buf = b""
        with sock:
            while True:
                if self.cancel.is_set():
                    self.svc.containers.kill(cid)
                    return
                ready, _, _ = select.select([sock], [], [], 0.5)
                if not ready:
                    continue
                data = sock.recv(65536)
                if not data:
                    break
                buf += data
                while len(buf) >= 8:
                    size = struct.unpack(">L", buf[4:8])[0]
                    if len(buf) < 8 + size:
                        break
                    kind = STDERR if buf[0] == STDERR else STDOUT
                    text = decoders[kind].decode(buf[8:8 + size])
                    buf = buf[8 + size:]
                    if text:
                        yield stream(STDERR_COLOUR.format(text) if kind == STDERR else text)
