"""Commands on a running container's processes and settings: exec, attach, port, update."""
from __future__ import annotations

from typing import Any

from pydock_cli.client import DaemonError
from pydock_cli.containers import _env, _restart_policy
from pydock_cli.parser import Args, Command, Flag
from pydock_cli.runflags import nano_cpus, ram_in_bytes, swap_bytes
from pydock_cli.session import CliError, Session
from pydock_cli.sortorder import natural_key
from pydock_cli.streams import default_stdin, is_terminal, stream_session, terminal_size


def _check_tty(stdin: Any, interactive: bool, tty: bool) -> None:
    if tty and interactive and not is_terminal(stdin):
        raise CliError("the input device is not a TTY")


def _exec_config(opts: dict[str, Any], cmd: list[str]) -> dict[str, Any]:
    attach = not opts["detach"]
    return {"User": opts["user"], "Privileged": opts["privileged"], "Tty": opts["tty"],
            "AttachStdin": attach and opts["interactive"], "AttachStderr": attach, "AttachStdout": attach,
            "Detach": opts["detach"], "DetachKeys": opts["detach_keys"], "Env": _env(opts["env"]) or None,
            "WorkingDir": opts["workdir"], "Cmd": cmd}


def exec_(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    """Create and start the exec; the exit code is the process's, read back from GET /exec/{id}/json."""
    stdin = default_stdin(s.stdin)
    if not opts["detach"]:
        _check_tty(stdin, opts["interactive"], opts["tty"])
    ref, cmd = args[0], args[1:]
    s.client.json("GET", f"/containers/{ref}/json")
    config = _exec_config(opts, cmd)
    if opts["tty"] and is_terminal(s.out.stream):
        config["ConsoleSize"] = list(terminal_size(s.out.stream))
    eid = s.client.json("POST", f"/containers/{ref}/exec", None, config)["Id"]
    start = {"Detach": opts["detach"], "Tty": opts["tty"]}
    if "ConsoleSize" in config:
        start["ConsoleSize"] = config["ConsoleSize"]
    if opts["detach"]:
        s.client.post(f"/exec/{eid}/start", body=start).close()
        return 0
    conn = s.client.hijack(f"/exec/{eid}/start", body=start)
    try:
        stream_session(s.client, f"/exec/{eid}/resize", conn, opts["tty"], opts["interactive"], stdin, s.out, s.err)
    finally:
        conn.close()
    return int(s.client.json("GET", f"/exec/{eid}/json").get("ExitCode") or 0)


def attach(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    """Attach to a running container; when its output ends, report its exit code as docker does."""
    info = s.client.json("GET", f"/containers/{args[0]}/json")
    state, cfg = info["State"], info["Config"]
    if not state.get("Running"):
        raise CliError("You cannot attach to a stopped container, start it first")
    if state.get("Paused"):
        raise CliError("You cannot attach to a paused container, unpause it first")
    stdin = default_stdin(s.stdin)
    interactive = cfg.get("OpenStdin", False) and not opts["no_stdin"]
    tty = cfg.get("Tty", False)
    _check_tty(stdin, interactive, tty)
    params = {"stream": True, "stdin": interactive, "stdout": True, "stderr": True,
              "detachKeys": opts["detach_keys"] or None}
    conn = s.client.hijack(f"/containers/{info['Id']}/attach", params)
    try:
        stream_session(s.client, f"/containers/{info['Id']}/resize", conn, tty, interactive, stdin, s.out, s.err)
    finally:
        conn.close()
    result = s.client.json("POST", f"/containers/{info['Id']}/wait")
    return int(result.get("StatusCode") or 0)


def _host_port(binding: dict[str, str]) -> str:
    """net.JoinHostPort: IPv6 hosts in brackets."""
    ip = binding.get("HostIp", "")
    return f"[{ip}]:{binding.get('HostPort', '')}" if ":" in ip else f"{ip}:{binding.get('HostPort', '')}"


def port(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    ports = (s.client.json("GET", f"/containers/{args[0]}/json").get("NetworkSettings") or {}).get("Ports") or {}
    if len(args) > 1:
        number, _, proto = args[1].partition("/")
        bindings = ports.get(f"{number}/{proto or 'tcp'}")
        if bindings is None:
            raise CliError(f"Error: No public port '{args[1]}' published for {args[0]}")
        out = [_host_port(b) for b in bindings]
    else:
        out = [f"{key} -> {_host_port(b)}" for key, bindings in ports.items() for b in bindings or []]
    if out:
        s.print("\n".join(sorted(out, key=natural_key)))
    return 0


UPDATE_FLAGS = [
    Flag("", "blkio-weight", "int", 0, "Block IO (relative weight), between 10 and 1000, or 0 to disable "
                                      "(default 0)"),
    Flag("", "cpu-period", "int", 0, "Limit CPU CFS (Completely Fair Scheduler) period"),
    Flag("", "cpu-quota", "int", 0, "Limit CPU CFS (Completely Fair Scheduler) quota"),
    Flag("c", "cpu-shares", "int", 0, "CPU shares (relative weight)"),
    Flag("", "cpus", "str", "", "Number of CPUs", nano_cpus),
    Flag("", "cpuset-cpus", "str", "", "CPUs in which to allow execution (0-3, 0,1)"),
    Flag("", "cpuset-mems", "str", "", "MEMs in which to allow execution (0-3, 0,1)"),
    Flag("m", "memory", "str", "", "Memory limit", ram_in_bytes),
    Flag("", "memory-reservation", "str", "", "Memory soft limit", ram_in_bytes),
    Flag("", "memory-swap", "str", "", "Swap limit equal to memory plus swap: -1 to enable unlimited swap",
         swap_bytes),
    Flag("", "pids-limit", "int", None, "Tune container pids limit (set -1 for unlimited)"),
    Flag("", "restart", "str", "", "Restart policy to apply when a container exits"),
]


def _update_body(opts: dict[str, Any]) -> dict[str, Any]:
    def size(key: str, parse: Any) -> int:
        return parse(opts[key]) if opts[key] else 0

    return {
        "BlkioWeight": opts["blkio_weight"], "CpuPeriod": opts["cpu_period"], "CpuQuota": opts["cpu_quota"],
        "CpuShares": opts["cpu_shares"], "NanoCpus": size("cpus", nano_cpus), "CpusetCpus": opts["cpuset_cpus"],
        "CpusetMems": opts["cpuset_mems"], "Memory": size("memory", ram_in_bytes),
        "MemoryReservation": size("memory_reservation", ram_in_bytes),
        "MemorySwap": size("memory_swap", swap_bytes), "PidsLimit": opts["pids_limit"],
        "RestartPolicy": _restart_policy(opts["restart"]) if opts["restart"] else {"Name": "",
                                                                                   "MaximumRetryCount": 0},
    }


def update(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    """Updates each container, printing its name; warnings and errors come after, as docker prints them."""
    if all(opts[f.dest] == f.initial() for f in UPDATE_FLAGS):
        raise CliError("you must provide one or more flags when using this command")
    body = _update_body(opts)
    warnings: list[str] = []
    errors: list[str] = []
    for ref in args:
        try:
            warnings += s.client.json("POST", f"/containers/{ref}/update", None, body).get("Warnings") or []
        except DaemonError as e:
            errors.append(str(e))
            continue
        s.print(ref)
    if warnings:
        s.print("\n".join(warnings))
    if errors:
        raise CliError("\n".join(errors))
    return 0


COMMANDS = [
    ("container", Command("exec", "[OPTIONS] CONTAINER COMMAND [ARG...]", "Execute a command in a running container",
                          exec_, Args(2, None), [
                              Flag("d", "detach", help="Detached mode: run command in the background"),
                              Flag("", "detach-keys", "str", "", "Override the key sequence for detaching a "
                                                                 "container"),
                              Flag("e", "env", "list", help="Set environment variables"),
                              Flag("i", "interactive", help="Keep STDIN open even if not attached"),
                              Flag("", "privileged", help="Give extended privileges to the command"),
                              Flag("t", "tty", help="Allocate a pseudo-TTY"),
                              Flag("u", "user", "str", "", 'Username or UID (format: "<name|uid>[:<group|gid>]")'),
                              Flag("w", "workdir", "str", "", "Working directory inside the container"),
                          ], interspersed=False)),
    ("container", Command("attach", "[OPTIONS] CONTAINER", "Attach local standard input, output, and error streams "
                          "to a running container", attach, Args(1, 1), [
                              Flag("", "detach-keys", "str", "", "Override the key sequence for detaching a "
                                                                 "container"),
                              Flag("", "no-stdin", help="Do not attach STDIN"),
                              Flag("", "sig-proxy", default=True, help="Proxy all received signals to the process"),
                          ])),
    ("container", Command("port", "CONTAINER [PRIVATE_PORT[/PROTO]]",
                          "List port mappings or a specific mapping for the container", port, Args(1, 2))),
    ("container", Command("update", "[OPTIONS] CONTAINER [CONTAINER...]",
                          "Update configuration of one or more containers", update, Args(1, None), UPDATE_FLAGS)),
]
