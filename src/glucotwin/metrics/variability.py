"""Glycaemic variability: SD, CV, J-index, MODD and CONGA (MAGE: :mod:`~glucotwin.metrics.mage`).

SD is the sample standard deviation (n − 1) of the readings and CV = 100 × SD / mean
(Battelino 2019, Table 1; Danne et al. 2017, Diabetes Care 40:1631). The J-index is
0.001 × (mean + SD)² with glucose in mg/dL (Wojcicki 1995, Horm Metab Res 27:41, "'J'-index.
A new proposition of the assessment of current glucose control in diabetic patients").

MODD and CONGA work on the regular grid of :func:`glucotwin.metrics.sampling.regular_grid`
(the readings interpolated onto slots every sensor interval, NaN across gaps longer than
45 min):

- **MODD** (Molnar et al. 1972, Diabetologia 8:342, "Day-to-day variation of continuously
  monitored glycaemia: a further measure of diabetic instability"): the mean of |G(t) − G(t
  − 24 h)| over every slot where both values exist. The lag is 24 h of elapsed time, so
  across a daylight-saving change the comparison is one wall-clock hour off for that one
  day.
- **CONGA n** (McDonnell et al. 2005, Diabetes Technol Ther 7:253, "A novel approach to
  continuous glucose analysis utilizing glycemic variation"): the sample SD (k* − 1) of D(t)
  = G(t) − G(t − n h) over every slot where both exist; GlucoTwin reports n = 1 h.

MAGE has its own module, :mod:`glucotwin.metrics.mage`.
"""

from __future__ import annotations

import numpy as np

from glucotwin.metrics.sampling import Grid


def sd_mg_dl(glucose_mg_dl: np.ndarray) -> float | None:
    """Sample standard deviation (n − 1) of the readings; ``None`` with fewer than two."""
    if len(glucose_mg_dl) < 2:
        return None
    return float(np.std(glucose_mg_dl, ddof=1))


def j_index(mean_mg_dl: float, sd: float) -> float:
    """J-index = 0.001 × (mean + SD)², glucose in mg/dL (Wojcicki 1995)."""
    return 0.001 * (mean_mg_dl + sd) ** 2


def _lag_differences(grid: Grid, lag_min: float) -> np.ndarray:
    """G(t) − G(t − lag) at every slot where both exist."""
    lag = round(lag_min / grid.interval_min)
    values = grid.glucose_mg_dl
    if lag < 1 or lag >= len(values):
        return np.empty(0)
    diffs = values[lag:] - values[:-lag]
    return diffs[~np.isnan(diffs)]


def modd_mg_dl(grid: Grid) -> float | None:
    """Mean of daily differences (Molnar 1972): mean |G(t) − G(t − 24 h)|."""
    diffs = _lag_differences(grid, 1440.0)
    return float(np.mean(np.abs(diffs))) if len(diffs) else None


def conga_mg_dl(grid: Grid, hours: float = 1.0) -> float | None:
    """CONGA n (McDonnell 2005): sample SD of G(t) − G(t − n h); needs two pairs."""
    diffs = _lag_differences(grid, 60.0 * hours)
    return float(np.std(diffs, ddof=1)) if len(diffs) >= 2 else None
