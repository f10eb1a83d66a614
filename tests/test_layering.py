"""The layers of the code (README, "Layout of the code"), checked on every module's imports.

Bottom to top: ``bench.core`` <- ``bench.data``, ``bench.weights``, ``perturbations`` (siblings that do
not import each other) <- ``bench.nn`` <- ``bench.run``, ``bench.testing`` <- ``bench.report``,
``bench.external`` (siblings) <- ``bench.cli``. A package imports only from its own package and the layers
below it. ``detectors`` and ``baselines`` use core, data, weights and nn (and their own package), never run,
report or cli.

Every ``import``/``from ... import`` counts, at module level or inside a function, except those under
``if TYPE_CHECKING:`` (annotations only: nothing is imported at run time). Lazy ``"module:attr"``
registry strings and ``importlib.import_module`` calls are not imports and are not checked.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP_PACKAGES = ("bench", "detectors", "baselines", "perturbations")

#: Layer of each package: a package may import packages of a lower layer, and itself.
LAYER = {
    "bench.core": 0,
    "bench.data": 1,
    "bench.weights": 1,
    "perturbations": 1,
    "bench.nn": 2,
    "bench.run": 3,
    "bench.testing": 3,
    "bench.report": 4,
    "bench.external": 4,  # a sibling of report: neither imports the other
    "bench.cli": 5,
}
#: Packages outside the bench layers, and what each may import besides itself.
PLUGINS = {
    "detectors": {"bench.core", "bench.data", "bench.weights", "bench.nn"},
    "baselines": {"bench.core", "bench.data", "bench.weights", "bench.nn"},
}


def package_of(module: str) -> str | None:
    """The layered package a dotted module name belongs to (``bench`` alone has none)."""
    parts = module.split(".")
    if parts[0] == "bench":
        return ".".join(parts[:2]) if len(parts) > 1 else None
    return parts[0] if parts[0] in TOP_PACKAGES else None


def may_import(importer: str, imported: str) -> bool:
    if importer == imported:
        return True
    if importer in PLUGINS:
        return imported in PLUGINS[importer]
    if imported not in LAYER:
        return False
    return LAYER[imported] < LAYER[importer]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, dotted module) of every run-time import in ``source``, relative ones resolved."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.orelse:
                    visit_stmt(stmt)
                continue
            visit_stmt(child)

    def visit_stmt(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # ``from bench import atomic`` imports the submodule bench.atomic
            found.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names)
        visit(node)

    visit(ast.parse(source))
    return found


def violations(root: Path) -> list[str]:
    out = []
    for top in TOP_PACKAGES:
        for path in sorted((root / top).rglob("*.py")):
            module = module_name(path, root)
            importer = package_of(module)
            if importer is None:
                if module != "bench":
                    out.append(f"{module}: not in a layered package (move it into one of {sorted(LAYER)})")
                continue
            for line, target in imported_modules(path.read_text("utf-8"), module, path.name == "__init__.py"):
                imported = package_of(target)
                if imported is not None and not may_import(importer, imported):
                    out.append(f"{module} (line {line}) imports {target}: {importer} may not import {imported}")
    return out


def test_every_import_follows_the_layers():
    assert violations(ROOT) == []


def test_every_package_says_what_it_is_for_and_may_import():
    for package in [*LAYER, *PLUGINS]:
        init = ROOT.joinpath(*package.split("."), "__init__.py")
        doc = ast.get_docstring(ast.parse(init.read_text("utf-8"))) if init.exists() else None
        assert doc and "may import" in doc.lower(), f"{init}: the docstring should say what it is for and may import"


@pytest.mark.parametrize("snippet, bad", [
    ("def f():\n    from bench.report.write import write_report\n", True),  # upward, inside a function
    ("import bench.cli.main\n", True),
    ("from bench import run\n", True),
    ("from ..report import write\n", True),  # relative: bench.report.write
    ("from bench.data.imageset import ImageSet\n", False),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bench.report.runs import read_run\n", False),
])
def test_the_check_catches_upward_imports(tmp_path, snippet, bad):
    for package in ("bench", "bench/nn"):
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").write_text('"""x"""\n')
    (tmp_path / "bench" / "nn" / "mod.py").write_text(snippet)
    found = violations(tmp_path)
    assert bool(found) == bad, found
    if bad:
        assert found[0].startswith("bench.nn.mod (line ")


def test_test_modules_import_shared_helpers_by_a_name_both_runners_resolve():
    """``pytest`` puts tests/ on sys.path but not the checkout, ``python -m pytest`` both: ``tests.X`` imports
    fail to collect under the first, and ``conftest`` is pytest's plugin, not a module to import from."""
    bad = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            bad += [f"{path.name}:{node.lineno} imports {name}" for name in names
                    if name == "tests" or name.startswith("tests.") or name == "conftest"]
    assert bad == []


def test_documents_the_code_cites_are_in_the_repository():
    """A docstring that sends the reader to README.md or tests/MUTANTS.md must not send them to a file that is
    not in the repository (the design notes the code once cited were never part of it)."""
    import re

    present = {path.name for path in ROOT.rglob("*.md") if ".venv" not in path.parts and "mutants" not in path.parts}
    missing = []
    for package in (*TOP_PACKAGES, "tests", "benchmarks"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for name in set(re.findall(r"\b([A-Z][A-Z_]+\.md)\b", path.read_text("utf-8"))):
                if name not in present:
                    missing.append(f"{path.relative_to(ROOT)} cites {name}")
    assert missing == []
