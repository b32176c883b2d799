"""The IPython magics in a real in-process IPython shell against the test daemon."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from test_registry import OCI_TAR, Registry, start_registry, stop_registry, tar_of

from pydock_ext.magics import OUT_DIR, ContainerError, DockerError, MagicError, _script


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A Distribution registry on loopback to pull from (no registry on the internet is reachable)."""
    reg = start_registry(str(tmp_path_factory.mktemp("registry")))
    yield reg
    stop_registry(reg)


def run(sh: InteractiveShell, cell: str) -> tuple[Any, str, str]:
    """(ExecutionResult, stdout, stderr) of one cell, as a notebook would show them.

    A terminal shell prints the "Out[n]: " prompt for any result, even one with nothing to display (the
    lines `%docker` returns); a notebook shows nothing then, which is what the tests compare against.
    """
    with capture_output() as cap:
        result = sh.run_cell(cell)
    return result, re.sub(r"Out\[\d+\]: ", "", cap.stdout), cap.stderr


def container_ids(daemon) -> set[str]:
    return set(daemon.docker("ps", "-aq", "--no-trunc").stdout.split())


def test_docker_prints_what_the_cli_prints_and_returns_its_lines(shell):
    result, out, err = run(shell, "x = %docker run --rm busybox sh -c 'echo hello magic; echo two'")
    assert result.success and out == "hello magic\ntwo\n" and err == ""
    assert shell.user_ns["x"] == ["hello magic", "two"] and shell.user_ns["x"].s == "hello magic two"
    result, out, _ = run(shell, "%docker run --rm busybox echo shown once")
    assert result.success and out == "shown once\n"  # the returned lines are not displayed again


def test_docker_returns_values(shell, daemon):
    _, out, _ = run(shell, "cid = %docker run -d busybox sleep 30")
    cid = shell.user_ns["cid"]
    try:
        assert len(cid) == 64 and out == ""
        run(shell, "ids = %docker ps -q --no-trunc")
        assert cid in shell.user_ns["ids"]
        run(shell, "info = %docker inspect $cid")
        assert shell.user_ns["info"][0]["Id"] == cid and shell.user_ns["info"][0]["State"]["Running"]
        _, out, _ = run(shell, "name = %docker inspect --format '{{.State.Status}}' $cid")
        assert out == "running\n" and shell.user_ns["name"] == ["running"]
    finally:
        daemon.docker("rm", "-f", cid)


def test_docker_streams_while_the_command_runs(shell, daemon):
    """`logs -f` output reaches the cell as it is produced, not when the command ends."""
    cid = daemon.docker("run", "-d", "busybox", "sh", "-c", "echo first; sleep 2; echo second", check=True).stdout.strip()
    seen: list[tuple[float, str]] = []

    class Recorder:
        def write(self, text: str) -> int:
            seen.append((time.monotonic(), text))
            return len(text)

        def flush(self) -> None:
            pass

    saved, sys.stdout = sys.stdout, Recorder()
    try:
        shell.run_line_magic("docker", f"logs -f {cid}")
    finally:
        sys.stdout = saved
        daemon.docker("rm", "-f", cid)
    text = "".join(t for _, t in seen)
    assert text == "first\nsecond\n"
    first = next(ts for ts, t in seen if "first" in t)
    second = next(ts for ts, t in seen if "second" in t)
    assert second - first > 1


@pytest.mark.parametrize("args", ["run --bogus busybox", "ps extra", "logs", "nosuchcommand", "run"])
def test_docker_bad_args_print_the_cli_usage_error_and_raise(shell, daemon, args):
    shell.user_ns.pop("r", None)
    result, out, err = run(shell, f"r = %docker {args}")
    assert isinstance(result.error_in_exec, DockerError) and "r" not in shell.user_ns
    assert "Traceback" not in out + err
    expected = daemon.docker(*args.split())
    assert expected.returncode != 0 and result.error_in_exec.exit_code == expected.returncode
    assert err.splitlines()[0] == expected.stderr.splitlines()[0]


def test_a_failing_docker_line_stops_the_cell(shell):
    result, out, err = run(shell, "%docker rm no-such-container-here\nafter = 1")
    assert isinstance(result.error_in_exec, DockerError) and "after" not in shell.user_ns
    assert "Traceback" not in out and out.strip() == "DockerError: docker rm exited with status 1"
    assert err == "Error response from daemon: No such container: no-such-container-here\n"


def test_docker_explicit_host_gets_no_token(shell, tmp_path):
    """A `-H` in the command line replaces the kernel's endpoint, headers and all."""
    _, _, err = run(shell, f"%docker -H unix://{tmp_path}/none.sock ps")
    assert f"Cannot connect to the Docker daemon at unix://{tmp_path}/none.sock" in err


def test_docker_pull_without_a_frontend_prints_the_cli_text(shell, daemon, registry):
    layer = tar_of({"pulled.txt": b"x" * 1000})
    registry.push_image("magic/pull", "1", [(layer, layer, OCI_TAR)])
    result, out, err = run(shell, f"%docker pull {registry.host}/magic/pull:1")
    try:
        assert result.success and err == ""
        assert out.startswith("1: Pulling from magic/pull\n")
        assert out.endswith(f"Status: Downloaded newer image for {registry.host}/magic/pull:1\n"
                            f"{registry.host}/magic/pull:1\n")
    finally:
        daemon.docker("rmi", f"{registry.host}/magic/pull:1")


def test_container_streams_and_passes_variables(shell, daemon):
    before = container_ids(daemon)
    shell.user_ns.update(n=21, word="hello world", cfg={"a": [1, 2]})
    result, out, err = run(shell, "%%container busybox --in n --in w=word --in cfg --out total --out report\n"
                                  "echo \"n=$n w=$w cfg=$cfg\"\n"
                                  "echo to-stderr >&2\n"
                                  "total=$((n * 2))\n"
                                  "echo '{\"ok\": true}' > $PYDOCK_OUT/report\n")
    assert result.success, out + err
    assert out == 'n=21 w=hello world cfg={"a": [1, 2]}\n'
    assert err == "to-stderr\n"
    assert shell.user_ns["total"] == 42 and shell.user_ns["report"] == {"ok": True}
    assert container_ids(daemon) == before


def test_container_mount_cwd(shell, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "input.txt").write_text("from the notebook dir\n")
    result, out, err = run(shell, "%%container busybox --mount-cwd\ncat input.txt\npwd\necho written > output.txt\n")
    assert result.success, out + err
    assert out == f"from the notebook dir\n{tmp_path}\n"
    assert (tmp_path / "output.txt").read_text() == "written\n"


def test_container_failure_raises_with_the_exit_code(shell, daemon):
    before = container_ids(daemon)
    result, out, err = run(shell, "%%container busybox\necho partial\nexit 3\n")
    assert isinstance(result.error_in_exec, ContainerError) and result.error_in_exec.exit_code == 3
    assert out.startswith("partial\n") and "ContainerError: the cell exited with code 3" in out
    assert "Traceback" not in out + err
    assert container_ids(daemon) == before


def test_container_out_value_json_cannot_carry_is_explained(shell, daemon, python_image):
    result, out, err = run(shell, f"%%container {python_image} --lang python --out s\ns = {{1, 2}}\n")
    assert isinstance(result.error_in_exec, ContainerError) and result.error_in_exec.exit_code == 3
    assert "--out s: a set cannot be handed back" in err and "convert it first" in err
    assert "Traceback" not in out + err


def test_container_missing_out_value_is_an_error(shell):
    result, out, _ = run(shell, "%%container busybox --out nothing\ntrue\n")
    assert isinstance(result.error_in_exec, ContainerError)
    assert "no value for --out nothing" in out


@pytest.mark.parametrize("line,message", [
    ("busybox --nope", "unknown flag: --nope"),
    ("", "requires 1 argument"),
    ("busybox --lang ruby", 'invalid argument "ruby" for "--lang" flag'),
    ("busybox --in undefined_var", "no variable 'undefined_var'"),
    ("busybox -e", "flag needs an argument"),
    ("busybox --in a_set", "Object of type set is not JSON serializable"),
])
def test_container_bad_args_are_usage_errors(shell, daemon, line, message):
    shell.user_ns["a_set"] = {1, 2}
    before = container_ids(daemon)
    result, out, err = run(shell, f"%%container {line}\necho never\n")
    assert not result.success and isinstance(result.error_in_exec, MagicError)
    assert message in out + err and "never" not in out
    assert "Traceback" not in out + err
    assert container_ids(daemon) == before


def test_container_missing_image(shell):
    result, out, err = run(shell, "%%container no-such-image:1\necho never\n")
    assert isinstance(result.error_in_exec, ContainerError) and result.error_in_exec.exit_code == 125
    assert "docker: Error response from daemon:" in err and "Traceback" not in out


def test_container_python_needs_python_in_the_image(shell, daemon):
    before = container_ids(daemon)
    result, out, err = run(shell, "%%container busybox --lang python\nprint('hi')\n")
    assert isinstance(result.error_in_exec, ContainerError) and result.error_in_exec.exit_code == 127
    assert "busybox has no python3" in out and "Traceback" not in out + err
    assert container_ids(daemon) == before


def test_python_cell_script_passes_variables(tmp_path):
    """The script `--lang python` feeds to the image's python3, run by this host's python."""
    opts = {"lang": "python", "in": ["n", "w=word"], "out": ["total", "label"]}
    script = _script(opts, "total = n * 2\nlabel = w.upper()\nprint('ran', total)\n")
    env = {**os.environ, "PYDOCK_OUT": str(tmp_path / "out"), "PYDOCK_IN": json.dumps({"n": 21, "w": "hi"})}
    proc = subprocess.run([sys.executable, "-"], input=script, env=env, capture_output=True, text=True, timeout=30,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ran 42\n"
    assert json.loads((tmp_path / "out" / "total").read_text()) == 42
    assert json.loads((tmp_path / "out" / "label").read_text()) == "HI"
    wrote_file = _script({**opts, "out": ["label"]}, "import os\nlabel = 1\n"
                         "open(os.environ['PYDOCK_OUT'] + '/label', 'w').write('[2]')\n")
    subprocess.run([sys.executable, "-"], input=wrote_file, env=env, text=True, timeout=30, check=True)
    assert json.loads((tmp_path / "out" / "label").read_text()) == [2]
    failing = subprocess.run([sys.executable, "-"], input=_script({**opts, "out": []}, "raise SystemExit(4)\n"),
                             env=env, capture_output=True, text=True, timeout=30, check=False)
    assert failing.returncode == 4


def test_container_out_dir_is_private_to_the_run(shell):
    result, out, _ = run(shell, "%%container busybox\necho $PYDOCK_OUT; ls -A $PYDOCK_OUT | wc -l\n")
    assert result.success and out.split() == [OUT_DIR, "0"]


def test_dockerfile_builds_from_the_notebook_directory(shell, daemon, tmp_path, monkeypatch):
    (tmp_path / "greeting.txt").write_text("hello from the context\n")
    (tmp_path / "secret.txt").write_text("ignored\n")
    (tmp_path / ".dockerignore").write_text("secret.txt\n")
    monkeypatch.chdir(tmp_path)
    result, out, err = run(shell, "%%dockerfile magic-built:1 --build-arg WHO=arg --label via=magic\n"
                                  "FROM busybox\nARG WHO\nCOPY greeting.txt /greeting\n"
                                  "RUN echo \"$WHO\" >> /greeting && ls /secret.txt 2>/dev/null || echo no-secret >> /greeting\n"
                                  "CMD [\"cat\", \"/greeting\"]\n")
    try:
        assert result.success, out + err
        assert "Step 1/6 : FROM busybox" in out and "Successfully tagged magic-built:1" in out
        run_out = daemon.docker("run", "--rm", "magic-built:1")
        assert run_out.stdout == "hello from the context\narg\nno-secret\n"
        labels = json.loads(daemon.docker("inspect", "magic-built:1").stdout)[0]["Config"]["Labels"]
        assert labels == {"via": "magic"}
    finally:
        daemon.docker("rmi", "-f", "magic-built:1")


def test_dockerfile_quiet_and_extra_tags(shell, daemon, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result, out, _ = run(shell, "%%dockerfile magic-q:1 -q -t magic-q:2\nFROM busybox\nENV X=1\n")
    try:
        assert result.success
        image_id = out.strip()
        assert image_id.startswith("sha256:")
        for tag in ("magic-q:1", "magic-q:2"):
            assert json.loads(daemon.docker("inspect", tag).stdout)[0]["Id"] == image_id
    finally:
        daemon.docker("rmi", "-f", "magic-q:1", "magic-q:2")


def test_docker_build_prints_the_cli_text(shell, daemon, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nCMD [\"echo\", \"from docker build\"]\n")
    result, out, err = run(shell, f"%docker build -t magic-cli-built:1 {tmp_path}")
    try:
        assert result.success, err
        assert "Step 1/2 : FROM busybox" in out
        assert "Successfully tagged magic-cli-built:1" in out
        assert daemon.docker("run", "--rm", "magic-cli-built:1").stdout == "from docker build\n"
    finally:
        daemon.docker("rmi", "-f", "magic-cli-built:1")


@pytest.mark.parametrize("line,cell,message", [
    ("bad:1", "FROM busybox\nRUN exit 7\n", "returned a non-zero code: 7"),
    ("bad:1", "FRM busybox\n", "unknown instruction"),
    ("", "FROM busybox\n", "requires 1 argument"),
    ("bad:1 --squash-everything", "FROM busybox\n", "unknown flag: --squash-everything"),
])
def test_dockerfile_errors(shell, tmp_path, monkeypatch, line, cell, message):
    monkeypatch.chdir(tmp_path)
    result, out, err = run(shell, f"%%dockerfile {line}\n{cell}")
    assert isinstance(result.error_in_exec, MagicError)
    assert message in (out + err).lower() or message in out + err
    assert "Traceback" not in out + err



def _interrupt_after(seconds: float) -> None:
    """The stop button: KeyboardInterrupt in the main thread, where the cell runs."""
    import _thread
    import threading
    threading.Timer(seconds, _thread.interrupt_main).start()


def test_an_interrupted_docker_line_is_one_line(shell, daemon):
    _interrupt_after(1.5)
    result, out, err = run(shell, "%docker run --rm --name magic-interrupted busybox sleep 20")
    daemon.docker("rm", "-f", "magic-interrupted")  # the CLI left it running, as docker does without -it
    assert isinstance(result.error_in_exec, DockerError) and result.error_in_exec.exit_code == 130
    assert out.strip() == "DockerError: interrupted" and "Traceback" not in out + err


def test_an_interrupted_container_cell_is_one_line_and_leaves_nothing(shell, daemon):
    before = container_ids(daemon)
    _interrupt_after(1.5)
    result, out, err = run(shell, "%%container busybox\nsleep 20\n")
    assert isinstance(result.error_in_exec, ContainerError) and result.error_in_exec.exit_code == 130
    assert "interrupted" in out and "Traceback" not in out + err
    assert container_ids(daemon) == before


def test_dockerfile_warns_about_a_large_context(shell, daemon, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("pydock_ext.magics.LARGE_CONTEXT", 4096)
    (tmp_path / "data.bin").write_bytes(os.urandom(20_000))
    result, out, err = run(shell, "%%dockerfile magic-big:1 -q\nFROM busybox\n")
    try:
        assert result.success, out + err
        assert "the build context" in err and "add a .dockerignore" in err
    finally:
        daemon.docker("rmi", "-f", "magic-big:1")
