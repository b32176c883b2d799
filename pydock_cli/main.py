"""`pydock`: the docker command line, talking to a pydock (or Docker) daemon.

`main()` never exits the interpreter and writes only to the streams it is
given, so the `%docker` IPython magic can call it in-process and capture
the output; the console script turns its return value into the exit code.
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import IO, Any

from pydock_cli import build as b
from pydock_cli import containers as c
from pydock_cli import copy as cp
from pydock_cli import distribution as d
from pydock_cli import exec as ex
from pydock_cli import images as i
from pydock_cli import network as nw
from pydock_cli import stats as st
from pydock_cli import system as sy
from pydock_cli import volume as vol
from pydock_cli.client import ConnectError, DaemonError, resolve_host
from pydock_cli.containers import CONTAINER_CONFIG_FLAGS
from pydock_cli.parser import PROG, Args, Command, Flag, Group, UsageError
from pydock_cli.session import CliError, Session
from pydock_cli.streams import Out
from pydock_cli.template import TemplateError
from pydock_common import __version__

CONTAINER = "CONTAINER [CONTAINER...]"
FILTER = Flag("f", "filter", "list", help="Filter output based on conditions provided")
FORCE_PROMPT = Flag("f", "force", help="Do not prompt for confirmation")
TIME = Flag("t", "time", "int", None, "Seconds to wait before killing the container")
SIGNAL = Flag("s", "signal", "str", "", "Signal to send to the container")


def _fmt(what: str) -> Flag:
    return Flag("", "format", "str", "", f"Format output using a custom template for {what}")


def _commands() -> list[tuple[str, Command]]:
    """(group or "", command) pairs; group commands are also reachable at top level where docker allows."""
    some = Args(1, None)
    ps_flags = [Flag("a", "all", help="Show all containers (default shows just running)"), FILTER, _fmt("containers"),
                Flag("n", "last", "int", -1, "Show n last created containers (includes all states)"),
                Flag("l", "latest", help="Show the latest created container (includes all states)"),
                Flag("", "no-trunc", help="Don't truncate output"),
                Flag("q", "quiet", help="Only display container IDs"), Flag("s", "size", help="Display total file sizes")]
    img_flags = [Flag("a", "all", help="Show all images (default hides intermediate images)"),
                 Flag("", "digests", help="Show digests"), FILTER, _fmt("images"),
                 Flag("", "no-trunc", help="Don't truncate output"), Flag("q", "quiet", help="Only show image IDs")]
    run_usage = "[OPTIONS] IMAGE [COMMAND] [ARG...]"
    create_flags = [f for f in CONTAINER_CONFIG_FLAGS if f.long != "detach"]
    return [
        ("", Command("version", "[OPTIONS]", "Show the Docker version information", sy.version, flags=[_fmt("version")])),
        ("system", Command("info", "[OPTIONS]", "Display system-wide information", sy.info, flags=[_fmt("info")])),
        ("system", Command("events", "[OPTIONS]", "Get real time events from the server", sy.events,
                           flags=[FILTER, _fmt("events"), Flag("", "since", "str", "", "Show all events created since timestamp"),
                                  Flag("", "until", "str", "", "Stream events until this timestamp")])),
        ("container", Command("run", run_usage, "Create and run a new container from an image", c.run,
                              Args(1, None), CONTAINER_CONFIG_FLAGS, interspersed=False)),
        ("container", Command("create", run_usage, "Create a new container", c.create, Args(1, None), create_flags,
                              interspersed=False)),
        ("container", Command("start", "[OPTIONS] " + CONTAINER, "Start one or more stopped containers", c.start, some,
                              [Flag("a", "attach", help="Attach STDOUT/STDERR and forward signals"),
                               Flag("i", "interactive", help="Attach container's STDIN")])),
        ("container", Command("stop", "[OPTIONS] " + CONTAINER, "Stop one or more running containers", c.stop, some,
                              [SIGNAL, Flag("t", "timeout", "int", None, "Seconds to wait before killing the container")])),
        ("container", Command("restart", "[OPTIONS] " + CONTAINER, "Restart one or more containers", c.restart, some,
                              [SIGNAL, Flag("t", "timeout", "int", None, "Seconds to wait before killing the container")])),
        ("container", Command("kill", "[OPTIONS] " + CONTAINER, "Kill one or more running containers", c.kill, some,
                              [SIGNAL])),
        ("container", Command("pause", CONTAINER, "Pause all processes within one or more containers", c.pause, some)),
        ("container", Command("unpause", CONTAINER, "Unpause all processes within one or more containers", c.unpause,
                              some)),
        ("container", Command("wait", CONTAINER, "Block until one or more containers stop, then print their exit codes",
                              c.wait, some)),
        ("container", Command("rm", "[OPTIONS] " + CONTAINER, "Remove one or more containers", c.rm, some,
                              [Flag("f", "force", help="Force the removal of a running container (uses SIGKILL)"),
                               Flag("v", "volumes", help="Remove anonymous volumes associated with the container"),
                               Flag("l", "link", help="Remove the specified link")])),
        ("container", Command("rename", "CONTAINER NEW_NAME", "Rename a container", c.rename, Args(2, 2))),
        ("container", Command("ps", "[OPTIONS]", "List containers", c.ps, Args(0, 0), ps_flags)),
        ("container", Command("logs", "[OPTIONS] CONTAINER", "Fetch the logs of a container", c.logs, Args(1, 1),
                              [Flag("f", "follow", help="Follow log output"),
                               Flag("", "since", "str", "", "Show logs since timestamp or relative"),
                               Flag("n", "tail", "str", "all", "Number of lines to show from the end of the logs"),
                               Flag("t", "timestamps", help="Show timestamps"),
                               Flag("", "until", "str", "", "Show logs before a timestamp or relative"),
                               Flag("", "details", help="Show extra details provided to logs")])),
        ("container", Command("top", "CONTAINER [ps OPTIONS]", "Display the running processes of a container", sy.top,
                              Args(1, None), interspersed=False)),
        ("container", Command("cp", "[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tdocker cp [OPTIONS] SRC_PATH|- "
                              "CONTAINER:DEST_PATH", "Copy files/folders between a container and the local filesystem",
                              cp.cp, Args(2, 2),
                              [Flag("a", "archive", help="Archive mode (copy all uid/gid information)"),
                               Flag("L", "follow-link", help="Always follow symbol link in SRC_PATH"),
                               Flag("q", "quiet", help="Suppress progress output during copy. Progress output is "
                                                       "automatically suppressed if no terminal is attached")])),
        ("container", Command("stats", "[OPTIONS] [CONTAINER...]",
                              "Display a live stream of container(s) resource usage statistics", st.stats,
                              Args(0, None),
                              [Flag("a", "all", help="Show all containers (default shows just running)"),
                               _fmt("stats"), Flag("", "no-stream", help="Disable streaming stats and only pull the "
                                                                        "first result"),
                               Flag("", "no-trunc", help="Do not truncate output")])),
        ("container", Command("diff", "CONTAINER", "Inspect changes to files or directories on a container's filesystem",
                              sy.diff, Args(1, 1))),
        ("container", Command("export", "[OPTIONS] CONTAINER", "Export a container's filesystem as a tar archive",
                              sy.export, Args(1, 1), [Flag("o", "output", "str", "", "Write to a file, instead of STDOUT")])),
        ("container", Command("commit", "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
                              "Create a new image from a container's changes", sy.commit, Args(1, 2),
                              [Flag("a", "author", "str", "", 'Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")'),
                               Flag("c", "change", "list", help="Apply Dockerfile instruction to the created image"),
                               Flag("m", "message", "str", "", "Commit message"),
                               Flag("p", "pause", default=True, help="Pause container during commit")])),
        ("image", Command("images", "[OPTIONS] [REPOSITORY[:TAG]]", "List images", i.images, Args(0, 1), img_flags)),
        ("image", Command("import", "[OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
                          "Import the contents from a tarball to create a filesystem image", i.import_, Args(1, 2),
                          [Flag("c", "change", "list", help="Apply Dockerfile instruction to the created image"),
                           Flag("m", "message", "str", "", "Set commit message for imported image"),
                           Flag("", "platform", "str", "", "Set platform if server is multi-platform capable")])),
        ("image", Command("build", "[OPTIONS] PATH | URL | -", "Build an image from a Dockerfile", b.build, Args(1, 1),
                          [Flag("", "build-arg", "list", help="Set build-time variables"),
                           Flag("f", "file", "str", "", "Name of the Dockerfile (Default is \"PATH/Dockerfile\")"),
                           Flag("", "force-rm", help="Always remove intermediate containers"),
                           Flag("", "label", "list", help="Set metadata for an image"),
                           Flag("", "network", "str", "default", "Set the networking mode for the RUN instructions "
                                                                 "during build"),
                           Flag("", "no-cache", help="Do not use cache when building the image"),
                           Flag("", "platform", "str", "", "Set platform if server is multi-platform capable"),
                           Flag("", "pull", help="Always attempt to pull a newer version of the image"),
                           Flag("q", "quiet", help="Suppress the build output and print image ID on success"),
                           Flag("", "rm", default=True, help="Remove intermediate containers after a successful "
                                                             "build"),
                           Flag("t", "tag", "list", help='Name and optionally a tag in the "name:tag" format'),
                           Flag("", "target", "str", "", "Set the target build stage to build.")])),
        ("image", Command("save", "[OPTIONS] IMAGE [IMAGE...]",
                          "Save one or more images to a tar archive (streamed to STDOUT by default)", i.save, some,
                          [Flag("o", "output", "str", "", "Write to a file, instead of STDOUT")])),
        ("image", Command("load", "[OPTIONS]", "Load an image from a tar archive or STDIN", i.load, Args(0, 0),
                          [Flag("i", "input", "str", "", "Read from tar archive file, instead of STDIN"),
                           Flag("q", "quiet", help="Suppress the load output")])),
        ("image", Command("pull", "[OPTIONS] NAME[:TAG|@DIGEST]", "Download an image from a registry", d.pull,
                          Args(1, 1), [Flag("a", "all-tags", help="Download all tagged images in the repository"),
                                       Flag("", "platform", "str", "", "Set platform if server is multi-platform "
                                                                       "capable"),
                                       Flag("q", "quiet", help="Suppress verbose output")])),
        ("image", Command("push", "[OPTIONS] NAME[:TAG]", "Upload an image to a registry", d.push, Args(1, 1),
                          [Flag("a", "all-tags", help="Push all tags of an image to the repository"),
                           Flag("", "platform", "str", "", "Push a platform-specific manifest as a single-platform "
                                                           "image to the registry"),
                           Flag("q", "quiet", help="Suppress verbose output")])),
        ("", Command("login", "[OPTIONS] [SERVER]", "Authenticate to a registry", d.login, Args(0, 1),
                     [Flag("p", "password", "str", "", "Password or Personal Access Token (PAT)"),
                      Flag("", "password-stdin", help="Take the Password or Personal Access Token (PAT) from stdin"),
                      Flag("u", "username", "str", "", "Username")])),
        ("", Command("logout", "[SERVER]", "Log out from a registry", d.logout, Args(0, 1))),
        ("image", Command("tag", "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
                          "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", i.tag, Args(2, 2))),
        ("image", Command("rmi", "[OPTIONS] IMAGE [IMAGE...]", "Remove one or more images", i.rmi, some,
                          [Flag("f", "force", help="Force removal of the image"),
                           Flag("", "no-prune", help="Do not delete untagged parents")])),
        ("image", Command("history", "[OPTIONS] IMAGE", "Show the history of an image", i.history, Args(1, 1),
                          [_fmt("history"), Flag("H", "human", default=True, help="Print sizes and dates in human readable format"),
                           Flag("", "no-trunc", help="Don't truncate output"), Flag("q", "quiet", help="Only show image IDs")])),
        ("", Command("inspect", "[OPTIONS] NAME|ID [NAME|ID...]", "Return low-level information on Docker objects",
                     i.inspect, some, [Flag("f", "format", "str", "", "Format output using a custom template"),
                                       Flag("s", "size", help="Display total file sizes if the type is container"),
                                       Flag("", "type", "str", "", "Only inspect objects of the given type")])),
    ]


# Subcommand names inside management groups that differ from the top-level name.
_GROUP_NAMES = {("image", "images"): ("ls", "list"), ("image", "rmi"): ("rm", "remove"),
                ("container", "ps"): ("ls", "list"), ("container", "rm"): ("rm", "remove")}

_GROUP_SHORT = {"container": "Manage containers", "image": "Manage images", "system": "Manage Docker",
                "network": "Manage networks", "volume": "Manage volumes",
                "kernel": "Manage Jupyter kernels that run in containers"}


def kernel_add(s: Session, opts: dict[str, Any], args: list[str]) -> int:
    """`pydock kernel add IMAGE [RUN OPTIONS]`: a kernelspec whose kernels run in containers of IMAGE."""
    try:
        from pydock_ext.kernelspec import KernelSpecError, add
    except ImportError as e:
        raise CliError(f"pydock kernel needs the Jupyter extension's packages: {e}") from None
    try:
        where = add(args[0], opts["name"], opts["display_name"], args[1:], check=not opts["no_check"])
    except KernelSpecError as e:
        raise CliError(str(e)) from None
    s.print(f"Installed kernelspec {os.path.basename(where)} in {os.path.dirname(where)}")
    return 0


def _extra_group_commands() -> list[tuple[str, Command]]:
    """Commands that exist only inside a group (`image prune`, `image inspect`, ...)."""
    inspect_flags = [Flag("f", "format", "str", "", "Format output using a custom template")]
    return [
        ("image", Command("inspect", "[OPTIONS] IMAGE [IMAGE...]", "Display detailed information on one or more images",
                          i.image_inspect, Args(1, None), inspect_flags, parent=f"{PROG} image")),
        ("image", Command("prune", "[OPTIONS]", "Remove unused images", i.image_prune, Args(0, 0),
                          [Flag("a", "all", help="Remove all unused images, not just dangling ones"), FILTER, FORCE_PROMPT],
                          parent=f"{PROG} image")),
        ("system", Command("df", "[OPTIONS]", "Show docker disk usage", sy.df, Args(0, 0),
                           [_fmt("disk usage")], parent=f"{PROG} system")),
        ("system", Command("prune", "[OPTIONS]", "Remove unused data", sy.system_prune, Args(0, 0),
                           [Flag("a", "all", help="Remove all unused images not just dangling ones"),
                            Flag("", "filter", "list", help='Provide filter values (e.g. "label=<key>=<value>")'),
                            FORCE_PROMPT, Flag("", "volumes", help="Prune anonymous volumes")],
                           parent=f"{PROG} system")),
        ("kernel", Command("add", "[OPTIONS] IMAGE [RUN OPTIONS...]",
                           "Add a Jupyter kernel that runs in containers of IMAGE", kernel_add, Args(1, None),
                           [Flag("", "name", "str", "", "Kernelspec name (default: pydock-IMAGE)"),
                            Flag("", "display-name", "str", "", 'Name in the launcher (default: "Python (IMAGE)")'),
                            Flag("", "no-check", help="Do not check that the image has ipykernel")],
                           interspersed=False, parent=f"{PROG} kernel")),
        ("container", Command("prune", "[OPTIONS]", "Remove all stopped containers", c.container_prune, Args(0, 0),
                              [FILTER, FORCE_PROMPT], parent=f"{PROG} container")),
        ("container", Command("inspect", "[OPTIONS] CONTAINER [CONTAINER...]",
                              "Display detailed information on one or more containers", i.inspect, Args(1, None),
                              [Flag("f", "format", "str", "", "Format output using a custom template"),
                               Flag("s", "size", help="Display total file sizes"),
                               Flag("", "type", "str", "container", "")], parent=f"{PROG} container")),
    ]


def build() -> tuple[dict[str, Command], dict[str, Group]]:
    top: dict[str, Command] = {}
    groups = {name: Group(name, short, {}) for name, short in _GROUP_SHORT.items()}
    for group, cmd in _commands() + ex.COMMANDS:
        top[cmd.name] = cmd
        if group:
            names: tuple[str, ...] = _GROUP_NAMES.get((group, cmd.name), (cmd.name,))
            sub = Command(names[0], cmd.usage, cmd.short, cmd.run, cmd.args, cmd.flags, cmd.interspersed,
                          f"{PROG} {group}")
            groups[group].commands.update(dict.fromkeys(names, sub))
    for group, cmd in _extra_group_commands():
        groups[group].commands[cmd.name] = cmd
    for group, names, cmd in nw.COMMANDS + vol.COMMANDS:
        groups[group].commands.update(dict.fromkeys(names, cmd))
    return top, groups


GLOBAL = Command("", "[OPTIONS] COMMAND", "A self-sufficient runtime for containers", lambda *a: 0, Args(0, None), [
    Flag("H", "host", "list", help="Daemon socket to connect to"),
    Flag("D", "debug", help="Enable debug mode"),
    Flag("l", "log-level", "str", "info", 'Set the logging level ("debug", "info", "warn", "error", "fatal")'),
    Flag("", "config", "str", "", "Location of client config files"),
    Flag("c", "context", "str", "", "Name of the context to use to connect to the daemon"),
    Flag("v", "version", help="Print version information and quit"),
], interspersed=False, parent=PROG)


def _global_help(top: dict[str, Command], groups: dict[str, Group]) -> str:
    lines = [f"Usage:  {PROG} [OPTIONS] COMMAND", "", GLOBAL.short, "", "Management Commands:"]
    lines += [f"  {g.name:<11} {g.short}" for g in sorted(groups.values(), key=lambda g: g.name)]
    lines += ["", "Commands:"] + [f"  {n:<11} {top[n].short}" for n in sorted(top)]
    lines += ["", "Global Options:"] + GLOBAL.help_text().split("Options:\n", 1)[1].rstrip("\n").split("\n")
    lines += ["", f"Run '{PROG} COMMAND --help' for more information on a command."]
    return "\n".join(lines) + "\n"


def _dispatch(argv: list[str], s: Session, top: dict[str, Command], groups: dict[str, Group]) -> int:
    gopts, rest = GLOBAL.parse(argv)
    if gopts["version"]:
        s.print(f"Docker version {__version__}, build pydock")
        return 0
    if gopts["host"]:
        s.host = gopts["host"][-1]
    if gopts["config"]:
        s.config_dir = gopts["config"]
    if gopts["help"] or not rest:
        s.out.write(_global_help(top, groups))
        return 0
    word, rest = rest[0], rest[1:]
    if word in groups:
        group = groups[word]
        if not rest or rest[0] in ("--help", "-h"):
            s.out.write(group.help_text())
            return 0
        cmd = group.commands.get(rest[0])
        if cmd is None:
            s.err.write(group.unknown(rest[0]))
            return 1
        rest = rest[1:]
    elif word in top:
        cmd = top[word]
    else:
        s.error(f"{PROG}: unknown command: {PROG} {word}\n\nRun '{PROG} --help' for more information")
        return 1
    opts, args = cmd.parse(rest)
    if opts["help"]:
        s.out.write(cmd.help_text())
        return 0
    return cmd.run(s, opts, args)


def main(argv: list[str] | None = None, stdout: IO[str] | None = None, stderr: IO[str] | None = None,
         stdin: Any = None) -> int:
    """Runs one docker command line; returns its exit status."""
    s = Session(resolve_host(None), Out(stdout or sys.stdout), Out(stderr or sys.stderr),
                sys.stdin if stdin is None else stdin)
    top, groups = build()
    try:
        return _dispatch(list(sys.argv[1:] if argv is None else argv), s, top, groups)
    except UsageError as e:
        s.err.write(e.render())
        return e.status
    except (DaemonError, ConnectError, CliError, TemplateError) as e:
        s.error(str(e))
        return getattr(e, "status", 1) if isinstance(e, CliError) else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `pydock events | head`: stop quietly, like a Go program on EPIPE
        _discard_stdout()
        return 1
    finally:
        s.close()


def _discard_stdout() -> None:
    """Points fd 1 at /dev/null so the interpreter's final flush does not raise again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
