"""The package's shape: no import cycle between its modules, no experiment under training/, notebooks use
only public names."""
import ast
import json
from pathlib import Path

from mmkd_core.sources import calls_import_submodules, imported_modules, module_files, module_name, package_imports

PACKAGE = Path(__file__).resolve().parents[1] / "mmkd_core"
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def imports_of(path: Path) -> set[str]:
    """Modules of mmkd_core that ``path`` imports at module level (imports inside functions are deferred
    and cannot form an import-time cycle; test_no_function_level_import_crosses_a_floor limits them)."""
    return imported_modules(path, module_files())


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


def test_a_package_that_imports_its_folder_counts_as_importing_each_module_there(tmp_path):
    """The methods package imports its modules by listing its folder (sources.import_submodules): the parser that
    keys the run cache and checks these floors reads that call as an import of each of them, at the place it is
    called (module level: imported with the package; inside a function: deferred)."""
    methods = PACKAGE / "training" / "methods"
    folder = {module_name(path) for path in methods.glob("*.py")} - {"mmkd_core.training.methods"}
    assert folder <= imports_of(methods / "__init__.py")
    assert calls_import_submodules(methods / "__init__.py")
    deferred = tmp_path / "__init__.py"
    deferred.write_text("from ...sources import import_submodules\n\n\ndef load():\n"
                        "    return import_submodules(__name__, __path__)\n")
    assert not calls_import_submodules(deferred, "module") and calls_import_submodules(deferred, "functions")
    known = {name: methods / "base.py" for name in ("mmkd_core.x", "mmkd_core.x.a", "mmkd_core.x.b.c")}
    assert imported_modules(deferred, known, "functions", name="mmkd_core.x") == {"mmkd_core.x.a"}
    assert imported_modules(deferred, known, "module", name="mmkd_core.x") == set()


def test_no_module_under_training_runs_an_experiment():
    for path in (PACKAGE / "training").rglob("*.py"):  # methods/ too
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


# The house, ground floor first. A module may import from its own floor or below, never above: at module level
# or inside a function (a deferred import is still an arrow). Floors hold top-level names under mmkd_core.
FLOORS = [
    ("views", "labels", "reporting", "figure_checks", "prose_checks", "hub", "determinism", "parallel", "sources"),  # no mmkd_core import of consequence
    ("losses",),
    ("data",),
    ("models",),                    # nn.Modules and their builders only
    ("evaluation",),                # inference, metrics, statistics
    ("weighting", "training"),      # the one training loop, methods, caches
    ("experiments",),               # protocols: data + teacher + students
    ("runs", "results", "plots", "analysis", "conditions", "progress", "regime_map", "method_tuning"),
    ("reproduce", "bench", "run"),  # drivers
]


def floor_of(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:  # the package itself
        return len(FLOORS)
    for floor, names in enumerate(FLOORS):
        if parts[1] in names:
            return floor
    raise AssertionError(f"{module} is on no floor of the house: add it to FLOORS in {__file__}")


def every_import_of(path: Path) -> list[tuple[str, int]]:
    """``(module, line)`` of every mmkd_core import in ``path``, module level and inside functions alike."""
    return [(item.target, item.line) for item in package_imports(path, where="everywhere")]


def test_no_import_runs_up_the_house():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        if name == "mmkd_core":
            continue
        for target, line in every_import_of(path):
            if target != "mmkd_core" and floor_of(target) > floor_of(name):
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} {name} (floor {floor_of(name)}) imports "
                              f"{target} (floor {floor_of(target)})")
    assert not upward, "imports against the house's order:\n" + "\n".join(upward)


def test_models_import_nothing_from_training_or_evaluation():
    for path in (PACKAGE / "models").rglob("*.py"):
        offending = [t for t, _ in every_import_of(path) if t.startswith(("mmkd_core.training", "mmkd_core.evaluation"))]
        assert not offending, f"{path.name} imports {offending}"


def test_no_function_level_import_crosses_a_floor():
    """An import inside a function hides an arrow from the reader of the module's head; between floors it is
    written at module level (where the cycle test sees it). Within a floor it may defer (e.g. runs → results)."""
    hidden = [f"{path.relative_to(PACKAGE.parent)}:{item.line} {module_name(path)} → {item.target}"
              for path in sorted(PACKAGE.rglob("*.py")) for item in package_imports(path, where="functions")
              if floor_of(item.target) != floor_of(module_name(path))]
    assert not hidden, "function-level imports across floors:\n" + "\n".join(hidden)


def test_importing_a_module_by_name_from_its_package_is_an_arrow_to_that_module(tmp_path):
    """``from .. import plots`` in mmkd_core/experiments/knobs.py once hid an arrow up the house (experiments →
    plots): the parser read it as an import of the package itself. It is an import of the module."""
    knobs = tmp_path / "mmkd_core" / "experiments" / "knobs.py"
    knobs.parent.mkdir(parents=True)
    (tmp_path / "mmkd_core" / "plots.py").write_text("")
    (tmp_path / "mmkd_core" / "__init__.py").write_text("VERSION = 1\n")
    knobs.write_text("from .. import plots, VERSION\nfrom . import multimodal\n")
    found = {(item.target, item.names) for item in package_imports(knobs, package_dir=tmp_path / "mmkd_core")}
    assert found == {("mmkd_core.plots", ()), ("mmkd_core", ("VERSION",)), ("mmkd_core.experiments", ("multimodal",))}
    assert floor_of("mmkd_core.plots") > floor_of("mmkd_core.experiments.knobs")
