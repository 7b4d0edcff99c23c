"""The import rules of docs/design.md, checked on the source: which layers may import which, and no import
circle between files (lazy imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "urbanst"

# layer (a sub-package or module of urbanst) -> the layers it must never import
FORBIDDEN = {
    "contract": {"*"},
    "data": {"engine", "cli", "models", "tasks", "parts", "nn", "evaluation", "backbones", "prompts"},
    "tasks": {"engine", "cli", "models"},
    "models": {"engine", "cli"},
    "parts": {"engine", "cli", "models", "tasks"},
    "nn": {"engine", "cli", "models", "tasks", "parts", "data"},
    "evaluation": {"engine", "cli"},
    "backbones": {"engine", "cli", "models", "tasks"},
    "prompts": {"engine", "cli", "models", "tasks"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """The urbanst modules a file imports, anywhere in it (``from pkg import mod`` names the module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("urbanst"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if not base.startswith("urbanst"):
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.add(full if full in known else base)
    return {m for m in out if m in known and m != name}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(path, known) for name, path in known.items()}


def test_layers_import_only_what_the_design_allows():
    broken = []
    for module, targets in graph().items():
        banned = FORBIDDEN.get(layer(module), set())
        for target in targets:
            if "*" in banned or layer(target) in banned:
                broken.append(f"{module} imports {target}")
    assert not broken, "\n".join(sorted(broken))


def test_no_import_circle_between_files():
    edges = graph()
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert not circles, "\n".join(" <-> ".join(c) for c in circles)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_source_file_over_500_lines(path):
    assert len(path.read_text().splitlines()) <= 500
