"""Find result numbers typed into prose: every number about a result must be rendered from the tables by code.

A notebook's markdown cell, the README and ``reports/README.md`` are read as a reader reads them. A number with a
unit of a result (a percentage, a "points" difference, a time) in hand-written text goes stale the moment a
reproduction moves it: the collection's audit found fifteen such numbers that no longer matched their tables. So
those numbers live only where code writes them:

- a notebook's computed "Reading" cell (its output, not its markdown);
- a block that ``make reproduce`` rewrites, between ``<!-- name:start -->`` and ``<!-- name:end -->``
  (:func:`mmkd_core.reproduce.update_readme`).

What the check lets through:

- the confidence level of an interval ("95% CI", "95% t-interval"): a convention of the statistics, not a result;
- numbers in code (inline code spans and fenced blocks): parameters a reader types, not results;
- phrases a caller lists as settings or citations (a setting such as "30% label noise", the papers' own reported
  numbers), each with its reason, so that an exception is a decision someone wrote down.
"""

from __future__ import annotations

import re

__all__ = ["GENERATED_BLOCK", "RESULT_NUMBER", "strip_generated", "typed_result_numbers"]

GENERATED_BLOCK = re.compile(r"<!-- ([\w-]+):start -->.*?<!-- \1:end -->", re.S)
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
# a number (signs, thousands separators and ranges included) followed by the unit of a result
RESULT_NUMBER = re.compile(
    r"(?<![\w.])[-+−±~]?\d[\d,]*(?:\.\d+)?(?:\s*[-–]\s*\d[\d,]*(?:\.\d+)?)?\s*"
    r"(?:%|percent\b|points?\b|pp\b|ms\b|s\b|seconds?\b|min\b|minutes?\b|h\b|hours?\b)")
_CONFIDENCE_LEVEL = re.compile(r"95\s*%(?=\s*(?:\*\*)?\s*(?:CI|t-interval|interval|confidence|Student))")


def strip_generated(text: str) -> str:
    """``text`` without its generated blocks and its code: what a person typed as prose."""
    return _CODE.sub(" ", GENERATED_BLOCK.sub(" ", text))


def typed_result_numbers(text: str, allowed: tuple[str, ...] = (), context: int = 40) -> list[str]:
    """Every result number typed into ``text``'s prose, each with ``context`` characters around it.

    Args:
        text: markdown (a notebook cell's source, a README).
        allowed: phrases whose numbers are settings or citations, not results; a number inside one is let through
            (matched as written, whitespace aside).
        context: characters of the text shown on each side of a hit.
    """
    prose = strip_generated(text)
    spans = [(m.start(), m.end()) for m in _CONFIDENCE_LEVEL.finditer(prose)]
    for phrase in allowed:  # its words as written, any whitespace (a line break too) between them
        spans += [(m.start(), m.end()) for m in re.finditer(r"\s+".join(map(re.escape, phrase.split())), prose)]
    hits = []
    for match in RESULT_NUMBER.finditer(prose):
        if any(start <= match.start() and match.end() <= end for start, end in spans):
            continue
        around = prose[max(0, match.start() - context):match.end() + context]
        hits.append(re.sub(r"\s+", " ", around).strip())
    return hits

