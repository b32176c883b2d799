"""The first thing a user tries: run a container with the real docker CLI."""


def test_run_echo(daemon, busybox):
    out = daemon.docker("run", "--rm", "busybox", "echo", "hi")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "hi\n"
