"""Whole cohorts: many scans through segment and measure, resumably, in one process or on Dask.

::

    import limbseg
    result = limbseg.cohort("manifest.csv", "cohort/", workers=2)   # or scheduler="tcp://host:8786"

Modules: :mod:`~limbseg.cohort.subjects` (manifest CSV or folder of scans), :mod:`~limbseg.cohort.done`
(completion markers: what makes a subject complete), :mod:`~limbseg.cohort.worker` (one subject on a
worker, the model cached per process), :mod:`~limbseg.cohort.cluster` (Dask: local cluster or a running
one), :mod:`~limbseg.cohort.tables` and :mod:`~limbseg.cohort.summary` (the cohort's tables and pictures),
:mod:`~limbseg.cohort.api` (:func:`cohort`). See docs/cohort.md.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from limbseg.cohort.api import CohortResult, cohort
from limbseg.cohort.subjects import Subject, read_subjects

__all__ = ["CohortResult", "Subject", "cohort", "read_subjects"]


class _CallableModule(types.ModuleType):
    """Importing this package binds ``limbseg.cohort`` to it, hiding the function of the same name that
    ``limbseg/__init__.py`` offers; calling the package calls the function, so ``limbseg.cohort(...)``
    works before and after the import."""

    def __call__(self, *args: Any, **kwargs: Any) -> CohortResult:
        return cohort(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
