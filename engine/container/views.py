"""Views: `docker inspect` and `docker ps` (with its filters) built from the records."""
from __future__ import annotations

import os
import time
from typing import Any

from engine.container.core import ContainerCore, dir_bytes
from engine.container.record import Container
from engine.container.state import ContainerState, State
from engine.errors import EngineError, InvalidParameter
from engine.filters import Filters
from engine.timeutil import ZERO_TIME, parse_rfc3339_ns
from pydock_common.humanize import human_duration

# the keys `docker ps --filter` takes (dockerd's acceptedPsFilterTags)
PS_FILTERS = frozenset({"ancestor", "before", "exited", "health", "id", "isolation", "is-task", "label", "name",
                        "network", "publish", "since", "status", "volume", "expose"})


class Views(ContainerCore):
    # ---- views --------------------------------------------------------
    def inspect(self, ref: str, size: bool = False) -> dict[str, Any]:
        c = self.get(ref)
        out = {k: v for k, v in c.items() if not k.startswith("_")}
        out["NetworkSettings"] = self.network.settings(c)
        out["ExecIDs"] = None  # the API fills in the exec service's live IDs
        if size:
            out["SizeRw"] = dir_bytes(os.path.join(self.dir(c["Id"]), "upper"))
            out["SizeRootFs"] = out["SizeRw"] + self.images.inspect(c["Image"])["Size"]
        return out

    def summaries(self, all_: bool = False, limit: int = -1, size: bool = False,
                  filters: Filters | None = None) -> list[dict[str, Any]]:
        """`docker ps`: Docker's container summaries, newest first."""
        filters = (filters or Filters()).validate(PS_FILTERS)
        for status in filters.get("status"):
            if status not in {s.value for s in ContainerState}:
                raise InvalidParameter(f"invalid filter 'status={status}'")
        records = sorted(self.all_records(), key=lambda r: r["Created"], reverse=True)
        all_ = all_ or limit > 0  # as dockerd: `ps -n N` / `ps -l` count stopped containers too
        out = []
        for c in records:
            view = Container.from_docker(c)
            state = view.state
            if not all_ and not state.running and "status" not in filters and "exited" not in filters \
                    and not state.restarting:
                continue
            if not self._match(c, filters):
                continue
            item = {
                "Id": view.id, "Names": [view.name], "Image": view.config.image, "ImageID": view.image_id,
                "Command": " ".join(view.argv),
                "Created": parse_rfc3339_ns(view.created) // 1_000_000_000,
                "Ports": self.network.ports_list(c), "Labels": view.config.labels,
                "State": state.status,
                "Status": status_text(state), "HostConfig": {"NetworkMode": view.host_config.network_mode},
                "NetworkSettings": {"Networks": self.network.settings(c)["Networks"]},
                "Mounts": c.get("Mounts") or [],
            }
            if size:
                item["SizeRw"] = dir_bytes(os.path.join(self.dir(c["Id"]), "upper"))
            out.append(item)
            if 0 < limit <= len(out):
                break
        return out

    def _match(self, c: dict[str, Any], filters: Filters) -> bool:
        """dockerd's `docker ps` filters (daemon/list.go) on one record."""
        state = State.of_record(c)
        if not (filters.prefix("id", c["Id"]) and filters.labels("label", c["Config"].get("Labels"))
                and (filters.search("name", c["Name"].lstrip("/")) or filters.search("name", c["Name"]))):
            return False
        if "status" in filters and state.current.value not in filters.get("status"):
            return False
        if "exited" in filters and not (not state.running and state.status == "exited"
                                        and str(state.exit_code) in filters.get("exited")):
            return False
        if "ancestor" in filters and not any(self._descends(c, v) for v in filters.get("ancestor")):
            return False
        if "before" in filters and not c["Created"] < self.get(filters.get("before")[0])["Created"]:
            return False
        if "since" in filters and not c["Created"] > self.get(filters.get("since")[0])["Created"]:
            return False
        if "volume" in filters and not any(m.get("Name") in filters.get("volume")
                                           or m["Destination"] in filters.get("volume")
                                           for m in c.get("Mounts") or []):
            return False
        # filters pydock accepts but whose subject it lacks (health, publish, ...) match nothing
        unsupported = ("health", "publish", "expose", "isolation", "is-task")
        if any(key in filters for key in unsupported):
            return False
        return filters.exact("network", c["HostConfig"]["NetworkMode"])

    def _descends(self, c: dict[str, Any], image: str) -> bool:
        """`ancestor=`: the container's image by ID/reference, or the name it was created with."""
        try:
            if self.images.resolve(image) == c["Image"]:
                return True
        except EngineError:
            pass
        return bool(c["Config"]["Image"] == image)


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
        return up + " (Paused)" if state.paused else up
    if state.finished_at == ZERO_TIME:
        return "Created"
    ago = now - parse_rfc3339_ns(state.finished_at) / 1e9
    return f"Exited ({state.exit_code}) {human_duration(ago)} ago"
