#!/usr/bin/env bash
# Installs everything pydock needs on a fresh Debian machine (run as root).
# Idempotent: skips what is already present, so `make demo` and `make test` can both call it.
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PKGS=(runc busybox-static tini iptables nftables iproute2 util-linux procps curl docker-registry apache2-utils)
missing=()
for p in "${SYSTEM_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if ! $PY -c 'import engine, tornado, docker, pytest, pytest_timeout, dockerfile_parse, pyroute2' 2>/dev/null \
   || ! $PY -m pip show pydock >/dev/null 2>&1; then
    echo "setup: installing Python packages"
    $PY -m pip install -q --root-user-action=ignore -e '.[test]'
fi
# A wheel install enables the server extension through its jupyter_server_config.d
# data file; an editable install does not copy data files, so put it in place the same way.
confd="$($PY -c 'import sys; print(sys.prefix)')/etc/jupyter/jupyter_server_config.d"
mkdir -p "$confd"
cp pydock_ext/etc/jupyter_server_config.d/pydock_ext.json "$confd/"
