"""The import layering of docs/ARCHITECTURE.md: every module under src/tdmr1 imports only its own package and
the packages below it in ``LAYERS``, and no two modules import each other, directly or round a loop.

Every import statement counts, wherever it stands: module level, inside a function (lazy imports), or under
``if TYPE_CHECKING``. There are no exceptions. (Names imported by string, ``importlib.import_module(...)``,
are not seen; the rewards registry loads its own package's optional rewards that way.)
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"

#: Bottom to top; a unit is a package (with everything in it) or a top-level module; ``tdmr1`` is the root
#: package's own ``__init__`` only. Stated again, in the same order, in docs/ARCHITECTURE.md.
LAYERS = [
    "tdmr1",
    "tdmr1.errors",
    "tdmr1.utils",
    "tdmr1.config",
    "tdmr1.devices",
    "tdmr1.manifest",
    "tdmr1.reward_protocol",
    "tdmr1.diffusion",
    "tdmr1.models",
    "tdmr1.geneval",
    "tdmr1.worlds",
    "tdmr1.rewards",
    "tdmr1.pipelines",
    "tdmr1.training",
    "tdmr1.teacher",
    "tdmr1.tdm",
    "tdmr1.r1",
    "tdmr1.eval",
    "tdmr1.demo",
    "tdmr1.cli",
    "tdmr1.__main__",
]


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module (a package by its ``__init__``)."""
    out = {}
    for path in sorted((SRC / "tdmr1").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The tdmr1 modules ``name`` imports (``from pkg import sub`` counts as importing ``pkg.sub``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return {m for m in found if m == "tdmr1" or m.startswith("tdmr1.")}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _unit(module: str) -> str:
    if module == "tdmr1":
        return module
    units = [u for u in LAYERS[1:] if module == u or module.startswith(u + ".")]
    assert units, f"{module} belongs to no layer: add its package to LAYERS and docs/ARCHITECTURE.md"
    return max(units, key=len)


def test_every_module_has_a_layer():
    for module in MODULES:
        _unit(module)


def test_imports_point_down_the_layers():
    rank = {unit: i for i, unit in enumerate(LAYERS)}
    upward = sorted(
        f"{src} -> {dst}" for src, targets in GRAPH.items() for dst in targets if rank[_unit(dst)] > rank[_unit(src)]
    )
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def test_no_import_cycles():
    cycles, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(GRAPH.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_architecture_doc_states_the_same_layers():
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    section = text[text.index("## Layers") :].split("\n## ", 1)[0]
    listed = re.findall(r"^\d+\. `([\w.]+)`", section, re.M)
    assert listed == LAYERS
