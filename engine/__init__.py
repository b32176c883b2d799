"""pydock engine: images, containers and the Docker Engine API, without Jupyter."""

from pydock_common import __version__

__all__ = ["__version__"]
