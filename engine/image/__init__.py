"""Images: the store (`service`: configs, tags, chains), content-addressed layers, Dockerfile-style config changes, and save/load archives."""
