"""Container service: create, start, stop, remove, wait, and restart policies.

The container record is Docker's inspect document (minus live fields),
persisted as JSON in SQLite, so `docker inspect` shows what Docker shows and
the record survives daemon restarts. Live state comes from the shim: the
daemon holds one `wait` connection per running container and applies the
exit (state, unmount, auto-remove, restart policy) when it answers.

The service is assembled from one class per group of verbs, each in a module
named for them: core (records, locks, events), attach, create, run (start and
exit handling), lifecycle, views and recovery.
"""
from __future__ import annotations

from engine.container.recovery import Recovery
from engine.container.views import Views

__all__ = ["ContainerService"]


class ContainerService(Recovery, Views):
    """Docker's container operations over the record store, the runtime, networks and volumes."""
