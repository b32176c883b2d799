"""Typed identifiers shared by the image, layer and distribution stores.

They are plain strings at runtime; the NewTypes let mypy catch an image ID
passed where a layer's chain ID is expected (both are "sha256:<hex>").
"""
from typing import NewType

# sha256 of an image's config blob
ImageID = NewType("ImageID", str)
# sha256 of a layer's uncompressed tar
DiffID = NewType("DiffID", str)
# a layer's identity in its stack: its diff ID hashed with its parent's chain ID
ChainID = NewType("ChainID", str)
