"""What the pydock daemon and its clients share: Docker's formats and conventions, no engine state.

`errdefs` (error kinds), `apiversion`, `stdcopy` (stdout/stderr stream framing),
`reference` (image references), `untar` (the one safe extractor) and `tarwrite`
(fd-based archiving), `dockerignore`, `humanize` (Docker's human-readable sizes
and durations) and `files` (crash-safe writes).
Nothing here imports `engine` or `pydock_cli`, so a client can use it
without pulling in the daemon.
"""

__version__ = "0.1.0"
