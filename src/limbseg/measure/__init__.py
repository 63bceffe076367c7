"""Morphometrics from a label map: bone lengths, leg-length difference, femoral anteversion,
neck-shaft angle, mechanical femorotibial angle and tibial torsion, with their landmarks.

``measure_labels(labels)`` returns a :class:`MeasureResult`; ``write_measurements(result, dir)``
writes ``measurements.csv``, ``measurements.json``, 3D Slicer markups per side and a QC picture.
Definitions: :mod:`limbseg.measure.definitions` and ``docs/measurements.md``.
"""

from limbseg.measure.api import MeasureResult, measure_labels
from limbseg.measure.output import write_cohort, write_measurements

__all__ = ["MeasureResult", "measure_labels", "write_cohort", "write_measurements"]
