"""Swarm mode as this engine has it: a node that is not part of a swarm and never becomes one.

dockerd answers every swarm call on such a node with an "unavailable"
error (503) and a message that tells the user why: leaving says the node
is in no swarm, and every manager action (inspecting the swarm, listing
nodes, services, tasks, secrets or configs) says the node is not a
manager (moby daemon/cluster: errNoSwarm, errNoManager). Clients rely on
that answer: clean-up code calls `docker swarm leave` and ignores "not
part of a swarm", and tools probe `docker node ls` to learn whether swarm
features are there. Where dockerd would set up a swarm (init, join),
pydock answers the same kind of error, since it cannot run a manager.

Requests are checked as dockerd checks them before it looks at the node's
state, so a malformed one is still a 400 (see engine/api/swarm.py).
"""
from __future__ import annotations

from engine.errors import InvalidParameter, Unavailable

__all__ = ["Cluster"]

# moby daemon/cluster/errors.go errNoSwarm: leaving a swarm this node never joined
NO_SWARM = "This node is not part of a swarm"
# moby daemon/cluster/cluster.go errNoManager, for a node with no swarm node running
NO_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this '
              'node to swarm and try again.')
# init and join: what a node that cannot run a swarm manager or worker says
CANNOT_JOIN = "This node cannot initialize or join a swarm: swarm mode is not supported by this pydock daemon"


class Cluster:
    """The swarm backend of a node outside every swarm; each method is named after moby's Cluster method."""

    def init(self, listen_addr: str, spec_name: str) -> str:
        """`docker swarm init`: the request is validated as dockerd does, then refused."""
        _check_addr("ListenAddr", listen_addr)
        if spec_name not in ("", "default"):
            raise InvalidParameter('swarm spec must be named "default"')
        raise Unavailable(CANNOT_JOIN)

    def join(self, listen_addr: str, remote_addrs: list[str]) -> None:
        """`docker swarm join`: the request is validated as dockerd does, then refused."""
        _check_addr("ListenAddr", listen_addr)
        if not remote_addrs:
            raise InvalidParameter("at least 1 RemoteAddr is required to join")
        for addr in remote_addrs:
            _check_addr("remoteAddr", addr)
        raise Unavailable(CANNOT_JOIN)

    def leave(self, force: bool) -> None:
        """`docker swarm leave [--force]`: there is nothing to leave, with or without force."""
        raise Unavailable(NO_SWARM)

    def manager(self) -> None:
        """Every call that needs a swarm manager (inspect, update, unlock, nodes, services, tasks, secrets,
        configs) starts here; this node has none."""
        raise Unavailable(NO_MANAGER)


def _check_addr(field: str, addr: str) -> None:
    """moby validateAddr: only an empty address is refused (anything else is resolved later)."""
    if addr == "":
        raise InvalidParameter(f'invalid {field} "": invalid empty address')
