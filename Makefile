# Two entry points on a fresh Debian machine (as root): `make demo` and `make test`.
PY ?= python3
SOCK ?= /run/pydock/pydock.sock

.PHONY: setup demo test lint bench

setup:
	./scripts/setup.sh

demo: setup
	./scripts/demo.sh

test: setup lint
	$(PY) -m pytest -q tests

lint:
	$(PY) -m ruff check engine pydock_common pydock_cli pydock_ext tests bench scripts
	$(PY) -m mypy

# every benchmark measures against a private dockerd it starts itself (bench/dockerd.py), never the host's
bench: setup
	command -v dockerd >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
	$(PY) bench/run_latency.py
	$(PY) bench/concurrent_runs.py
	$(PY) bench/ps_speed.py --running 100
	$(PY) bench/build_cache.py
	$(PY) bench/density.py
	$(PY) bench/logs.py
	$(PY) bench/widget_overhead.py
	command -v skopeo >/dev/null || apt-get install -y -qq skopeo >/dev/null
	$(PY) bench/pull_throughput.py
