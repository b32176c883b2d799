"""IPython magics: `%docker`, `%%container`, `%%dockerfile`.

`%docker` is the pydock CLI run in-process, so it accepts exactly docker's
syntax and prints exactly what docker prints, streamed into the cell as it
comes. Commands whose output *is* a value return it instead of printing it
(the cell shows it as its result, and `x = %docker ...` keeps it):

- `run -d`, `create`, `commit`, `import` -> the new object's id (str)
- `inspect` (also `image`/`container inspect`) without `--format` -> the parsed JSON list
- `ps -q`, `images -q` -> the list of ids

Everything else is printed as it comes and also returned as its lines (an
IPython SList, as `x = !cmd` gives; not shown as the cell's result). A failing
command prints docker's error (for bad arguments, docker's usage error) and
raises a one-line `DockerError`, so that "Run All" stops there; an interrupt
(the stop button) is one line too. In a notebook, `pull` and `build` draw
progress widgets instead of the text. The line is expanded like any magic's
(`$name`, `{expr}`; nothing inside single quotes), except docker's `{{...}}`
templates, which pass through as written.

`%%container IMAGE [run options]` feeds the cell to `sh` (or `python3` with
`--lang python`) on stdin of a fresh container, removed afterwards. `--in NAME`
passes a notebook variable as env var NAME (and all inputs as JSON in
$PYDOCK_IN; Python cells get them as variables); `--out NAME` sets a notebook
variable from the file $PYDOCK_OUT/NAME (JSON if it parses) or, if the cell did
not write it, from the cell's variable NAME. `--mount-cwd` bind-mounts the
notebook's directory (so it must be on the engine's machine) and works in it.

`%%container` and `%%dockerfile` fail the cell with a one-line error (no
traceback) so that a notebook run stops at the failing step.
"""
from __future__ import annotations

import io
import json
import os
import re
import shlex
import sys
import tarfile
import uuid
from collections.abc import Iterator
from typing import IO, Any

import docker
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand
from IPython.utils.text import DollarFormatter, SList

from pydock_cli.client import ConnectError, DaemonError
from pydock_cli.containers import CONTAINER_CONFIG_FLAGS, attach_start, create_body
from pydock_cli.main import GLOBAL, build, main
from pydock_cli.parser import Args, Command, Flag, UsageError
from pydock_cli.session import Session
from pydock_cli.streams import Out

from .connection import Endpoint, find_endpoint

OUT_DIR = "/tmp/pydock-out"
LARGE_CONTEXT = 50_000_000  # bytes of build context worth a warning
# Python cells: how an --out variable is handed back, with a clear word for values JSON cannot carry
_OUT_HELPER = """def _pydock_out(name, value, path):
    try:
        text = _j.dumps(value)
    except (TypeError, ValueError) as e:
        import sys
        sys.stderr.write(f"--out {name}: a {type(value).__name__} cannot be handed back ({e}); "
                         "--out carries JSON values (str, numbers, bools, None, lists, dicts): "
                         "convert it first, e.g. with .tolist(), .to_dict() or str()\\n")
        raise SystemExit(3)
    with open(path, 'w') as f:
        f.write(text)
"""
_TEMPLATE = re.compile(r"(\{\{.*?\}\})")
LANGS = {"sh": ["sh", "-s"], "python": ["python3", "-"]}


class MagicError(Exception):
    """A failed magic, shown as its message alone: the details were already streamed into the cell."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class DockerError(MagicError):
    """`%docker` exited non-zero; `exit_code` is docker's exit status."""


class ContainerError(MagicError):
    """`%%container` exited non-zero; `exit_code` is the container's (125-127 for docker's own failures)."""


class BuildError(MagicError):
    pass


class MagicCommand(Command):
    """A magic parsed like a docker command; its usage errors name the magic."""

    @property
    def path(self) -> str:
        return self.name


def _run_flags() -> list[Flag]:
    """`docker run` options that make sense for a one-shot script (stdin carries the script)."""
    dropped = {"detach", "interactive", "tty", "rm"}
    return [f for f in CONTAINER_CONFIG_FLAGS if f.long not in dropped]


CONTAINER_CMD = MagicCommand(
    "%%container", "IMAGE [OPTIONS]", "Run the cell in a fresh container", lambda *a: 0, Args(1, 1),
    [Flag("", "lang", "str", "sh", "Run the cell with sh or with the image's python3 (sh|python)"),
     Flag("", "mount-cwd", help="Bind mount the notebook's directory at the same path and work in it"),
     Flag("", "in", "list", help="Pass a Python variable in: NAME=PYVAR or PYVAR (env var NAME, JSON unless str)"),
     Flag("", "out", "list", help="Set Python variable NAME from $PYDOCK_OUT/NAME (python: the variable NAME)"),
     *_run_flags()])

DOCKERFILE_CMD = MagicCommand(
    "%%dockerfile", "TAG [OPTIONS]", "Build an image from the cell as Dockerfile, context: the notebook's directory",
    lambda *a: 0, Args(1, 1),
    [Flag("t", "tag", "list", help="Additional name and optionally a tag in the name:tag format"),
     Flag("", "build-arg", "list", help="Set build-time variables"),
     Flag("", "label", "list", help="Set metadata for an image"),
     Flag("", "no-cache", help="Do not use cache when building the image"),
     Flag("", "pull", help="Always attempt to pull a newer version of the image"),
     Flag("", "target", "str", "", "Set the target build stage to build"),
     Flag("q", "quiet", help="Suppress the build output and print image ID on success")])


def _has_frontend(shell: Any) -> bool:
    """Widgets only make sense in a kernel; a terminal IPython gets the text output."""
    return getattr(shell, "kernel", None) is not None


def _pairs(values: list[str]) -> dict[str, str]:
    return dict((v.split("=", 1) + [""])[:2] for v in values)


def _names_host(argv: list[str]) -> bool:
    try:
        return bool(GLOBAL.parse(argv)[0]["host"])
    except UsageError:
        return False


def _locate(argv: list[str]) -> tuple[Command, dict[str, Any], list[str]] | None:
    """The CLI command an argv selects, parsed by the CLI's own parser; None when the CLI will reject it."""
    try:
        _, rest = GLOBAL.parse(argv)
        if not rest:
            return None
        top, groups = build()
        word, rest = rest[0], rest[1:]
        if word in groups:
            cmd = groups[word].commands.get(rest[0]) if rest else None
            rest = rest[1:]
        else:
            cmd = top.get(word)
        if cmd is None:
            return None
        opts, args = cmd.parse(rest)
    except UsageError:
        return None
    if opts["help"]:
        return None
    return cmd, opts, args


def _value_kind(located: tuple[Command, dict[str, Any], list[str]] | None) -> str | None:
    if located is None:
        return None
    cmd, opts, _ = located
    if cmd.name in ("create", "commit", "import") or (cmd.name == "run" and opts.get("detach")):
        return "id"
    if cmd.name == "inspect" and not opts.get("format"):
        return "json"
    if cmd.name in ("ps", "images", "ls", "list") and opts.get("quiet"):
        return "lines"
    return None


def _value(kind: str, text: str) -> Any:
    if kind == "id":
        return text.strip()
    if kind == "json":
        return json.loads(text)
    return text.split()


class Lines(SList):
    """What `x = %docker ...` keeps: the output's lines. Not displayed as the cell's result, since the
    output was already printed as it came."""

    def _ipython_display_(self) -> None:
        pass


class _Tee:
    """A text stream writing to two others: the cell, and the capture returned as the magic's value."""

    def __init__(self, shown: IO[str], kept: IO[str]) -> None:
        self.shown, self.kept = shown, kept

    def write(self, text: str) -> int:
        self.kept.write(text)
        return self.shown.write(text)

    def flush(self) -> None:
        self.shown.flush()


@magics_class
class DockerMagics(Magics):
    _endpoint: Endpoint | None = None

    @property
    def endpoint(self) -> Endpoint:
        """Found once per kernel: the server that owns a kernel does not change."""
        if self._endpoint is None:
            self._endpoint = find_endpoint()
        return self._endpoint

    def cli(self, argv: list[str], stdout: Any = None) -> int:
        """The CLI against this kernel's engine, unless the user names a host: the token is never sent elsewhere."""
        prefix = [] if _names_host(argv) else self.endpoint.cli_args()
        return main(prefix + argv, stdout=stdout or sys.stdout, stderr=sys.stderr)

    def checked_cli(self, argv: list[str], stdout: Any = None) -> None:
        """`cli`, raising the one-line DockerError on a non-zero exit (docker printed why)."""
        code = self.cli(argv, stdout)
        if code == 130:
            raise DockerError("interrupted", code)
        if code != 0:
            located = _locate(argv)
            raise DockerError(f"docker {located[0].name if located else argv[0]} exited with status {code}", code)

    def expand(self, line: str) -> str:
        """IPython's `$var` / `{expr}` expansion, except inside docker's `{{...}}` templates, which pass untouched."""
        parts = _TEMPLATE.split(line)
        return "".join(p if i % 2 else self._expand_part(p) for i, p in enumerate(parts))

    def _expand_part(self, text: str) -> str:
        try:
            return DollarFormatter().vformat(text, args=[], kwargs=self.shell.user_ns)
        except Exception:  # noqa: BLE001 - like IPython: what does not evaluate stays as written
            return text

    @no_var_expand
    @line_magic
    def docker(self, line: str) -> Any:
        """Run a docker command line against the kernel's engine (see the module docstring for results)."""
        argv = shlex.split(self.expand(line))
        located = _locate(argv)
        progress = located and _has_frontend(self.shell) and not located[1].get("quiet") and not _names_host(argv)
        if progress and located[0].name == "pull":
            self._pull_with_progress(located[2][0], located[1])
            return None
        if progress and located[0].name == "build":
            from .widgets import BuildProgress
            self.checked_cli(argv, stdout=BuildProgress.shown())
            return None
        kind = _value_kind(located)
        captured = io.StringIO()
        if kind is None:
            self.checked_cli(argv, stdout=_Tee(sys.stdout, captured))
            return Lines(captured.getvalue().splitlines())
        try:
            self.checked_cli(argv, stdout=captured)
        except DockerError:
            sys.stdout.write(captured.getvalue())
            raise
        return _value(kind, captured.getvalue())

    def _pull_with_progress(self, ref: str, opts: dict[str, Any]) -> None:
        from .widgets import PullProgress
        name, tag = _split_ref(ref, opts.get("all_tags"))
        progress = PullProgress.shown(ref)
        try:
            for msg in self.endpoint.api_client().pull(name, tag, stream=True, decode=True,
                                                       platform=opts.get("platform") or None,
                                                       all_tags=bool(opts.get("all_tags"))):
                progress.feed(msg)
        except Exception as e:  # noqa: BLE001 - docker.errors.APIError and connection errors alike end the pull
            progress.fail(str(getattr(e, "explanation", None) or e))
        if progress.error:
            sys.stderr.write(f"Error response from daemon: {progress.error}\n")
            raise DockerError("docker pull failed")

    @no_var_expand
    @cell_magic
    def container(self, line: str, cell: str) -> None:
        """`%%container IMAGE [docker run options] [--lang sh|python] [--mount-cwd] [--in NAME=VAR] [--out NAME]`."""
        parsed = self._parse(CONTAINER_CMD, self.expand(line))
        if parsed is None:
            return
        opts, image = parsed
        if opts["lang"] not in LANGS:
            raise ContainerError(f'invalid argument "{opts["lang"]}" for "--lang" flag: expected sh or python', 125)
        s = self.endpoint.session(Out(sys.stdout), Out(sys.stderr), io.BytesIO(_script(opts, cell).encode()))
        try:
            self._run_cell(s, opts, image)
        except KeyboardInterrupt:
            raise ContainerError("interrupted: the cell's container was removed", 130) from None
        finally:
            s.close()

    def _run_cell(self, s: Session, opts: dict[str, Any], image: str) -> None:
        opts.update(detach=False, interactive=True, tty=False, rm=False)
        opts["env"] = opts["env"] + [f"PYDOCK_OUT={OUT_DIR}"] + self._inputs(opts["in"])
        if opts["mount_cwd"]:
            cwd = os.getcwd()
            opts["volume"] = opts["volume"] + [f"{cwd}:{cwd}"]
            opts["workdir"] = opts["workdir"] or cwd
        try:
            cid = s.client.json("POST", "/containers/create", None, create_body(opts, image, LANGS[opts["lang"]]))["Id"]
            try:
                code = attach_start(s, cid, False, True, False, s.stdin)
                if code != 0:
                    raise ContainerError(f"the cell exited with code {code}", code)
                self.shell.user_ns.update(_outputs(s, cid, opts["out"]))
            finally:
                s.client.delete(f"/containers/{cid}", {"force": True, "v": True}).close()
        except (DaemonError, ConnectError) as e:
            s.error(f"docker: {e}")
            if opts["lang"] == "python" and "executable file not found" in str(e):
                raise ContainerError(f"{image} has no python3: use an image with python, or --lang sh", 127) from None
            raise ContainerError(f"could not run the cell in {image}", 125) from None

    def _inputs(self, specs: list[str]) -> list[str]:
        """One env var per input (text as is, other values as JSON, handy in sh) and all of them as JSON in PYDOCK_IN."""
        values = {}
        for spec in specs:
            name, _, var = spec.partition("=")
            var = var or name
            if var not in self.shell.user_ns:
                raise ContainerError(f"--in {spec}: no variable {var!r} in the notebook", 125)
            values[name] = self.shell.user_ns[var]
        try:
            env = [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in values.items()]
            return env + [f"PYDOCK_IN={json.dumps(values)}"]
        except TypeError as e:
            raise ContainerError(f"--in: {e}", 125) from None

    @no_var_expand
    @cell_magic
    def dockerfile(self, line: str, cell: str) -> None:
        """`%%dockerfile TAG [build options]`: the cell is the Dockerfile, the notebook's directory the context."""
        parsed = self._parse(DOCKERFILE_CMD, self.expand(line))
        if parsed is None:
            return
        opts, tag = parsed
        out = self._build_output(opts["quiet"])
        image_id = ""
        try:
            for msg in self._build(cell, tag, opts):
                if "error" in msg:
                    sys.stderr.write(msg["error"].rstrip("\n") + "\n")
                    raise BuildError(f"building {tag} failed")
                image_id = (msg.get("aux") or {}).get("ID", image_id)
                if "stream" in msg:
                    out.write(msg["stream"])
        except KeyboardInterrupt:
            raise BuildError(f"building {tag} interrupted", 130) from None
        for extra in opts["tag"]:
            self.endpoint.api_client().tag(image_id, *_split_ref(extra, False))
        if opts["quiet"]:
            sys.stdout.write(image_id + "\n")

    def _build_output(self, quiet: bool) -> Any:
        """Where build output goes: nowhere with -q, a progress widget in a notebook, else the cell's stdout."""
        if quiet:
            return io.StringIO()
        if _has_frontend(self.shell):
            from .widgets import BuildProgress
            return BuildProgress.shown()
        return sys.stdout

    def _build(self, dockerfile: str, tag: str, opts: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The build's JSON messages; the Dockerfile joins the context under a name no context file has."""
        name = f".dockerfile.{uuid.uuid4().hex}"
        try:
            with _context(os.getcwd(), name, dockerfile) as context:
                yield from self.endpoint.api_client().build(
                    fileobj=context, custom_context=True, dockerfile=name, tag=tag, decode=True, rm=True,
                    nocache=opts["no_cache"], pull=opts["pull"], target=opts["target"] or None,
                    buildargs=_pairs(opts["build_arg"]), labels=_pairs(opts["label"]) or None)
        except Exception as e:  # noqa: BLE001 - docker.errors.APIError and connection errors alike
            yield {"error": f"Error response from daemon: {getattr(e, 'explanation', None) or e}"}

    @staticmethod
    def _parse(cmd: Command, line: str) -> tuple[dict[str, Any], str] | None:
        """docker-style option parsing; bad arguments print the usage error and fail the cell without traceback.

        None: `--help` was asked for and printed.
        """
        try:
            opts, args = cmd.parse(shlex.split(line))
        except UsageError as e:
            sys.stderr.write(e.render())
            raise MagicError(str(e), e.status) from None
        if opts["help"]:
            sys.stdout.write(cmd.help_text())
            return None
        return opts, args[0]


def _split_ref(ref: str, all_tags: Any) -> tuple[str, str | None]:
    """(repository, tag) as the pull/tag APIs take them; a digest stays in the repository part."""
    if "@" in ref:
        return ref, None
    name, colon, tag = ref.rpartition(":")
    if colon and "/" not in tag:
        return name, tag
    return ref, (None if all_tags else "latest")


def _script(opts: dict[str, Any], cell: str) -> str:
    """The cell plus what hands `--out` variables back: written on exit, keeping the cell's exit status."""
    if opts["lang"] == "python":
        head = ("import json as _j, os as _o\n_o.makedirs(_o.environ['PYDOCK_OUT'], exist_ok=True)\n"
                "globals().update(_j.loads(_o.environ.get('PYDOCK_IN', '{}')))\n")
        tail = "".join(f"_f = _o.path.join(_o.environ['PYDOCK_OUT'], {n!r})\n"
                       f"if {n!r} in globals() and not _o.path.exists(_f):\n"
                       f"    _pydock_out({n!r}, {n}, _f)\n"
                       for n in opts["out"])
        if tail:
            head += _OUT_HELPER
        return f"{head}exec(compile({cell!r}, '<cell>', 'exec'))\n{tail}"
    saves = "; ".join(f'[ -e "$PYDOCK_OUT/{n}" ] || [ -z "${{{n}+set}}" ] || printf %s "${n}" > "$PYDOCK_OUT/{n}"'
                      for n in opts["out"])
    trap = f"trap '__pydock_rc=$?; {saves}; exit $__pydock_rc' EXIT\n" if saves else ""
    return 'mkdir -p "$PYDOCK_OUT"\n' + trap + cell


def _context(path: str, name: str, dockerfile: str) -> IO[bytes]:
    """The build context tar of `path` minus its .dockerignore matches, plus the Dockerfile as `name`.

    A large one is worth a warning: the notebook's directory often holds data the image does not need,
    and sending it makes every build slow without saying why.
    """
    ignore = os.path.join(path, ".dockerignore")
    exclude = []
    if os.path.exists(ignore):
        with open(ignore) as f:
            exclude = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
    context: IO[bytes] = docker.utils.tar(path, exclude=exclude, dockerfile=(name, dockerfile))
    size = context.seek(0, os.SEEK_END)
    context.seek(0)
    if size > LARGE_CONTEXT:
        advice = "edit its .dockerignore" if exclude else "add a .dockerignore"
        sys.stderr.write(f"pydock: the build context ({path}) is {size / 1e6:.0f} MB, sent on every build; "
                         f"{advice} to leave out what the image does not need\n")
    return context


def _outputs(s: Session, cid: str, names: list[str]) -> dict[str, Any]:
    """`--out` values from the stopped container: JSON when the text parses, else the text itself."""
    if not names:
        return {}
    resp = s.client.get(f"/containers/{cid}/archive", {"path": OUT_DIR})
    values: dict[str, Any] = {}
    with tarfile.open(fileobj=io.BytesIO(resp.content)) as tar:
        for member in tar.getmembers():
            name = os.path.basename(member.name)
            if member.isfile() and name in names:
                text = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
                values[name] = _parse_value(text)
    missing = [n for n in names if n not in values]
    if missing:
        raise ContainerError(f"the cell produced no value for --out {', '.join(missing)}", 0)
    return values


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text.rstrip("\n")


def register(ipython: Any) -> None:
    from .compose import ComposeMagics
    ipython.register_magics(DockerMagics(ipython))
    ipython.register_magics(ComposeMagics(ipython))
