"""The repository carries its own docs: no path leads outside it, every link resolves, and the code names
docs/METHOD.md gives for each formula exist (a rename in the code must update the doc)."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted((REPO / "docs").glob("*.md"))
MARKDOWN = [REPO / "README.md", *DOCS, *sorted((REPO / "checkpoints").glob("*/*/MODEL_CARD.md"))]
TEXT_SUFFIXES = {".py", ".md", ".txt", ".yaml", ".yml", ".toml", ".json", ".jsonl", ".cfg", ".sh"}
#: the sibling folder the project was started from, and this machine's absolute paths: nothing may point there
OUTSIDE = ("shared" + "/", "/" + "work" + "/")


def test_docs_folder_has_the_method_the_world_specs_and_how_to_extend():
    assert {p.name for p in DOCS} >= {"METHOD.md", "SHAPES_SPEC.md", "GLYPHS_SPEC.md", "ADDING_A_WORLD.md"}


def test_nothing_points_outside_the_repository():
    roots = [REPO / "README.md", REPO / "docs", REPO / "src" / "tdmr1", REPO / "tests"]
    files = [f for r in roots for f in ([r] if r.is_file() else r.rglob("*")) if f.suffix in TEXT_SUFFIXES]
    hits = [
        f"{f.relative_to(REPO)}:{i}"
        for f in files
        for i, line in enumerate(f.read_text(errors="replace").splitlines(), 1)
        if any(o in line for o in OUTSIDE)
    ]
    assert not hits, hits


@pytest.mark.parametrize("doc", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_links_resolve_inside_the_repository(doc):
    text = doc.read_text()
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", text)]
    broken = []
    for target in targets:
        if not target or re.match(r"[a-z]+:", target):  # http:, mailto:, in-page anchors
            continue
        path = (doc.parent / target).resolve()
        if not path.is_relative_to(REPO) or not path.exists():
            broken.append(target)
    # plain mentions of docs/*.md (in code spans or prose) must name a real file too
    broken += [m for m in re.findall(r"docs/[A-Za-z_]+\.md", text) if not (REPO / m).is_file()]
    assert not broken, f"{doc.name}: {broken}"


#: short names METHOD.md uses for modules and classes, looked up in these modules
_HOMES = [
    "tdmr1.diffusion.flow",
    "tdmr1.diffusion.sampling",
    "tdmr1.tdm.losses",
    "tdmr1.r1.losses",
    "tdmr1.r1.draws",
    "tdmr1.models.lora.roles",
    "tdmr1.tdm.system",
    "tdmr1.tdm.system_losses",
    "tdmr1.r1.surrogate",
    "tdmr1.r1.surrogate.implicit",
    "tdmr1.r1.surrogate.explicit",
    "tdmr1.r1.diagnostics",
    "tdmr1.r1.trainer",
    "tdmr1.r1.config",
    "tdmr1.tdm.distill",
    "tdmr1.worlds.base",
]


def _resolve(dotted: str) -> bool:
    parts = dotted.removeprefix("tdmr1.").split(".")
    obj, rest = None, parts
    for i in range(len(parts), 0, -1):  # the longest importable module prefix
        try:
            obj, rest = importlib.import_module("tdmr1." + ".".join(parts[:i])), parts[i:]
            break
        except ImportError:
            continue
    if obj is None:
        homes = [importlib.import_module(m) for m in _HOMES]
        found = [h for h in homes if h.__name__.rsplit(".", 1)[-1] == parts[0]]
        found += [getattr(h, parts[0]) for h in homes if hasattr(h, parts[0])]
        if not found:
            return False
        obj, rest = found[0], parts[1:]
    for name in rest:
        if hasattr(obj, name):
            obj = getattr(obj, name)
        elif dataclasses.is_dataclass(obj) and name in {f.name for f in dataclasses.fields(obj)}:
            return True
        elif inspect.isclass(obj) and f"self.{name} " in inspect.getsource(obj):  # an instance attribute
            return True
        else:
            return False
    return True


def test_method_names_exist_in_the_code():
    text = (REPO / "docs" / "METHOD.md").read_text()
    names = set(re.findall(r"`((?:tdmr1\.)?[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+)`", text))
    names = {n for n in names if not n.endswith((".md", ".py", ".yaml", ".json"))}
    assert len(names) > 30
    missing = sorted(n for n in names if not _resolve(n))
    assert not missing, f"docs/METHOD.md names code that does not exist: {missing}"


def test_method_switches_are_config_fields():
    from tdmr1.r1.config import RLConfig
    from tdmr1.tdm.distill import DistillConfig

    fields = {f.name for cls in (RLConfig, DistillConfig) for f in dataclasses.fields(cls)}
    text = (REPO / "docs" / "METHOD.md").read_text()
    table = text[text.index("## 6.") : text.index("## 7.")]
    switches = {
        s
        for row in table.splitlines()[2:]
        if row.startswith("|")
        for s in re.findall(r"`([a-z_]+)`", row.rsplit("|", 2)[-2])
    }
    assert switches and switches <= fields, sorted(switches - fields)
