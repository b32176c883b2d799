"""pydock engine: images, containers and the Docker Engine API, without Jupyter."""

__version__ = "0.1.0"
