"""Registry commands: pull, push, login, logout.

Credentials live where docker keeps them, `auths` in `config.json` of the
client config directory (`--config`, `$DOCKER_CONFIG`, `~/.docker`), as
base64 `user:password`; pull and push send them to the daemon as the
base64url JSON `X-Registry-Auth` header.
"""
from __future__ import annotations

import base64
import io
import json
import os
from typing import Any

from pydock_cli import jsonmessage
from pydock_cli.session import CliError, Session
from pydock_cli.streams import Out, is_terminal
from pydock_common import reference
from pydock_common.errdefs import InvalidParameter
from pydock_common.files import atomic_write

HUB_SERVER = "https://index.docker.io/v1/"


# ---- the client config file -------------------------------------------------
def config_path(s: Session) -> str:
    base = s.config_dir or os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(base, "config.json")


def load_config(s: Session) -> dict[str, Any]:
    try:
        with open(config_path(s)) as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise CliError(f"loading config file: {config_path(s)}: {e}") from None
    return data if isinstance(data, dict) else {}


def save_config(s: Session, data: dict[str, Any]) -> None:
    """Written as docker writes it (tab-indented), readable by the owner only."""
    path = config_path(s)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    atomic_write(path, json.dumps(data, indent="\t").encode(), mode=0o600)


def server_key(server: str) -> str:
    """ConvertToHostname, except for Docker Hub's historical key."""
    if server in ("", "docker.io", "index.docker.io", "registry-1.docker.io", HUB_SERVER):
        return HUB_SERVER
    return server.split("://", 1)[-1].split("/", 1)[0]


def stored_auth(s: Session, server: str) -> dict[str, str]:
    entry = (load_config(s).get("auths") or {}).get(server_key(server)) or {}
    out = {"serveraddress": server_key(server)}
    if entry.get("auth"):
        user, _, password = base64.b64decode(entry["auth"]).decode(errors="replace").partition(":")
        out.update(username=user, password=password)
    if entry.get("identitytoken"):
        out["identitytoken"] = entry["identitytoken"]
    return out


def registry_auth_header(s: Session, ref: reference.Reference) -> dict[str, str]:
    """X-Registry-Auth for the reference's registry (an empty object when not logged in, as docker sends)."""
    auth = stored_auth(s, ref.domain)
    if "username" not in auth and "identitytoken" not in auth:
        auth = {}
    return {"X-Registry-Auth": base64.urlsafe_b64encode(json.dumps(auth).encode()).decode()}


def parse_ref(name: str) -> reference.Reference:
    try:
        return reference.parse(name, default_tag=False)
    except InvalidParameter as e:
        raise CliError.from_kind(e) from None


# ---- pull / push ----------------------------------------------------------
def pull(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    ref = parse_ref(args[0])
    if opts["all_tags"] and (ref.tag or ref.digest):
        raise CliError("tag can't be used with --all-tags/-a")
    if not opts["all_tags"] and not ref.tag and not ref.digest:
        ref = reference.Reference(ref.domain, ref.path, "latest")
        if not opts["quiet"]:
            s.print("Using default tag: latest")
    params = {"fromImage": ref.familiar_repository, "tag": ref.digest or ref.tag,
              "platform": opts["platform"] or None}
    resp = s.client.post("/images/create", params, stream=True, headers=registry_auth_header(s, ref))
    _display(s, resp, opts["quiet"])
    s.print(str(ref))
    return 0


def push(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    ref = parse_ref(args[0])
    if opts["all_tags"] and (ref.tag or ref.digest):
        raise CliError("tag can't be used with --all-tags/-a")
    tag = ref.tag if not opts["all_tags"] else ""
    if not tag and not opts["all_tags"] and not ref.digest:
        tag = "latest"
        if not opts["quiet"]:
            s.print("Using default tag: latest")
    params = {"tag": tag or None, "platform": opts["platform"] or None}
    resp = s.client.post(f"/images/{ref.familiar_repository}/push", params, stream=True,
                         headers=registry_auth_header(s, ref))
    _display(s, resp, opts["quiet"])
    if opts["quiet"]:
        s.print(str(reference.Reference(ref.domain, ref.path, tag, ref.digest)))
    return 0


def _display(s: Session, resp: Any, quiet: bool) -> None:
    """The progress stream on stdout; with `-q` it is still read (an in-band error still fails) but not shown."""
    out = Out(io.StringIO()) if quiet else s.out
    with resp:
        jsonmessage.display(s.client.json_lines(resp), out, is_terminal(out.stream))


# ---- login / logout -------------------------------------------------------
_STORE_WARNING = ("\nWARNING! Your credentials are stored unencrypted in '{path}'.\n"
                  "Configure a credential helper to remove this warning. See\n"
                  "https://docs.docker.com/go/credential-store/\n")


def _read_password(s: Session) -> str:
    stdin = s.stdin
    data = getattr(stdin, "buffer", stdin).read()
    text = data.decode() if isinstance(data, bytes) else data
    return text.rstrip("\n").rstrip("\r")


def _credentials(s: Session, opts: dict[str, Any], server: str) -> tuple[str, str, bool]:
    """(user, password, from_store); stored credentials are used when none are given, as docker does."""
    user, password = opts["username"].strip(), opts["password"]
    if opts["password"] and opts["password_stdin"]:
        raise CliError("conflicting options: cannot specify both --password and --password-stdin")
    if opts["password_stdin"]:
        if not user:
            raise CliError("the --password-stdin option requires --username to be set")
        password = _read_password(s)
    elif password:
        s.error("WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
    if user and password:
        return user, password, False
    stored = stored_auth(s, server)
    if not user and stored.get("username"):
        s.error(f"Authenticating with existing credentials... [Username: {stored['username']}]\n\n"
                " Info -> To login with a different account, run 'docker logout' followed by 'docker login'\n\n")
        return stored["username"], stored.get("password", ""), True
    raise CliError("Error: Cannot perform an interactive login from a non TTY device")


def login(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    server = args[0] if args else HUB_SERVER
    user, password, from_store = _credentials(s, opts, server)
    key = server_key(server)
    answer = s.client.json("POST", "/auth", body={"username": user, "password": password, "serveraddress": key})
    entry: dict[str, str] = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
    if answer.get("IdentityToken"):
        entry = {"auth": base64.b64encode(f"{user}:".encode()).decode(), "identitytoken": answer["IdentityToken"]}
    config = load_config(s)
    auths = config.setdefault("auths", {})
    if not from_store and auths.get(key) != entry:
        auths[key] = entry
        save_config(s, config)
        s.error(_STORE_WARNING.format(path=config_path(s)))
    s.print(answer.get("Status") or "Login Succeeded")
    return 0


def logout(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    server = args[0] if args else HUB_SERVER
    key = server_key(server)
    s.print(f"Removing login credentials for {key}")
    config = load_config(s)
    if key in (config.get("auths") or {}):
        del config["auths"][key]
        save_config(s, config)
    return 0
