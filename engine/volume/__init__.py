"""Volumes: Docker's `local` driver and the mount points containers get from it."""
