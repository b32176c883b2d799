"""Docker's JSON for images (inspect, a `docker images` row, history), built from the image service's views."""
from __future__ import annotations

from typing import Any

from engine.image.views import HistoryEntry, ImageDetails, ImageSummary
from engine.timeutil import ZERO_TIME
from engine.types.results import ImageDeletion

Json = dict[str, Any]


def _container_config(image_config: Json) -> Json:
    """The image's `config` as inspect's Config: the full ContainerConfig shape with the image's values."""
    out: Json = {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
                 "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False,
                 "Env": None, "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "",
                 "Entrypoint": None, "OnBuild": None, "Labels": None}
    out.update(image_config.get("config") or {})
    return out


def inspect_json(d: ImageDetails) -> Json:
    """GET /images/{name}/json."""
    cfg, lowers = d.config, d.lower_dirs
    return {
        "Id": d.record.id, "RepoTags": d.tags, "RepoDigests": d.digests, "Parent": d.record.parent,
        "Comment": (cfg.get("history") or [{}])[-1].get("comment", ""),
        "Created": cfg.get("created", ""), "DockerVersion": cfg.get("docker_version", ""),
        "Author": cfg.get("author", ""), "Config": _container_config(cfg),
        "Architecture": cfg.get("architecture", ""), "Variant": cfg.get("variant", ""), "Os": cfg.get("os", ""),
        "Size": d.record.size,
        "GraphDriver": {"Name": d.driver, "Data": {
            "LowerDir": ":".join(lowers[1:]), "UpperDir": lowers[0], "WorkDir": "",
            "MergedDir": ""} if lowers else {}},
        "RootFS": {"Type": "layers", "Layers": cfg.get("rootfs", {}).get("diff_ids") or []},
        "Metadata": {"LastTagTime": ZERO_TIME},
    }


def summary_json(s: ImageSummary, containers: int = -1, shared_size: int = -1) -> Json:
    """A row of GET /images/json; `system df` fills in the counts a plain list leaves at -1."""
    r = s.record
    return {"Id": r.id, "ParentId": r.parent, "RepoTags": s.tags, "RepoDigests": s.digests, "Created": r.created,
            "Size": r.size, "SharedSize": shared_size, "VirtualSize": r.size, "Labels": s.labels or None,
            "Containers": containers}


def history_json(h: HistoryEntry) -> Json:
    """An entry of GET /images/{name}/history."""
    return {"Id": h.image_id or "<missing>", "Created": h.created, "CreatedBy": h.created_by,
            "Tags": h.tags or None, "Size": h.size, "Comment": h.comment}


def deletion_json(d: ImageDeletion) -> dict[str, str]:
    """An entry of DELETE /images/{name} (and of prune's ImagesDeleted)."""
    return {"Untagged": d.untagged} if d.untagged else {"Deleted": d.deleted}
