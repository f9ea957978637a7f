"""The layout shows the architecture: layers talk through each other's package faces."""

from __future__ import annotations

import ast
from pathlib import Path

import aiotestkit

SOURCE = Path(aiotestkit.__file__).parent


def _cross_package_imports() -> list[tuple[str, int, str, list[str]]]:
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        relative = path.relative_to(SOURCE)
        depth = len(relative.parts) - 1  # 0 for the public faces, 1 inside a layer
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level > depth:
                names = [alias.name for alias in node.names]
                found.append((str(relative), node.lineno, node.module or "", names))
    return found


def test_no_private_name_crosses_a_layer() -> None:
    offenders = [
        f"{path}:{line} imports {module}: {name}"
        for path, line, module, names in _cross_package_imports()
        for name in names
        if name.startswith("_") or any(part.startswith("_") for part in module.split(".")[1:])
    ]
    assert offenders == []


def test_layers_are_imported_through_their_package() -> None:
    modules = {module.split(".")[0] for _, _, module, _ in _cross_package_imports()}
    allowed = {"_core", "_loop", "_servers", "_network", "_plugin", "errors", "testcase", "compat"}
    assert modules <= allowed
    # A layer through its package face; the compat facades are public modules themselves.
    assert all(
        "." not in module or (module.startswith("compat.") and "._" not in module)
        for _, _, module, _ in _cross_package_imports()
    )
