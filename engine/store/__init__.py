"""Persistence: SQLite metadata and the sha256 blob store (`db`), and the lock that gives one engine a data root (`rootlock`)."""
