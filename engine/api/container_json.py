"""A container record as Docker's JSON: `docker inspect` and a `docker ps` row.

The record holds what is stored; the live parts (NetworkSettings, the ports
and networks of a `ps` row, ExecIDs, sizes) come from the services that own
them, and only this module knows how dockerd lays them out.
"""
from __future__ import annotations

import time
from typing import Any

from engine import wire
from engine.container.record import ContainerRecord
from engine.container.state import HealthStatus, State
from engine.timeutil import ZERO_TIME, parse_rfc3339_ns
from pydock_common.humanize import human_duration

Json = dict[str, Any]


def inspect_json(c: ContainerRecord, network_settings: Json, exec_ids: list[str],
                 sizes: tuple[int, int] | None, links: list[str] | None) -> Json:
    """GET /containers/{id}/json; `sizes` is (SizeRw, SizeRootFs) when the client asked for them; `links`
    the legacy links as dockerd shows them ("/child:/parent/alias", not as they were asked for)."""
    out = {k: v for k, v in wire.encode(c).items() if not k.startswith("_")}
    out["HostConfig"]["Links"] = links
    out["ExecIDs"] = exec_ids or None
    out["Mounts"] = [mp.public() for mp in c.mount_points]
    out["NetworkSettings"] = network_settings
    if sizes is not None:
        out["SizeRw"], out["SizeRootFs"] = sizes
    return out


def summary_json(c: ContainerRecord, ports: list[Json], networks: Json, size_rw: int | None) -> Json:
    """One row of GET /containers/json; `networks` is NetworkSettings.Networks."""
    out: Json = {
        "Id": c.id, "Names": [c.name], "Image": c.config.image, "ImageID": c.image_id,
        "Command": " ".join(c.argv), "Created": parse_rfc3339_ns(c.created) // 1_000_000_000,
        "Ports": ports, "Labels": c.labels, "State": c.state.status, "Status": status_text(c.state),
        "HostConfig": {"NetworkMode": c.host_config.network_mode},
        "NetworkSettings": {"Networks": networks},
        "Mounts": [mp.public() for mp in c.mount_points],
    }
    if size_rw is not None:
        out["SizeRw"] = size_rw
    return out


def status_text(state: State) -> str:
    """The human Status column of `docker ps` ("Up 2 minutes", "Exited (0) 3 seconds ago")."""
    now = time.time()
    if state.status == "created":
        return "Created"
    if state.restarting:
        ago = now - parse_rfc3339_ns(state.finished_at) / 1e9
        return f"Restarting ({state.exit_code}) {human_duration(ago)} ago"
    if state.running:
        up = f"Up {human_duration(now - parse_rfc3339_ns(state.started_at) / 1e9)}"
        if state.paused:
            return up + " (Paused)"
        if state.health is not None:  # dockerd's Health.String
            status = state.health.status
            return f"{up} (health: {status})" if status == HealthStatus.STARTING.value else f"{up} ({status})"
        return up
    if state.finished_at == ZERO_TIME:
        return "Created"
    ago = now - parse_rfc3339_ns(state.finished_at) / 1e9
    return f"Exited ({state.exit_code}) {human_duration(ago)} ago"
