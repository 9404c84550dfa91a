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
