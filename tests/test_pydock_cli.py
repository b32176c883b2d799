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
from pathlib import Path

import pytest

from pydock_cli.formatting import human_size, tabwrite
from pydock_cli.main import main
from pydock_cli.template import Template, TemplateError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pydock(daemon, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(["-H", daemon.url, *args], stdout=out, stderr=err,
              stdin=io.BytesIO(stdin) if stdin is not None else io.BytesIO(b""))
    return rc, out.getvalue(), err.getvalue()


def assert_same_output(daemon, *args: str) -> None:
    """pydock prints what docker prints; a relative time ("34 seconds ago") may tick between the
    two runs, so a mismatch is retried, and the last pair must match exactly."""
    for _ in range(3):
        ours, theirs = pydock(daemon, *args), (0, daemon.docker(*args).stdout, "")
        if ours == theirs:
            return
    assert ours == theirs, args


def pydock_proc(daemon, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYDOCK_HOST": daemon.url}
    return subprocess.run([sys.executable, "-m", "pydock_cli.main", *args], input=input, capture_output=True,
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



def test_jsonmessage_rendering() -> None:
    """Without a terminal, progress updates are dropped and statuses are lines; errors carry their code."""
    from pydock_cli.jsonmessage import display
    from pydock_cli.session import CliError
    from pydock_cli.streams import Out
    msgs = [{"status": "Pulling from t/bb", "id": "1"}, {"status": "Pulling fs layer", "progressDetail": {}, "id": "a"},
            {"status": "Downloading", "progressDetail": {"current": 5, "total": 10}, "progress": "[=>  ]", "id": "a"},
            {"status": "Pull complete", "progressDetail": {}, "id": "a"}, {"aux": {"ID": "sha256:x"}},
            {"stream": "Step 1/1 : FROM x\n"}]
    out = io.StringIO()
    seen = []
    display(msgs, Out(out), False, seen.append)
    assert out.getvalue() == "1: Pulling from t/bb\na: Pulling fs layer\na: Pull complete\nStep 1/1 : FROM x\n"
    assert seen == [{"ID": "sha256:x"}]
    out = io.StringIO()
    display(msgs[1:3], Out(out), True)
    assert out.getvalue().endswith("a: Downloading [=>  ]\r\033[1B")
    with pytest.raises(CliError) as e:
        display([{"errorDetail": {"code": 3, "message": "boom"}, "error": "boom"}], Out(io.StringIO()), False)
    assert (str(e.value), e.value.status) == ("boom", 3)

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
                assert_same_output(daemon, *args)
        args = ("ps", "-a", "--filter", f"name={name}")
        out = pydock(daemon, *args)[1]
        # the columns' widths follow the rows, and CREATED ("Less than a second ago", "1 second ago") can change
        # between the two calls: the header's columns are compared, not its spacing
        assert out.splitlines()[0].split() == daemon.docker(*args).stdout.splitlines()[0].split()
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
    for args in (("images", "busybox"), ("images", "-q", "busybox"), ("images", "--format", "json", "busybox"),
                 ("image", "history", "busybox"), ("image", "inspect", "--format", "{{.Id}} {{.Config.Cmd}}",
                                                   "busybox")):
        assert_same_output(daemon, *args)
    # For an image tagged in several repositories docker walks a Go map, so its row
    # order among those is random: compare the full listing as a set of rows.
    args = ("image", "ls", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}")
    rc, out, err = pydock(daemon, *args)
    assert (rc, err) == (0, "")
    assert sorted(out.splitlines()) == sorted(daemon.docker(*args).stdout.splitlines())


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
    assert_same_output(daemon, "images", f"{repo}:second")
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
    ("ps", "--format", "{{.Nope}}"), ("ps", "--format", "{{.Names"), ("tag", "busybox", "BAD:x"), ("pull", "BAD:x"),
    ("commit", "cli-nosuch", "BAD:x"),
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


# --- files: cp, diff, export, commit -------------------------------------------

def _tree(root) -> list[tuple[str, str, int, bytes]]:
    """(path, kind, mode, content or link target) for everything below `root`."""
    out = []
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            kind = "l" if os.path.islink(path) else "d" if os.path.isdir(path) else "f"
            data = os.readlink(path).encode() if kind == "l" else Path(path).read_bytes() if kind == "f" else b""
            out.append((os.path.relpath(path, root), kind, st.st_mode & 0o7777, data))
    return sorted(out)


@pytest.fixture(scope="module")
def files_ctr(daemon, busybox):  # type: ignore[no-untyped-def]
    """A running container with a file, a directory and a symlink in /data."""
    name = unique("cli-files")
    daemon.docker("run", "-d", "--name", name, "busybox", "sh", "-c",
                  "mkdir -p /data/dir/sub && echo hi > /data/f && chmod 640 /data/f && echo x > /data/dir/sub/x"
                  " && ln -s /data/f /data/lnk && touch /ready && exec sleep 1000", check=True)
    deadline = time.time() + 10
    while daemon.docker("cp", f"{name}:/ready", "-").returncode and time.time() < deadline:
        time.sleep(0.1)
    yield name
    daemon.docker("rm", "-f", name)


@pytest.mark.parametrize("src,dst,flags", [
    ("/data/f", "new", ()), ("/data/f", "exists", ()), ("/data/f", "file", ()), ("/data/dir", "new", ()),
    ("/data/dir", "exists", ()), ("/data/dir/.", "new", ()), ("/data/lnk", "new", ()), ("/data/lnk", "new", ("-L",)),
    ("/data/lnk", "exists", ("-L",)), ("/data/dir", "file", ()), ("/data/f", "nodir/", ()),
    ("/data/f", "nodir/x", ()), ("/data/nope", "x", ()), ("/data/f/", "x", ()),
])
def test_cp_from_container_matches_docker(daemon, files_ctr, tmp_path, src, dst, flags) -> None:
    results = []
    for who in ("docker", "pydock"):
        root = tmp_path / who
        (root / "exists").mkdir(parents=True)
        (root / "file").write_text("old\n")
        target = str(root / dst) if not dst.endswith("/") else str(root / dst) + "/"
        if who == "docker":
            proc = daemon.docker("cp", *flags, f"{files_ctr}:{src}", target)
            got = (proc.returncode, proc.stdout, proc.stderr.replace(str(root), "ROOT"))
        else:
            rc, out, err = pydock(daemon, "cp", *flags, f"{files_ctr}:{src}", target)
            got = (rc, out, err.replace(str(root), "ROOT"))
        results.append((got, _tree(root)))
    assert results[0] == results[1]


def _without_go_logs(text: str) -> str:
    """docker's own tar writer logs `level=error` lines when the daemon refuses an upload early."""
    return "".join(line for line in text.splitlines(keepends=True) if "level=error" not in line)


def _container_tree(daemon, ctr: str, path: str) -> list[str]:
    """`tar tv` of a container path, without the dates."""
    proc = subprocess.run([os.environ.get("DOCKER", "docker"), "cp", f"{ctr}:{path}", "-"], capture_output=True,
                          env=daemon.env, check=True)
    listing = subprocess.run(["tar", "tv"], input=proc.stdout, capture_output=True, check=True).stdout.decode()
    return sorted(" ".join(line.split()[:3] + line.split()[5:]) for line in listing.splitlines())


@pytest.mark.parametrize("src,dst,flags", [
    ("f", "/dst/new", ()), ("f", "/dst/exists", ()), ("f", "/dst/file", ()), ("sub", "/dst/new", ()),
    ("sub", "/dst/exists", ()), ("sub/.", "/dst/new", ()), ("lnk", "/dst/new", ()), ("lnk", "/dst/new", ("-L",)),
    ("sub", "/dst/file", ()), ("f", "/dst/nodir/", ()), ("f", "/nodir/x", ()), ("nothere", "/dst/", ()),
    ("f", "/dst/dlink", ()), ("f", "/dst/new", ("-a",)),
])
def test_cp_to_container_matches_docker(daemon, busybox, tmp_path, monkeypatch, src, dst, flags) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x").write_text("s\n")
    (tmp_path / "f").write_text("f\n")
    os.symlink("f", tmp_path / "lnk")
    monkeypatch.chdir(tmp_path)
    results = []
    for who in ("docker", "pydock"):
        ctr = unique(f"cli-cpto-{who}")
        daemon.docker("run", "-d", "--name", ctr, "busybox", "sh", "-c", "mkdir -p /dst/exists && echo o > /dst/file"
                      " && ln -s /dst/exists /dst/dlink && touch /ready && exec sleep 1000", check=True)
        try:
            while daemon.docker("cp", f"{ctr}:/ready", "-").returncode:
                time.sleep(0.1)
            if who == "docker":
                proc = daemon.docker("cp", *flags, src, f"{ctr}:{dst}")
                got = (proc.returncode, proc.stdout, _without_go_logs(proc.stderr))
            else:
                got = pydock(daemon, "cp", *flags, src, f"{ctr}:{dst}")
            results.append((got[0], got[1], got[2].replace(ctr, "CTR"), _container_tree(daemon, ctr, "/dst")))
        finally:
            daemon.docker("rm", "-f", ctr)
    assert results[0] == results[1]


def test_cp_streams_and_errors(daemon, files_ctr, tmp_path) -> None:
    rc, out, _ = pydock(daemon, "cp", f"{files_ctr}:/data/f", "-")
    assert rc == 0 and "hi\n" in out
    with open(tmp_path / "in.tar", "wb") as f:
        import tarfile
        with tarfile.open(fileobj=f, mode="w") as tar:
            info = tarfile.TarInfo("piped.txt")
            info.size = 6
            tar.addfile(info, io.BytesIO(b"piped\n"))
    data = (tmp_path / "in.tar").read_bytes()
    assert pydock(daemon, "cp", "-", f"{files_ctr}:/data/dir", stdin=data) == (0, "", "")
    assert "piped.txt" in " ".join(_container_tree(daemon, files_ctr, "/data/dir"))
    for args in (("cp", "-", f"{files_ctr}:/data/f"), ("cp", "a", "b"), ("cp", "a:b", "c:d"),
                 ("cp", "cli-nosuch:/x", str(tmp_path)), ("cp", str(tmp_path / "in.tar"), "cli-nosuch:/"),
                 ("cp", f"{files_ctr}:/data/f", "/dev/null"), ("cp", "x"), ("container", "cp", "--bogus", "a", "b")):
        theirs = daemon.docker(*args, input=data if args[1] == "-" else None)
        assert pydock(daemon, *args) == (theirs.returncode, theirs.stdout, _without_go_logs(theirs.stderr)), args


def test_cp_reports_size_on_a_terminal(daemon, files_ctr, tmp_path) -> None:
    """docker prints `Successfully copied` only when stdout is a terminal; the size is the tar's as the daemon
    sent it (pydockd pads archives to tar's 10240-byte record)."""
    master, slave = os.openpty()
    try:
        with open(slave, "w", closefd=False) as tty:
            err = io.StringIO()
            assert main(["-H", daemon.url, "cp", str(REPO) + "/README.md", f"{files_ctr}:/tmp/"], stdout=tty,
                        stderr=err) == 0
            blocks = -(-os.path.getsize(os.path.join(REPO, "README.md")) // 512)
            size = human_size((1 + blocks + 2) * 512)  # header, data, end of archive: no record padding, as Go
            assert err.getvalue() == f"Successfully copied {size} to {files_ctr}:/tmp/\n"
            err = io.StringIO()
            assert main(["-H", daemon.url, "cp", f"{files_ctr}:/data/f", str(tmp_path / "g")], stdout=tty,
                        stderr=err) == 0
            assert err.getvalue() == f"Successfully copied 10.2kB to {tmp_path / 'g'}\n"
            err = io.StringIO()
            assert main(["-H", daemon.url, "cp", "-q", f"{files_ctr}:/data/f", str(tmp_path / "h")], stdout=tty,
                        stderr=err) == 0
            assert err.getvalue() == ""
            for args in (["save", "busybox"], ["export", files_ctr]):
                err = io.StringIO()
                assert main(["-H", daemon.url, *args], stdout=tty, stderr=err) == 1
                assert err.getvalue() == "cowardly refusing to save to a terminal. Use the -o flag or redirect\n"
    finally:
        os.close(master)
        os.close(slave)


def test_top_diff_export_commit(daemon, files_ctr, tmp_path) -> None:
    assert pydock(daemon, "top", files_ctr)[1].splitlines()[0] == daemon.docker("top", files_ctr).stdout.splitlines()[0]
    for args in (("top", files_ctr, "-o", "pid,comm"), ("diff", files_ctr),
                 ("top", "cli-nosuch"), ("diff", "cli-nosuch"), ("export", "cli-nosuch"),
                 ("export", "-o", "/nonexist/x.tar", files_ctr), ("export", "-o", str(tmp_path), files_ctr),
                 ("commit", files_ctr, "BAD:x"), ("commit", "cli-nosuch")):
        theirs = daemon.docker(*args)
        assert pydock(daemon, *args) == (theirs.returncode, theirs.stdout, theirs.stderr), args
    assert "A /data/f\n" in pydock(daemon, "diff", files_ctr)[1]
    assert pydock(daemon, "export", "-o", str(tmp_path / "ours.tar"), files_ctr) == (0, "", "")
    daemon.docker("export", "-o", str(tmp_path / "theirs.tar"), files_ctr, check=True)
    assert (tmp_path / "ours.tar").read_bytes() == (tmp_path / "theirs.tar").read_bytes()
    proc = pydock_proc(daemon, "export", files_ctr)
    assert proc.returncode == 0 and proc.stdout == (tmp_path / "theirs.tar").read_bytes()
    repo = unique("cli-commit")
    rc, out, err = pydock(daemon, "commit", "-c", "ENV COMMITTED=yes", "-m", "msg", "-a", "me", files_ctr, f"{repo}:1")
    assert (rc, err) == (0, "") and out.startswith("sha256:")
    fmt = "{{.Author}} {{.Comment}} {{json .Config.Env}}"
    rc, out, _ = pydock(daemon, "image", "inspect", "--format", fmt, f"{repo}:1")
    assert rc == 0 and out.startswith("me msg [") and '"COMMITTED=yes"' in out
    assert pydock(daemon, "run", "--rm", f"{repo}:1", "cat", "/data/f") == (0, "hi\n", "")
    assert pydock(daemon, "rmi", f"{repo}:1")[0] == 0


# --- stats ---------------------------------------------------------------------

def test_stats_no_stream_matches_docker(daemon, files_ctr) -> None:
    for args in (("stats", "--no-stream", "--format", "{{.Container}} {{.Name}} {{.ID}} {{.BlockIO}} {{.PIDs}}",
                  files_ctr), ("stats", "--no-stream", "cli-nosuch"), ("stats", "--no-stream", files_ctr, "cli-nosuch"),
                 ("stats", "--no-stream", "--format", "{{.Bogus}}", files_ctr)):
        theirs = daemon.docker(*args)
        assert pydock(daemon, *args) == (theirs.returncode, theirs.stdout, theirs.stderr), args
    rc, out, _ = pydock(daemon, "stats", "--no-stream", files_ctr)
    header, row = out.splitlines()
    assert header == daemon.docker("stats", "--no-stream", files_ctr).stdout.splitlines()[0]
    assert row.split()[:2] == [daemon.docker("inspect", "-f", "{{.Id}}", files_ctr).stdout[:12], files_ctr]
    assert row.split()[-1] == "1"  # PIDS: the sleep
    rc, out, _ = pydock(daemon, "stats", "--no-stream", "--format", "{{json .}}")
    assert rc == 0 and f'"Name":"{files_ctr}"' in out


def test_stats_stream_frames(daemon, files_ctr) -> None:
    """Streaming writes docker 28's frames twice a second, terminal or not, until interrupted."""
    env = {**os.environ, "PYDOCK_HOST": daemon.url}
    proc = subprocess.Popen([sys.executable, "-m", "pydock_cli.main", "stats", "--format",
                             "table {{.Name}}\t{{.PIDs}}", files_ctr], stdout=subprocess.PIPE, cwd=REPO, env=env)
    time.sleep(3)
    proc.send_signal(2)
    out = proc.communicate(timeout=20)[0].decode()
    assert proc.returncode == 130
    frames = [f for f in out.split("\033[J") if f]
    assert len(frames) >= 3
    table = f"NAME{' ' * (max(len(files_ctr) + 3, 10) - 4)}PIDS\n{files_ctr}{' ' * (max(len(files_ctr) + 3, 10) - len(files_ctr))}1\n"
    first = "\033[H" + table
    assert frames[0] == first + "".join(line + " \033[K\n" for line in first.split("\n"))


# --- images: save/load, build, registries -----------------------------------

def test_save_load_roundtrip(daemon, busybox, tmp_path) -> None:
    repo = unique("cli-save")
    daemon.docker("tag", "busybox", f"{repo}:1", check=True)
    assert pydock(daemon, "save", "-o", str(tmp_path / "s.tar"), f"{repo}:1") == (0, "", "")
    proc = pydock_proc(daemon, "save", f"{repo}:1")
    assert proc.returncode == 0 and proc.stdout == (tmp_path / "s.tar").read_bytes()
    for args in (("save", "cli-nosuch"), ("save", "-o", "/nonexist/x", "busybox"), ("save", "-o", "/dev/null", "busybox"),
                 ("save",), ("load", "-i", "/nonexist"), ("load", "-i", "/etc/passwd")):
        theirs = daemon.docker(*args)
        assert pydock(daemon, *args) == (theirs.returncode, theirs.stdout, theirs.stderr), args
    daemon.docker("rmi", f"{repo}:1", check=True)
    assert pydock(daemon, "load", "-i", str(tmp_path / "s.tar")) == (0, f"Loaded image: {repo}:1\n", "")
    assert pydock(daemon, "load", "-q", stdin=(tmp_path / "s.tar").read_bytes()) == (0, f"Loaded image: {repo}:1\n", "")
    theirs = daemon.docker("load", "-i", str(tmp_path / "s.tar"))
    assert (theirs.returncode, theirs.stdout) == (0, f"Loaded image: {repo}:1\n")
    daemon.docker("rmi", f"{repo}:1", check=True)


@pytest.fixture
def classic_builds(daemon, monkeypatch):  # type: ignore[no-untyped-def]
    """The docker CLI's legacy builder (the one pydockd implements), selected as users select it."""
    monkeypatch.setitem(daemon.env, "DOCKER_BUILDKIT", "0")
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")


def test_build_matches_docker(daemon, busybox, classic_builds, tmp_path, monkeypatch) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "sub").mkdir(parents=True)
    (ctx / "Dockerfile").write_text("FROM busybox\nARG X=1\nCOPY . /ctx/\nRUN echo built $X\n"
                                    "FROM busybox AS second\nRUN echo second\n")
    (ctx / "a.txt").write_text("a\n")
    (ctx / "sub" / "b.txt").write_text("b\n")
    (ctx / "ignored.txt").write_text("no\n")
    (ctx / ".dockerignore").write_text("ignored.txt\nDockerfile\n")
    (ctx / "fail.Dockerfile").write_text("FROM busybox\nRUN exit 3\n")
    monkeypatch.chdir(tmp_path)
    repo = unique("cli-build")

    def normal(text: str) -> str:
        """Container and image ids differ between two builds; everything else must not."""
        import re
        return re.sub(r"[0-9a-f]{12}", "ID", text.replace("\r\r\n", "\n\n"))  # docker's output is read as text

    for args in (("build", "--no-cache", "-t", f"{repo}:1", "--build-arg", "X=2", "--target", "0", "ctx"),
                 ("build", "--no-cache", "-t", f"{repo}:2", "ctx"), ("build", "-f", "ctx/fail.Dockerfile", "ctx"),
                 ("build", "/nonexist"), ("build", "-f", "nope", "ctx")):
        theirs = daemon.docker(*args)
        ours = pydock(daemon, *args)
        assert (ours[0], normal(ours[1]), normal(ours[2])) == (theirs.returncode, normal(theirs.stdout),
                                                               normal(theirs.stderr)), args
    assert pydock(daemon, "run", "--rm", f"{repo}:1", "sh", "-c", "cd /ctx && find . | sort") == (
        0, ".\n./.dockerignore\n./a.txt\n./fail.Dockerfile\n./sub\n./sub/b.txt\n", "")  # the daemon drops an ignored Dockerfile
    rc, out, err = pydock(daemon, "build", "-q", "-", stdin=b"FROM busybox\nRUN echo quiet\n")
    assert rc == 0 and out.startswith("sha256:") and "quiet" not in out
    rc, out, err = pydock(daemon, "build", "-q", "-", stdin=b"FROM busybox\nRUN exit 4\n")
    assert rc == 4 and "Step 2/2 : RUN exit 4" in err and err.endswith(
        "The command '/bin/sh -c exit 4' returned a non-zero code: 4\n")
    daemon.docker("rmi", f"{repo}:1", f"{repo}:2")


from test_registry import PASSWORD, USER, basic_registry  # noqa: F401  (the module-scoped registry fixture)


def test_login_push_pull_logout(daemon, busybox, basic_registry, tmp_path) -> None:  # noqa: F811
    cfg = tmp_path / "cfg"
    host = basic_registry.host
    ref = f"{host}/cli/bb:1"
    daemon.docker("tag", "busybox", ref, check=True)

    def ours(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
        return pydock(daemon, "--config", str(cfg), *args, stdin=stdin)

    rc, out, err = ours("push", ref)
    assert rc == 1 and "no basic auth credentials" in err or "unauthorized" in err.lower()
    assert ours("login", host, "-u", USER, "-p", "wrong")[0] == 1
    assert not (cfg / "config.json").exists()
    rc, out, err = ours("login", host, "-u", USER, "--password-stdin", stdin=PASSWORD.encode() + b"\n")
    assert (rc, out) == (0, "Login Succeeded\n")
    assert err == (f"\nWARNING! Your credentials are stored unencrypted in '{cfg}/config.json'.\n"
                   "Configure a credential helper to remove this warning. See\n"
                   "https://docs.docker.com/go/credential-store/\n\n")
    import base64
    import json
    auths = json.loads((cfg / "config.json").read_text())["auths"]
    assert auths == {host: {"auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}}
    assert ours("login", host, "-u", USER, "--password-stdin", stdin=PASSWORD.encode()) == (0, "Login Succeeded\n", "")

    rc, out, err = ours("push", ref)
    assert (rc, err) == (0, "") and out.startswith(f"The push refers to repository [{host}/cli/bb]\n")
    assert ": Pushed\n" in out and "\n1: digest: sha256:" in out and "[=" not in out
    assert ours("push", "-q", ref) == (0, ref + "\n", "")
    daemon.docker("rmi", ref, check=True)
    rc, out, err = ours("pull", ref)
    assert (rc, err) == (0, "") and out.startswith("1: Pulling from cli/bb\n") and out.endswith(
        f"Status: Downloaded newer image for {ref}\n{ref}\n")
    assert ours("pull", "-q", ref) == (0, ref + "\n", "")

    # the same commands through the real docker CLI, logged in with the config pydock wrote
    env = {**daemon.env, "DOCKER_CONFIG": str(cfg)}
    theirs = subprocess.run(["docker", "pull", ref], capture_output=True, text=True, env=env, check=False)
    assert ours("pull", ref) == (0, theirs.stdout, theirs.stderr)
    for args in (("pull", f"{host}/cli/nothing:1"), ("pull", f"{host}/cli/BAD"), ("push", f"{host}/cli/absent:1"),
                 ("pull", "-a", f"{ref}"), ("pull", "-a", f"{host}/cli/bb"), ("login", host, "-u", "x", "-p", "y", "--password-stdin"),
                 ("login", host, "--password-stdin"), ("login", host)):
        theirs = subprocess.run(["docker", *args], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                                check=False)
        assert ours(*args) == (theirs.returncode, theirs.stdout, theirs.stderr), args

    assert ours("logout", host) == (0, f"Removing login credentials for {host}\n", "")
    assert json.loads((cfg / "config.json").read_text()) == {"auths": {}}
    rc, _, err = ours("pull", ref)
    assert rc == 1 and "no basic auth credentials" in err or "unauthorized" in err.lower()
    daemon.docker("rmi", ref)


# --- system --------------------------------------------------------------------

def test_system_df_and_prune(daemon, busybox) -> None:
    for args in (("system", "df"), ("system", "df", "--format", "{{json .}}"),
                 ("system", "df", "--format", "table {{.Type}}\t{{.Active}}")):
        theirs = daemon.docker(*args)
        assert pydock(daemon, *args) == (theirs.returncode, theirs.stdout, theirs.stderr), args
    theirs = daemon.docker("system", "prune", "-a", "--volumes", input="n\n")
    assert pydock(daemon, "system", "prune", "-a", "--volumes", stdin=b"n\n") == (0, theirs.stdout, "")
    name = unique("cli-sysprune")
    pydock(daemon, "run", "--name", name, "busybox", "true")
    rc, out, err = pydock(daemon, "system", "prune", "-f")
    cid = daemon.docker("inspect", "-f", "{{.Id}}", name).stdout.strip()
    assert (rc, err) == (0, "") and cid == "" and "Deleted Containers:\n" in out
    assert out.endswith("\nTotal reclaimed space: " + out.rsplit(": ", 1)[1])
