"""No notebook types what the protocol owns: seeds, grids and sizes come from ``mmkd_core.experiments.Protocol``.

Every notebook's parameters cell takes ``protocol`` (and ``protocol_overrides``) and no seed list, grid or size;
no code cell switches sizes on ``is_fast()`` or names a preset, and no call passes a literal seed. The checker is
tested on planted violations first, so that a notebook passing it means something.
"""
import ast
import dataclasses
import json
from pathlib import Path

import pytest

from mmkd_core.experiments import PRESETS, Protocol
from mmkd_core.experiments.protocol import KnobStudy, LabelEfficiencyStudy, PretrainingCurve
from mmkd_core.experiments.vision import LabelEfficiencyConfig
from mmkd_core.models.vision import TinyVisionSizes

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def owned_names() -> set[str]:
    """Every name the protocol (and the configurations it holds) owns, plus the preset's size options."""
    names = set()
    for cls in (Protocol, KnobStudy, LabelEfficiencyStudy, PretrainingCurve, LabelEfficiencyConfig, TinyVisionSizes):
        names |= {f.name for f in dataclasses.fields(cls)}
    for preset in PRESETS.values():
        names |= set(preset) | set(preset.get("dataset_options", {}))
    # the names the notebooks used before the protocol existed, for the same things
    names |= {"preset", "knob_seeds", "knob_values", "knob_settings", "knob_epochs", "n_eval", "ablation_inputs",
              "ablation_lams", "label_counts", "input_size", "teacher_seed", "max_train", "max_validation", "max_test"}
    # dataset_options stays a parameter: the knobs of the data (a size inside it would be an override)
    return names - {"name", "workers", "loss", "teacher", "student", "config", "dataset_options"}


def _is_literal_number(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool)


def parameter_violations(source: str) -> list[str]:
    """What a parameters cell types that the protocol owns: an owned name given a value other than ``None``, or
    a non-empty list, tuple or set literal of numbers (a seed list or a grid)."""
    owned, found = owned_names(), []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in owned and not (
                        isinstance(node.value, ast.Constant) and node.value.value is None):
                    found.append(f"assigns {target.id}")
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)) and any(_is_literal_number(e) for e in node.elts):
            found.append(f"a literal grid {ast.unparse(node)}")
    return found


def code_violations(source: str) -> list[str]:
    """What any code cell does that only the protocol may: switch on ``is_fast()``, name a preset, pass a seed list
    or a literal seed to a call."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and node.id == "is_fast":
            found.append("switches on is_fast()")
        if isinstance(node, ast.Attribute) and node.attr == "preset" and isinstance(node.value, ast.Name) \
                and node.value.id == "ExperimentConfig":
            found.append("calls ExperimentConfig.preset")
        if isinstance(node, ast.keyword) and node.arg in {"seed", "seeds", "teacher_seed"} and (
                _is_literal_number(node.value) or isinstance(node.value, (ast.List, ast.Tuple))
                and any(_is_literal_number(e) for e in node.value.elts)):
            found.append(f"passes {node.arg}={ast.unparse(node.value)}")
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in {"seeds", "tasks"}
                                                for t in node.targets) and isinstance(node.value, (ast.List, ast.Tuple)):
            found.append(f"types {ast.unparse(node)}")
    return found


def cells(path: Path):
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            # IPython's display() and magics aside, cells are plain Python
            yield "parameters" in cell.get("metadata", {}).get("tags", []), source


def test_the_checker_finds_planted_violations():
    assert parameter_violations("seeds = [0, 1, 2]") == ["assigns seeds", "a literal grid [0, 1, 2]"]
    assert parameter_violations("temperatures = (1.0, 2.0)")
    assert parameter_violations("n_labelled = 300") == ["assigns n_labelled"]
    assert parameter_violations('preset = "gpu"') == ["assigns preset"]
    assert parameter_violations("my_grid = [0.5, 2.0]") == ["a literal grid [0.5, 2.0]"]
    assert parameter_violations("protocol = None\nprotocol_overrides = {}\nn_labelled = None\ntask = 've'") == []
    assert code_violations("if is_fast():\n    x = 1") == ["switches on is_fast()"]
    assert code_violations("c = ExperimentConfig.preset('embedded', 've')") == ["calls ExperimentConfig.preset"]
    assert code_violations("tune_kd(c, d, cache, t, a, seed=0)") == ["passes seed=0"]
    assert code_violations("run(seeds=[0, 1])") == ["passes seeds=[0, 1]"]
    assert code_violations("seeds = [0, 1]") == ["types seeds = [0, 1]"]
    assert code_violations("tune_kd(c, d, cache, seed=protocol.tuning_seed)") == []
    assert code_violations("sweep(features, seeds=(curve.seed,))") == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_types_no_seed_grid_or_size(path):
    found = []
    for is_parameters, source in cells(path):
        found += parameter_violations(source) if is_parameters else []
        found += code_violations(source)
    assert not found, f"{path.name} types what mmkd_core.experiments.Protocol owns: {found}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_takes_the_protocol_as_a_parameter(path):
    parameters = [source for is_parameters, source in cells(path) if is_parameters]
    assert len(parameters) == 1, f"{path.name}: one papermill parameters cell expected"
    assigned = {t.id for node in ast.walk(ast.parse(parameters[0])) if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    assert {"protocol", "protocol_overrides"} <= assigned, f"{path.name}: parameters {sorted(assigned)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_papermill_reads_every_parameter_with_its_help(path):
    """papermill's parser gives up on a line whose comment holds "=" (it logs "Unable to parse line", once per run
    of the notebook): every assignment of the parameters cell must come back from its inspect, with its comment."""
    import nbformat
    from papermill.translators import PythonTranslator

    source = next(source for is_parameters, source in cells(path) if is_parameters)
    assigned = [t.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)]
    read = PythonTranslator.inspect(nbformat.v4.new_code_cell(source=source))
    assert [p.name for p in read] == assigned, f"{path.name}: papermill reads {[p.name for p in read]}"


def test_protocols_hold_what_the_notebooks_used_to_type():
    """The embedded protocol is what make reproduce reports; fast and gpu differ only where they say."""
    embedded, fast = Protocol.embedded(), Protocol.fast()
    assert embedded.seeds == (0, 1, 2, 3, 4) and embedded.tuning_seed == 100  # protocol v3: apart from the seeds
    assert not set(embedded.tuning_seeds) & set(embedded.seeds) and not set(fast.tuning_seeds) & set(fast.seeds)
    assert embedded.temperatures == (2.0, 4.0) and embedded.alphas == (0.5,)
    assert (embedded.benchmark, embedded.disjoint_splits, embedded.teacher_rows) == ("v2", True, 18000)
    assert embedded.teacher_seeds_for("ve") == (1234, 1235, 1236) and embedded.teacher_seeds_for("nlvr") == (None,)
    previous = Protocol.named("embedded-v2")  # protocol v2 on benchmark v1, one switch away
    assert previous.tuning_seed == 0 and previous.temperatures == (1.0, 2.0, 4.0, 8.0) and previous.benchmark == "v1"
    assert previous.experiment_config("ve").teacher_rows is None and previous.teacher_seeds_for("ve") == (None,)
    assert embedded.experiment_config("ve") == embedded.experiment_config("ve", dataset_options={})
    assert embedded.experiment_config("ve").n_labelled == PRESETS["embedded"]["n_labelled"]
    assert fast.preset == "fast" and fast.workers == 1 and len(fast.seeds) == 2
    assert Protocol.gpu().experiment_config("ve").dataset_options["n_train"] == 30000
    # papermill passes YAML lists: they become tuples, nested studies take dicts of their fields
    changed = Protocol.named("embedded", seeds=[0, 1], knob_study={"epochs": 2})
    assert changed.seeds == (0, 1) and changed.knob_study.epochs == 2 and changed.knob_study.n_train == 3000
    assert changed.experiment_config("ve", n_labelled=None).n_labelled == 300


def test_protocol_errors_name_what_was_expected():
    with pytest.raises(ValueError, match=r"unknown protocol 'huge'; accepted: \['embedded', 'embedded-v2', 'fast', 'gpu'\]"):
        Protocol.named("huge")
    with pytest.raises(ValueError, match="protocol 'embedded' has no field 'seed'; accepted: .*'seeds'"):
        Protocol.named("embedded", seed=3)
    with pytest.raises(ValueError, match="unknown experiment preset 'tiny'"):
        Protocol(preset="tiny")
    with pytest.raises(ValueError, match="seeds must not be empty"):
        Protocol.named("fast", seeds=[])


def test_disjoint_splits_reach_every_experiment_and_teacher_of_the_protocol():
    """One switch: the experiments the notebooks open and the teachers make reproduce prepares all read the same
    disjoint splits (and a real dataset keeps its own splits)."""
    protocol = Protocol.named("embedded", disjoint_splits=True)
    assert protocol.experiment_config("nlvr").dataset_options["disjoint_splits"] is True
    assert all(entry["dataset_options"]["disjoint_splits"] for entry in protocol.teachers())
    assert protocol.experiment_config("ve", dataset="hateful_memes", data_root="/x").dataset_options == {}
    assert "disjoint_splits" not in Protocol.named("embedded-v2").experiment_config("ve").dataset_options


def test_meta_rows_reach_the_experiment_config_and_not_the_teacher():
    protocol = Protocol.named("embedded", meta_rows=60)
    assert protocol.experiment_config("ve").meta_rows == 60
    assert protocol.experiment_config("ve").key() == Protocol.embedded().experiment_config("ve").key()  # same teacher
    assert Protocol.named("embedded-v2").experiment_config("ve").meta_rows is None


def test_task_options_take_one_variant_off_its_ceiling_everywhere_it_is_opened():
    protocol = Protocol.named("embedded-v2", task_options={"memes": {"label_noise": 0.2}})
    assert protocol.experiment_config("memes").dataset_options["label_noise"] == 0.2
    assert "label_noise" not in protocol.experiment_config("ve").dataset_options
    memes = [entry for entry in protocol.teachers() if entry["task"] == "memes"]
    assert [entry["dataset_options"]["label_noise"] for entry in memes] == [0.2]
    # a notebook's own dataset_options win over the protocol's
    assert protocol.experiment_config("memes", dataset_options={"label_noise": 0.0}).dataset_options["label_noise"] == 0


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_cell_has_an_id(path):
    """nbformat 4.5 cells carry an id; a cell added without one makes every papermill and nbval run warn
    (MissingIDFieldWarning) and will be an error in later nbformat versions."""
    notebook = json.loads(path.read_text())
    if (notebook["nbformat"], notebook["nbformat_minor"]) >= (4, 5):
        ids = [cell.get("id") for cell in notebook["cells"]]
        assert None not in ids and len(set(ids)) == len(ids), f"{path.name}: cells without a unique id"
