"""The package's shape: no import cycle between its modules, no experiment under training/, notebooks use
only public names."""
import ast
import json
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mmkd_core"
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Modules of mmkd_core that ``path`` imports at module level (imports inside functions are deferred
    on purpose and cannot form an import-time cycle)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("mmkd_core"):
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mmkd_core"))
    return found


def test_the_import_graph_has_no_cycle():
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: {t for t in imports_of(path) if t in modules and t != name} for name, path in modules.items()}
    state: dict[str, int] = {}

    def visit(node, trail):
        if state.get(node) == 1:
            raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(node):] + [node]))
        if state.get(node) == 2:
            return
        state[node] = 1
        for nxt in sorted(graph[node]):
            visit(nxt, trail + [node])
        state[node] = 2

    for name in sorted(graph):
        visit(name, [])


def test_no_module_under_training_runs_an_experiment():
    for path in (PACKAGE / "training").glob("*.py"):
        imported = imports_of(path)
        assert not any(m.startswith(("mmkd_core.experiments", "mmkd_core.runs"))
                       for m in imported), f"{path.name} imports an experiment module"


def test_notebooks_import_no_private_name():
    for notebook in NOTEBOOKS.glob("*.ipynb"):
        for cell in json.loads(notebook.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            tree = ast.parse("\n".join(line for line in "".join(cell["source"]).splitlines()
                                       if not line.lstrip().startswith(("%", "!"))))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mmkd_core"):
                    private = [a.name for a in node.names if a.name.startswith("_")]
                    assert not private, f"{notebook.name} imports private {private} from {node.module}"
