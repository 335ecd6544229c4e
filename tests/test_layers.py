"""The package's import structure, read from the source with ast (no import of workbench, no torch): every import,
at module level or inside a function, goes down or across the declared layers, none forms a cycle, and no module
imports another module's private (underscore) name."""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "workbench"

# lowest first; a module may import from its own layer and the layers below. Patterns are fnmatch'ed against the
# dotted name without the package prefix ("" is the package's __init__); a module named exactly is in that layer,
# else the first layer with a pattern that matches it (so "methods.*" holds every method module but the ones named).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "core",
        (
            "errors",
            "io",
            "runlock",
            "distribution",
            "file_checks",
            "rundir",
            "hashing",
            "tensors",
            "methods.losses",
            "methods.layers",
        ),
    ),
    # the method modules sit below the config, which builds ``methods:`` from their registry (docs/architecture.md)
    (
        "config",
        (
            "methods",
            "methods.*",  # every method's own module (a new method is one file here and one registry line)
            "config",
        ),
    ),
    (
        "data",
        (
            "pack",
            "pack_new",
            "probe_checks",
            "probe_import",
            "corpus",
            "anchors",
            "anchor_families",
            "anchor_import",
            "curation",
            "scoring",
            "translate",
            "models",
            "model_pair",
            "methods.wrappers",
            "evaldata",
            "evaldata.*",
        ),
    ),
    (
        "eval",
        (
            "eval",
            "eval.config",
            "eval.loglikelihood",
            "eval.probes",
            "eval.completion",
            "eval.utility",
            "eval.robustness",
            "eval.ground_truth",
            "eval.authors",
            "eval.lm_eval_bridge",
            "eval.summary",
            "eval.figures",
            "eval.forget_curve",
            "eval.rows",
            "eval.units",
            "eval.evaluate",
            "eval.run_report",
            "eval.attacks",
            "report",
        ),
    ),
    (
        "training",
        (
            "training",
            "tracking",
            "reinforce",
            "labels",
            "finetune",
            "implant",
            "proposer",
            "methods.train",
            "methods.whp_stages",
            "methods.context",
        ),
    ),
    ("run", ("run", "model_card", "plan")),
    ("compare", ("compare", "tuning")),
    ("interface", ("cli", "__main__", "eval.cli", "notebook", "report_html", "widgets", "widgets.*", "")),
]


def module_files(root: Path) -> dict[str, Path]:
    out = {}
    for f in root.rglob("*.py"):
        rel = f.relative_to(root.parent).with_suffix("")
        out[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = f
    return out


def imports(root: Path) -> list[tuple[str, str, str | None, int]]:
    """(importer, imported module, imported name or None, line) for every import of the package by itself."""
    mods, pkg = module_files(root), root.name
    found = []
    for mod, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = mod.split(".")
                    keep = len(parts) - node.level + (1 if path.name == "__init__.py" else 0)
                    base = ".".join(parts[:keep] + ([node.module] if node.module else []))
                targets = [(f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base, a.name) for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [(a.name, None) for a in node.names]
            else:
                continue
            for target, name in targets:
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                # a module of a package importing that package's __init__ is the import system's own order
                if target and target != mod and target.split(".")[0] == pkg and not mod.startswith(target + "."):
                    found.append((mod, target, name, node.lineno))
    return found


def layer_of(module: str, layers) -> int:
    short = module.partition(".")[2]
    for i, (_name, patterns) in enumerate(layers):
        if short in patterns:
            return i
    for i, (_name, patterns) in enumerate(layers):
        if any(fnmatch.fnmatchcase(short, p) for p in patterns):
            return i
    raise AssertionError(f"module {module} is in no layer of LAYERS: add it to the layer it belongs to")


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, on, stack, out = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def problems(root: Path, layers=LAYERS) -> list[str]:
    found = imports(root)
    out, edges = [], {m: set() for m in module_files(root)}
    for mod, target, name, line in found:
        edges[mod].add(target)
        if layer_of(target, layers) > layer_of(mod, layers):
            out.append(
                f"upward: {mod} (layer {layers[layer_of(mod, layers)][0]}) imports {target} "
                f"(layer {layers[layer_of(target, layers)][0]}) at line {line}"
            )
        if name and name.startswith("_") and not name.startswith("__"):
            out.append(f"private: {mod} imports {target}.{name} at line {line}")
    out += [f"cycle: {' '.join(group)}" for group in cycles(edges)]
    return out


def write_package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


FAKE_LAYERS = [("low", ("base", "sub", "sub.*")), ("high", ("top", ""))]


def test_a_clean_fake_package_passes(tmp_path):
    pkg = write_package(
        tmp_path / "fake",
        {
            "__init__.py": "from fake.top import main\n",
            "base.py": "X = 1\n",
            "sub/__init__.py": "",
            "sub/leaf.py": "from ..base import X\n",
            "top.py": "import fake.base\n\ndef main():\n    from fake.sub.leaf import X\n    return X\n",
        },
    )
    assert problems(pkg, FAKE_LAYERS) == []


def test_an_upward_import_inside_a_function_is_caught(tmp_path):
    pkg = write_package(
        tmp_path / "fake",
        {
            "__init__.py": "",
            "top.py": "Y = 2\n",
            "base.py": "def f():\n    from fake.top import Y\n    return Y\n",
        },
    )
    assert problems(pkg, FAKE_LAYERS) == ["upward: fake.base (layer low) imports fake.top (layer high) at line 2"]


def test_a_cycle_and_a_private_name_are_caught(tmp_path):
    pkg = write_package(
        tmp_path / "fake",
        {
            "__init__.py": "",
            "top.py": "",
            "base.py": "from fake.sub.leaf import _helper\n",
            "sub/__init__.py": "",
            "sub/leaf.py": "def _helper():\n    from fake import base\n",  # relative to the package: fake.base
        },
    )
    found = problems(pkg, FAKE_LAYERS)
    assert "private: fake.base imports fake.sub.leaf._helper at line 1" in found
    assert "cycle: fake.base fake.sub.leaf" in found
    assert len(found) == 2


def test_a_module_in_no_layer_is_named(tmp_path):
    pkg = write_package(tmp_path / "fake", {"__init__.py": "", "stray.py": "from fake import base\n", "base.py": ""})
    with pytest.raises(AssertionError, match="fake.stray is in no layer"):
        problems(pkg, FAKE_LAYERS)


def test_every_module_has_a_layer():
    for module in module_files(PACKAGE):
        layer_of(module, LAYERS)


def test_the_package_imports_go_down_the_layers():
    found = problems(PACKAGE)
    assert not found, "\n".join(found)


def test_no_private_name_crosses_a_module():
    found = [p for p in problems(PACKAGE) if p.startswith("private:")]
    assert not found, "\n".join(found)
