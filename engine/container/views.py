"""Views: the containers `docker ps` lists (with its filters), and their sizes; the JSON is the API's."""
from __future__ import annotations

import os

from engine.container.core import ContainerCore, dir_bytes
from engine.container.record import ContainerRecord
from engine.container.state import NO_HEALTHCHECK, ContainerState, HealthStatus
from engine.errors import EngineError, InvalidParameter
from engine.filters import Filters

# the keys `docker ps --filter` takes (dockerd's acceptedPsFilterTags)
PS_FILTERS = frozenset({"ancestor", "before", "exited", "health", "id", "isolation", "is-task", "label", "name",
                        "network", "publish", "since", "status", "volume", "expose"})


class Views(ContainerCore):
    # ---- views --------------------------------------------------------
    def listing(self, all_: bool = False, limit: int = -1, filters: Filters | None = None) -> list[ContainerRecord]:
        """`docker ps`: the containers to list, newest first, as records to read and never change (shared with
        the next listing, see ContainerStore.snapshot)."""
        filters = (filters or Filters()).validate(PS_FILTERS)
        for status in filters.get("status"):
            if status not in {s.value for s in ContainerState}:
                raise InvalidParameter(f"invalid filter 'status={status}'")
        for health in filters.get("health"):
            if health not in {NO_HEALTHCHECK, *(h.value for h in HealthStatus)}:
                raise InvalidParameter(f"Unrecognised filter value for health: {health}")
        records = sorted(self.store.snapshot(), key=lambda r: r.created, reverse=True)
        all_ = all_ or limit > 0  # as dockerd: `ps -n N` / `ps -l` count stopped containers too
        out = []
        for c in records:
            state = c.state
            if not all_ and not state.running and "status" not in filters and "exited" not in filters \
                    and not state.restarting:
                continue
            if filters and not self._match(c, filters):  # no filter matches all (a 500-row listing's time)
                continue
            out.append(c)
            if 0 < limit <= len(out):
                break
        return out

    def size_rw(self, c: ContainerRecord) -> int:
        """Bytes in the container's writable layer (SizeRw)."""
        return dir_bytes(os.path.join(self.dir(c.id), "upper"))

    def size_root_fs(self, c: ContainerRecord) -> int:
        """Bytes of the writable layer plus the image (SizeRootFs)."""
        return self.size_rw(c) + self.images.record(c.image_id).size

    def _match(self, c: ContainerRecord, filters: Filters) -> bool:
        """dockerd's `docker ps` filters (daemon/list.go) on one record."""
        state = c.state
        if not (filters.prefix("id", c.id) and filters.labels("label", c.config.labels)
                and (filters.search("name", c.short_name) or filters.search("name", c.name))):
            return False
        if "status" in filters and state.current.value not in filters.get("status"):
            return False
        if "exited" in filters and not (not state.running and state.status == "exited"
                                        and str(state.exit_code) in filters.get("exited")):
            return False
        if "ancestor" in filters and not any(self._descends(c, v) for v in filters.get("ancestor")):
            return False
        if "before" in filters and not c.created < self.get(filters.get("before")[0]).created:
            return False
        if "since" in filters and not c.created > self.get(filters.get("since")[0]).created:
            return False
        if "volume" in filters and not any(m.name in filters.get("volume") or m.destination in filters.get("volume")
                                           for m in c.mount_points):
            return False
        if "health" in filters and (state.health.status if state.health else NO_HEALTHCHECK) \
                not in filters.get("health"):
            return False
        # filters pydock accepts but whose subject it lacks (publish, ...) match nothing
        unsupported = ("publish", "expose", "isolation", "is-task")
        if any(key in filters for key in unsupported):
            return False
        return filters.exact("network", c.host_config.network_mode)

    def _descends(self, c: ContainerRecord, image: str) -> bool:
        """`ancestor=`: the container's image by ID/reference, or the name it was created with."""
        try:
            if self.images.resolve(image) == c.image_id:
                return True
        except EngineError:
            pass
        return c.config.image == image
