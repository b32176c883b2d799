"""`%%compose PROJECT [COMMAND ...]` and `%compose PROJECT COMMAND ...`: docker-compose from a notebook.

The cell is the compose file. It runs through the real docker-compose (Debian's
package) against the kernel's engine, as project PROJECT, with the notebook's
directory as the project directory (so `build: .` and relative bind mounts
mean what they would next to the notebook). Without a command the cell
brings the project up (`up -d`); `ps`, `logs`, `down`, `restart` and every
other docker-compose command work the same. The line form reuses the compose
file the project's cell gave last, so `%compose web down -v` works from any
later cell. Output streams into the cell; a failure is one line, so "Run All"
stops there. `pydock_ext.widgets.Containers(group_by_project=True)` shows the
containers grouped by project.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand

from .connection import Endpoint, find_endpoint
from .magics import MagicError

COMPOSE = "docker-compose"


class ComposeError(MagicError):
    """docker-compose exited non-zero (it printed why)."""


def compose_env(endpoint: Endpoint) -> dict[str, str]:
    """The environment docker-compose needs to reach `endpoint`: its host, and its token as HttpHeaders."""
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT")}
    env["DOCKER_HOST"] = endpoint.host
    if endpoint.config_dir:
        env["DOCKER_CONFIG"] = endpoint.config_dir
    env.setdefault("COMPOSE_INTERACTIVE_NO_CLI", "1")  # `exec`/`run` through the API, not a docker CLI it may lack
    return env


@magics_class
class ComposeMagics(Magics):
    _files: dict[str, str] = {}  # noqa: RUF012 - project -> its last compose file, per kernel
    # the kernel's compose files, in one directory that goes as the kernel exits (a file per cell left one
    # directory behind per kernel and project)
    _dir: tempfile.TemporaryDirectory[str] | None = None

    @no_var_expand
    @cell_magic
    def compose(self, line: str, cell: str) -> None:
        """`%%compose PROJECT [COMMAND ...]`: the cell is the compose file; the command defaults to `up -d`."""
        project, command = _parse(line)
        path = self._write(project, cell)
        self._run(project, path, command or ["up", "-d"])

    @no_var_expand
    @line_magic("compose")
    def compose_line(self, line: str) -> None:
        """`%compose PROJECT COMMAND ...`, with the compose file the project's last `%%compose` cell gave."""
        project, command = _parse(line)
        if project not in self._files:
            raise ComposeError(f"no compose file for project {project!r} yet: run a %%compose {project} cell first")
        if not command:
            raise ComposeError("which docker-compose command? e.g. %compose " + project + " ps")
        self._run(project, self._files[project], command)

    def _write(self, project: str, text: str) -> str:
        if ComposeMagics._dir is None:
            ComposeMagics._dir = tempfile.TemporaryDirectory(prefix="pydock-compose-")
        directory = tempfile.mkdtemp(prefix=f"{project}-", dir=ComposeMagics._dir.name)
        path = os.path.join(directory, "docker-compose.yml")
        with open(path, "w") as f:
            f.write(text)
        old = self._files.get(project)
        self._files[project] = path
        if old:
            shutil.rmtree(os.path.dirname(old), ignore_errors=True)
        return path

    def _run(self, project: str, path: str, command: list[str]) -> None:
        if shutil.which(COMPOSE) is None:
            raise ComposeError("docker-compose is not installed (Debian: apt-get install docker-compose)")
        argv = [COMPOSE, "--project-name", project, "--file", path, "--project-directory", os.getcwd(), *command]
        try:
            proc = subprocess.Popen(argv, env=compose_env(find_endpoint()), stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stdout.write(line)
            code = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise ComposeError(f"docker-compose {command[0]} interrupted", 130) from None
        if code != 0:
            raise ComposeError(f"docker-compose {command[0]} exited with status {code}", code)


def _parse(line: str) -> tuple[str, list[str]]:
    words = shlex.split(line)
    if not words:
        raise ComposeError("usage: %%compose PROJECT [COMMAND ...] (the cell is the compose file)")
    return words[0], words[1:]
