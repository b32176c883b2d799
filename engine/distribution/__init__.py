"""Registry v2 distribution: the HTTP client (`registry`) and pull, push and login (`service`)."""
