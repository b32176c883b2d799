"""The `pydock` command line: docker CLI syntax and output over the Docker Engine API."""
