"""Checks that a figure can be read, run on every figure the notebooks save (:func:`mmkd_core.reporting.save_figure`):

- no two texts overlap (tick labels that run together, a title over a panel's title), measured on the drawn
  figure, with rotated text as turned boxes rather than their much larger axis-aligned envelopes;
- axis labels, titles and legend titles are in words, not logged keys or code names (``test/accuracy``,
  ``text_cue``).
"""
from __future__ import annotations

import math
import re

import numpy as np

CODE_NAME = re.compile(r"\b[A-Za-z]+[/_][A-Za-z]+\b")  # "test/accuracy", "text_cue": a key, not words
MATH = re.compile(r"\$[^$]*\$")  # matplotlib's mathtext, e.g. "$G_t$"


def figure_texts(fig) -> list:
    """Every visible, non-empty text of a drawn figure: its titles, each axes' titles, axis labels, the tick labels
    of the ticks in view (major and minor), legend texts and annotations."""
    fig.canvas.draw()
    texts = [t for t in ([getattr(fig, "_suptitle", None)] + list(fig.texts)) if t is not None]
    for ax in fig.axes:
        texts += [ax.title, ax._left_title, ax._right_title]
        for axis in (ax.xaxis, ax.yaxis):
            if ax.axison and axis.get_visible():  # an image panel's hidden axes draw no ticks
                texts += [axis.label] + _drawn_tick_labels(axis)
        texts += list(ax.texts)
        legend = ax.get_legend()
        if legend is not None:
            texts += [legend.get_title()] + legend.get_texts()
    for legend in fig.legends:
        texts += [legend.get_title()] + legend.get_texts()
    return [t for t in dict.fromkeys(texts) if t.get_visible() and t.get_text().strip()]


def _drawn_tick_labels(axis) -> list:
    """The tick labels matplotlib draws: those of ticks inside the view interval. The locator also places ticks
    just outside it (their labels report a position but are never drawn), and those must not count."""
    low, high = sorted(axis.get_view_interval())
    span = (high - low) or 1.0
    ticks = axis.get_major_ticks(len(axis.get_majorticklocs())) + axis.get_minor_ticks(len(axis.get_minorticklocs()))
    return [label for tick in ticks if low - 1e-9 * span <= tick.get_loc() <= high + 1e-9 * span
            for label in (tick.label1, tick.label2) if label.get_visible()]


def _text_corners(text, renderer) -> np.ndarray:
    """The four corners (pixels) of a text's own box, turned with it: a rotated tick label's axis-aligned
    envelope is much larger than the label, and neighbouring envelopes overlap where the glyphs do not."""
    envelope = text.get_window_extent(renderer)
    angle = math.radians(text.get_rotation())
    if abs(math.sin(angle)) < 1e-6 or abs(math.cos(angle)) < 1e-6:  # 0 or 90 degrees: the envelope is the box
        return np.array([[envelope.x0, envelope.y0], [envelope.x1, envelope.y0],
                         [envelope.x1, envelope.y1], [envelope.x0, envelope.y1]])
    rotation = text.get_rotation()
    text.set_rotation(0)
    flat = text.get_window_extent(renderer)
    text.set_rotation(rotation)
    half = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * [flat.width / 2, flat.height / 2]
    turn = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    centre = np.array([(envelope.x0 + envelope.x1) / 2, (envelope.y0 + envelope.y1) / 2])
    return half @ turn.T + centre


def _boxes_overlap(a: np.ndarray, b: np.ndarray, tolerance: float) -> bool:
    # separating axes: two convex boxes are apart when, along some edge's normal, their shadows are apart
    for corners in (a, b):
        for k in range(4):
            edge = corners[(k + 1) % 4] - corners[k]
            normal = np.array([-edge[1], edge[0]]) / (np.hypot(*edge) or 1.0)
            shadow_a, shadow_b = a @ normal, b @ normal
            if min(shadow_a.max(), shadow_b.max()) - max(shadow_a.min(), shadow_b.min()) <= tolerance:
                return False
    return True


def overlapping_texts(fig, tolerance: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of texts of ``fig`` whose drawn boxes (turned with rotated text) overlap by more than ``tolerance``
    pixels: two tick labels run together, a title over a panel's title. Empty when every text can be read."""
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), _text_corners(t, renderer)) for t in figure_texts(fig)]
    return [(name_a, name_b) for i, (name_a, a) in enumerate(boxes) for name_b, b in boxes[i + 1:]
            if _boxes_overlap(a, b, tolerance)]


def _named_texts(fig) -> list[tuple[str, str]]:
    """(where, text) of every title, axis label, legend title and legend entry: the texts that name what a figure
    shows (tick labels are left out: they may name a dataset or task, such as ``easy_vqa``)."""
    named = []
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None:
        named.append(("figure title", suptitle.get_text()))
    for ax in fig.axes:
        for where, text in (("title", ax.get_title()), ("x label", ax.get_xlabel()), ("y label", ax.get_ylabel())):
            named.append((where, text))
        legend = ax.get_legend()
        if legend is not None:
            named.append(("legend title", legend.get_title().get_text()))
            named += [("legend entry", t.get_text()) for t in legend.get_texts()]
    for legend in fig.legends:
        named.append(("legend title", legend.get_title().get_text()))
        named += [("legend entry", t.get_text()) for t in legend.get_texts()]
    return [(where, text) for where, text in named if text.strip()]


def code_names(fig) -> list[tuple[str, str]]:
    """(where, text) of each title, axis label or legend title that holds a logged key or code name (outside
    ``$...$``: mathematical notation such as ``$G_t$`` is rendered, not read as a name)."""
    return [(where, text) for where, text in _named_texts(fig) if CODE_NAME.search(MATH.sub(" ", text))]


def figure_problems(fig) -> list[str]:
    """What keeps a reader from reading ``fig``, one line each; empty when it reads well."""
    problems = [f"overlapping texts {a!r} and {b!r}" for a, b in overlapping_texts(fig)]
    problems += [f"{where} {text!r} holds a code name ({CODE_NAME.search(MATH.sub(' ', text)).group(0)!r}); "
                 "write it in words"
                 for where, text in code_names(fig)]
    return problems
