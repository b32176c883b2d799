"""Config-only instructions (ENV, LABEL, CMD, ENTRYPOINT, EXPOSE, USER, VOLUME, ...): each commits an empty layer."""
from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from engine.build import dockerfile
from engine.build.dockerfile import Instruction
from engine.build.job import JobCore
from engine.build.state import (
    BuildError,
    Message,
    StageState,
    go_quote_list,
    set_env,
)
from engine.container.signals import parse_signal


class MetadataSteps(JobCore):
    # ---- metadata instructions ---------------------------------------------
    def _do_env(self, st: StageState, ins: Instruction) -> Iterator[Message]:
        run = copy.deepcopy(st.run)
        parts = []
        env = self._env(st)
        for key, raw in dockerfile.key_values(ins, self.df.escape):
            key, value = self.lex.word(key, env), self.lex.word(raw, env)
            run["Env"] = set_env(run.get("Env"), key, value)
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
        yield from self._metadata(st, f"CMD {go_quote_list(run['Cmd'])}", run)

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
        yield from self._metadata(st, f"ENTRYPOINT {go_quote_list(run['Entrypoint'] or [])}", run,
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
