"""`pydock kernel add IMAGE`: a kernelspec whose kernels run in containers of IMAGE (see provisioner.py).

The spec is written where `jupyter kernelspec list` finds the user's kernels,
so the launcher shows "Python (IMAGE)". Before writing it, the image is
checked: a container of it must import ipykernel, else the command says how
to make an image that can (the registry-less one included).
"""
from __future__ import annotations

import io
import json
import os
import re

from jupyter_core.paths import jupyter_data_dir

from pydock_cli.main import main as docker_cli

PROVISIONER = "pydock-provisioner"
MAKE_ONE = ("make one with `python3 -m pydock_cli.pythonimage --ipykernel -t NAME` (from this machine's Debian "
            "packages), or build FROM a Python image with `RUN pip install ipykernel`")


class KernelSpecError(Exception):
    pass


def spec_name(image: str) -> str:
    """A kernelspec directory name for `image` (letters, digits, `-`, `.`, `_`)."""
    return "pydock-" + re.sub(r"[^a-zA-Z0-9._-]+", "-", image).strip("-").lower()


def check_image(image: str) -> None:
    """The image must run `python3 -c 'import ipykernel'`."""
    err = io.StringIO()
    code = docker_cli(["run", "--rm", "--network", "none", image, "python3", "-c", "import ipykernel"],
                      stdout=io.StringIO(), stderr=err)
    if code != 0:
        reason = err.getvalue().strip().splitlines()[-1:] or [f"exit status {code}"]
        raise KernelSpecError(f"{image} cannot host a Python kernel ({reason[0]}): it needs python3 with ipykernel; "
                              + MAKE_ONE)


def write_spec(image: str, name: str = "", display_name: str = "", run_options: list[str] | None = None,
               kernels_dir: str = "") -> str:
    """Write the kernelspec; returns its directory."""
    directory = os.path.join(kernels_dir or os.path.join(jupyter_data_dir(), "kernels"), name or spec_name(image))
    os.makedirs(directory, exist_ok=True)
    spec = {
        "argv": ["python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": display_name or f"Python ({image})",
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {"kernel_provisioner": {"provisioner_name": PROVISIONER,
                                            "config": {"image": image, "run_options": list(run_options or [])}}},
    }
    with open(os.path.join(directory, "kernel.json"), "w") as f:
        json.dump(spec, f, indent=1)
    return directory


def add(image: str, name: str = "", display_name: str = "", run_options: list[str] | None = None,
        kernels_dir: str = "", check: bool = True) -> str:
    """`pydock kernel add`: check the image, then write its kernelspec."""
    if check:
        check_image(image)
    return write_spec(image, name, display_name, run_options, kernels_dir)
