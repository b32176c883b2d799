"""`docker build` with the classic builder: the context is tarred here, filtered by `.dockerignore`,
and sent to `POST /build`, whose JSON stream is printed as `DOCKER_BUILDKIT=0 docker build` prints it."""
from __future__ import annotations

import io
import json
import os
import secrets
import tarfile
import tempfile
from typing import IO, Any

from pydock_cli import jsonmessage
from pydock_cli.formatting import human_size
from pydock_cli.session import CliError, Session
from pydock_cli.streams import Out, is_terminal
from pydock_common.dockerignore import IgnoreMatcher, read_patterns

_LEGACY_WARNING = ("DEPRECATED: The legacy builder is deprecated and will be removed in a future release.\n"
                   "{detail}\n")
_BUILDKIT_OFF = ("            BuildKit is currently disabled; enable it by removing the DOCKER_BUILDKIT=0\n"
                 "            environment-variable.\n")
_NO_BUILDX = ("            Install the buildx component to build images with BuildKit:\n"
              "            https://docs.docker.com/go/buildx/\n")


def _context_files(root: str, matcher: IgnoreMatcher) -> list[str]:
    """Context-relative paths in walk order; an excluded directory is entered only if a `!` rule could
    bring something inside it back."""
    reincludes = any(p.exclusion for p in matcher.patterns)
    out: list[str] = []
    for top, dirs, files in os.walk(root):
        rel_top = os.path.relpath(top, root)
        rel_top = "" if rel_top == "." else rel_top
        kept_dirs = []
        for d in sorted(dirs):
            rel = os.path.join(rel_top, d)
            if not matcher.excluded(rel):
                out.append(rel)
                kept_dirs.append(d)
            elif reincludes:
                kept_dirs.append(d)
        dirs[:] = kept_dirs
        out += [os.path.join(rel_top, f) for f in sorted(files) if not matcher.excluded(os.path.join(rel_top, f))]
    return out


def _read_ignore(root: str) -> list[str]:
    try:
        with open(os.path.join(root, ".dockerignore"), encoding="utf-8", errors="replace") as f:
            return read_patterns(f.read())
    except FileNotFoundError:
        return []


def _dockerfile(context: str, name: str) -> tuple[str, str | None]:
    """(name in the context, path of a Dockerfile outside it to add under a random name)."""
    path = os.path.abspath(name) if name else os.path.join(context, "Dockerfile")
    if not os.path.lexists(path):
        raise CliError(f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                       f"lstat {path}: no such file or directory")
    rel = os.path.relpath(path, context)
    if rel.startswith(".." + os.sep) or rel == "..":
        return f".dockerfile.{secrets.token_hex(10)}", path
    return rel, None


def context_tar(context: str, dockerfile: str, out: IO[bytes]) -> tuple[str, int]:
    """Writes the filtered context; returns (Dockerfile name for the daemon, tar size as Go's writer would
    make it: tarfile's record padding is not counted)."""
    if not os.path.isdir(context):
        raise CliError(f'unable to prepare context: path "{context}" not found')
    name, outside = _dockerfile(context, dockerfile)
    matcher = IgnoreMatcher(_read_ignore(context) + [f"!{name}", "!.dockerignore"])
    try:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for rel in _context_files(context, matcher):
                tar.add(os.path.join(context, rel), arcname=rel, recursive=False, filter=_owner_free)
            if outside:
                tar.add(outside, arcname=name, recursive=False, filter=_owner_free)
    except OSError as e:
        raise CliError(f"error checking context: {e.strerror or e}: {e.filename}") from None
    return name, tar.offset


def _owner_free(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """The client's user and group names mean nothing in the image: Docker sends numeric ids only."""
    info.uname = info.gname = ""
    info.mtime = int(info.mtime)  # whole seconds, as Docker sends them (a fraction would need a PAX header)
    return info


def stdin_context(data: bytes, out: IO[bytes]) -> int:
    """`build -`: a tar (plain or compressed) is the context; anything else is the Dockerfile."""
    try:
        tarfile.open(fileobj=io.BytesIO(data), mode="r:*").close()
        out.write(data)
        return len(data)
    except tarfile.TarError:
        pass
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size, info.mode = len(data), 0o600
        tar.addfile(info, io.BytesIO(data))
    return tar.offset


def _params(opts: dict[str, Any], dockerfile: str) -> dict[str, Any]:
    build_args = {}
    for item in opts["build_arg"]:
        key, eq, value = item.partition("=")
        if eq:
            build_args[key] = value
        elif key in os.environ:
            build_args[key] = os.environ[key]
    labels = dict((lbl.split("=", 1) + [""])[:2] for lbl in opts["label"])
    return {"t": opts["tag"] or None, "dockerfile": dockerfile, "buildargs": json.dumps(build_args),
            "labels": json.dumps(labels), "target": opts["target"] or None, "nocache": opts["no_cache"],
            "q": opts["quiet"], "pull": opts["pull"], "rm": opts["rm"], "forcerm": opts["force_rm"],
            "networkmode": opts["network"] or None, "platform": opts["platform"] or None}


def build(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    detail = _BUILDKIT_OFF if os.environ.get("DOCKER_BUILDKIT") == "0" else _NO_BUILDX
    s.err.write(_LEGACY_WARNING.format(detail=detail))
    with tempfile.TemporaryFile() as body:
        if args[0] == "-":
            stdin = s.stdin
            size = stdin_context(getattr(stdin, "buffer", stdin).read(), body)
            dockerfile = "Dockerfile"
        else:
            dockerfile, size = context_tar(os.path.abspath(args[0]), opts["file"], body)
        body.seek(0)
        return _send(s, opts, body, dockerfile, size)


def _send(s: Session, opts: dict[str, Any], body: IO[bytes], dockerfile: str, size: int) -> int:
    """With `-q` the stream is collected and printed only on success (all of it on stderr on failure)."""
    progress, output = (io.StringIO(), io.StringIO()) if opts["quiet"] else (None, None)
    progress_out = Out(progress) if progress is not None else s.out
    out = Out(output) if output is not None else s.out
    progress_out.write(f"Sending build context to Docker daemon {human_size(size, 4):>8}\r\r\n")
    resp = s.client.post("/build", _params(opts, dockerfile), data=body, stream=True,
                         headers={"Content-Type": "application/x-tar"})
    with resp:
        try:
            jsonmessage.display(s.client.json_lines(resp), out, is_terminal(out.stream))
        except CliError:
            if progress is not None and output is not None:
                s.err.write(progress.getvalue() + output.getvalue())
            raise
    if output is not None:
        s.out.write(output.getvalue())
    return 0
