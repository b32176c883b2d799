"""`docker build` (classic builder, DOCKER_BUILDKIT=0) and the SDK's images.build() against pydockd.

Every built image is checked by running it (or inspecting it), so the tests
exercise the instructions' effect, not just the build output.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import textwrap
import time

import pytest
from conftest import DOCKER, Daemon

from pydock_common.dockerignore import IgnoreMatcher


def write_context(root: str, files: dict[str, str | bytes]) -> str:
    os.makedirs(root, exist_ok=True)
    for name, content in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        with open(path, "wb") as f:
            f.write(data)
    return root


def build(daemon: Daemon, ctx: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**daemon.env, "DOCKER_BUILDKIT": "0"}
    return subprocess.run([DOCKER, "build", *args, ctx], capture_output=True, text=True, timeout=timeout, env=env,
                          check=False)


def build_ok(daemon: Daemon, tmp_path, dockerfile: str, files: dict[str, str | bytes] | None = None,
             *args: str) -> str:
    ctx = write_context(str(tmp_path / "ctx"), {"Dockerfile": textwrap.dedent(dockerfile).lstrip(), **(files or {})})
    proc = build(daemon, ctx, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def run(daemon: Daemon, image: str, *cmd: str) -> str:
    proc = daemon.docker("run", "--rm", image, *cmd, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def inspect_config(daemon: Daemon, image: str) -> dict:
    return json.loads(daemon.docker("image", "inspect", image, check=True).stdout)[0]["Config"]


def _targz(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(text.encode()))
    return buf.getvalue()


# (Dockerfile, context files, build args, command run in the image, expected output)
INSTRUCTION_TABLE = {
    "env": ("""
        FROM busybox
        ENV A=1 B="two words"
        ENV C=${A}-$B D=${UNSET:-dflt}
        ENV LEGACY legacy value
        """, {}, [], ["sh", "-c", "echo \"$A|$B|$C|$D|$LEGACY\""], "1|two words|1-two words|dflt|legacy value\n"),
    "user": ("""
        FROM busybox
        USER user
        """, {}, [], ["id", "-u"], "1000\n"),
    "workdir": ("""
        FROM busybox
        WORKDIR /a
        WORKDIR b
        WORKDIR ../c
        RUN pwd > /where
        """, {}, [], ["sh", "-c", "pwd; cat /where"], "/a/c\n/a/c\n"),
    "copy-chown-chmod": ("""
        FROM busybox
        COPY --chown=1000:1000 --chmod=640 f.txt /data/
        COPY --chown=user f.txt /data/byname
        """, {"f.txt": "x"}, [], ["sh", "-c", "stat -c '%u:%g %a' /data/f.txt /data/byname"],
        "1000:1000 640\n1000:1000 644\n"),
    "copy-dir-contents-and-glob": ("""
        FROM busybox
        WORKDIR /w
        COPY dir dst
        COPY *.txt /g/
        COPY a.txt renamed.txt
        """, {"dir/sub/x": "x", "dir/y": "y", "a.txt": "a", "b.txt": "b", "c.md": "c"}, [],
        ["sh", "-c", "cd /w && find dst | sort && ls /g && cat renamed.txt"],
        "dst\ndst/sub\ndst/sub/x\ndst/y\na.txt\nb.txt\na"),
    "add-local-archive": ("""
        FROM busybox
        ADD arch.tar.gz /x/
        ADD plain.txt /x/
        """, {"arch.tar.gz": _targz({"inner/one.txt": "one"}), "plain.txt": "p"}, [],
        ["sh", "-c", "cat /x/inner/one.txt /x/plain.txt"], "onep"),
    "shell": ("""
        FROM busybox
        SHELL ["/bin/busybox", "sh", "-c"]
        RUN echo "$0" > /shell0
        CMD echo from-cmd
        """, {}, [], ["cat", "/shell0"], "sh\n"),
    "arg-scoping": ("""
        ARG V=meta
        ARG BASE=busybox
        FROM $BASE
        RUN echo "[$V]" > /before
        ARG V
        RUN echo "[$V]" > /after
        ARG E=from-arg
        ENV E=from-env
        RUN echo "[$E]" > /env-wins
        """, {}, [], ["sh", "-c", "cat /before /after /env-wins; env | grep -c '^V=' || true"],
        "[]\n[meta]\n[from-env]\n0\n"),
    "build-arg-override": ("""
        FROM busybox
        ARG V=default
        RUN echo "$V" > /v
        """, {}, ["--build-arg", "V=cli"], ["cat", "/v"], "cli\n"),
    "entrypoint-exec-with-cmd": ("""
        FROM busybox
        ENTRYPOINT ["echo", "ep"]
        CMD ["cmd"]
        """, {}, [], [], "ep cmd\n"),
    "entrypoint-shell-ignores-cmd": ("""
        FROM busybox
        ENTRYPOINT echo ep
        CMD ["cmd"]
        """, {}, [], [], "ep\n"),
    "entrypoint-resets-inherited-cmd": ("""
        FROM busybox
        ENTRYPOINT ["echo", "only"]
        """, {}, [], [], "only\n"),
    "cmd-shell-form": ("""
        FROM busybox
        CMD echo shellcmd $HOME
        """, {}, [], [], "shellcmd /root\n"),
    "escape-directive-and-continuation": ("""
        # escape=`
        FROM busybox
        RUN echo one `
            two `
        # a comment inside the continuation
            three > /cont
        """, {}, [], ["cat", "/cont"], "one two three\n"),
}


@pytest.mark.parametrize("case", list(INSTRUCTION_TABLE))
def test_instruction_table(daemon: Daemon, busybox: str, tmp_path, case: str) -> None:
    dockerfile, files, args, cmd, expected = INSTRUCTION_TABLE[case]
    tag = f"table-{case}"
    build_ok(daemon, tmp_path, dockerfile, files, "-t", tag, *args)
    assert run(daemon, tag, *cmd) == expected


def test_entrypoint_with_run_arguments_and_config(daemon: Daemon, busybox: str, tmp_path) -> None:
    build_ok(daemon, tmp_path, """
        FROM busybox
        ENTRYPOINT ["echo", "ep"]
        CMD ["cmd"]
        """, {}, "-t", "ep-args")
    assert run(daemon, "ep-args", "x", "y") == "ep x y\n"
    build_ok(daemon, tmp_path, """
        FROM busybox
        ENTRYPOINT ["echo"]
        """, {}, "-t", "ep-reset")
    assert inspect_config(daemon, "ep-reset")["Cmd"] is None  # busybox's CMD ["sh"] does not survive
    build_ok(daemon, tmp_path, """
        FROM busybox
        SHELL ["/bin/busybox", "sh", "-c"]
        CMD echo from-cmd
        """, {}, "-t", "shell-cmd")
    assert inspect_config(daemon, "shell-cmd")["Cmd"] == ["/bin/busybox", "sh", "-c", "echo from-cmd"]


def test_metadata_instructions(daemon: Daemon, busybox: str, tmp_path) -> None:
    build_ok(daemon, tmp_path, """
        FROM busybox
        ARG PORT=8080
        EXPOSE $PORT 53/udp 9000-9001
        LABEL org.example.name="my app" version=1
        VOLUME ["/data", "/cache"]
        VOLUME /logs
        STOPSIGNAL SIGINT
        HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD wget -q localhost || exit 1
        MAINTAINER someone@example.com
        """, {}, "-t", "meta", "--label", "extra=from-cli")
    cfg = inspect_config(daemon, "meta")
    assert set(cfg["ExposedPorts"]) == {"8080/tcp", "53/udp", "9000/tcp", "9001/tcp"}
    assert cfg["Labels"] == {"org.example.name": "my app", "version": "1", "extra": "from-cli"}
    assert set(cfg["Volumes"]) == {"/data", "/cache", "/logs"}
    assert cfg["StopSignal"] == "SIGINT"
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "wget -q localhost || exit 1"], "Interval": 5_000_000_000,
                                  "Timeout": 2_000_000_000, "Retries": 4}
    assert not any(e.startswith("PORT=") for e in cfg["Env"] or [])
    info = json.loads(daemon.docker("image", "inspect", "meta", check=True).stdout)[0]
    assert info["Author"] == "someone@example.com"


def test_onbuild_triggers_run_in_child(daemon: Daemon, busybox: str, tmp_path) -> None:
    build_ok(daemon, tmp_path / "base", """
        FROM busybox
        ONBUILD RUN echo triggered > /t
        ONBUILD ENV FROM_TRIGGER=yes
        """, {}, "-t", "onbuild-base")
    assert inspect_config(daemon, "onbuild-base")["OnBuild"] == ["RUN echo triggered > /t", "ENV FROM_TRIGGER=yes"]
    out = build_ok(daemon, tmp_path / "child", "FROM onbuild-base\nCMD [\"cat\", \"/t\"]\n", {}, "-t", "onbuild-child")
    assert "# Executing 2 build triggers" in out
    assert run(daemon, "onbuild-child") == "triggered\n"
    cfg = inspect_config(daemon, "onbuild-child")
    assert not cfg.get("OnBuild") and "FROM_TRIGGER=yes" in cfg["Env"]


def test_multistage_copy_from_target_and_skipped_stages(daemon: Daemon, busybox: str, tmp_path) -> None:
    dockerfile = """
        FROM busybox AS builder
        RUN mkdir /out && echo artifact > /out/a.txt
        FROM busybox AS unused
        RUN echo this stage must not run && exit 7
        FROM scratch AS files
        COPY f.txt /from-scratch.txt
        FROM busybox
        COPY --from=builder /out/a.txt /app/
        COPY --from=files /from-scratch.txt /app/
        COPY --from=busybox /bin/busybox /app/bb
        CMD ["sh", "-c", "cat /app/a.txt /app/from-scratch.txt; ls /app"]
        """
    out = build_ok(daemon, tmp_path, dockerfile, {"f.txt": "scratch-file\n"}, "-t", "multi")
    assert "this stage must not run" not in out
    assert "Step 1/9 : FROM busybox AS builder" in out
    assert run(daemon, "multi") == "artifact\nscratch-file\na.txt\nbb\nfrom-scratch.txt\n"
    out = build_ok(daemon, tmp_path, dockerfile, {"f.txt": "scratch-file\n"}, "-t", "multi-builder",
                   "--target", "builder")
    assert "Step 2/2 : RUN" in out
    assert run(daemon, "multi-builder", "cat", "/out/a.txt") == "artifact\n"
    assert daemon.docker("run", "--rm", "multi-builder", "ls", "/app").returncode != 0
    bad = build(daemon, str(tmp_path / "ctx"), "--target", "nope")
    assert bad.returncode != 0 and "failed to reach build target nope in Dockerfile" in bad.stderr


def test_cache_hit_runs_nothing(daemon: Daemon, busybox: str, tmp_path) -> None:
    dockerfile = """
        FROM busybox
        COPY a.txt /a.txt
        RUN cat /proc/sys/kernel/random/uuid > /stamp
        ENV X=1
        """
    first = build_ok(daemon, tmp_path, dockerfile, {"a.txt": "a"}, "-t", "cached")
    image_id = daemon.docker("image", "inspect", "-f", "{{.Id}}", "cached", check=True).stdout.strip()
    stamp = run(daemon, "cached", "cat", "/stamp")
    assert "Running in" in first
    second = build_ok(daemon, tmp_path, dockerfile, {"a.txt": "a"}, "-t", "cached")
    assert "Running in" not in second
    assert second.count(" ---> Using cache") == 3
    assert f"Successfully built {image_id[7:19]}" in second
    assert run(daemon, "cached", "cat", "/stamp") == stamp


def test_cache_miss_after_changed_file_rebuilds_from_that_step(daemon: Daemon, busybox: str, tmp_path) -> None:
    dockerfile = """
        FROM busybox
        COPY a.txt /a.txt
        RUN cat /proc/sys/kernel/random/uuid > /stamp-a
        COPY b.txt /b.txt
        RUN cat /proc/sys/kernel/random/uuid > /stamp-b
        """
    build_ok(daemon, tmp_path, dockerfile, {"a.txt": "a", "b.txt": "b1"}, "-t", "partial")
    before = run(daemon, "partial", "cat", "/stamp-a", "/stamp-b").split()
    out = build_ok(daemon, tmp_path, dockerfile, {"a.txt": "a", "b.txt": "b2"}, "-t", "partial")
    steps = out.split("Step ")[1:]
    assert [(" ---> Using cache" in s) for s in steps] == [False, True, True, False, False]
    after = run(daemon, "partial", "cat", "/stamp-a", "/stamp-b", "/b.txt").split()
    assert after[0] == before[0] and after[1] != before[1] and after[2] == "b2"
    fresh = build_ok(daemon, tmp_path, dockerfile, {"a.txt": "a", "b.txt": "b2"}, "-t", "partial", "--no-cache")
    assert "Using cache" not in fresh and fresh.count("Running in") == 2


def test_cache_from_limits_cache_sources(daemon: Daemon, busybox: str, tmp_path) -> None:
    dockerfile = "FROM busybox\nRUN cat /proc/sys/kernel/random/uuid > /stamp\n"
    build_ok(daemon, tmp_path, dockerfile, {}, "-t", "cf-source")
    hit = build_ok(daemon, tmp_path, dockerfile, {}, "-t", "cf-hit", "--cache-from", "cf-source")
    assert "Using cache" in hit
    miss = build_ok(daemon, tmp_path, dockerfile, {}, "-t", "cf-miss", "--cache-from", "busybox")
    assert "Using cache" not in miss


IGNORE_FILES = {
    ".dockerignore": "# comment\n*.log\n!keep.log\n**/secret*\nbuild\n!build/ok.txt\n",
    "app.txt": "a", "debug.log": "d", "keep.log": "k", "sub/secret.key": "s", "sub/deeper/secret2": "s",
    "sub/public.txt": "p", "build/out.bin": "o", "build/ok.txt": "ok",
}
IGNORE_EXPECTED = {".dockerignore", "Dockerfile", "app.txt", "build", "build/ok.txt", "keep.log", "sub",
                   "sub/deeper", "sub/public.txt"}


def _listing(daemon: Daemon, image: str) -> set[str]:
    return set(run(daemon, image, "sh", "-c", "cd /ctx && find . -mindepth 1 | sed 's|^./||'").split())


def test_dockerignore_through_cli(daemon: Daemon, busybox: str, tmp_path) -> None:
    build_ok(daemon, tmp_path, "FROM busybox\nCOPY . /ctx/\n", IGNORE_FILES, "-t", "ignored-cli")
    assert _listing(daemon, "ignored-cli") == IGNORE_EXPECTED


def test_dockerignore_applied_by_daemon_to_raw_context(daemon: Daemon, client, tmp_path) -> None:
    """A raw tar (no client-side filtering) gets the same .dockerignore treatment from the daemon."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("build", "sub", "sub/deeper"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, text in {"Dockerfile": "FROM busybox\nCOPY . /ctx/\n", **IGNORE_FILES}.items():
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text.encode()))
    buf.seek(0)
    image, _logs = client.images.build(fileobj=buf, custom_context=True, tag="ignored-raw")
    assert "ignored-raw:latest" in image.tags
    assert _listing(daemon, "ignored-raw") == IGNORE_EXPECTED


@pytest.mark.parametrize("patterns,path,excluded", [
    (["*.log"], "a.log", True),
    (["*.log"], "sub/a.log", False),
    (["**/*.log"], "sub/deep/a.log", True),
    (["**/*.log"], "a.log", True),
    (["dir"], "dir/sub/file", True),
    (["dir", "!dir/keep"], "dir/keep", False),
    (["dir", "!dir/keep"], "dir/other", True),
    (["*", "!important*"], "important.txt", False),
    (["/abs/path"], "abs/path", True),
    (["a?c"], "abc", True),
    (["a?c"], "a/c", False),
    (["[a-c].txt"], "b.txt", True),
    (["foo/**"], "foo/x/y", True),
    (["foo/**/bar"], "foo/bar", True),
    (["!x", "x"], "x", True),
])
def test_dockerignore_patterns(patterns: list[str], path: str, excluded: bool) -> None:
    assert IgnoreMatcher.from_text("\n".join(patterns)).excluded(path) is excluded


def _leftovers(daemon: Daemon) -> tuple[str, list[str], list[str]]:
    ps = daemon.docker("ps", "-aq", check=True).stdout.strip()
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if "/tmp/build-" in line.split()[4]]
    tmp = [n for n in os.listdir(os.path.join(daemon.data_root, "tmp")) if n.startswith("build-")]
    return ps, mounts, tmp


def test_failing_run_stops_with_exit_code_and_cleans_up(daemon: Daemon, busybox: str, tmp_path) -> None:
    ctx = write_context(str(tmp_path / "ctx"), {"Dockerfile": "FROM busybox\nRUN echo output-before-failure "
                                                              "&& exit 3\nCMD [\"true\"]\n"})
    proc = build(daemon, ctx, "-t", "must-not-exist")
    assert proc.returncode == 3
    assert "output-before-failure" in proc.stdout
    assert "The command '/bin/sh -c echo output-before-failure && exit 3' returned a non-zero code: 3" in proc.stderr
    assert "Step 3/3" not in proc.stdout
    assert daemon.docker("image", "inspect", "must-not-exist").returncode != 0
    assert _leftovers(daemon) == ("", [], [])


def test_history_has_one_row_per_instruction(daemon: Daemon, busybox: str, tmp_path) -> None:
    build_ok(daemon, tmp_path, """
        FROM busybox
        ENV A=1
        WORKDIR /w
        COPY f.txt .
        RUN echo x > y
        CMD ["sh"]
        """, {"f.txt": "f"}, "-t", "hist")
    rows = daemon.docker("image", "history", "--no-trunc", "--format", "{{.CreatedBy}}", "hist",
                         check=True).stdout.splitlines()
    base_rows = daemon.docker("image", "history", "-q", "busybox", check=True).stdout.split()
    assert len(rows) == len(base_rows) + 5
    assert rows[0] == '/bin/sh -c #(nop)  CMD ["sh"]'
    assert rows[1] == "/bin/sh -c echo x > y"
    assert rows[2].startswith("/bin/sh -c #(nop) COPY file:") and rows[2].endswith(" in . ")
    assert rows[3] == "/bin/sh -c #(nop) WORKDIR /w"
    assert rows[4] == "/bin/sh -c #(nop)  ENV A=1"


def test_sdk_build_and_quiet_cli(daemon: Daemon, client, tmp_path) -> None:
    ctx = write_context(str(tmp_path / "sdk"), {"Dockerfile": "FROM busybox\nRUN echo sdk-run\nCMD [\"echo\", \"ok\"]\n"})
    image, logs = client.images.build(path=ctx, tag="sdk-built", rm=True)
    text = "".join(chunk.get("stream", "") for chunk in logs)
    assert "sdk-run" in text and "Successfully tagged sdk-built:latest" in text
    assert client.containers.run("sdk-built", remove=True) == b"ok\n"
    quiet = build(daemon, ctx, "-q", "-t", "quiet")
    assert quiet.returncode == 0 and quiet.stdout.strip() == image.id


def test_clear_errors(daemon: Daemon, busybox: str, tmp_path) -> None:
    cases = {
        "FROM busybox\nFOO bar\n": "unknown instruction: FOO",
        "FROM busybox\nADD https://example.com/x.tgz /x\n": "ADD from a URL needs network access",
        "FROM busybox\nCOPY missing.txt /\n": "file not found in build context",
        "FROM busybox\nCOPY a.txt b.txt /notadir\n": "the destination must be a directory and end with a /",
        "FROM busybox\nRUN --mount=type=cache,target=/x true\n": "the --mount option requires BuildKit",
    }
    for i, (dockerfile, message) in enumerate(cases.items()):
        ctx = write_context(str(tmp_path / f"e{i}"), {"Dockerfile": dockerfile, "a.txt": "a", "b.txt": "b"})
        proc = build(daemon, ctx, "-t", f"err{i}")
        assert proc.returncode != 0 and message in proc.stderr, (dockerfile, proc.stderr)
    assert _leftovers(daemon) == ("", [], [])


def test_unused_build_arg_warning(daemon: Daemon, busybox: str, tmp_path) -> None:
    out = build_ok(daemon, tmp_path, "FROM busybox\nARG USED\n", {}, "--build-arg", "USED=1",
                   "--build-arg", "NOPE=2", "--build-arg", "HTTP_PROXY=http://proxy:3128")
    assert "[Warning] One or more build-args [NOPE] were not consumed" in out


def test_client_disconnect_kills_and_removes_build_container(daemon: Daemon, busybox: str, tmp_path) -> None:
    ctx = write_context(str(tmp_path / "ctx"), {"Dockerfile": "FROM busybox\nRUN echo started && sleep 60\n"})
    proc = subprocess.Popen([DOCKER, "build", ctx], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**daemon.env, "DOCKER_BUILDKIT": "0"})
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("started"):
            break
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 15
    while _leftovers(daemon) != ("", [], []) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _leftovers(daemon) == ("", [], [])


def test_sdk_build_with_dockerfile_outside_context(client, busybox, tmp_path):
    """The SDK sends `dockerfile` twice (name, then contents); dockerd reads the first value."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "hello.txt").write_text("hi\n")
    outside = tmp_path / "Dockerfile.outside"
    outside.write_text("FROM busybox\nCOPY hello.txt /hello.txt\n")
    image, _ = client.images.build(path=str(ctx), dockerfile=str(outside), tag="outside-df:1")
    assert client.containers.run(image.id, ["cat", "/hello.txt"], remove=True) == b"hi\n"
    client.images.remove("outside-df:1")


def test_cli_dockerfile_outside_context(daemon: Daemon, busybox: str, tmp_path) -> None:
    """The CLI then rewrites the context tar, ending it without tar's end-of-archive padding."""
    ctx = write_context(str(tmp_path / "ctx"), {"a.txt": "outside-ok\n"})
    outside = tmp_path / "Dockerfile.outside"
    outside.write_text("FROM busybox\nCOPY a.txt /a\n")
    out = build(daemon, ctx, "-f", str(outside), "-t", "outside-cli:1")
    assert out.returncode == 0, out.stderr
    assert run(daemon, "outside-cli:1", "cat", "/a") == "outside-ok\n"
    daemon.docker("rmi", "outside-cli:1", check=True)


def test_builder_prune_forgets_the_cache(daemon: Daemon, busybox: str, tmp_path) -> None:
    dockerfile = "FROM busybox\nRUN date +%s%N > /stamp\n"
    build_ok(daemon, tmp_path, dockerfile, None, "-t", "prune-cache:1")
    assert "Using cache" in build_ok(daemon, tmp_path, dockerfile, None, "-t", "prune-cache:1")
    out = daemon.docker("builder", "prune", "-f")
    assert out.returncode == 0, out.stderr
    assert "Using cache" not in build_ok(daemon, tmp_path, dockerfile, None, "-t", "prune-cache:1")
    daemon.docker("rmi", "prune-cache:1", check=True)


# ---- RUN steps' network, hosts and stderr -----------------------------------
def test_build_add_host_is_in_run_steps_hosts(daemon: Daemon, client, tmp_path) -> None:
    """`--add-host` (the `extrahosts` query) reaches RUN steps' /etc/hosts; the image keeps no trace of it."""
    dockerfile = "FROM busybox\nRUN cat /etc/hosts\n"
    out = build_ok(daemon, tmp_path, dockerfile, None, "--no-cache", "--add-host", "myhost:10.1.2.3",
                   "--add-host", "other.example:10.1.2.4", "-t", "addhost:1")
    assert "10.1.2.3\tmyhost\n" in out and "10.1.2.4\tother.example\n" in out, out
    assert "myhost" not in run(daemon, "addhost:1", "cat", "/etc/hosts")
    ctx = write_context(str(tmp_path / "sdk"), {"Dockerfile": dockerfile})
    _, logs = client.images.build(path=ctx, nocache=True, extra_hosts={"sdkhost": "10.9.9.9"})
    assert "10.9.9.9\tsdkhost\n" in "".join(chunk.get("stream", "") for chunk in logs)
    daemon.docker("rmi", "addhost:1", check=True)


def test_build_network_for_run_steps(daemon: Daemon, busybox: str, tmp_path) -> None:
    """`--network` takes a user network by name or ID (RUN steps reach its containers by name), none and host."""
    import secrets
    uid = secrets.token_hex(3)
    net, web = f"bnet-{uid}", f"bweb-{uid}"
    net_id = daemon.docker("network", "create", net, check=True).stdout.strip()
    try:
        daemon.docker("run", "-d", "--name", web, "--network", net, "busybox", "sh", "-c",
                      f"mkdir /www && echo hello {web} > /www/index.html && exec httpd -f -p 80 -h /www", check=True)
        dockerfile = f"FROM busybox\nRUN wget -qO- http://{web}/ && wget -qO- http://{web}/ > /fetched\n"
        for ref in (net, net_id):
            out = build_ok(daemon, tmp_path / ref[:6], dockerfile, None, "--no-cache", "--network", ref, "-t", "bnet:1")
            assert f"hello {web}\n" in out, out
        assert run(daemon, "bnet:1", "cat", "/fetched") == f"hello {web}\n"
        # the default network has no such name
        proc = build(daemon, write_context(str(tmp_path / "default"), {"Dockerfile": dockerfile}), "--no-cache")
        assert proc.returncode != 0
    finally:
        daemon.docker("rm", "-f", web)
        daemon.docker("network", "rm", net)
        daemon.docker("rmi", "bnet:1")
    interfaces = "FROM busybox\nRUN echo $(ls /sys/class/net)\n"
    out = build_ok(daemon, tmp_path / "none", interfaces, None, "--no-cache", "--network", "none")
    assert "\nlo\n" in out, out
    out = build_ok(daemon, tmp_path / "host", interfaces, None, "--no-cache", "--network", "host")
    seen = next(words for words in map(str.split, out.splitlines()) if "lo" in words and len(words) > 1)
    # the host's own interfaces (not the veths and bridges that daemons of concurrent tests come and go with)
    assert {i for i in os.listdir("/sys/class/net") if not i.startswith(("pv", "pd"))} <= set(seen), out
    proc = build(daemon, write_context(str(tmp_path / "nonet"), {"Dockerfile": interfaces}), "--network", "nope")
    assert proc.returncode != 0 and "network nope not found" in proc.stderr, proc.stderr


def test_run_stderr_is_shown_in_red_as_dockerd_does(daemon: Daemon, busybox: str, tmp_path) -> None:
    out = build_ok(daemon, tmp_path, "FROM busybox\nRUN echo to-out; echo to-err >&2; echo more-out\n", None,
                   "--no-cache")
    assert "to-out\n" in out and "more-out\n" in out
    assert "\x1b[91mto-err\n\x1b[0m" in out, out
    assert "\x1b[91mto-out" not in out
