#!/usr/bin/env bash
# Installs everything pydock needs on a fresh Debian machine (run as root).
# Idempotent: skips what is already present, so `make demo` and `make test` can both call it.
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PKGS=(runc busybox-static tini iptables nftables iproute2 util-linux procps curl docker-registry apache2-utils chromium golang-github-docker-docker-dev
           docker-compose wget gcc libc6-dev
           uidmap slirp4netns passt fuse-overlayfs crun)  # crun: the second OCI runtime (--runtime crun); docker-compose: a real compose client for %%compose and its tests; gcc, libc6-dev: the daemon compiles its container monitor (engine/runtime/monitor.c) on first use; rootless mode: ID maps, outbound network (slirp4netns; passt the alternative), overlay for old kernels
missing=()
for p in "${SYSTEM_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The JupyterLab extension: node packages from the committed lock file, and a build
# only when a source is newer than the output (pydock_ext/labextension) the wheel ships.
labext_out=pydock_ext/labextension/package.json
if [ labextension/package-lock.json -nt labextension/node_modules/.package-lock.json ]; then
    echo "setup: installing the labextension's node packages"
    (cd labextension && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
if [ ! -f "$labext_out" ] || [ -n "$(find labextension/src labextension/style labextension/package.json \
        labextension/package-lock.json labextension/tsconfig.json labextension/build-labextension.mjs \
        -newer "$labext_out" -print -quit)" ]; then
    echo "setup: building the JupyterLab extension"
    if ! log=$(cd labextension && npm run --silent build 2>&1); then
        echo "$log" >&2
        exit 1
    fi
    touch "$labext_out"
fi

PY=${PYTHON:-python3}
if ! $PY -c 'import engine, tornado, uvloop, docker, pytest, pytest_timeout, dockerfile_parse, pyroute2, mypy, ruff' 2>/dev/null \
   || ! $PY -c 'import importlib.util as u, sys; sys.exit(not all(map(u.find_spec, ["jupyterlab", "playwright"])))' \
   || ! $PY scripts/installed_matches.py; then
    echo "setup: installing Python packages"
    # pip would write the wheel's labextension data through the development link made
    # below (into the source tree); drop the link first, it is made again afterwards.
    labext_link="$($PY -c 'import sys; print(sys.prefix)')/share/jupyter/labextensions/pydock-labextension"
    [ -L "$labext_link" ] && rm "$labext_link"
    $PY -m pip install -q --root-user-action=ignore -e '.[test]'
fi
# A wheel install enables the server extension through its jupyter_server_config.d
# data file; an editable install does not copy data files, so put it in place the same way.
confd="$($PY -c 'import sys; print(sys.prefix)')/etc/jupyter/jupyter_server_config.d"
mkdir -p "$confd"
cp pydock_ext/etc/jupyter_server_config.d/pydock_ext.json "$confd/"
# Likewise JupyterLab finds the extension of an editable install through a link to the
# build output, as `jupyter labextension develop` makes (replacing a copy a wheel left).
labexts="$($PY -c 'import sys; print(sys.prefix)')/share/jupyter/labextensions"
if [ "$(readlink "$labexts/pydock-labextension" || true)" != "$PWD/pydock_ext/labextension" ]; then
    mkdir -p "$labexts"
    rm -rf "$labexts/pydock-labextension"
    ln -s "$PWD/pydock_ext/labextension" "$labexts/pydock-labextension"
fi
