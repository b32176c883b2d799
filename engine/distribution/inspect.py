"""`GET /distribution/{name}/json`: what a registry holds under a reference, without pulling it.

The answer is dockerd's DistributionInspect: the descriptor of the manifest
the reference names (its media type, digest and size) and the platforms it
serves: each entry of a manifest list or OCI index, or, for a single
manifest, the os and architecture its image config declares (none when the
config does not say). Clients use it to learn a tag's digest and
architectures before pulling (the SDK's `images.get_registry_data`).
"""
from __future__ import annotations

import json
from typing import Any

from engine.distribution.registry import INDEX_TYPES, MANIFEST_TYPES, Registry
from engine.errors import EngineError, InvalidParameter, NotFound
from pydock_common import reference
from pydock_common.reference import Reference

Json = dict[str, Any]

# the v1.Platform fields Go writes even when empty (the others are omitempty)
_ALWAYS = ("architecture", "os")


def parse_named(name: str) -> Reference:
    """The reference as dockerd's ParseAnyReference takes it: an image ID alone names no manifest."""
    bare = name.removeprefix("sha256:")
    if len(bare) == 64 and all(c in "0123456789abcdef" for c in bare):
        raise InvalidParameter("no manifest found for full image ID")
    return reference.parse(name)


def inspect(reg: Registry, ref: Reference) -> Json:
    """The DistributionInspect of `ref` on `reg`."""
    target = ref.digest or ref.tag
    try:
        raw, media, digest = reg.get_manifest(ref.path, target)
    except NotFound as e:  # the registry's own words, without the request line, as dockerd shows them
        raise NotFound(e.message.split(": ", 1)[-1]) from None
    manifest = json.loads(raw)
    platforms: list[Json] | None = None
    if media in INDEX_TYPES:
        entries = manifest.get("manifests")
        platforms = [_platform(d.get("platform")) for d in entries if isinstance(d, dict)] \
            if isinstance(entries, list) else []
        platforms = platforms or None  # Go's nil slice
    elif media in MANIFEST_TYPES:
        config = manifest.get("config")
        platform = _platform(_config(reg, ref, config.get("digest") if isinstance(config, dict) else None))
        if platform["os"] or platform["architecture"]:
            platforms = [platform]
    return {"Descriptor": {"mediaType": media, "digest": digest, "size": len(raw)}, "Platforms": platforms}


def _platform(raw: Any) -> Json:
    """An OCI platform as Go's v1.Platform marshals it; fields of the wrong type count as absent."""
    src = raw if isinstance(raw, dict) else {}
    out: Json = {}
    for key in ("architecture", "os", "os.version", "os.features", "variant"):
        value = src.get(key)
        if key == "os.features":
            if isinstance(value, list) and value and all(isinstance(f, str) for f in value):
                out[key] = value
        elif isinstance(value, str) and value:
            out[key] = value
        elif key in _ALWAYS:
            out[key] = ""
    return out


def _config(reg: Registry, ref: Reference, digest: Any) -> Json | None:
    """The image config, or None when it cannot be read (dockerd then reports no platform, not an error)."""
    if not isinstance(digest, str) or not digest:
        return None
    try:
        value = json.loads(reg.read_blob(ref.path, digest))
    except (EngineError, ValueError):
        return None
    return value if isinstance(value, dict) else None
