"""Container logs: drivers, rotation and options as dockerd has them, read through the docker CLI;
and the reader's tail-from-the-end and since-skipping on synthetic logs."""
from __future__ import annotations

import glob
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
from conftest import DOCKER, Daemon, new_name

from engine.container import logs
from engine.container.logconfig import validate
from engine.errors import InvalidParameter
from engine.runtime.shim import LogWriter
from engine.types.container import LogConfig
from pydock_common.humanize import from_human_size

BASE_NS = 1_700_000_000_000_000_000


def _inspect(daemon: Daemon, name: str) -> dict:
    return json.loads(daemon.docker("inspect", name, check=True).stdout)[0]


def _wait_exit(daemon: Daemon, name: str) -> None:
    daemon.docker("wait", name, check=True, timeout=120)


def _log_dir_files(daemon: Daemon, name: str, pattern: str) -> list[str]:
    cid = _inspect(daemon, name)["Id"]
    return sorted(glob.glob(os.path.join(daemon.data_root, "containers", cid, pattern)))


# ---- through the docker CLI -----------------------------------------------------

def test_json_file_rotation_keeps_max_file_files_of_max_size(daemon: Daemon, busybox: str,
                                                              names: list[str]) -> None:
    n = new_name(names)
    daemon.docker("run", "--name", n, "--log-opt", "max-size=10k", "--log-opt", "max-file=3", "busybox",
                  "sh", "-c", "i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); done", check=True,
                  timeout=120)
    data = _inspect(daemon, n)
    assert data["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "10k", "max-file": "3"}}
    files = _log_dir_files(daemon, n, "*-json.log*")
    cid = data["Id"]
    assert [os.path.basename(f) for f in files] == [f"{cid}-json.log", f"{cid}-json.log.1", f"{cid}-json.log.2"]
    for f in files:
        assert os.path.getsize(f) <= 10_000 + 200, f  # dockerd's check is before each line
    with open(files[0], "rb") as f:
        assert f.readline().startswith(b'{"log":"line-'), "dockerd's compact line format"
    out = daemon.docker("logs", n, check=True).stdout.splitlines()
    assert 2 * 10_000 // 100 < len(out) < 3000, len(out)  # two full rotated files kept, the oldest lines gone
    first = int(out[0].split("-")[1])
    assert out == [f"line-{i}" for i in range(first, 3000)]  # in order across the files
    tail = daemon.docker("logs", "--tail", str(len(out) - 5), n, check=True).stdout.splitlines()
    assert tail == out[5:]  # --tail reaching back into the rotated files
    stamped = [line.split(" ", 1) for line in daemon.docker("logs", "-t", n, check=True).stdout.splitlines()]
    assert [text for _, text in stamped] == out
    cut = stamped[len(stamped) // 4][0]  # a time inside the oldest file kept
    since = daemon.docker("logs", "--since", cut, n, check=True).stdout.splitlines()
    assert since == [text for ts, text in stamped if logs.time_ns(ts.encode()) >= logs.time_ns(cut.encode())]
    until = daemon.docker("logs", "--until", cut, n, check=True).stdout.splitlines()
    assert until == [text for ts, text in stamped if logs.time_ns(ts.encode()) <= logs.time_ns(cut.encode())]


def test_follow_continues_through_rotation(daemon: Daemon, busybox: str, names: list[str]) -> None:
    n = new_name(names)
    daemon.docker("run", "-d", "--name", n, "--log-opt", "max-size=2k", "--log-opt", "max-file=5", "busybox",
                  "sh", "-c", "sleep 1; i=0; while [ $i -lt 300 ]; do echo follow-$i; i=$((i+1)); "
                  "[ $((i % 20)) = 0 ] && sleep 0.2; done", check=True)
    proc = subprocess.run([DOCKER, "logs", "-f", n], check=False, capture_output=True, text=True, timeout=120,
                          env=daemon.env)
    lines = proc.stdout.splitlines()
    assert lines[-1] == "follow-299"
    assert lines == [f"follow-{i}" for i in range(int(lines[0].split("-")[1]), 300)]
    assert len(_log_dir_files(daemon, n, "*-json.log.*")) == 4  # it did rotate while followed


def test_monitor_rotates_while_daemon_is_down(daemon: Daemon, busybox: str, names: list[str]) -> None:
    n = new_name(names)
    daemon.docker("run", "-d", "--name", n, "--log-opt", "max-size=1k", "--log-opt", "max-file=4", "busybox",
                  "sh", "-c", "sleep 2; i=0; while [ $i -lt 200 ]; do echo down-$i; i=$((i+1)); done", check=True)
    daemon.stop()
    try:
        time.sleep(4)
    finally:
        daemon.start()
    assert len(_log_dir_files(daemon, n, "*-json.log.*")) == 3
    out = daemon.docker("logs", n, check=True).stdout.splitlines()
    assert out[-1] == "down-199" and out == [f"down-{i}" for i in range(int(out[0][5:]), 200)]


def test_max_file_one_truncates_in_place(daemon: Daemon, busybox: str, names: list[str]) -> None:
    n = new_name(names)
    daemon.docker("run", "--name", n, "--log-opt", "max-size=1k", "busybox", "sh", "-c",
                  "i=0; while [ $i -lt 500 ]; do echo x-$i; i=$((i+1)); done", check=True)
    assert len(_log_dir_files(daemon, n, "*-json.log*")) == 1
    out = daemon.docker("logs", n, check=True).stdout.splitlines()
    assert 0 < len(out) < 500 and out[-1] == "x-499"


def test_compress_gzips_rotated_files(daemon: Daemon, busybox: str, names: list[str]) -> None:
    n = new_name(names)
    daemon.docker("run", "--name", n, "--log-opt", "max-size=5k", "--log-opt", "max-file=3",
                  "--log-opt", "compress=true", "busybox", "sh", "-c",
                  "i=0; while [ $i -lt 1000 ]; do echo z-$i; i=$((i+1)); done", check=True)
    rotated = [os.path.basename(f).split("json.log")[1] for f in _log_dir_files(daemon, n, "*-json.log.*")]
    assert rotated == [".1.gz", ".2.gz"]
    out = daemon.docker("logs", n, check=True).stdout.splitlines()
    assert out[-1] == "z-999" and out == [f"z-{i}" for i in range(int(out[0][2:]), 1000)]
    assert daemon.docker("logs", "--tail", "300", n, check=True).stdout.splitlines() == out[-300:]


def test_local_driver_rotates_and_reads_with_options(daemon: Daemon, busybox: str, names: list[str]) -> None:
    n = new_name(names)
    daemon.docker("run", "--name", n, "--log-driver", "local", "--log-opt", "max-size=4k",
                  "--log-opt", "max-file=2", "--log-opt", "compress=false", "busybox", "sh", "-c",
                  "i=0; while [ $i -lt 400 ]; do echo l-$i; i=$((i+1)); done; echo err >&2", check=True)
    data = _inspect(daemon, n)
    assert data["HostConfig"]["LogConfig"]["Type"] == "local"
    assert data["LogPath"] == ""
    assert len(_log_dir_files(daemon, n, "local-logs/container.log*")) == 2
    out = daemon.docker("logs", n, check=True)
    lines = out.stdout.splitlines()
    assert lines[-1] == "l-399" and lines == [f"l-{i}" for i in range(int(lines[0][2:]), 400)]
    assert out.stderr == "err\n"
    assert daemon.docker("logs", "--tail", "3", n, check=True).stdout == "l-398\nl-399\n"  # and "err"
    stamped = daemon.docker("logs", "-t", "--tail", "2", n, check=True).stdout
    assert stamped[:4].isdigit() and stamped.endswith(" l-399\n")
    assert daemon.docker("logs", "--until", "2000-01-01T00:00:00Z", n, check=True).stdout == ""


def test_local_driver_default_limits(daemon: Daemon, busybox: str, names: list[str]) -> None:
    n = new_name(names)
    daemon.docker("run", "--name", n, "--log-driver", "local", "busybox", "echo", "hi", check=True)
    assert daemon.docker("logs", n, check=True).stdout == "hi\n"
    assert _inspect(daemon, n)["HostConfig"]["LogConfig"] == {"Type": "local", "Config": {}}


def test_none_driver_cannot_be_read(daemon: Daemon, busybox: str, names: list[str]) -> None:
    n = new_name(names)
    run = daemon.docker("run", "--name", n, "--log-driver", "none", "busybox", "echo", "hi", check=True)
    assert run.stdout == "hi\n"  # attaching does not need a log
    out = daemon.docker("logs", n)
    assert out.returncode != 0
    assert "configured logging driver does not support reading" in out.stderr
    assert _log_dir_files(daemon, n, "*log*") == []


@pytest.mark.parametrize(("args", "message"), [
    (["--log-driver", "nosuch"], "logger: no log driver named 'nosuch' is registered"),
    (["--log-opt", "max-size=abc"], "invalid size: 'abc'"),
    (["--log-opt", "max-file=0"], "max-file cannot be less than 1"),
    (["--log-opt", "max-file=x"], 'strconv.Atoi: parsing "x": invalid syntax'),
    (["--log-opt", "colour=red"], "unknown log opt 'colour' for json-file log driver"),
    (["--log-opt", "compress=true"], "compress cannot be true when max-file is less than 2 or max-size is not set"),
    (["--log-driver", "local", "--log-opt", "tag=x"], "unknown log opt 'tag' for log driver local"),
    (["--log-driver", "local", "--log-opt", "max-size=1q"], "invalid value for max-size: 1q: invalid size: '1q'"),
])
def test_bad_log_config_is_refused_at_create(daemon: Daemon, busybox: str, names: list[str],
                                             args: list[str], message: str) -> None:
    n = new_name(names)
    out = daemon.docker("create", "--name", n, *args, "busybox", "true")
    assert out.returncode != 0
    assert f"Error response from daemon: {message}" in out.stderr
    assert n not in daemon.docker("ps", "-a", "--format", "{{.Names}}").stdout


# ---- the reader, on synthetic logs --------------------------------------------

def _read(path: str, **opts: object) -> Iterator[logs.LogEntry]:
    for batch in logs.read_log_batches(path, **opts):  # type: ignore[arg-type]
        yield from batch


def _ts(i: int) -> str:
    secs, frac = divmod(BASE_NS + i * 1000, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def _payload(i: int) -> str:
    """Plain lines, and every 7th with quotes, backslashes, non-ASCII and an undecodable byte."""
    if i % 7:
        return f"line {i}\n"
    return f'say "{i}" \\ caf\u00e9 \udcff\n'


def _write(path: str, first: int, last: int, partial: bool = False) -> None:
    with open(path, "wb") as f:
        for i in range(first, last):
            stream = "stderr" if i % 3 == 0 else "stdout"
            f.write(json.dumps({"log": _payload(i), "stream": stream, "time": _ts(i)}).encode() + b"\n")
        if partial:
            f.write(b'{"log":"cut off in the mid')


def _expect(first: int, last: int, stream: str | None = None) -> list[logs.LogEntry]:
    out = []
    for i in range(first, last):
        s = "stderr" if i % 3 == 0 else "stdout"
        if stream in (None, s):
            out.append((s.encode(), _payload(i).encode("utf-8", "surrogateescape"), _ts(i).encode()))
    return out


@pytest.fixture
def rotated_log(tmp_path) -> str:
    path = str(tmp_path / "c-json.log")
    _write(path + ".2", 0, 30_000)
    _write(path + ".1", 30_000, 60_000)
    _write(path, 60_000, 90_000, partial=True)
    return path


def test_reader_full_read_across_files_skips_partial_line(rotated_log: str) -> None:
    assert list(_read(rotated_log)) == _expect(0, 90_000)


@pytest.mark.parametrize("tail", [0, 1, 5, 29_999, 30_000, 30_001, 89_999, 200_000])
def test_reader_tail_from_end(rotated_log: str, tail: int) -> None:
    assert list(_read(rotated_log, tail=tail)) == (_expect(0, 90_000)[-tail:] if tail else [])


def test_reader_tail_one_stream(rotated_log: str) -> None:
    assert list(_read(rotated_log, stdout=False, tail=4)) == _expect(0, 90_000, "stderr")[-4:]


@pytest.mark.parametrize("since", [0, 1, 29_999, 30_000, 45_123, 60_000, 89_999])
def test_reader_since_skips_to_first_line_at_or_after(rotated_log: str, since: int) -> None:
    since_ns = BASE_NS + since * 1000
    assert list(_read(rotated_log, since_ns=since_ns)) == _expect(since, 90_000)
    assert list(_read(rotated_log, since_ns=since_ns, until_ns=since_ns + 10_000)) \
        == _expect(since, min(since + 11, 90_000))
    assert list(_read(rotated_log, since_ns=since_ns, tail=3)) == _expect(since, 90_000)[-3:]


def test_reader_since_does_not_read_what_it_skips(rotated_log: str, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = 0
    real = logs.parse_line

    def counting(line: bytes) -> logs.LogEntry | None:
        nonlocal parsed
        parsed += 1
        return real(line)

    monkeypatch.setattr(logs, "parse_line", counting)
    got = list(_read(rotated_log, since_ns=BASE_NS + 89_990 * 1000))
    assert got == _expect(89_990, 90_000)
    assert parsed < 5_000, parsed
    parsed = 0
    assert list(_read(rotated_log, tail=10)) == _expect(89_990, 90_000)
    assert parsed < 5_000, parsed


def test_reader_parses_unusual_lines_like_json(tmp_path) -> None:
    """The slicing fast path must agree with a JSON parse, and hand anything else to it."""
    lines = [
        {"log": "a\\n", "stream": "stdout", "time": _ts(1)},
        {"log": "ends with backslash \\", "stream": "stdout", "time": _ts(2)},
        {"log": "backslash then newline \\\n", "stream": "stdout", "time": _ts(2)},
        {"log": "tab\tnewline\n", "stream": "stdout", "time": _ts(2)},
        {"log": 'x","stream":"stderr', "stream": "stdout", "time": _ts(3)},
        {"log": "\u00e9\n", "stream": "stderr", "time": "2023-11-14T22:13:20.5Z"},
        {"log": "attrs\n", "stream": "stdout", "attrs": {"a": "b"}, "time": _ts(5)},
    ]
    for rec in lines:
        for ensure_ascii in (True, False):
            text = json.dumps(rec, ensure_ascii=ensure_ascii, separators=(",", ":")).encode()
            assert logs.parse_line(text) == (rec["stream"].encode(), rec["log"].encode(), rec["time"].encode())
    assert logs.parse_line(b'{"log":"no end') is None
    assert logs.parse_line(b"") is None


def test_reader_follow_sees_rotation(tmp_path) -> None:
    path = str(tmp_path / "c-json.log")
    _write(path, 0, 10)
    running = threading.Event()
    running.set()
    got: list[logs.LogEntry] = []
    reader = threading.Thread(target=lambda: got.extend(
        _read(path, follow=True, is_running=running.is_set, poll=0.01)))
    reader.start()
    time.sleep(0.2)
    os.replace(path, path + ".1")
    _write(path, 10, 20)
    time.sleep(0.2)
    running.clear()
    reader.join(10)
    assert got == _expect(0, 20)


def test_failed_rotation_keeps_the_log_writable(tmp_path) -> None:
    """A rotation that fails (here: a directory in the way) must not leave the monitor a closed file."""
    path = str(tmp_path / "c-json.log")
    os.makedirs(path + ".1/blocker")
    w = LogWriter({"path": path, "max_size": 10, "max_file": 2})
    w.write([b"first line, long enough\n"])
    with pytest.raises(OSError):
        w.write([b"second\n"])
    os.rmdir(path + ".1/blocker")
    os.rmdir(path + ".1")
    w.write([b"third\n"])
    w.close()
    with open(path + ".1", "rb") as f:
        assert f.read() == b"first line, long enough\n"
    with open(path, "rb") as f:
        assert f.read() == b"third\n"


# ---- option parsing -----------------------------------------------------------

def test_sizes_use_dockers_decimal_units() -> None:
    assert [from_human_size(s) for s in ("10m", "10MB", "10mib", "1.5k", "7", "2 g")] \
        == [10_000_000, 10_000_000, 10_000_000, 1500, 7, 2_000_000_000]
    with pytest.raises(InvalidParameter, match="invalid size: '10x'"):
        from_human_size("10x")


def test_log_config_stored_as_given() -> None:
    assert validate(LogConfig()) == LogConfig("json-file", {})
    assert validate(LogConfig("local", {"max-file": "3"})) == LogConfig("local", {"max-file": "3"})
    with pytest.raises(InvalidParameter, match="invalid size: 'ten'"):
        validate(LogConfig("json-file", {"max-size": "ten"}))
