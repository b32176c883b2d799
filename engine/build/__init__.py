"""Dockerfile builds with the classic builder: parsing (`dockerfile`), the context and file work (`fs`), a build run (`job`, `metadata`, `files`, `run`, `state`) and the service (`builder`)."""
