"""`docker pull` throughput through pydockd against `skopeo copy` of the same image and a private dockerd.

A private `docker-registry` on loopback holds an image of random (so
incompressible) data in several gzip layers. Each pydockd run removes the
image first, so every layer is really downloaded, verified and unpacked; each
skopeo run copies the image into an empty `dir:` destination (download and
digest verification, no unpacking); a private dockerd (bench/dockerd.py;
`--no-dockerd` leaves it out) pulls it as pydockd does, after removing it.
Absolute speeds depend on the machine, so the results are ratios, measured
side by side with the runs interleaved; the target is pydock/skopeo at least
1.0x.

    python3 bench/pull_throughput.py [--size-mb 200] [--layers 5] [--runs 3] [--warmup 1] [--no-dockerd]
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dockerd
from common import DOCKER, docker, docker_env, measure, start_pydockd, stop_process, timed

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
SKOPEO = shutil.which("skopeo")
REPO_NAME, TAG = "bench/pull", "1"
GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_registry(root: str, stack: ExitStack) -> str:
    """A throwaway registry on loopback; returns host:port."""
    port = free_port()
    storage = os.path.join(root, "registry")
    config = os.path.join(root, "registry.yml")
    with open(config, "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {storage}\n"
                f"http:\n  addr: 127.0.0.1:{port}\n")
    with open(os.path.join(root, "registry.log"), "ab") as log:  # the registry keeps its own copy
        proc = subprocess.Popen([REGISTRY, "serve", config], stdout=log, stderr=log, start_new_session=True)
    stack.callback(stop_process, proc)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return f"127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("docker-registry did not start; see " + log.name) from None
            time.sleep(0.05)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def put_blob(base: str, data: bytes) -> str:
    resp = requests.post(f"{base}/v2/{REPO_NAME}/blobs/uploads/", timeout=30)
    resp.raise_for_status()
    location = requests.compat.urljoin(base + "/", resp.headers["Location"])
    digest = sha256(data)
    resp = requests.put(location + ("&" if "?" in location else "?") + "digest=" + digest, data=data, timeout=300)
    resp.raise_for_status()
    return digest


def layer_tar(index: int, size: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"data/layer{index}.bin")
        info.size, info.mode = size, 0o644
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    return buf.getvalue()


def push_image(host: str, size_mb: int, layers: int) -> int:
    """Upload an image of `layers` random gzip layers totalling `size_mb` MB; returns its blob bytes."""
    base = f"http://{host}"
    per_layer = size_mb * 1_000_000 // layers
    plain = [layer_tar(i, per_layer) for i in range(layers)]
    blobs = [gzip.compress(p, compresslevel=1, mtime=0) for p in plain]
    config = json.dumps({"architecture": ARCH, "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [sha256(p) for p in plain]}}).encode()
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put_blob(base, config),
                           "size": len(config)},
                "layers": [{"mediaType": GZIP_LAYER, "digest": put_blob(base, b), "size": len(b)} for b in blobs]}
    resp = requests.put(f"{base}/v2/{REPO_NAME}/manifests/{TAG}", data=json.dumps(manifest).encode(), timeout=30,
                        headers={"Content-Type": manifest["mediaType"]})
    resp.raise_for_status()
    return sum(len(b) for b in blobs) + len(config)


def pull_contender(env: dict[str, str], ref: str) -> Callable[[], float]:
    def run() -> float:
        if subprocess.run([DOCKER, "image", "inspect", ref], env=env, capture_output=True, check=False).returncode == 0:
            docker(env, "rmi", ref)  # removes its layers too: the pull must download everything
        return timed([DOCKER, "pull", "-q", ref], env)
    return run


def skopeo_contender(skopeo: str, ref: str, dest: str) -> Callable[[], float]:
    def run() -> float:
        shutil.rmtree(dest, ignore_errors=True)
        return timed([skopeo, "copy", "-q", "--src-tls-verify=false", f"docker://{ref}", f"dir:{dest}"])
    return run


def report(samples: dict[str, list[float]], size: int) -> None:
    mbps = {name: size / 1e6 / statistics.median(values) for name, values in samples.items()}
    for name, rate in mbps.items():
        print(f"{name:7s} median {rate:8.1f} MB/s  over {len(samples[name])} runs ({size / 1e6:.1f} MB)")
    print(f"pydock/skopeo ratio: {mbps['pydock'] / mbps['skopeo']:.2f}x")
    if "dockerd" in mbps:
        print(f"pydock/dockerd ratio: {mbps['pydock'] / mbps['dockerd']:.2f}x")


def run(size_mb: int, layers: int, runs: int, warmup: int, with_dockerd: bool) -> None:
    if not SKOPEO:
        raise SystemExit("pull_throughput: skopeo is not installed (apt-get install skopeo); "
                         "it is the baseline this benchmark compares against")
    with ExitStack() as stack:
        root = tempfile.mkdtemp(prefix="pydock-bench-")
        stack.callback(shutil.rmtree, root, True)
        host = start_registry(root, stack)
        size = push_image(host, size_mb, layers)
        ref = f"{host}/{REPO_NAME}:{TAG}"
        config_dir = os.path.join(root, "docker-config")
        contenders = {"pydock": pull_contender(docker_env(start_pydockd(root, stack), config_dir), ref),
                      "skopeo": skopeo_contender(SKOPEO, ref, os.path.join(root, "skopeo-dir"))}
        if with_dockerd:  # a registry on loopback is one dockerd pulls from over plain HTTP unasked
            contenders["dockerd"] = pull_contender(docker_env(dockerd.start_dockerd(root, stack), config_dir), ref)
        report(measure(contenders, runs, warmup), size)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-mb", type=int, default=200, help="image size in MB (default 200)")
    p.add_argument("--layers", type=int, default=5, help="number of layers (default 5)")
    p.add_argument("--runs", type=int, default=3, help="measured runs per contender (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured runs per contender first (default 1)")
    dockerd.add_option(p)
    args = p.parse_args(argv)
    if args.size_mb < 1 or args.layers < 1 or args.runs < 1 or args.warmup < 0:
        p.error("--size-mb, --layers and --runs must be >= 1 and --warmup >= 0")
    run(args.size_mb, args.layers, args.runs, args.warmup, args.dockerd)


if __name__ == "__main__":
    main()
