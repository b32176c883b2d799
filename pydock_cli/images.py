"""Image commands: images, import, inspect, tag, rmi, history, prune."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydock_cli import formatting, jsonmessage
from pydock_cli.client import DaemonError
from pydock_cli.session import CliError, Session, indent_json, parse_filters
from pydock_cli.streams import default_stdin, is_terminal
from pydock_cli.system import save_stream
from pydock_cli.template import Template
from pydock_common import reference
from pydock_common.errdefs import InvalidParameter


def images(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    filters = list(opts["filter"])
    if args:
        filters.append(f"reference={args[0]}")
    listed = s.client.json("GET", "/images/json", {"all": opts["all"], "filters": parse_filters(filters)})
    fmt = opts["format"]
    if fmt in ("", "table"):
        fmt = "{{.ID}}" if opts["quiet"] else formatting.IMAGES_TABLE
    rows = [row for img in listed for row in formatting.image_rows(img, not opts["no_trunc"])]
    s.out.write(formatting.render(fmt, rows, formatting.IMAGE_HEADERS, "*formatter.imageContext"))
    return 0


def _chunks(stream: Any) -> Iterator[bytes]:
    while True:
        data = stream.read(1 << 20)
        if not data:
            return
        yield data


def import_(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    source = args[0]
    repo = args[1] if len(args) > 1 else ""
    if repo:
        _check_reference(repo)
    params = {"fromSrc": "-", "repo": repo, "tag": "", "message": opts["message"],
              "changes": opts["change"] or None, "platform": opts["platform"] or None}
    if source == "-":
        stdin = s.stdin
        resp = s.client.post("/images/create", params, data=_chunks(getattr(stdin, "buffer", stdin)), stream=True)
    elif "://" in source:
        resp = s.client.post("/images/create", {**params, "fromSrc": source}, stream=True)
    else:
        try:
            with open(source, "rb") as f:
                resp = s.client.post("/images/create", params, data=f, stream=True)
        except OSError as e:
            raise CliError(f"open {source}: {(e.strerror or str(e)).lower()}") from None
    return _print_progress(s, resp)


def _print_progress(s: Session, resp: Any) -> int:
    with resp:
        jsonmessage.display(s.client.json_lines(resp), s.out, is_terminal(s.out.stream))
    return 0


def save(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    save_stream(s, "/images/get", {"names": args}, opts["output"], "failed to save image")
    return 0


def load(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    """`-i FILE` or stdin, which docker refuses to read from a terminal."""
    source = opts["input"]
    if not source and is_terminal(default_stdin(s.stdin)):
        raise CliError("requested load from stdin, but stdin is empty")
    if not source:
        return _load(s, opts, getattr(s.stdin, "buffer", s.stdin))
    try:
        with open(source, "rb") as f:
            return _load(s, opts, f)
    except (FileNotFoundError, PermissionError) as e:
        raise CliError(f"open {source}: {(e.strerror or str(e)).lower()}") from None


def _load(s: Session, opts: dict[str, Any], f: Any) -> int:
    resp = s.client.post("/images/load", {"quiet": opts["quiet"]}, data=_chunks(f), stream=True,
                         headers={"Content-Type": "application/x-tar"})
    return _print_progress(s, resp)


def _check_reference(ref: str) -> reference.Reference:
    try:
        return reference.parse(ref)
    except InvalidParameter as e:
        message = f'Error parsing reference: "{ref}" is not a valid repository/tag: {e.message}'
        raise CliError.from_kind(e, message) from None


def tag(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    source, target = args
    ref = _check_reference(target)
    if ref.digest:
        raise CliError("refusing to create a tag with a digest reference")
    s.client.post(f"/images/{source}/tag", {"repo": ref.repository, "tag": ref.tag}).close()
    return 0


def rmi(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    params = {"force": opts["force"], "noprune": opts["no_prune"]}

    def one(ref: str) -> None:
        for item in s.client.json("DELETE", f"/images/{ref}", params):
            for key in ("Untagged", "Deleted"):
                if item.get(key):
                    s.print(f"{key}: {item[key]}")

    return s.each(args, one, echo=False)


def history(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    layers = s.client.json("GET", f"/images/{args[0]}/history")
    fmt = opts["format"]
    if fmt in ("", "table"):
        fmt = "{{.ID}}" if opts["quiet"] else formatting.HISTORY_TABLE
    rows = [formatting.history_row(h, not opts["no_trunc"], opts["human"]) for h in layers]
    s.out.write(formatting.render(fmt, rows, formatting.HISTORY_HEADERS, "*image.historyContext"))
    return 0


def image_prune(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    filters = list(opts["filter"])
    if opts["all"]:
        warning = "WARNING! This will remove all images without at least one container associated to them."
    else:
        warning = "WARNING! This will remove all dangling images."
        filters.append("dangling=true")
    if not opts["force"] and not s.confirm(warning):
        return 0
    report = s.client.json("POST", "/images/prune", {"filters": parse_filters(filters)})
    deleted = report.get("ImagesDeleted") or []
    if deleted:
        lines = ["Deleted Images:"]
        for item in deleted:
            lines += [f"{key.lower()}: {item[key]}" for key in ("Untagged", "Deleted") if item.get(key)]
        s.print("\n".join(lines) + "\n")
    s.print(f"Total reclaimed space: {formatting.human_size(report.get('SpaceReclaimed') or 0, 4)}")
    return 0


def _inspect(s: Session, refs: list[str], fmt: str, fetch: Any, missing: Any) -> int:
    """Shared by `inspect` and `image inspect`: JSON array or one template line per object."""
    found, rc = [], 0
    if fmt == "json":
        fmt = "{{json .}}"
    tmpl = Template(fmt.replace("\\t", "\t").replace("\\n", "\n")) if fmt else None
    errors = []
    for ref in refs:
        try:
            found.append(fetch(ref))
        except DaemonError as e:
            if e.status != 404:
                raise
            errors.append(missing(ref, e))
            rc = 1
    if tmpl is None:
        s.print(indent_json(found))
    else:
        for obj in found:
            s.print(tmpl.execute(obj))
    for err in errors:
        s.error(err)
    return rc


def image_inspect(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    return _inspect(s, args, opts["format"], lambda ref: s.client.json("GET", f"/images/{ref}/json"),
                    lambda ref, e: str(e))


def inspect(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    kind = opts["type"]
    if kind not in ("", "container", "image"):
        raise CliError(f'"{kind}" is not a valid value for --type')

    def fetch(ref: str) -> Any:
        if kind in ("", "container"):
            try:
                return s.client.json("GET", f"/containers/{ref}/json", {"size": opts["size"]})
            except DaemonError as e:
                if e.status != 404 or kind == "container":
                    raise
        return s.client.json("GET", f"/images/{ref}/json")

    def missing(ref: str, e: DaemonError) -> str:
        return str(e) if kind else f"Error: No such object: {ref}"

    return _inspect(s, args, opts["format"], fetch, missing)
