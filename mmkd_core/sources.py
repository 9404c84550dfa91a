"""The package read as source: its modules and the package modules each one imports (``ast``, nothing executed).

Two readers: the run cache keys a student run on the source of every module the run imports
(:func:`mmkd_core.runs.training_modules`), and the architecture test checks the imports against the package's
floors. One parser serves both, so they cannot disagree on what an import is.

One import is not written as a statement: a package whose ``__init__`` calls :func:`import_submodules` imports
every module of its folder (the methods package, so that a new method is one new file). The parser reads that
call as importing each of them, and the function lives here so that what it imports and what the parser counts
are defined side by side.
"""
from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path
from typing import Iterable, NamedTuple

PACKAGE_DIR = Path(__file__).resolve().parent
PLACES = ("module", "functions", "everywhere")
SUBMODULE_IMPORTER = "import_submodules"
"""The name of :func:`import_submodules`, as the parser looks for its calls."""


def import_submodules(package: str, folder: Iterable[str]) -> list[str]:
    """Import every module and subpackage of a package's folder, in name order; return their dotted names.

    Called as ``import_submodules(__name__, __path__)`` at the top of a package's ``__init__``: a module added to
    the folder is imported with the package, with no list to edit. :func:`imported_modules` counts that call as
    importing each of them, so the run cache's source hash covers them too.
    """
    names = [f"{package}.{info.name}" for info in sorted(pkgutil.iter_modules(folder), key=lambda info: info.name)]
    for name in names:
        importlib.import_module(name)
    return names


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
                # `from .. import plots` imports the module mmkd_core.plots, not just a name of the package
                submodules = [alias.name for alias in node.names
                              if _is_module(f"{target}.{alias.name}", package_dir)]
                names = tuple(alias.name for alias in node.names if alias.name not in submodules)
                found += [PackageImport(f"{target}.{sub}", (), node.lineno) for sub in submodules]
                if names or not submodules:
                    found.append(PackageImport(target, names, node.lineno))
        else:
            found += [PackageImport(alias.name, (), node.lineno) for alias in node.names
                      if alias.name.split(".")[0] == root]
    return found


def _is_module(dotted: str, package_dir: Path) -> bool:
    """Whether ``dotted`` (e.g. ``mmkd_core.plots``) names a module or subpackage file of the package."""
    path = package_dir.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def calls_import_submodules(path: Path, where: str = "module") -> bool:
    """Whether ``path`` calls :func:`import_submodules` (by that name, plain or as an attribute) at ``where``: at
    ``"module"`` level, inside ``"functions"``, or ``"everywhere"`` (the places of :func:`package_imports`)."""
    if where not in PLACES:
        raise ValueError(f"calls_import_submodules: where must be one of {PLACES}, got {where!r}")
    tree = ast.parse(Path(path).read_text())
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
    at_module_level = set()  # nodes of the top-level statements outside function bodies: what importing runs
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        at_module_level.add(id(node))
        if not isinstance(node, definitions):
            todo += ast.iter_child_nodes(node)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        called = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
        if called == SUBMODULE_IMPORTER and (where == "everywhere" or
                                              (id(node) in at_module_level) == (where == "module")):
            return True
    return False


def imported_modules(path: Path, known: dict[str, Path], where: str = "module", name: str | None = None) -> set[str]:
    """The modules among ``known`` that ``path`` (module ``name``) imports (``from a import b`` counts ``a.b`` when
    it is a module). A package ``__init__`` that calls :func:`import_submodules` imports every module of its folder:
    each module of ``known`` one level below the package."""
    found = set()
    for item in package_imports(path, where, name=name):
        found.update(m for m in (item.target, *(f"{item.target}.{n}" for n in item.names)) if m in known)
    if Path(path).name == "__init__.py" and calls_import_submodules(path, where):
        package = name or module_name(path)
        found.update(m for m in known if m.rpartition(".")[0] == package)
    return found
