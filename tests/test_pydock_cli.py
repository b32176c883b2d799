"""The `pydock` CLI against a real pydockd, checked against the real docker CLI's output.

Most tests run the CLI in-process through `main(argv, stdout, stderr)`, the
way the `%docker` magic will; a few run the console entry as a subprocess to
cover real stdin/stdout file descriptors.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import uuid

import pytest

from engine.cli.formatting import human_size, tabwrite
from engine.cli.main import main
from engine.cli.template import Template, TemplateError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pydock(daemon, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(["-H", daemon.url, *args], stdout=out, stderr=err,
              stdin=io.BytesIO(stdin) if stdin is not None else io.BytesIO(b""))
    return rc, out.getvalue(), err.getvalue()


def pydock_proc(daemon, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYDOCK_HOST": daemon.url}
    return subprocess.run([sys.executable, "-m", "engine.cli.main", *args], input=input, capture_output=True,
                          cwd=REPO, env=env, timeout=60, check=False)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- pure formatting -------------------------------------------------------

def test_template_subset() -> None:
    data = {"Name": "x", "Labels": {"b": "2", "a": "1"}, "Cmd": ["sh", "-c"], "Empty": [], "N": None}
    assert Template("{{.Name}}\t{{json .Cmd}}").execute(data) == 'x\t["sh","-c"]'
    assert Template("{{.Labels}} {{.N}} {{len .Cmd}}").execute(data) == "map[a:1 b:2] <no value> 2"
    assert Template("{{range .Cmd}}[{{.}}]{{end}}{{if .Empty}}y{{else}}n{{end}}").execute(data) == "[sh][-c]n"
    assert Template('{{join .Cmd ","}} {{.Name | upper}} {{index .Labels "a"}}').execute(data) == "sh,-c X 1"
    assert Template("a {{- .Name -}} b").execute(data) == "axb"
    with pytest.raises(TemplateError, match="unclosed action"):
        Template("{{.Name")


def test_tabwriter_and_sizes() -> None:
    assert tabwrite("A\tBB\tC\nlonger-than-ten\tx\ty\n") == ("A                 BB        C\n"
                                                            "longer-than-ten   x         y\n")
    assert [human_size(n) for n in (0, 999, 1000, 1_984_000, 25_000_000_000)] == ["0B", "999B", "1kB", "1.98MB",
                                                                                  "25GB"]


# --- containers --------------------------------------------------------------

def test_run_echo(daemon, busybox) -> None:
    assert pydock(daemon, "run", "--rm", "busybox", "echo", "hi") == (0, "hi\n", "")


def test_run_exit_code_and_stderr(daemon, busybox) -> None:
    rc, out, err = pydock(daemon, "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (rc, out, err) == (3, "out\n", "err\n")


def test_run_piped_stdin(daemon, busybox) -> None:
    rc, out, _ = pydock(daemon, "run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done", stdin=b"a\nb\n")
    assert (rc, out) == (0, "a\nb\ndone\n")


def test_console_script_streams_and_stdin(daemon, busybox) -> None:
    proc = pydock_proc(daemon, "run", "--rm", "-i", "busybox", "wc", "-c", input=b"x" * 100_000)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [b"100000"]
    proc = pydock_proc(daemon, "run", "--rm", "busybox", "sh", "-c", "exit 7")
    assert (proc.returncode, proc.stdout, proc.stderr) == (7, b"", b"")


def test_run_tty_requires_terminal_for_stdin(daemon, busybox) -> None:
    rc, _, err = pydock(daemon, "run", "--rm", "-it", "busybox", "true")
    assert (rc, err) == (1, "the input device is not a TTY\n")
    rc, out, _ = pydock(daemon, "run", "--rm", "-t", "busybox", "echo", "tty")
    assert (rc, out) == (0, "tty\r\n")


def test_run_command_not_found_codes(daemon, busybox) -> None:
    for cmd, code in (("nosuchcmd", 127), ("/etc", 126)):
        ours = pydock(daemon, "run", "--rm", "busybox", cmd)
        theirs = daemon.docker("run", "--rm", "busybox", cmd)
        assert ours[0] == theirs.returncode == code
        assert ours[2].startswith("docker: Error response from daemon: ")
        assert ours[2].endswith("\n\nRun 'docker run --help' for more information\n")


def test_run_options_reach_the_container(daemon, busybox) -> None:
    rc, out, err = pydock(daemon, "run", "--rm", "-e", "FOO=bar", "-w", "/tmp", "-u", "1000", "-h", "box",
                          "--entrypoint", "sh", "busybox", "-c", 'echo $FOO $(pwd) $(id -u) $(hostname)')
    assert (rc, out, err) == (0, "bar /tmp 1000 box\n", "")


def test_detach_logs_stop_rm(daemon, busybox) -> None:
    name = unique("cli-bg")
    rc, out, _ = pydock(daemon, "run", "-d", "--name", name, "busybox", "sh", "-c",
                        "echo one; echo two >&2; exec sleep 100")
    assert rc == 0 and len(out.strip()) == 64
    cid = out.strip()
    deadline = time.time() + 10
    while "one" not in pydock(daemon, "logs", name)[1] and time.time() < deadline:
        time.sleep(0.1)
    assert pydock(daemon, "logs", name) == (0, "one\n", "two\n")
    assert pydock(daemon, "logs", "--tail", "1", name) == (0, "", "two\n")
    assert pydock(daemon, "ps", "-q", "--filter", f"name={name}") == (0, cid[:12] + "\n", "")
    assert pydock(daemon, "stop", "-t", "1", name) == (0, name + "\n", "")
    assert pydock(daemon, "wait", name) == (0, "137\n", "")
    assert pydock(daemon, "rm", name) == (0, name + "\n", "")
    assert pydock(daemon, "ps", "-aq", "--filter", f"name={name}") == (0, "", "")


def test_create_start_attach_rename(daemon, busybox) -> None:
    name, new = unique("cli-cr"), unique("cli-rn")
    assert pydock(daemon, "create", "--name", name, "-l", "team=a", "busybox", "echo", "attached")[0] == 0
    assert pydock(daemon, "rename", name, new) == (0, "", "")
    assert pydock(daemon, "start", "-a", new) == (0, "attached\n", "")
    assert pydock(daemon, "inspect", "--format", '{{.State.Status}} {{.Config.Labels.team}} {{json .Config.Cmd}}',
                  new) == (0, 'exited a ["echo","attached"]\n', "")
    assert pydock(daemon, "rm", new)[0] == 0


def test_ps_output_matches_docker(daemon, busybox) -> None:
    name = unique("cli-ps")
    daemon.docker("create", "--name", name, "-l", "a=b", "busybox", "sh", "-c", "echo a long command here", check=True)
    try:
        for fmt in ("{{.Names}} {{.Status}}", "table {{.ID}}\t{{.Command}}\t{{.Names}}\t{{.Label \"a\"}}",
                    "{{.Image}} {{.Labels}} {{.State}} {{.Ports}}|"):
            for extra in ((), ("--no-trunc",)):
                args = ("ps", "-a", "--filter", f"name={name}", "--format", fmt, *extra)
                assert pydock(daemon, *args) == (0, daemon.docker(*args).stdout, "")
        args = ("ps", "-a", "--filter", f"name={name}")
        out = pydock(daemon, *args)[1]
        assert out.splitlines()[0] == daemon.docker(*args).stdout.splitlines()[0]
        assert out.splitlines()[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS",
                                               "NAMES"]
    finally:
        daemon.docker("rm", "-f", name)


def test_container_prune(daemon, busybox) -> None:
    name = unique("cli-prune")
    pydock(daemon, "run", "--name", name, "busybox", "true")
    rc, out, _ = pydock(daemon, "container", "prune", "-f")
    assert rc == 0 and out.startswith("Deleted Containers:\n") and out.endswith("\nTotal reclaimed space: 0B\n")
    assert pydock(daemon, "ps", "-aq", "--filter", f"name={name}") == (0, "", "")


# --- images ------------------------------------------------------------------

def test_images_output_matches_docker(daemon, busybox) -> None:
    for args in (("images", "busybox"), ("image", "ls", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}"),
                 ("images", "-q", "busybox"), ("images", "--format", "json", "busybox"),
                 ("image", "history", "busybox"), ("image", "inspect", "--format", "{{.Id}} {{.Config.Cmd}}",
                                                   "busybox")):
        assert pydock(daemon, *args) == (0, daemon.docker(*args).stdout, ""), args


def test_import_tag_rmi(daemon, busybox, busybox_tar) -> None:
    repo = unique("cli-imp")
    rc, out, _ = pydock(daemon, "import", "-c", "CMD [\"echo\", \"imported\"]", "-m", "msg", busybox_tar, repo)
    assert rc == 0 and out.startswith("sha256:")
    image_id = out.strip()
    with open(busybox_tar, "rb") as f:
        rc, out, _ = pydock(daemon, "import", "-", f"{repo}:piped", stdin=f.read())
    assert rc == 0 and out.startswith("sha256:")
    assert pydock(daemon, "run", "--rm", repo) == (0, "imported\n", "")
    assert pydock(daemon, "tag", repo, f"{repo}:second") == (0, "", "")
    assert image_id[7:19] + "\n" in pydock(daemon, "images", "-q", f"{repo}:second")[1]
    assert pydock(daemon, "images", f"{repo}:second") == (0, daemon.docker("images", f"{repo}:second").stdout, "")
    assert pydock(daemon, "rmi", f"{repo}:second") == (0, f"Untagged: {repo}:second\n", "")
    rc, out, _ = pydock(daemon, "rmi", repo, f"{repo}:piped")
    assert rc == 0 and f"Untagged: {repo}:latest\nDeleted: {image_id}\n" in out


# --- errors --------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ("rm", "cli-nosuch"), ("logs", "cli-nosuch"), ("stop", "cli-nosuch", "cli-nosuch2"), ("start", "cli-nosuch"),
    ("rmi", "cli-nosuch"), ("inspect", "cli-nosuch"), ("image", "inspect", "cli-nosuch"),
    ("rename", "cli-nosuch", "x"),
    ("run", "--bogus", "busybox"), ("ps", "-z"), ("ps", "extra"), ("ps", "-n", "x"), ("run",), ("logs",),
    ("tag", "x"), ("create", "--name"), ("nosuchcommand",), ("image", "nosuch"),
    ("ps", "--format", "{{.Nope}}"), ("ps", "--format", "{{.Names"), ("tag", "busybox", "BAD:x"),
])
def test_errors_match_docker(daemon, busybox, args) -> None:
    theirs = daemon.docker(*args)
    assert pydock(daemon, *args) == (theirs.returncode, theirs.stdout, theirs.stderr)


def test_arg_count_error(daemon) -> None:
    """docker 28 prints "SRun" here (a typo of its own); everything else matches."""
    assert pydock(daemon, "images", "a", "b") == (1, "", (
        "docker: 'docker images' requires at most 1 argument\n\nUsage:  docker images [OPTIONS] [REPOSITORY[:TAG]]"
        "\n\nRun 'docker images --help' for more information\n"))


def test_no_daemon(tmp_path) -> None:
    out, err = io.StringIO(), io.StringIO()
    host = f"unix://{tmp_path}/none.sock"
    assert main(["-H", host, "ps"], stdout=out, stderr=err) == 1
    assert err.getvalue() == f"Cannot connect to the Docker daemon at {host}. Is the docker daemon running?\n"


# --- system --------------------------------------------------------------------

def test_version_and_info(daemon) -> None:
    rc, out, _ = pydock(daemon, "version", "--format", "{{.Server.Version}} {{.Client.ApiVersion}}")
    assert (rc, out) == (0, "0.1.0 1.47\n")
    theirs = daemon.docker("version").stdout
    assert pydock(daemon, "version")[1].split("\n\n", 1)[1] == theirs.split("\n\n", 1)[1]
    assert pydock(daemon, "info", "--format", "{{.Driver}}") == (0, daemon.docker("info", "--format",
                                                                                   "{{.Driver}}").stdout, "")


def test_events_match_docker(daemon, busybox) -> None:
    name = unique("cli-ev")
    pydock(daemon, "run", "--rm", "--name", name, "busybox", "true")
    time.sleep(1)  # `--until 0s` means "now" in whole seconds, in docker too
    since = str(int(time.time()) - 60)
    args = ("events", "--since", since, "--until", "0s", "--filter", f"container={name}")
    for extra in ((), ("--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"), ("--format", "json")):
        theirs = daemon.docker(*args, *extra)
        ours = pydock(daemon, *args, *extra)
        assert ours == (0, theirs.stdout, ""), extra
    assert " container destroy " in pydock(daemon, *args)[1]
