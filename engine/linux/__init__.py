"""Host primitives the engine needs from Linux: mount(2) through libc, and path resolution inside a container root."""
