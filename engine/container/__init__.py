"""Containers: the service (lifecycle, restart policies, recovery), exec, logs, archive (`docker cp`, export, diff, commit), stats, names and mount syntax."""
