#!/usr/bin/env bash
# The demo: start pydockd (unless running), import a busybox image, run a container with the docker CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
SOCK=${PYDOCK_SOCKET:-/run/pydock/pydock.sock}
export DOCKER_HOST=unix://$SOCK
if ! curl -sf --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; then
    mkdir -p /var/log/pydock
    nohup pydockd -H "unix://$SOCK" >>/var/log/pydock/pydockd.log 2>&1 &
    for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
    echo "demo: pydockd started (log: /var/log/pydock/pydockd.log)"
fi
CLI=docker
command -v docker >/dev/null || CLI=pydock
if ! $CLI image inspect busybox:latest >/dev/null 2>&1; then
    tar=$(mktemp --suffix=.tar)
    python3 scripts/busybox_rootfs.py "$tar" >/dev/null
    $CLI import -c 'CMD ["sh"]' "$tar" busybox:latest
    rm -f "$tar"
fi
$CLI run --rm busybox echo "hello from a pydock container"
$CLI images
echo "demo: the daemon keeps running; use DOCKER_HOST=unix://$SOCK with docker, or pydock"
