"""Protocol v3's tuning: every compared method gets the same budget, chosen the same way (issue 23).

Each method's grid is its students' learning rate × one knob of its own, two values each (2 × 2 cells; CE, which
has no knob, gets four learning rates), chosen on validation on the protocol's tuning seeds, which are apart from
the evaluation seeds. A choice on a numeric grid's edge extends that axis once (:func:`mmkd_core.runs.tune`). The
knobs:

=========================  =====================================  =============================================
method                     its knob                               taken from KD (transfer set)'s choice
=========================  =====================================  =============================================
CE (no teacher)            (none: four learning rates)
KD (labelled rows only)    temperature T
KD (transfer set)          temperature T
MSD population             one weight for both single-modality    T
                           KD terms (text = image)
MSD instance               temperature T (of its KD terms and
                           of its saliency weights)
MSD meta                   the weight network's learning rate     T
Gram                       λ, the weight of the Gram loss         T
MSD + Gram                 λ of its Gram loss                     T
CE×3 + KD (no Gram)        temperature T
=========================  =====================================  =============================================

The values are fields of :class:`~mmkd_core.experiments.Protocol` (``learning_rates``, ``ce_learning_rates``,
``temperatures``, ``population_values``, ``meta_lrs``, ``gram_lams``), so an ablation is one override away. Protocol
v2 tuned KD alone (T × α on one seed that was also an evaluation seed); :mod:`mmkd_core.runs` keeps its
:func:`~mmkd_core.runs.tune_kd` for that reading.

The runs sit in the run cache like every other, so notebooks that tune the same method on the same teacher share them.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable

import pandas as pd

from .experiments.protocol import (CE_ALL_LABELS_LABEL, CE_LABEL, KD_LABELLED_LABEL, KD_TRANSFER_LABEL, Protocol)
from .runs import CONFIG_AXIS, _cell_spec, tune

LEARNING_RATE_AXIS = f"{CONFIG_AXIS}student_lr"


@dataclasses.dataclass(frozen=True)
class MethodGrid:
    """One method's tuning: its run_grid fields, its knob (a method argument; ``"a=b"`` sets both) and the
    :class:`~mmkd_core.experiments.Protocol` field that holds the knob's values, and the arguments it takes from
    KD (transfer set)'s chosen cell instead of tuning them."""

    method: str
    data: str = "transfer"
    kwargs: dict = dataclasses.field(default_factory=dict)
    knob: str | None = None
    knob_values: str | None = None
    inherits: tuple[str, ...] = ()


METHOD_GRIDS: dict[str, MethodGrid] = {
    CE_LABEL: MethodGrid("ce", data="labelled"),
    KD_LABELLED_LABEL: MethodGrid("kd", data="labelled", knob="temperature", knob_values="temperatures"),
    KD_TRANSFER_LABEL: MethodGrid("kd", knob="temperature", knob_values="temperatures"),
    "MSD population": MethodGrid("msd", kwargs={"weighting": "population"}, knob="text_weight=image_weight",
                                 knob_values="population_values", inherits=("temperature",)),
    "MSD instance": MethodGrid("msd", kwargs={"weighting": "instance"}, knob="temperature", knob_values="temperatures"),
    "MSD meta": MethodGrid("msd", kwargs={"weighting": "meta"}, knob="meta_lr", knob_values="meta_lrs",
                           inherits=("temperature",)),
    "Gram": MethodGrid("gram", kwargs={"gram_input": "probs"}, knob="lam", knob_values="gram_lams",
                       inherits=("temperature",)),
    "MSD + Gram": MethodGrid("msd_gram", kwargs={"gram_input": "probs"}, knob="gram_lam", knob_values="gram_lams",
                             inherits=("temperature",)),
    "CE×3 + KD (no Gram)": MethodGrid("ce3", knob="temperature", knob_values="temperatures"),
}
"""Every method a notebook compares, by its label in the tables."""

_GRAM_METHODS = ("gram", "msd_gram", "ce3")  # the methods that read gram_temperature


def method_grid(label: str) -> MethodGrid:
    """The tuning of one method label, or a ValueError that lists the known labels."""
    if label not in METHOD_GRIDS:
        raise ValueError(f"no tuning grid for method {label!r}; known: {list(METHOD_GRIDS)}")
    return METHOD_GRIDS[label]


def axes(label: str, protocol: Protocol) -> dict[str, tuple]:
    """The tuning axes of one method under ``protocol``: its learning rates, then its knob's values."""
    grid = method_grid(label)
    if grid.knob is None:
        return {LEARNING_RATE_AXIS: tuple(protocol.ce_learning_rates)}
    return {LEARNING_RATE_AXIS: tuple(protocol.learning_rates), grid.knob: tuple(getattr(protocol, grid.knob_values))}


def base_spec(label: str, protocol: Protocol, inherited: dict | None = None, extra: dict | None = None) -> dict:
    """The run_grid spec of one method before its cell: its method, data and fixed arguments (KD's α, the Gram
    temperature, what it inherits, then ``extra``, e.g. MSD meta's ``meta_every``)."""
    grid = method_grid(label)
    kwargs = dict(grid.kwargs)
    if grid.method in ("kd", "ce3"):
        kwargs["alpha"] = protocol.alphas[0]
    if grid.method in _GRAM_METHODS:
        kwargs["gram_temperature"] = protocol.gram_temperature
    missing = [name for name in grid.inherits if name not in (inherited or {})]
    if missing:
        raise ValueError(f"{label}: its {missing} come from {KD_TRANSFER_LABEL!r}'s chosen cell; tune that method "
                         f"first (list it before {label!r}) or pass `inherited`")
    kwargs.update({name: (inherited or {})[name] for name in grid.inherits})
    kwargs.update(extra or {})
    return {"label": label, "method": grid.method, "data": grid.data, "kwargs": kwargs}


@dataclasses.dataclass
class Tuned:
    """What :func:`tune_methods` chose: per method label, its cell and its evaluation spec; and every cell's table."""

    cells: dict[str, dict]
    specs: dict[str, dict]
    table: pd.DataFrame

    def chosen(self) -> pd.DataFrame:
        """One line per method: its chosen cell, its validation score, and whether the edge extension ran."""
        lines = []
        for label, cell in self.cells.items():
            rows = self.table[self.table["method"] == label]
            chosen = rows[rows["chosen"]].iloc[0]
            lines.append({"method": label, **{k.removeprefix(CONFIG_AXIS): v for k, v in cell.items()},
                          "validation accuracy (%)": 100 * chosen["validation/accuracy (mean)"],
                          "cells tried": len(rows), "grid extended": bool(rows["from the edge extension"].any())})
        return pd.DataFrame(lines)

    def spec(self, label: str, name: str | None = None, **fields) -> dict:
        """The evaluation spec of ``label`` (renamed ``name``; other run_grid fields such as ``data`` replaced)."""
        return {**self.specs[label], **({"label": name} if name else {}), **fields}


def tune_methods(labels: Iterable[str], protocol: Protocol, config, data, teacher_cache, extra: dict | None = None,
                 inherited: dict | None = None, workers: int | None = None) -> Tuned:
    """Tune each method of ``labels`` on validation (:func:`mmkd_core.runs.tune` over :func:`axes`) on the
    protocol's tuning seeds, with the teacher of ``teacher_cache``.

    KD (transfer set) is tuned first when listed, and what other methods inherit from it (its temperature) is its
    chosen value; ``inherited`` gives those values when it is not listed. ``extra``: label → fixed arguments.
    Returns a :class:`Tuned`: the chosen cells, the specs that evaluate them (labelled by method) and the table of
    every cell (column ``method``), the table notebooks save as their grid."""
    labels = list(dict.fromkeys(labels))
    for label in labels:
        method_grid(label)
    ordered = sorted(labels, key=lambda label: label != KD_TRANSFER_LABEL)  # KD (transfer set) first, then as given
    inherited = dict(inherited or {})
    cells, specs, tables = {}, {}, []
    for label in ordered:
        base = base_spec(label, protocol, inherited, (extra or {}).get(label))
        cell, table = tune(base, axes(label, protocol), config, data, None if base["method"] == "ce" else teacher_cache,
                           seeds=protocol.tuning_seeds, workers=workers, desc=f"{label}: tuning on validation")
        cells[label] = cell
        specs[label] = {**_cell_spec(base, cell), "label": label}
        tables.append(table.assign(method=label))
        if label == KD_TRANSFER_LABEL:
            inherited.setdefault("temperature", specs[label]["kwargs"]["temperature"])
    order = {label: i for i, label in enumerate(labels)}
    return Tuned(cells={label: cells[label] for label in labels}, specs={label: specs[label] for label in labels},
                 table=pd.concat(sorted(tables, key=lambda t: order[t["method"].iloc[0]]), ignore_index=True))


def all_labels_control(ce_spec: dict) -> dict:
    """The control "CE (all labels)": CE on every pool row with its label, at CE's chosen cell (what the labels
    alone would buy a student; a control, not a compared method, so it is not tuned apart)."""
    return {**ce_spec, "label": CE_ALL_LABELS_LABEL, "data": "all_labels"}


def grid_table(tuned: Tuned) -> pd.DataFrame:
    """Every cell of every method's grid, for reports/tables: the method, its axes in words, the mean and per-seed
    validation accuracy, whether the cell came from the edge extension, and which was chosen."""
    table = tuned.table.rename(columns=lambda c: c.removeprefix(CONFIG_AXIS))
    first = ["method"] + [c for c in table.columns if c != "method"]
    return table[first]


__all__ = ["METHOD_GRIDS", "MethodGrid", "Tuned", "all_labels_control", "axes", "base_spec", "grid_table",
           "method_grid", "tune_methods"]
