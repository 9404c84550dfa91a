"""The package read as source: its modules and the package modules each one imports (``ast``, nothing executed).

Two readers: the run cache keys a student run on the source of every module the run imports
(:func:`mmkd_core.runs.training_modules`), and the architecture test checks the imports against the package's
floors. One parser serves both, so they cannot disagree on what an import is.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

PACKAGE_DIR = Path(__file__).resolve().parent
PLACES = ("module", "functions", "everywhere")


class PackageImport(NamedTuple):
    """One import statement of a package module: the module it names, the names it takes from it, its line."""

    target: str
    names: tuple[str, ...]
    line: int


def module_name(path: Path, package_dir: Path = PACKAGE_DIR) -> str:
    """``mmkd_core/training/trainer.py`` → ``mmkd_core.training.trainer`` (a package's ``__init__`` is the package)."""
    parts = list(Path(path).relative_to(package_dir.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_files(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(path, package_dir): path for path in package_dir.rglob("*.py")}


def package_imports(path: Path, where: str = "module", package_dir: Path = PACKAGE_DIR,
                    name: str | None = None) -> list[PackageImport]:
    """The imports of package modules in ``path``: at ``"module"`` level (what importing it runs), inside
    ``"functions"`` (deferred until called), or ``"everywhere"``. Relative imports are resolved to full names
    against ``name``, the module's dotted name (None: read from ``path``'s place in the package)."""
    if where not in PLACES:
        raise ValueError(f"package_imports: where must be one of {PLACES}, got {where!r}")
    name = name or module_name(path, package_dir)
    package = name if Path(path).name == "__init__.py" else name.rsplit(".", 1)[0]
    root = package_dir.name
    tree = ast.parse(Path(path).read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or \
                (where == "module" and id(node) not in top) or (where == "functions" and id(node) in top):
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                target = ".".join(base[:len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == root:
                found.append(PackageImport(target, tuple(alias.name for alias in node.names), node.lineno))
        else:
            found += [PackageImport(alias.name, (), node.lineno) for alias in node.names
                      if alias.name.split(".")[0] == root]
    return found


def imported_modules(path: Path, known: dict[str, Path], where: str = "module", name: str | None = None) -> set[str]:
    """The modules among ``known`` that ``path`` (module ``name``) imports (``from a import b`` counts ``a.b`` when
    it is a module)."""
    found = set()
    for item in package_imports(path, where, name=name):
        found.update(m for m in (item.target, *(f"{item.target}.{n}" for n in item.names)) if m in known)
    return found
