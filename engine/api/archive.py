"""Routes filled in by a later change."""
from __future__ import annotations

ROUTES: list = []
