"""Batched simulation of the physiology models (importing it enables JAX float64, see
``glucotwin.physiology``)."""

import glucotwin.physiology  # noqa: F401  (enables float64 before any array is made)
from glucotwin.simulate.engine import (
    GLUCOSE_THRESHOLDS_MG_DL,
    GlucoseSummary,
    Simulation,
    simulate,
)

__all__ = [
    "GLUCOSE_THRESHOLDS_MG_DL",
    "GlucoseSummary",
    "Simulation",
    "simulate",
]
