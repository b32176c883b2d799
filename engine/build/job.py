"""One run of a build: step numbering, build args, FROM, and the commit/cache machinery every instruction uses.

The instructions themselves live in metadata.py (config-only steps), files.py
(WORKDIR, COPY, ADD) and run.py (RUN); builder.py joins them into `Job`, whose
`instructions` table maps each Dockerfile keyword to its handler.
"""
from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from engine.build import dockerfile
from engine.build.dockerfile import Instruction, Lexer, Stage
from engine.build.state import (
    DEFAULT_SHELL,
    PROXY_ARGS,
    Build,
    BuildError,
    Message,
    StageState,
    env_dict,
    scratch_config,
    stream,
)
from engine.errors import EngineError, NotFound
from engine.image.service import short
from engine.timeutil import rfc3339_ns
from pydock_common import reference

if TYPE_CHECKING:
    from engine.build.builder import BuilderService


class JobCore:
    """One run of a build: step numbering, stage results, build args and the per-step dispatch."""

    instructions: ClassVar[Mapping[str, Callable[..., Iterator[Message]]]] = {}

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
        env.update(env_dict(st.run.get("Env")))
        return env

    def _dispatch(self, st: StageState, ins: Instruction) -> Iterator[Message]:
        handler = self.instructions[ins.cmd.upper()]
        try:
            yield from handler(self, st, ins)
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
        cached = self.svc.cache.lookup(st.image_id, key, self.cache_allowed)
        if cached is None:
            return False
        st.image_id = cached
        st.config = self.svc.images.config(cached)
        yield stream(" ---> Using cache\n")
        return True

    def _adopt(self, st: StageState, key: str, image_id: str) -> None:
        self.svc.cache.store(st.image_id, key, image_id)
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
