"""File instructions (WORKDIR, COPY, ADD): changes made in an overlay of the parent image, no container."""
from __future__ import annotations

import contextlib
import copy
import os
import posixpath
from collections.abc import Callable, Iterator
from typing import Any

from engine.build import dockerfile
from engine.build import fs as buildfs
from engine.build.dockerfile import Instruction
from engine.build.job import JobCore
from engine.build.state import (
    BUILDKIT_ONLY,
    BuildError,
    Message,
    StageState,
)
from engine.image.layers import chain_ids
from engine.linux.fsutil import resolve_user
from engine.linux.overlay import readonly_root, writable_root


class FileSteps(JobCore):
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
        with writable_root(self.svc.overlay, lowers, self.build.root) as (merged, upper):
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
        return readonly_root(self.svc.overlay, self.svc.lowers(config), self.build.root)


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
