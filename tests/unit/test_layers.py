"""The layers import one way (README, "Pieces"): the native core below; the
library (``python/tokenlord/``: binding, gateway API, settings, store, kafka,
pipeline, pages) on it; the Faust app (``streams/``) on the library; the
command line (``tokenlord.cli``, ``__main__``) on top, the one place that
starts the app. Every ``import`` counts, module level or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENTRY = {"tokenlord.cli", "tokenlord.__main__"}


def modules(root: Path, package: str) -> dict[str, Path]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join([package, *parts])] = path
    return out


def imports(path: Path, name: str) -> set[str]:
    """Every module ``path`` imports (relative imports resolved against ``name``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, level - 1 packages up
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{a.name}".strip(".") for a in node.names)
    return found


def layer(module: str) -> int:
    if module in ENTRY:
        return 3
    if module == "streams" or module.startswith("streams."):
        return 2
    if module == "tokenlord" or module.startswith("tokenlord."):
        return 1
    return 0  # third-party and the standard library


def test_no_layer_imports_a_higher_one() -> None:
    mods = {**modules(REPO / "python" / "tokenlord", "tokenlord"), **modules(REPO / "streams", "streams")}
    assert "streams.worker" in mods and "tokenlord.pipeline" in mods and "tokenlord.cli" in mods
    wrong = []
    for name, path in mods.items():
        for imported in imports(path, name):
            if layer(imported) > layer(name):
                wrong.append(f"{name} imports {imported}")
    assert wrong == [], "\n".join(wrong)


def test_the_walk_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from streams.app import create_app\n    import tokenlord.cli\n")
    assert {"streams.app", "tokenlord.cli"} <= imports(bad, "tokenlord.store.m")
    assert layer("streams.app") > layer("tokenlord.store.m") and layer("tokenlord.cli") > layer("streams.app")
