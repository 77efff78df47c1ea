"""The one exception of the dataset adapters, shared by all of them."""

from __future__ import annotations

from affectflow.data.units import UnitsError


class LabelError(UnitsError):
    """A dataset or label file is inconsistent; the message names the file and problem.

    Subclasses ``UnitsError`` (itself a ``ValueError``) so a caller of
    ``build_units`` can catch every dataset problem, including the duplicate-id
    errors raised by ``merge_units``, with one except clause.
    """
