"""The architecture, enforced: the folders are the layers and dependencies point one way.

Layers, top to bottom (docs/architecture.md): ``flows`` (Prefect) and ``collector.cli``;
``collector.discovery`` / ``poller`` / ``stream`` / ``trades`` / ``read`` / ``ops`` / ``sim``; ``collector.store`` /
``venues``; ``collector.model`` / ``config``. A module may import its own layer or a lower one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400
LAYER = {  # package -> rank (higher may import lower)
    "collector.model": 0,
    "collector.config": 0,
    "collector.store": 1,
    "collector.venues": 1,
    "collector.discovery": 2,
    "collector.poller": 2,
    "collector.stream": 2,
    "collector.trades": 2,
    "collector.read": 2,
    "collector.ops": 2,
    "collector.sim": 2,
    "collector.cli": 3,
    "flows": 4,
}
# Known upward edges, each with its reason. Keep this list empty or justified.
ALLOWED_UP: dict[tuple[str, str], str] = {}


def _modules() -> dict[str, Path]:
    out = {}
    for top in ("collector", "flows"):
        for p in (ROOT / top).rglob("*.py"):
            name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = p
    return out


MODS = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module of ours that ``name`` imports (TYPE_CHECKING and function-level included)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            cands = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
            cands = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for c in cands:
            while c and c not in MODS:
                c = c.rpartition(".")[0]
            if c and c != name and not name.startswith(c + "."):
                found.add(c)
    return found


GRAPH = {m: _imports(m, p) for m, p in MODS.items()}


def _layer(mod: str) -> tuple[str, int] | None:
    for pkg, rank in sorted(LAYER.items(), key=lambda kv: -len(kv[0])):
        if mod == pkg or mod.startswith(pkg + "."):
            return pkg, rank
    return None


def test_no_import_circles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    circles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert circles == []


def test_dependencies_point_down():
    up = []
    for mod, deps in GRAPH.items():
        me = _layer(mod)
        if me is None:
            continue
        for d in deps:
            them = _layer(d)
            if them is not None and them[1] > me[1] and (mod, d) not in ALLOWED_UP:
                up.append(f"{mod} -> {d}")
    assert up == []


def test_core_has_no_prefect_and_no_flows():
    bad = []
    for mod, path in MODS.items():
        if not mod.startswith("collector"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            bad += [f"{mod}: {n}" for n in names if n.split(".")[0] in ("prefect", "flows")]
    assert bad == []


def test_no_module_over_the_line_limit():
    assert [f"{p.relative_to(ROOT)}: {n}" for p in MODS.values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES] == []


@pytest.mark.parametrize("pkg", sorted({m for m in LAYER if m.startswith("collector.")}))
def test_every_layer_is_a_documented_package(pkg):
    init = ROOT / pkg.replace(".", "/") / "__init__.py"
    assert init.is_file() and ast.get_docstring(ast.parse(init.read_text())), pkg


def test_architecture_doc_names_every_package():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    for pkg in LAYER:
        assert f"`{pkg.replace('.', '/')}/`" in doc, pkg
