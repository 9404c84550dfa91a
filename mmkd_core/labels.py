"""The two "no label" values, in one place at the ground floor (data and losses both read them).

- :data:`MISSING_LABEL` (-1) is how a dataset file says a row has no label: Hugging Face's ``ClassLabel`` stores
  -1 for it, and a loader of an unlabelled test release (``allow_unlabelled=True``) writes it.
- :data:`UNLABELLED` (-100, PyTorch's usual ignore index) is what a *batch* carries for a row whose label the
  student may not read: the hidden rows of a transfer set, and every :data:`MISSING_LABEL` row once encoded.
  Cross-entropy skips these rows; teacher-based terms use them.

The encoder (:class:`mmkd_core.data.encoding.ImageTextProcessor`) turns the first into the second, so no -1
ever reaches a loss, where it would be read as a class index.
"""
MISSING_LABEL = -1
UNLABELLED = -100

ALL_LABELS = -1
"""The label budget (``labels_per_class``, notebook 01) of a run that saw every training label."""


def budget_name(k: float) -> str:
    """A label budget in words: ``5`` (or ``5.0``, as read back from a table) → ``"5"``, :data:`ALL_LABELS` → ``"all"``."""
    return "all" if k == ALL_LABELS else str(int(k))

