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
"""
from __future__ import annotations

import codecs
import contextlib
import copy
import hashlib
import json
import os
import posixpath
import select
import shutil
import struct
import tarfile
import tempfile
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from engine.build import dockerfile
from engine.build import fs as buildfs
from engine.build.dockerfile import Dockerfile, Instruction, Lexer, Stage
from engine.config import EngineConfig
from engine.container.service import ContainerService
from engine.container.signals import parse_signal
from engine.errors import EngineError, InvalidParameter, NotFound
from engine.image.layers import LayerStore, chain_ids
from engine.image.service import ARCH, ImageService, decompress_to, short
from engine.linux.fsutil import resolve_user
from engine.linux.mounts import readonly_root, umount, writable_root
from engine.runtime.spec import DEFAULT_PATH
from engine.store.db import MetaStore
from engine.timeutil import rfc3339_ns
from pydock_common import reference

BUILD_CACHE_SCHEMA = """
CREATE TABLE IF NOT EXISTS build_cache (
    parent_id TEXT NOT NULL,        -- image a build step started from ('' for FROM scratch)
    key TEXT NOT NULL,              -- sha256 of the step: expanded instruction, build args, content hash
    image_id TEXT NOT NULL,         -- the image that step produced
    PRIMARY KEY (parent_id, key)
);
"""


Message = dict[str, Any]
# (image reference, platform, cancel) -> pull progress messages; the image is local afterwards
PullFn = Callable[[str, str, threading.Event], Iterator[Message]]

PROXY_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
                        "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"})
DEFAULT_SHELL = ["/bin/sh", "-c"]
BUILDKIT_ONLY = "the --{} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how " \
                "to build images with BuildKit enabled"


class BuildError(EngineError):
    """A build failure reported in the stream; `code` becomes errorDetail.code (the CLI's exit status)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class BuildOptions:
    tags: list[str] = field(default_factory=list)
    dockerfile: str = "Dockerfile"
    build_args: dict[str, str | None] = field(default_factory=dict)
    no_cache: bool = False
    pull: bool = False
    target: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    cache_from: list[str] = field(default_factory=list)
    remove: bool = True
    force_remove: bool = False
    quiet: bool = False
    platform: str = ""
    network: str = "default"


@dataclass
class Build:
    """A prepared build: its private directory (context, mounts) and parsed Dockerfile."""

    root: str
    context: str
    dockerfile: Dockerfile
    options: BuildOptions

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class StageState:
    image_id: str                      # "" until a FROM scratch stage commits
    config: dict[str, Any]             # the image config document
    args: dict[str, str | None] = field(default_factory=dict)
    cmd_set: bool = False

    @property
    def run(self) -> dict[str, Any]:
        return self.config.setdefault("config", {})


def stream(text: str) -> Message:
    return {"stream": text}


def scratch_config() -> dict[str, Any]:
    return {"architecture": ARCH, "config": {"Env": [f"PATH={DEFAULT_PATH}"]}, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []}, "history": []}


def _go_quote_list(items: list[str]) -> str:
    """Go's %q of a []string, as Docker writes CMD/ENTRYPOINT into history."""
    return "[" + " ".join(json.dumps(s, ensure_ascii=False) for s in items) + "]"


def _env_dict(env: list[str] | None) -> dict[str, str]:
    return {key: value for key, _, value in (e.partition("=") for e in env or [])}


def _set_env(env: list[str] | None, key: str, value: str) -> list[str]:
    out = list(env or [])
    for i, e in enumerate(out):
        if e.split("=", 1)[0] == key:
            out[i] = f"{key}={value}"
            return out
    return out + [f"{key}={value}"]


class BuilderService:
    def __init__(self, cfg: EngineConfig, meta: MetaStore, images: ImageService, layers: LayerStore,
                 containers: ContainerService, pull: PullFn | None = None) -> None:
        self.cfg = cfg
        self.meta = meta
        meta.ensure_schema(BUILD_CACHE_SCHEMA)
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
        job = _Job(self, build, cancel)
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

    # ---- cache ------------------------------------------------------------
    def cache_lookup(self, parent: str, key: str, allowed: set[str] | None) -> str | None:
        row = self.meta.query_one("SELECT image_id FROM build_cache WHERE parent_id=? AND key=?", (parent, key))
        if row is None or not self.images.exists(row["image_id"]):
            return None
        if allowed is not None and row["image_id"] not in allowed:
            return None
        return str(row["image_id"])

    def cache_store(self, parent: str, key: str, image_id: str) -> None:
        with self.meta.transaction() as db:
            db.execute("INSERT OR REPLACE INTO build_cache(parent_id, key, image_id) VALUES (?,?,?)",
                       (parent, key, image_id))

    def prune_cache(self) -> dict[str, Any]:
        """`docker builder prune`: forget every cached step, so the next build runs them all.

        The cached results are intermediate images; their disk space is
        reclaimed by `docker image prune` once nothing refers to them, which is
        also how dockerd's classic builder behaves.
        """
        with self.meta.transaction() as db:
            ids = [r["image_id"] for r in db.execute("SELECT DISTINCT image_id FROM build_cache").fetchall()]
            db.execute("DELETE FROM build_cache")
        return {"CachesDeleted": ids or None, "SpaceReclaimed": 0}

    def ancestors(self, image_id: str) -> set[str]:
        out: set[str] = set()
        while image_id and image_id not in out:
            out.add(image_id)
            image_id = self.images.parent(image_id)
        return out

    def lowers(self, config: dict[str, Any]) -> list[str]:
        chains = chain_ids((config.get("rootfs") or {}).get("diff_ids") or [])
        return self.layers.lower_dirs(chains[-1] if chains else "")


class _Job:
    """One run of a build: step numbering, stage results, build args and the per-step dispatch."""

    def __init__(self, svc: BuilderService, build: Build, cancel: threading.Event) -> None:
        self.svc = svc
        self.build = build
        self.opts = build.options
        self.df = build.dockerfile
        self.cancel = cancel
        self.lex = Lexer(self.df.escape)
        self.meta_env: dict[str, str] = {}
        self.used_args: set[str] = set()
        self.results: dict[int, StageState] = {}
        self.step = 0
        self.total = 0
        self.final_id = ""
        self.cache_allowed: set[str] | None = None
        if self.opts.cache_from:
            self.cache_allowed = set()
            for ref in self.opts.cache_from:
                try:
                    self.cache_allowed |= svc.ancestors(svc.images.resolve(ref))
                except EngineError:
                    continue

    # ---- orchestration --------------------------------------------------
    def execute(self) -> Iterator[Message]:
        stages = self._stages_to_build()
        target = stages[-1]
        extra = self._label_instruction(target)
        self.total = len(self.df.meta_args) + sum(1 + len(s.commands) for s in stages) + (1 if extra else 0)
        for ins in self.df.meta_args:
            yield self._step_line(ins)
            self._meta_arg(ins)
        st: StageState | None = None
        for stage in stages:
            yield self._step_line(stage.source)
            st = yield from self._from(stage)
            yield stream(f" ---> {short(st.image_id) if st.image_id else ''}\n")
            commands = stage.commands + ([extra] if extra and stage is target else [])
            for ins in commands:
                if self.cancel.is_set():
                    raise BuildError("build cancelled")
                yield self._step_line(ins)
                yield from self._dispatch(st, ins)
                yield stream(f" ---> {short(st.image_id)}\n")
            if st.image_id:
                yield {"aux": {"ID": st.image_id}}
            self.results[stage.index] = st
        assert st is not None
        unused = sorted(k for k in self.opts.build_args if k not in self.used_args and k not in PROXY_ARGS)
        if unused:
            yield stream(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        if not st.image_id:
            raise BuildError("No image was generated. Is your Dockerfile empty?")
        self.final_id = st.image_id
        yield stream(f"Successfully built {short(st.image_id)}\n")
        for t in self.opts.tags:
            self.svc.images.tag(st.image_id, t)
            yield stream(f"Successfully tagged {reference.parse(t).familiar()}\n")

    def _step_line(self, ins: Instruction) -> Message:
        self.step += 1
        return stream(f"Step {self.step}/{self.total} : {ins.original}\n")

    def _stages_to_build(self) -> list[Stage]:
        """The target stage and, transitively, the stages its FROM and COPY --from name."""
        stages = self.df.stages
        target = self.df.stage_index(self.opts.target) if self.opts.target else len(stages) - 1
        assert target is not None
        env = self._meta_defaults()
        needed: set[int] = set()
        todo = [target]
        while todo:
            i = todo.pop()
            if i in needed:
                continue
            needed.add(i)
            refs = [self.lex.word(stages[i].base, env)]
            for ins in stages[i].commands:
                if ins.cmd == "COPY":
                    src = ins.flags()[0].get("from")
                    if isinstance(src, str):
                        refs.append(self.lex.word(src, env))
            for ref in refs:
                dep = self.df.stage_index(ref)
                if dep is not None and dep < i:
                    todo.append(dep)
        return [s for s in stages if s.index in needed]

    def _meta_defaults(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for ins in self.df.meta_args:
            for name, default in self._arg_pairs(ins):
                value = self._build_arg(name)
                if value is None and default is not None:
                    value = self.lex.word(default, env)
                if value is not None:
                    env[name] = value
        return env

    def _label_instruction(self, target: Stage) -> Instruction | None:
        if not self.opts.labels:
            return None
        text = " ".join(f"{json.dumps(k)}='{v}'" for k, v in sorted(self.opts.labels.items()))
        return Instruction("LABEL", text, f"LABEL {text}", target.source.line)

    def _build_arg(self, name: str) -> str | None:
        return self.opts.build_args.get(name)

    def _arg_pairs(self, ins: Instruction) -> list[tuple[str, str | None]]:
        words = dockerfile.raw_words(ins.args, self.df.escape)
        if not words:
            raise dockerfile.ParseError(ins.line, "ARG requires at least one argument")
        out: list[tuple[str, str | None]] = []
        for w in words:
            name, sep, value = w.partition("=")
            if not name:
                raise dockerfile.ParseError(ins.line, "ARG names can not be blank")
            out.append((name, value if sep else None))
        return out

    def _meta_arg(self, ins: Instruction) -> None:
        for name, default in self._arg_pairs(ins):
            self.used_args.add(name)
            value = self._build_arg(name)
            if value is None and default is not None:
                value = self.lex.word(default, self.meta_env)
            if value is not None:
                self.meta_env[name] = value
            else:
                self.meta_env.pop(name, None)

    # ---- FROM -------------------------------------------------------------
    def _from(self, stage: Stage) -> Generator[Message, None, StageState]:
        base = self.lex.word(stage.base, self.meta_env)
        platform = self.lex.word(stage.platform, self.meta_env) if stage.platform else self.opts.platform
        if not base:
            raise BuildError(f"base name ({stage.base}) should not be blank")
        dep = self.df.stage_index(base)
        if base.lower() == "scratch":
            st = StageState("", scratch_config())
        elif dep is not None and dep in self.results:
            prev = self.results[dep]
            st = StageState(prev.image_id, copy.deepcopy(prev.config))
        else:
            image_id = yield from self._base_image(base, platform)
            st = StageState(image_id, self.svc.images.config(image_id))
        triggers = list(st.run.get("OnBuild") or [])
        if triggers:
            st.run["OnBuild"] = None
            yield stream(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
            for trigger in triggers:
                yield from self._dispatch(st, dockerfile.trigger_instruction(trigger, stage.source.line))
        return st

    def _base_image(self, ref: str, platform: str) -> Generator[Message, None, str]:
        local = self._resolve_local(ref)
        if local and not self.opts.pull:
            return local
        if self.svc.pull is None:
            if local:
                return local
            raise BuildError(f"pull access denied for {ref}, repository does not exist or may require "
                             "'docker login'")
        try:
            yield from self.svc.pull(ref, platform, self.cancel)
        except EngineError as e:
            if local and not self.opts.pull:
                return local
            raise BuildError(e.message) from e
        return self.svc.images.resolve(ref)

    def _resolve_local(self, ref: str) -> str:
        try:
            return self.svc.images.resolve(ref)
        except NotFound:
            return ""

    # ---- dispatch ---------------------------------------------------------
    def _env(self, st: StageState) -> dict[str, str]:
        """Variables for substitution: the stage's ARGs, overridden by ENV."""
        env = {k: v for k, v in st.args.items() if v is not None}
        env.update(_env_dict(st.run.get("Env")))
        return env

    def _dispatch(self, st: StageState, ins: Instruction) -> Iterator[Message]:
        handler = getattr(self, "_do_" + ins.cmd.lower())
        try:
            yield from handler(st, ins)
        except BuildError:
            raise
        except EngineError as e:
            raise BuildError(e.message) from e

    def _commit(self, st: StageState, created_by: str, run: dict[str, Any], diff_id: str | None,
                author: str | None = None) -> str:
        now = rfc3339_ns()
        cfg = copy.deepcopy(st.config)
        cfg["config"] = run
        cfg["created"] = now
        entry: dict[str, Any] = {"created": now, "created_by": created_by}
        if diff_id is None:
            entry["empty_layer"] = True
        cfg["history"] = list(cfg.get("history") or []) + [entry]
        rootfs = cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        rootfs["diff_ids"] = list(rootfs.get("diff_ids") or []) + ([diff_id] if diff_id else [])
        if author is not None:
            cfg["author"] = author
        return self.svc.images.create(cfg, parent=st.image_id)

    def _cache_key(self, created_by: str, extra: Any = None) -> str:
        return hashlib.sha256(json.dumps([created_by, extra]).encode()).hexdigest()

    def _probe(self, st: StageState, key: str) -> Generator[Message, None, bool]:
        """Use a cached image for this step if there is one; returns whether it did."""
        if self.opts.no_cache:
            return False
        cached = self.svc.cache_lookup(st.image_id, key, self.cache_allowed)
        if cached is None:
            return False
        st.image_id = cached
        st.config = self.svc.images.config(cached)
        yield stream(" ---> Using cache\n")
        return True

    def _adopt(self, st: StageState, key: str, image_id: str) -> None:
        self.svc.cache_store(st.image_id, key, image_id)
        st.image_id = image_id
        st.config = self.svc.images.config(image_id)

    def _metadata(self, st: StageState, comment: str, run: dict[str, Any], author: str | None = None,
                  extra: Any = None) -> Iterator[Message]:
        """Commit a config-only step (empty layer), as Docker's `commit` with a `#(nop)` command."""
        created_by = " ".join(self._shell(st) + ["#(nop) ", comment])
        key = self._cache_key(created_by, [run, author, extra])
        if (yield from self._probe(st, key)):
            return
        self._adopt(st, key, self._commit(st, created_by, run, None, author))

    def _shell(self, st: StageState) -> list[str]:
        return list(st.run.get("Shell") or DEFAULT_SHELL)

    # ---- metadata instructions ---------------------------------------------
    def _do_env(self, st: StageState, ins: Instruction) -> Iterator[Message]:
        run = copy.deepcopy(st.run)
        parts = []
        env = self._env(st)
        for key, raw in dockerfile.key_values(ins, self.df.escape):
            key, value = self.lex.word(key, env), self.lex.word(raw, env)
            run["Env"] = _set_env(run.get("Env"), key, value)
            parts.append(f"{key}={value}")
        yield from self._metadata(st, "ENV " + " ".join(parts), run)

    def _do_label(self, st: StageState, ins: Instruction) -> Iterator[Message]:
        run = copy.deepcopy(st.run)
        labels = dict(run.get("Labels") or {})
        parts = []
        env = self._env(st)
        for key, raw in dockerfile.key_values(ins, self.df.escape):
            key, value = self.lex.word(key, env), self.lex.word(raw, env)
            labels[key] = value
            parts.append(f"{key}={value}")
        run["Labels"] = labels
        yield from self._metadata(st, "LABEL " + " ".join(parts), run)

    def _do_maintainer(self, st: StageState, ins: Instruction) -> Iterator[Message]:
        yield from self._metadata(st, "MAINTAINER " + ins.args, copy.deepcopy(st.run), author=ins.args)

    def _command(self, st: StageState, ins: Instruction) -> list[str]:
        exec_form = dockerfile.json_array(ins.args)
        return exec_form if exec_form is not None else self._shell(st) + [ins.args]

    def _do_cmd(self, st: StageState, ins: Instruction) -> Iterator[Message]:
        run = copy.deepcopy(st.run)
        run["Cmd"] = self._command(st, ins)
        st.cmd_set = True
        yield from self._metadata(st, f"CMD {_go_quote_list(run['Cmd'])}", run)

    def _do_entrypoint(self, st: StageState, ins: Instruction) -> Iterator[Message]:
        run = copy.deepcopy(st.run)
        exec_form = dockerfile.json_array(ins.args)
        if exec_form is not None:
            run["Entrypoint"] = exec_form
        elif ins.args.strip():
            run["Entrypoint"] = self._shell(st) + [ins.args]
        else:
            run["Entrypoint"] = None
        if not st.cmd_set:
            run["Cmd"] = None  # as Docker: a CMD inherited from the base image does not survive ENTRYPOINT
        yield from self._metadata(st, f"ENTRYPOINT {_go_quote_list(run['Entrypoint'] or [])}", run,
                                  extra=st.cmd_set)

    def _do_expose(self, st: StageState, ins: Instruction) -> Iterator[Message]:
        run = copy.deepcopy(st.run)
        ports = dict(run.get("ExposedPorts") or {})
        words = self.lex.words(ins.args, self._env(st))
        if not words:
            raise dockerfile.ParseError(ins.line, "EXPOSE requires at least one argument")
        for word in words:
            for port in _expand_ports(word):
                ports[port] = {}
        run["ExposedPorts"] = ports
        yield from self._metadata(st, "EXPOSE " + " ".join(words), run)

    def _do_user(self, st: StageState, ins: Instruction) -> Iterator[Message]:
        run = copy.deepcopy(st.run)
        run["User"] = self.lex.word(ins.args, self._env(st))
        yield from self._metadata(st, "USER " + run["User"], run)

    def _do_volume(self, st: StageState, ins: Instruction) -> Iterator[Message]:
        run = copy.deepcopy(st.run)
        paths = dockerfile.json_array(ins.args)
        if paths is None:
            paths = self.lex.words(ins.args, self._env(st))
        vols = dict(run.get("Volumes") or {})
        for p in paths:
            if not p.strip():
                raise BuildError("VOLUME specified can not be an empty string")
            vols[p] = {}
        if not paths:
            raise dockerfile.ParseError(ins.line, "VOLUME requires at least one argument")
        run["Volumes"] = vols
        yield from self._metadata(st, f"VOLUME [{' '.join(paths)}]", run)

    def _do_stopsignal(self, st: StageState, ins: Instruction) -> Iterator[Message]:
        run = copy.deepcopy(st.run)
        sig = self.lex.word(ins.args, self._env(st))
        parse_signal(sig)
        run["StopSignal"] = sig
        yield from self._metadata(st, "STOPSIGNAL " + sig, run)

    def _do_shell(self, st: StageState, ins: Instruction) -> Iterator[Message]:
        shell = dockerfile.json_array(ins.args)
        if not shell:
            raise dockerfile.ParseError(ins.line, "SHELL requires the arguments to be in JSON form")
        run = copy.deepcopy(st.run)
        run["Shell"] = shell
        yield from self._metadata(st, f"SHELL [{' '.join(shell)}]", run)

    def _do_onbuild(self, st: StageState, ins: Instruction) -> Iterator[Message]:
        run = copy.deepcopy(st.run)
        word, _, rest = ins.args.strip().partition(" ")
        trigger = f"{word.upper()} {rest.strip()}".strip()
        run["OnBuild"] = list(run.get("OnBuild") or []) + [trigger]
        yield from self._metadata(st, "ONBUILD " + trigger, run)

    def _do_healthcheck(self, st: StageState, ins: Instruction) -> Iterator[Message]:
        run = copy.deepcopy(st.run)
        flags, rest = ins.flags()
        word, _, cmd = rest.partition(" ")
        kind = word.upper()
        if kind == "NONE":
            if cmd.strip() or flags:
                raise dockerfile.ParseError(ins.line, "HEALTHCHECK NONE takes no arguments")
            health: dict[str, Any] = {"Test": ["NONE"]}
        elif kind == "CMD":
            exec_form = dockerfile.json_array(cmd)
            test = ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", cmd.strip()]
            if not cmd.strip():
                raise dockerfile.ParseError(ins.line, "Missing command after HEALTHCHECK CMD")
            health = {"Test": test}
            for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                              ("start-interval", "StartInterval")):
                value = flags.get(flag)
                duration = dockerfile.parse_duration(value, flag) if isinstance(value, str) else 0
                if duration:
                    health[key] = duration
            retries = flags.get("retries")
            if isinstance(retries, str) and retries:
                if not retries.isdigit() or int(retries) < 1:
                    raise BuildError(f"--retries must be at least 1 (not {retries})")
                health["Retries"] = int(retries)
        else:
            raise dockerfile.ParseError(ins.line, f"Unknown type {word!r} in HEALTHCHECK (try CMD)")
        run["Healthcheck"] = health
        yield from self._metadata(st, "HEALTHCHECK " + json.dumps(health, sort_keys=True), run)

    def _do_arg(self, st: StageState, ins: Instruction) -> Iterator[Message]:
        parts = []
        for name, default in self._arg_pairs(ins):
            self.used_args.add(name)
            value = self._build_arg(name)
            if value is None and default is not None:
                default = self.lex.word(default, self._env(st))
                value = default
            if value is None:
                value = self.meta_env.get(name)
            st.args[name] = value
            parts.append(name if default is None else f"{name}={default}")
        yield from self._metadata(st, "ARG " + " ".join(parts), copy.deepcopy(st.run))

    # ---- WORKDIR ------------------------------------------------------------
    def _do_workdir(self, st: StageState, ins: Instruction) -> Iterator[Message]:
        path = self.lex.word(ins.args, self._env(st))
        if not path:
            raise dockerfile.ParseError(ins.line, "WORKDIR requires exactly one argument")
        current = st.run.get("WorkingDir") or "/"
        workdir = posixpath.normpath(posixpath.join("/", current, path))
        run = copy.deepcopy(st.run)
        run["WorkingDir"] = workdir
        created_by = " ".join(self._shell(st) + [f"#(nop) WORKDIR {workdir}"])
        key = self._cache_key(created_by, run)
        if (yield from self._probe(st, key)):
            return

        def mkdir(root: str) -> None:
            buildfs.Copier(root, 0, 0, None).mkdirs(workdir)

        diff_id = self._file_step(st, mkdir)
        self._adopt(st, key, self._commit(st, created_by, run, diff_id))

    def _file_step(self, st: StageState, change: Callable[[str], None]) -> str | None:
        """Apply `change(root)` in an overlay of the current image; the upperdir becomes the step's layer."""
        lowers = self.svc.lowers(st.config)
        chains = chain_ids(st.config.get("rootfs", {}).get("diff_ids") or [])
        with writable_root(lowers, self.build.root) as (merged, upper):
            change(merged)
        return buildfs.layer_from_upper(upper, self.svc.layers, self.svc.cfg.tmp_dir, chains[-1] if chains else "")

    # ---- COPY / ADD -----------------------------------------------------------
    def _do_copy(self, st: StageState, ins: Instruction) -> Iterator[Message]:
        yield from self._copy(st, ins, is_add=False)

    def _do_add(self, st: StageState, ins: Instruction) -> Iterator[Message]:
        yield from self._copy(st, ins, is_add=True)

    def _copy(self, st: StageState, ins: Instruction, is_add: bool) -> Iterator[Message]:
        flags, rest = ins.flags()
        env = self._env(st)
        for flag in ("link", "parents", "exclude", "checksum", "keep-git-dir"):
            if flag in flags:
                raise BuildError(BUILDKIT_ONLY.format(flag))
        words = dockerfile.json_array(rest)
        if words is None:
            words = self.lex.words(rest, env)
        else:
            words = [self.lex.word(w, env) for w in words]
        if len(words) < 2:
            raise dockerfile.ParseError(ins.line, f"{ins.cmd} requires at least two arguments, but only one "
                                                  f"was provided. Destination could not be determined")
        srcs, dest = words[:-1], words[-1]
        if is_add and any(s.startswith(("http://", "https://", "git@")) for s in srcs):
            raise BuildError("ADD from a URL needs network access to fetch the file, which this pydock "
                             "builder does not do; download it into the build context and ADD it from there")
        chown = self.lex.word(str(flags["chown"]), env) if isinstance(flags.get("chown"), str) else ""
        chmod = _parse_chmod(flags.get("chmod"))
        source = flags.get("from")
        src_config = self._copy_source(self.lex.word(source, env)) if isinstance(source, str) else None
        cwd = st.run.get("WorkingDir") or "/"
        dest_path = dest if dest.startswith("/") else posixpath.join(cwd, dest)
        if dest.endswith("/") and not dest_path.endswith("/"):
            dest_path += "/"
        with self._source_root(src_config) as root:
            paths = [p for s in srcs for p in buildfs.resolve_sources(root, s, ins.cmd)]
            if not paths:
                raise BuildError(f"{ins.cmd} failed: no source files were specified")
            if len(paths) > 1 and not dest_path.endswith("/"):
                raise BuildError(f"When using {ins.cmd} with more than one source file, the destination must be "
                                 "a directory and end with a /")
            kind = "multi" if len(paths) > 1 else ("dir" if os.path.isdir(paths[0]) else "file")
            digest = buildfs.content_hash(paths)
            created_by = " ".join(self._shell(st) + [f"#(nop) {ins.cmd} {kind}:{digest} in {dest} "])
            key = self._cache_key(created_by, [dest_path, chown, chmod, source, st.run.get("WorkingDir")])
            if (yield from self._probe(st, key)):
                return

            def copy_into(image_root: str) -> None:
                uid, gid = _chown_ids(image_root, chown)
                copier = buildfs.Copier(image_root, uid, gid, chmod)
                for path in paths:
                    self._copy_one(copier, path, dest_path, is_add and src_config is None)

            diff_id = self._file_step(st, copy_into)
        self._adopt(st, key, self._commit(st, created_by, copy.deepcopy(st.run), diff_id))

    @staticmethod
    def _copy_one(copier: buildfs.Copier, path: str, dest: str, extract: bool) -> None:
        if extract and buildfs.is_archive(path):
            copier.extract(path, dest)
        elif os.path.isdir(path) and not os.path.islink(path):
            copier.copy(path, dest)
        elif dest.endswith("/") or copier.exists_as_dir(dest):
            copier.copy(path, posixpath.join(dest, os.path.basename(path)))
        else:
            copier.copy(path, dest)

    def _copy_source(self, name: str) -> dict[str, Any]:
        """The image config `COPY --from` reads: an earlier stage by name or index, else an image."""
        dep = self.df.stage_index(name)
        if dep is not None:
            if dep not in self.results:
                raise BuildError(f"invalid from flag value {name}: refers to current or later build stage")
            return self.results[dep].config
        image_id = self._resolve_local(name)
        if not image_id:
            raise BuildError(f"invalid from flag value {name}: pull access denied for {name}, repository does "
                             "not exist or may require 'docker login'")
        return self.svc.images.config(image_id)

    def _source_root(self, config: dict[str, Any] | None) -> Any:
        if config is None:
            return contextlib.nullcontext(self.build.context)
        return readonly_root(self.svc.lowers(config), self.build.root)

    # ---- RUN ------------------------------------------------------------------
    def _run_env(self, st: StageState, history: bool) -> list[str]:
        """Build args a RUN sees (or records in history): declared ones not shadowed by ENV, plus proxies."""
        image_env = _env_dict(st.run.get("Env"))
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
        created = containers.create({"Image": st.image_id, "Entrypoint": [], "Cmd": cmd, "Env": env,
                                     "AttachStdout": True, "AttachStderr": True, "Labels": {},
                                     "HostConfig": {"NetworkMode": self.opts.network or "default"}},
                                    intermediate=not keep)
        cid = created["Id"]
        try:
            yield stream(f" ---> Running in {cid[:12]}\n")
            att = containers.attach(cid, False, True, True)
            wait = containers.begin_wait(cid, "next-exit")
            try:
                containers.start(cid)
            except BaseException:
                containers.detach_pending(cid, att)
                raise
            yield from self._pump(att, cid)
            code = int(wait(None)["StatusCode"])
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
        """Relay the container's multiplexed output as stream messages until it closes or the build is cancelled."""
        while not att.ready.wait(0.5):
            if self.cancel.is_set():
                raise BuildError("build cancelled")
        sock = att.sock
        if sock is None:
            raise BuildError(att.error or f"container {cid[:12]} could not be attached")
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
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
                    text = decoder.decode(buf[8:8 + size])
                    buf = buf[8 + size:]
                    if text:
                        yield stream(text)


def _expand_ports(word: str) -> list[str]:
    port, _, proto = word.partition("/")
    proto = (proto or "tcp").lower()
    start, sep, end = port.partition("-")
    if not start.isdigit() or (sep and not end.isdigit()):
        raise BuildError(f"Invalid containerPort: {port}" if not sep else f"Invalid range format for --expose: {word}")
    lo, hi = int(start), int(end) if sep else int(start)
    if hi < lo:
        raise BuildError(f"Invalid range specified for the Port: {word}")
    return [f"{p}/{proto}" for p in range(lo, hi + 1)]


def _parse_chmod(value: str | bool | None) -> int | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or any(c not in "01234567" for c in value) or len(value) > 4:
        raise BuildError(f"invalid chmod parameter: {value}")
    return int(value, 8)


def _chown_ids(root: str, chown: str) -> tuple[int, int]:
    """--chown=user[:group] against the image's passwd/group; a lone user means gid = uid, as Docker."""
    if not chown:
        return 0, 0
    user, sep, group = chown.partition(":")
    uid, _gid, _ = resolve_user(root, user)
    if not sep:
        return uid, uid
    return uid, resolve_user(root, f"{user}:{group}")[1]

