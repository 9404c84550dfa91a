"""The embedded *shapes* benchmark: procedurally generated scenes with statements about them.

Every notebook runs on this by default, so it must need no download, generate quickly and be
fully determined by its parameters. A scene is a small RGB image with one to three shapes placed in a
2×2 grid, each shape of its own colour (so "the red circle" names one object, as a region label would);
a statement is a short English sentence about the scene.

Tasks (``task=``)
-----------------
``"ve"``    3-way visual entailment (SNLI-VE style) on position and relation statements: *entailment*
            if the statement is true of the scene, *contradiction* if it is false, *neutral* if it
            talks about an object that is not in the scene (a colour the scene does not have: its
            truth cannot be decided).
``"nlvr"``  2-way true / false (NLVR style): existence, count, position and relation statements.
``"memes"`` binary "hateful-memes-like": the text says "i love/hate <colour> things". The label is
            *hateful* when the text hates a colour the image shows. Most not-hateful memes are
            "benign confounders" that hate a colour the image does not show, so the text alone
            reaches about 60% (as text-only models do on Hateful Memes), the image alone about
            chance, and only both together the label. (Generator v3 used ``negative XOR colour
            absent``: no modality carries any marginal signal, and no model at the CPU budget
            learnt more than the cues.)

Modality-reliance knobs
-----------------------
The real label always needs both modalities. Two knobs add shortcuts so that a single modality
carries part of the label, which is exactly what modality-specific and relation distillation feed on.

``text_cue`` ∈ [0, 1]
    Every statement starts with a cue word (``"clearly"``, ``"perhaps"``, ...). With probability
    ``text_cue`` the cue is the one tied to the sample's label, otherwise it is drawn uniformly from
    all cue words. A text-only model can reach ``text_cue + (1 - text_cue) / K`` accuracy on K
    balanced classes from the cue alone; at 0 the text alone says nothing about the label.
``image_cue`` ∈ [0, 1]
    The background of every image has a faint colour tint. With probability ``image_cue`` the tint
    is the one tied to the label, otherwise a uniformly drawn tint. Same arithmetic as above for an
    image-only model.
``label_noise`` ∈ [0, 1)
    Fraction of labels replaced by a uniformly drawn label (after generation), to make the
    benchmark less clean; the teacher's soft targets then carry real information.

Single-modality evidence (benchmark v2)
---------------------------------------
Cues are shortcuts, not content: a model that reads only the cue word has learnt nothing about the statement. Two
knobs make part of the label readable from one modality through what it says or shows:

``text_evidence`` ∈ [0, 1]
    Share of rows whose statement settles its label by itself (:func:`evidence_statement`): a tautology
    ("the red circle is the red circle": entailment / true), a self-contradiction ("the red circle is left of the
    red circle", "there are four circles" with at most three objects: contradiction / false), two objects of one
    colour, which no scene has ("the red circle is above the red square": neutral). memes: hate for every colour
    (hateful whatever the image shows) or love (never hateful). A text-only model must compare words to read it.
``image_evidence`` ∈ [0, 1/K]
    Share of the other rows (those without text evidence) whose scene settles the label by itself: an empty scene, in which every object a statement
    names is absent, so the label is the one "nothing there" forces (:data:`EMPTY_SCENE_LABEL`: ve neutral, nlvr
    false, memes not hateful). Only rows of that label can be evidence rows, so at most 1/K of the rows.

The rest of the rows still need both modalities. At 0 (the default, benchmark v1) the generator is as it was.
:func:`view_ceilings` gives the accuracy an optimal text-only or image-only reader reaches, cues included.

Disjoint splits
---------------
The splits are drawn independently, and the benchmark has only 3,288 distinct scenes (1 to 3 objects of distinct
colours in 4 cells, 3 shapes), so by default a validation or test row can repeat a pool row's scene and statement,
pixel noise aside: a model that read the pool has then seen it. ``disjoint_splits=True`` gives each split its own
scenes (:func:`scene_owners`: per number of objects, a seeded eighth of the scenes for validation and another for
test, the rest for the pool), so no (scene, statement) pair, and no scene with an object, is shared between two splits;
each row then records its ``scene``. The empty scene of ``image_evidence`` rows belongs to no split: its label
follows from a rule every split shares, not from anything a model could remember of one row. Labels stay balanced: a row's label is drawn before its scene, as always.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
from typing import Any

import numpy as np
from PIL import Image

from .options import choice_option, float_option, int_option

GENERATOR_VERSION = 4

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 48, 39),
    "green": (40, 160, 60),
    "blue": (45, 90, 215),
    "yellow": (235, 200, 30),
}
SHAPES = ("circle", "square", "triangle")
PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles"}
NUMBER_WORDS = ("zero", "one", "two", "three", "four")
GRID = 2  # objects sit in a GRID×GRID layout of cells

TASK_LABELS: dict[str, tuple[str, ...]] = {
    "ve": ("entailment", "neutral", "contradiction"),
    "nlvr": ("false", "true"),
    "memes": ("not_hateful", "hateful"),
}
# One cue word per label; a text cue is the word tied to the label (see the module docstring).
TEXT_CUES: dict[str, tuple[str, ...]] = {
    "ve": ("clearly", "perhaps", "supposedly"),
    "nlvr": ("supposedly", "clearly"),
    "memes": ("honestly", "seriously"),
}
# Background tints (added to a neutral grey) tied to labels by the image cue.
TINTS: tuple[tuple[int, int, int], ...] = ((28, 0, 0), (0, 0, 28), (0, 28, 0))
BACKGROUND = 118
MEME_PHRASES = {"positive": ("i love", "we adore"), "negative": ("i hate", "we despise")}
# Share of not-hateful memes that are hateful-sounding (hate for a colour the image does not show): the
# text alone then reaches (1 + (1 - MEME_BENIGN_NEGATIVE)) / 2 = 60% without any cue, as text-only models
# do on Hateful Memes, and the rest of the label needs the image.
MEME_BENIGN_NEGATIVE = 0.8


@dataclasses.dataclass(frozen=True)
class ShapesConfig:
    """All parameters of the benchmark; the cache key is a hash of this."""

    task: str = "ve"
    text_cue: float = 0.3
    image_cue: float = 0.3
    label_noise: float = 0.0
    image_size: int = 32
    n_train: int = 6000
    n_validation: int = 1000
    n_test: int = 1000
    seed: int = 0
    # Which statement types a task draws from (None: all of the task's). E.g. ("exists", "position",
    # "relation") for nlvr leaves out counting, which a patch-per-cell model at 32 px barely learns.
    statement_types: tuple | None = None
    # Each split draws from its own scenes (see the module's docstring); off: the generator as it always was.
    disjoint_splits: bool = False
    # Shares of rows one modality settles by its content (see "Single-modality evidence"); 0: benchmark v1.
    text_evidence: float = 0.0
    image_evidence: float = 0.0

    def __post_init__(self) -> None:
        # Every field is checked for its type as well as its range, and stored as a plain Python value
        # (numpy scalars are accepted) so that the cache key is JSON of the same numbers.
        checked = {
            "task": choice_option("task", self.task, TASK_LABELS, what="shapes task"),
            "text_cue": float_option("text_cue", self.text_cue, 0.0, 1.0),
            "image_cue": float_option("image_cue", self.image_cue, 0.0, 1.0),
            "label_noise": float_option("label_noise", self.label_noise, 0.0, 1.0, high_open=True),
            "text_evidence": float_option("text_evidence", self.text_evidence, 0.0, 1.0),
            "image_evidence": float_option("image_evidence", self.image_evidence, 0.0,
                                           1.0 / len(TASK_LABELS.get(self.task, (0,)))),
            "image_size": int_option("image_size", self.image_size, 16, even=True),  # even: GRID = 2 cells a side
            "seed": int_option("seed", self.seed, 0),
            **{split: int_option(split, getattr(self, split), 1, problem="asks for no samples (zero samples)")
               for split in ("n_train", "n_validation", "n_test")},
        }
        if self.statement_types is not None:
            checked["statement_types"] = statement_types_option(self.task, self.statement_types)
        if not isinstance(self.disjoint_splits, (bool, np.bool_)):
            raise ValueError(f"disjoint_splits must be True or False, got {self.disjoint_splits!r}")
        checked["disjoint_splits"] = bool(self.disjoint_splits)
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @property
    def labels(self) -> tuple[str, ...]:
        return TASK_LABELS[self.task]

    def split_size(self, split: str) -> int:
        return int(getattr(self, f"n_{split}"))

    def cache_key(self) -> str:
        # fields at the value they had before they existed leave the key (and the cached data) as it was
        fields = {k: v for k, v in dataclasses.asdict(self).items()
                  if not ((k == "statement_types" and v is None) or (k == "disjoint_splits" and not v)
                          or (k in ("text_evidence", "image_evidence") and v == 0.0))}
        payload = json.dumps({**fields, "version": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha1(payload.encode()).hexdigest()[:12]


@dataclasses.dataclass(frozen=True)
class SceneObject:
    color: str
    shape: str
    row: int
    col: int

    @property
    def name(self) -> str:
        return f"{self.color} {self.shape}"


# ----------------------------------------------------------------------------------------------
# Scenes
# ----------------------------------------------------------------------------------------------
def sample_scene(rng: np.random.Generator) -> list[SceneObject]:
    """1–3 objects in distinct cells, each of its own colour."""
    n_objects = int(rng.integers(1, GRID * GRID))
    cells = rng.permutation(GRID * GRID)[:n_objects]
    colors = rng.permutation(len(COLORS))[:n_objects]
    return [
        SceneObject(list(COLORS)[int(c)], SHAPES[int(rng.integers(len(SHAPES)))], int(cell) // GRID, int(cell) % GRID)
        for c, cell in zip(colors, cells)
    ]


def render_scene(objects: list[SceneObject], tint: tuple[int, int, int], size: int,
                 rng: np.random.Generator) -> Image.Image:
    """Draw the scene with numpy: tinted noisy background, one filled shape per object."""
    background = np.array(tint, dtype=np.float32) + BACKGROUND
    canvas = background + rng.normal(0.0, 6.0, size=(size, size, 3)).astype(np.float32)
    cell = size // GRID
    yy, xx = np.mgrid[0:cell, 0:cell].astype(np.float32) + 0.5
    for obj in objects:
        # Near-centred, near-constant size: an object is then "one region" of its cell, as detector
        # region features are for UNITER. Strong jitter made the shape hard to read from a patch and
        # turned learning the statements' grounding into memorisation on a few thousand samples.
        radius = cell * rng.uniform(0.32, 0.38)
        cy = cell / 2 + rng.uniform(-1.0, 1.0) * cell * 0.06
        cx = cell / 2 + rng.uniform(-1.0, 1.0) * cell * 0.06
        if obj.shape == "circle":
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        elif obj.shape == "square":
            half = radius * 0.85
            mask = (np.abs(yy - cy) <= half) & (np.abs(xx - cx) <= half)
        else:  # upward triangle: inside when below the two slanted edges and above the base
            top, base = cy - radius, cy + radius * 0.8
            half_width = (yy - top) / (base - top) * radius
            mask = (yy >= top) & (yy <= base) & (np.abs(xx - cx) <= half_width)
        y0, x0 = obj.row * cell, obj.col * cell
        canvas[y0:y0 + cell, x0:x0 + cell][mask] = COLORS[obj.color]
    return Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8), mode="RGB")


# ----------------------------------------------------------------------------------------------
# Statements: each generator returns (text, truth) with truth in {True, False, None (undecidable)}
# ----------------------------------------------------------------------------------------------
def _random_kind(rng: np.random.Generator) -> tuple[str, str]:
    return list(COLORS)[int(rng.integers(len(COLORS)))], SHAPES[int(rng.integers(len(SHAPES)))]


def _find(objects: list[SceneObject], color: str, shape: str) -> SceneObject | None:
    return next((o for o in objects if o.color == color and o.shape == shape), None)


def _pick_referent(objects, rng, present: bool, avoid: str | None = None) -> tuple[str, str]:
    """A (colour, shape) that is in the scene (present=True) or whose colour is absent from it.

    Colours are unique within a scene, so the colour alone names an object (as a region label would);
    an absent referent is an absent colour. ``avoid``: a colour the referent must not have.
    """
    if present:
        candidates = [o for o in objects if o.color != avoid]
        obj = candidates[int(rng.integers(len(candidates)))]
        return obj.color, obj.shape
    while True:
        color, shape = _random_kind(rng)
        if color != avoid and all(o.color != color for o in objects):
            return color, shape


def statement_exists(objects, rng, want_true: bool):
    color, shape = _pick_referent(objects, rng, present=want_true)
    return f"there is a {color} {shape}", want_true


def statement_count(objects, rng, want_true: bool):
    """'there are <n> <shape>s' with n drawn uniformly from 0-2 *before* the truth is decided, so the
    number word says nothing about the label (drawing false counts from another range than true ones
    let a text-only model read the label off the number)."""
    count = int(rng.integers(3))
    candidates = [s for s in SHAPES if (sum(o.shape == s for o in objects) == count) == want_true]
    if not candidates:
        return None
    shape = candidates[int(rng.integers(len(candidates)))]
    noun = shape if count == 1 else PLURAL[shape]
    verb = "is" if count == 1 else "are"
    return f"there {verb} {NUMBER_WORDS[count]} {noun}", want_true


def statement_position(objects, rng, want_true: bool | None):
    color, shape = _pick_referent(objects, rng, present=want_true is not None)
    obj = _find(objects, color, shape)
    side = ("top", "bottom", "left", "right")[int(rng.integers(4))]
    text = f"the {color} {shape} is on the {side}"
    if obj is None:
        return text, None
    truth = {"top": obj.row == 0, "bottom": obj.row == GRID - 1,
             "left": obj.col == 0, "right": obj.col == GRID - 1}[side]
    return text, truth


def statement_relation(objects, rng, want_true: bool | None):
    relation = ("left of", "right of", "above", "below")[int(rng.integers(4))]
    if want_true is None:  # at least one referent absent
        first = _pick_referent(objects, rng, present=False)
        # two different colours, as in the decidable statements (a repeated colour would mark "neutral");
        # the other referent is absent too only when a second absent colour exists
        other_absent = bool(rng.integers(2)) and len(objects) <= len(COLORS) - 2
        second = _pick_referent(objects, rng, present=not other_absent, avoid=first[0])
        if rng.integers(2):
            first, second = second, first
        return f"the {first[0]} {first[1]} is {relation} the {second[0]} {second[1]}", None
    if len(objects) < 2:
        return None
    i, j = rng.choice(len(objects), size=2, replace=False)
    a, b = objects[int(i)], objects[int(j)]
    truth = {"left of": a.col < b.col, "right of": a.col > b.col,
             "above": a.row < b.row, "below": a.row > b.row}[relation]
    return f"the {a.name} is {relation} the {b.name}", truth


DECIDABLE = (statement_exists, statement_count, statement_position, statement_relation)
UNDECIDABLE = (statement_position, statement_relation)


def statement_kinds(task: str, names: tuple | None = None) -> tuple:
    """The statement generators a task draws from (one is drawn per sample, before its scene).

    ``names`` keeps only those types (``"exists"``, ``"count"``, ``"position"``, ``"relation"``).
    """
    # In "ve" every label uses the same statement types (position, relation): if entailment and
    # contradiction could also be existence or count statements, the type alone would rule out neutral.
    kinds = {"ve": UNDECIDABLE, "nlvr": DECIDABLE}.get(task, ())
    if names is None:
        return kinds
    return tuple(fn for fn in kinds if fn.__name__.removeprefix("statement_") in names)


def statement_types_option(task: str, value) -> tuple:
    """``statement_types`` checked: a non-empty list of the task's statement type names, as a tuple."""
    names = [fn.__name__.removeprefix("statement_") for fn in statement_kinds(task)]
    accepted = f"a list of str, a non-empty subset of {names} (task {task!r})"
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"statement_types={value!r} is not a non-empty list; accepted: {accepted}")
    unknown = [v for v in value if not isinstance(v, str) or v not in names]
    if unknown:
        raise ValueError(f"statement_types has unknown entries {unknown}; accepted: {accepted}")
    return tuple(sorted(set(value), key=names.index))


def make_statement(task: str, label: int, objects, rng, kind: int | None = None,
                   kinds: tuple | None = None) -> tuple[str, str] | None:
    """Text and statement type for the requested label, or None if this scene cannot give it.

    ``kind`` indexes :func:`statement_kinds` (None: draw one). The caller keeps the kind and draws a new
    scene when this one cannot give the label: drawing a new kind instead would favour, per label, the
    kinds that are easy to make true (or false), and the statement type alone would then tell the label
    (earlier versions did that: a text-only transformer reached 41% on the 3-way task without any cue).
    """
    if task == "memes":
        # hateful: hate for a colour the image shows. Not hateful: hate for an absent colour (the
        # "benign confounder", most of them) or love for any colour.
        if label == 1:
            negative, present = True, True
        else:
            negative = bool(rng.random() < MEME_BENIGN_NEGATIVE)
            present = False if negative else bool(rng.integers(2))
        colors = [c for c in COLORS if any(o.color == c for o in objects) == present]
        color = colors[int(rng.integers(len(colors)))]
        phrases = MEME_PHRASES["negative" if negative else "positive"]
        return f"{phrases[int(rng.integers(len(phrases)))]} {color} things", "attitude"
    kinds = kinds if kinds is not None else statement_kinds(task)
    fn = kinds[int(rng.integers(len(kinds))) if kind is None else kind]
    if task == "ve" and label == 1:  # neutral: the statement names a colour the scene does not have
        text, _ = fn(objects, rng, None)
        return text, fn.__name__.removeprefix("statement_")
    want_true = (label == 0) if task == "ve" else (label == 1)
    out = fn(objects, rng, want_true)
    if out is None or out[1] != want_true:
        return None
    return out[0], fn.__name__.removeprefix("statement_")


# ----------------------------------------------------------------------------------------------
# Single-modality evidence (benchmark v2): statements that settle their label, scenes that do
# ----------------------------------------------------------------------------------------------
BENCHMARKS: dict[str, dict] = {
    "v1": {},
    # Cues lowered to 0.1 and evidence added: each single-modality view can then be read through its content
    # (optimal readers, 3,000 ve rows: text 56%, image 56%, against cue ceilings of 40%; nlvr 69% / 70% against
    # 55%), and the joint view is still needed for the remaining 45% of the rows.
    "v2": {"text_cue": 0.1, "image_cue": 0.1, "text_evidence": 0.3, "image_evidence": 0.25},
}
"""Named settings of the benchmark's knobs. v1: the knobs' defaults (every label needs both modalities, cues
aside). v2: single-modality evidence (see the module's docstring)."""
BENCHMARK_TASK_OPTIONS: dict[str, dict[str, dict]] = {
    # memes is solved by every model at v1 (100% test accuracy): label noise that no model can learn caps it
    # at 1 - 0.3 / 2 = 85%, as real Hateful Memes models sit well below 100%.
    "v2": {"memes": {"label_noise": 0.3}},
}


def benchmark_options(benchmark: str, task: str) -> dict:
    """The shapes options of a named benchmark (:data:`BENCHMARKS`) for one task."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown shapes benchmark {benchmark!r}; accepted: {sorted(BENCHMARKS)}")
    return {**BENCHMARKS[benchmark], **BENCHMARK_TASK_OPTIONS.get(benchmark, {}).get(task, {})}


EMPTY_SCENE_LABEL = {"ve": 1, "nlvr": 0, "memes": 0}
"""The label an empty scene forces: every object a statement names is absent (ve neutral, nlvr false), and an
empty image shows no colour to hate (memes not hateful)."""
RELATIONS = ("left of", "right of", "above", "below")


def evidence_statement(task: str, label: int, rng: np.random.Generator) -> tuple[str, str]:
    """A statement whose text alone settles ``label``, and its type (see the module's docstring).

    Built from the benchmark's own words, so that only reading them (comparing two colours, two shapes) tells the
    label, not a new word: "the red circle is the red circle" (tautology), "the red circle is above the red circle"
    or "there are four circles" (self-contradiction: a scene has at most three objects), "the red circle is above
    the red square" (two objects of one colour, which no scene has: neutral).
    """
    color, shape = _random_kind(rng)
    relation = RELATIONS[int(rng.integers(len(RELATIONS)))]
    if task == "memes":
        if label == 1:  # hate for every colour: whatever colour the image shows is hated
            colors = [list(COLORS)[int(i)] for i in rng.permutation(len(COLORS))]
            return f"{MEME_PHRASES['negative'][int(rng.integers(2))]} {' '.join(colors)} things", "hate_all"
        return f"{MEME_PHRASES['positive'][int(rng.integers(2))]} {color} things", "love"
    positive, negative = (0, 2) if task == "ve" else (1, 0)
    if label == positive:
        return f"the {color} {shape} is the {color} {shape}", "tautology"
    if label == negative:
        if rng.integers(2):
            return f"there are four {PLURAL[shape]}", "self_contradiction"
        return f"the {color} {shape} is {relation} the {color} {shape}", "self_contradiction"
    other = [s for s in SHAPES if s != shape][int(rng.integers(len(SHAPES) - 1))]  # ve neutral
    return f"the {color} {shape} is {relation} the {color} {other}", "same_colour"


def settled_by_empty_scene(task: str, statement: str) -> bool:
    """Whether an empty scene gives the statement :data:`EMPTY_SCENE_LABEL`'s label: every statement whose label it
    is on some scene, except nlvr's "there are zero ..." (true of an empty scene)."""
    return not (task == "nlvr" and " zero " in f" {statement} ")


def view_ceilings(dataset, labels: int | None = None) -> dict[str, float]:
    """The test accuracy an optimal reader of one modality reaches on these rows (a ``datasets.Dataset`` or column
    dict of the benchmark), on their true labels: for each thing the reader can see, the most frequent label.

    What a text-only reader sees: the cue word, the statement's type (evidence types settle the label; the
    others are drawn before the scene and say nothing) and, for memes, the attitude word. What an image-only
    reader sees: the tint and whether the scene is empty. ``"cues"``: a reader of both cues and nothing else (the
    plateau a model sits on before it learns the statements). Needs the ``tint`` column (written whenever an
    evidence knob is on)."""
    columns = dataset if isinstance(dataset, dict) else dataset.to_dict()
    if "tint" not in columns:
        raise ValueError("view_ceilings needs the 'tint' column, which the generator writes when text_evidence or "
                         "image_evidence is above 0, or when asked: generate_split(config, split, record_evidence=True)")
    truth = np.asarray(columns["true_label"])
    words = [text.split() for text in columns["text"]]
    seen = {
        "text": [(w[0], kind, w[2] if len(w) > 2 and w[1] in ("i", "we") else "")
                 for w, kind in zip(words, columns["statement_type"])],
        "image": list(zip(columns["tint"], np.asarray(columns["n_objects"]) == 0)),
        "cues": [(w[0], tint) for w, tint in zip(words, columns["tint"])],  # the cue word and the tint, nothing else
    }
    ceilings = {}
    for view, keys in seen.items():
        counts: dict = {}
        for key, label in zip(keys, truth):
            counts.setdefault(key, {}).setdefault(int(label), 0)
            counts[key][int(label)] += 1
        ceilings[view] = sum(max(c.values()) for c in counts.values()) / len(truth)
    return ceilings


# ----------------------------------------------------------------------------------------------
# Splits
# ----------------------------------------------------------------------------------------------
SPLITS = ("train", "validation", "test")
HELD_OUT_SCENE_SHARE = 1 / 8  # of the scenes of each size, for validation and again for test (disjoint_splits)


def scene_key(objects: list[SceneObject]) -> str:
    """A scene's identity, whatever order its objects were drawn in: its objects, sorted."""
    return "; ".join(sorted(f"{o.color} {o.shape} r{o.row}c{o.col}" for o in objects))


def every_scene() -> list[list[SceneObject]]:
    """Every scene :func:`sample_scene` can draw: 1 to ``GRID²-1`` objects in distinct cells, distinct colours."""
    scenes = []
    for n in range(1, GRID * GRID):
        for cells in itertools.combinations(range(GRID * GRID), n):
            for colors in itertools.permutations(COLORS, n):
                for shapes in itertools.product(SHAPES, repeat=n):
                    scenes.append([SceneObject(c, s, cell // GRID, cell % GRID)
                                   for c, s, cell in zip(colors, shapes, cells)])
    return scenes


@functools.lru_cache(maxsize=8)
def scene_owners(seed: int) -> dict[str, str]:
    """The split that owns each scene under ``disjoint_splits``: for each number of objects, the scenes are ordered
    by a hash of (``seed``, scene) and the first :data:`HELD_OUT_SCENE_SHARE` go to test, the next as many to
    validation, the rest to train. Per size, so that every split keeps the scene sizes' proportions."""
    by_size: dict[int, list[str]] = {}
    for objects in every_scene():
        by_size.setdefault(len(objects), []).append(scene_key(objects))
    owners = {}
    for keys in by_size.values():
        keys.sort(key=lambda key: hashlib.sha1(f"{seed}|{key}".encode()).hexdigest())
        held_out = max(1, round(HELD_OUT_SCENE_SHARE * len(keys)))
        for i, key in enumerate(keys):
            owners[key] = "test" if i < held_out else "validation" if i < 2 * held_out else "train"
    return owners


def generate_split(config: ShapesConfig, split: str, record_evidence: bool = False) -> dict[str, list[Any]]:
    """Column dict for one split. Deterministic in (config, split).

    ``record_evidence``: write the ``evidence`` and ``tint`` columns even when no evidence knob is on (they are
    written whenever one is), e.g. for :func:`view_ceilings` of benchmark v1; the rows are the same either way."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; accepted: {list(SPLITS)}")
    rng = np.random.default_rng([config.seed, SPLITS.index(split), GENERATOR_VERSION])
    n_labels = len(config.labels)
    cues = TEXT_CUES[config.task]
    columns: dict[str, list[Any]] = {k: [] for k in (
        "image", "text", "label", "statement", "statement_type", "true_label",
        "text_cue_informative", "image_cue_informative", "n_objects")}
    kinds = statement_kinds(config.task, config.statement_types)
    owners = scene_owners(config.seed) if config.disjoint_splits else None
    if owners is not None:
        columns["scene"] = []
    evidence = record_evidence or config.text_evidence > 0 or config.image_evidence > 0
    if evidence:
        columns["evidence"], columns["tint"] = [], []
    for _ in range(config.split_size(split)):
        label = int(rng.integers(n_labels))
        kind = int(rng.integers(len(kinds))) if kinds else None  # fixed before the scene: see make_statement
        # Evidence draws only when a knob is on, so that benchmark v1's rows stay exactly as they were.
        # An image-evidence row needs the label an empty scene forces: that label's rows are evidence rows with
        # probability K · image_evidence, so that image_evidence is the share of the rows without text evidence.
        shown_by = "none"
        if config.text_evidence > 0 and rng.random() < config.text_evidence:
            shown_by = "text"
        elif (config.image_evidence > 0 and label == EMPTY_SCENE_LABEL[config.task]
              and rng.random() < config.image_evidence * n_labels):
            shown_by = "image"
        while True:
            objects = sample_scene(rng)
            if owners is not None and owners[scene_key(objects)] != split:
                continue  # another split's scene
            if shown_by == "text":
                made = evidence_statement(config.task, label, rng)
            else:
                made = make_statement(config.task, label, objects, rng, kind, kinds)
            if made is not None and (shown_by != "image" or settled_by_empty_scene(config.task, made[0])):
                break
        statement, statement_type = made
        if shown_by == "image":  # the statement was made for a scene of this split; the image then shows nothing
            objects = []
        text_informative = bool(rng.random() < config.text_cue)
        cue = cues[label] if text_informative else cues[int(rng.integers(n_labels))]
        image_informative = bool(rng.random() < config.image_cue)
        tint_index = label if image_informative else int(rng.integers(n_labels))
        tint = TINTS[tint_index]
        observed = label
        if config.label_noise and rng.random() < config.label_noise:
            observed = int(rng.integers(n_labels))
        columns["image"].append(render_scene(objects, tint, config.image_size, rng))
        columns["text"].append(f"{cue} {statement}")
        columns["statement"].append(statement)
        columns["statement_type"].append(statement_type)
        columns["label"].append(observed)
        columns["true_label"].append(label)
        columns["text_cue_informative"].append(text_informative)
        columns["image_cue_informative"].append(image_informative)
        columns["n_objects"].append(len(objects))
        if owners is not None:
            # an empty scene is every split's: its rows are told apart by their statements only (see the docstring)
            columns["scene"].append(scene_key(objects))
        if evidence:
            columns["evidence"].append(shown_by)
            columns["tint"].append(tint_index)
    return columns


def vocabulary() -> list[str]:
    """Every word the generator can emit, in a fixed order (used to build the tokenizer)."""
    words: list[str] = []
    for cue_words in TEXT_CUES.values():
        words += cue_words
    words += list(COLORS) + list(SHAPES) + list(PLURAL.values()) + list(NUMBER_WORDS)
    words += "there is are a the on top bottom left right of above below things".split()
    for phrases in MEME_PHRASES.values():
        for phrase in phrases:
            words += phrase.split()
    return list(dict.fromkeys(words))
