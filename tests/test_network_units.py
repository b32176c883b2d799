"""Unit tests of the network package's structure and pure helpers (no daemon, no kernel objects)."""
from __future__ import annotations

import ast
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETWORK_DIR = os.path.join(REPO, "engine", "network")


def _imported_modules(path: str) -> set[str]:
    with open(path) as f:
        tree = ast.parse(f.read())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_network_package_does_not_import_containers() -> None:
    """containers -> network only: what networking needs from containers is a Protocol of its own."""
    for name in os.listdir(NETWORK_DIR):
        if name.endswith(".py"):
            mods = _imported_modules(os.path.join(NETWORK_DIR, name))
            assert not [m for m in mods if m.startswith("engine.container")], name


def test_composition_root_wires_network_through_constructors() -> None:
    """No `self.containers.network = ...` / `self.network.containers = ...` after construction."""
    with open(os.path.join(REPO, "engine", "engine.py")) as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                elts = target.elts if isinstance(target, ast.Tuple) else [target]
                for t in elts:
                    if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Attribute):
                        assert t.attr not in ("network", "containers"), ast.unparse(node)
