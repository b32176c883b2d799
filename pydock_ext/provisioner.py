"""`pydock-provisioner`: a Jupyter kernel that runs inside a container of a given image.

A kernelspec names it in `metadata.kernel_provisioner` (see `pydock kernel
add`, kernelspec.py) with its config: `image`, `run_options` (docker run
options: `-m`, `--cpus`, `-e`, `-v`, `--network`, ...), `mount_cwd` and
`cwd_path`. jupyter_client's local provisioner chooses the ports and writes
the connection file as for any kernel; this one then starts the kernel's
command in a fresh container of the image instead of a local process:

- the connection file is copied into the created container (as `docker cp`
  would, so no host path needs mounting) at /pydock-kernel/kernel.json, with
  the kernel listening on all of the container's addresses, and each of the
  five ports is published on the host's loopback, where the server connects;
- the notebook's directory is mounted at the same path (or `cwd_path`) and
  is the working directory, so relative paths in the notebook work;
- interrupt, restart and shutdown are signals and removals of that container
  (interrupt is SIGINT, as for a local kernel), and the container is removed
  when the kernel ends.

The engine is the one `DOCKER_HOST` names; a pydock-hosting Jupyter server sets
it to its own engine (kernelenv.py), so the kernels run where the server's
other containers do.
"""
from __future__ import annotations

import asyncio
import io
import json
import signal
import sys
import tarfile
from typing import Any

import docker
from jupyter_client.provisioning.local_provisioner import LocalProvisioner
from traitlets import Bool, List, Unicode

from pydock_cli.main import main as docker_cli
from pydock_common.apiversion import API_VERSION

from .connection import find_endpoint

CONNECTION_DIR = "/pydock-kernel"
PORTS = ("shell_port", "iopub_port", "stdin_port", "hb_port", "control_port")


class KernelContainerError(RuntimeError):
    """The kernel's container could not be created or started; the message is docker's."""


class PydockProvisioner(LocalProvisioner):  # type: ignore[misc]
    image = Unicode("", config=True, help="The image the kernel runs in (it needs python3 and ipykernel).")
    run_options = List(Unicode(), config=True, help="Further `docker run` options (-m, --cpus, -e, -v, --network...).")
    mount_cwd = Bool(True, config=True, help="Mount the notebook's directory and work in it.")
    cwd_path = Unicode("", config=True, help="Where the notebook's directory appears (default: the same path).")

    container_id: str | None = None

    @property
    def has_process(self) -> bool:
        return self.container_id is not None

    def _api(self) -> docker.APIClient:
        endpoint = find_endpoint()
        api = docker.APIClient(base_url=endpoint.host, version=API_VERSION, timeout=60)
        api.headers.update(endpoint.headers)
        return api

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> dict[str, Any]:
        """Start the kernel's container; the connection info is the host side's (loopback, same ports)."""
        if not self.image:
            raise KernelContainerError("pydock-provisioner: the kernelspec's provisioner config names no image")
        inside = {**self.connection_info, "ip": "0.0.0.0"}
        inside = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in inside.items()}
        argv = self._create_argv(cmd, kwargs)
        loop = asyncio.get_running_loop()
        self.container_id = await loop.run_in_executor(None, self._create, argv)
        try:
            await loop.run_in_executor(None, self._start, self.container_id, json.dumps(inside).encode())
        except BaseException:
            await self.cleanup()
            raise
        self.cwd = kwargs.get("cwd")
        return dict(self.connection_info)

    def _create_argv(self, cmd: list[str], kwargs: dict[str, Any]) -> list[str]:
        connection_file = getattr(self.parent, "connection_file", "")
        command = [f"{CONNECTION_DIR}/kernel.json" if a == connection_file else a for a in cmd]
        if command and command[0] == sys.executable:
            command[0] = "python3"  # jupyter_client puts the server's own Python for "python3": the image has its own
        argv = ["create", "--name", f"pydock-kernel-{(self.kernel_id or 'x')[:12]}",
                "--label", f"io.pydock.kernel={self.kernel_id}", "--init"]
        if "--network" not in self.run_options and "--net" not in self.run_options:
            for port in (self.connection_info[name] for name in PORTS):
                argv += ["-p", f"127.0.0.1:{port}:{port}"]
        cwd = kwargs.get("cwd")
        if self.mount_cwd and cwd:
            target = self.cwd_path or str(cwd)
            argv += ["-v", f"{cwd}:{target}", "-w", target]
        for key in ("JPY_SESSION_NAME",):
            value = (kwargs.get("env") or {}).get(key)
            if value:
                argv += ["-e", f"{key}={value}"]
        for key, value in (self.kernel_spec.env or {}).items():
            argv += ["-e", f"{key}={value}"]
        return [*argv, *self.run_options, self.image, *command]

    @staticmethod
    def _create(argv: list[str]) -> str:
        """`docker create` with the kernelspec's run options, parsed as docker parses them."""
        out, err = io.StringIO(), io.StringIO()
        if docker_cli(argv, stdout=out, stderr=err) != 0:
            raise KernelContainerError(f"pydock-provisioner: docker create failed: {err.getvalue().strip()}")
        return out.getvalue().strip()

    def _start(self, cid: str, connection: bytes) -> None:
        """The connection file copied in (0600, like the one on the host), then the kernel started."""
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            folder = tarfile.TarInfo(CONNECTION_DIR.lstrip("/"))
            folder.type, folder.mode = tarfile.DIRTYPE, 0o700
            tar.addfile(folder)
            entry = tarfile.TarInfo(f"{CONNECTION_DIR.lstrip('/')}/kernel.json")
            entry.size, entry.mode = len(connection), 0o600
            tar.addfile(entry, io.BytesIO(connection))
        api = self._api()
        api.put_archive(cid, "/", data.getvalue())
        api.start(cid)

    async def poll(self) -> int | None:
        """None while the container runs, else its exit code (0 once it is gone)."""
        if self.container_id is None:
            return 0
        try:
            state = await asyncio.get_running_loop().run_in_executor(
                None, lambda: self._api().inspect_container(self.container_id)["State"])
        except docker.errors.NotFound:
            return 0
        return None if state.get("Running") else int(state.get("ExitCode") or 0)

    async def wait(self) -> int | None:
        while (code := await self.poll()) is None:
            await asyncio.sleep(0.1)
        return code

    async def send_signal(self, signum: int) -> None:
        if self.container_id is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: self._api().kill(self.container_id, int(signum)))
        except docker.errors.APIError as e:
            if e.status_code not in (404, 409):  # gone or not running: nothing to signal
                raise

    async def kill(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    async def cleanup(self, restart: bool = False) -> None:
        """The kernel ended: its container and connection file go (a restart makes new ones)."""
        cid, self.container_id = self.container_id, None
        if cid is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(
                    None, lambda: self._api().remove_container(cid, force=True))
            except docker.errors.APIError as e:
                if e.status_code != 404:
                    raise
        await super().cleanup(restart=restart)

    async def get_provisioner_info(self) -> dict[str, Any]:
        info: dict[str, Any] = await super().get_provisioner_info()
        info["container_id"] = self.container_id
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.container_id = provisioner_info.get("container_id")
