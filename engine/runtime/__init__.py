"""The OCI runtime boundary: runc calls (`runc`), the per-container monitor (`shim`), and the OCI spec (`spec`, `resources`, `security`, `seccomp`)."""
