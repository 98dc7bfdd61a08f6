"""Central tendency and time in ranges: mean, GMI and the consensus range percentages.

Percentages are of readings (each reading stands for one sensor interval), as in the
consensus reports (Battelino et al. 2019, Diabetes Care 42:1593, "Clinical targets for CGM
data interpretation: recommendations from the international consensus on time in range",
Table 1; Battelino et al. 2023, Lancet Diabetes Endocrinol 11:42). The cut-offs are:

- time below range: < 70 mg/dL (level 1 and 2 together) and < 54 mg/dL (level 2);
- time in range: 70–180 mg/dL inclusive; time in tight range: 70–140 mg/dL inclusive
  (Battelino 2023, Table 2);
- time above range: > 180 mg/dL (level 1 and 2 together) and > 250 mg/dL (level 2).

So below 70 + in range + above 180 = 100 %. Censored readings count at their limit value.
"""

from __future__ import annotations

import numpy as np

GMI_INTERCEPT_PERCENT = 3.31
GMI_SLOPE_PERCENT_PER_MG_DL = 0.02392


def gmi_percent(mean_mg_dl: float) -> float:
    """Glucose management indicator, %: 3.31 + 0.02392 × mean glucose (mg/dL).

    The regression of A1C on CGM mean glucose of Bergenstal et al. 2018, Diabetes Care
    41:2275, "Glucose Management Indicator (GMI): a new term for estimating A1C from
    continuous glucose monitoring".
    """
    return GMI_INTERCEPT_PERCENT + GMI_SLOPE_PERCENT_PER_MG_DL * mean_mg_dl


def percent_below(glucose_mg_dl: np.ndarray, threshold_mg_dl: float) -> float:
    """Percentage of readings strictly below ``threshold_mg_dl``."""
    return 100.0 * np.count_nonzero(glucose_mg_dl < threshold_mg_dl) / len(glucose_mg_dl)


def percent_above(glucose_mg_dl: np.ndarray, threshold_mg_dl: float) -> float:
    """Percentage of readings strictly above ``threshold_mg_dl``."""
    return 100.0 * np.count_nonzero(glucose_mg_dl > threshold_mg_dl) / len(glucose_mg_dl)


def percent_within(glucose_mg_dl: np.ndarray, low_mg_dl: float, high_mg_dl: float) -> float:
    """Percentage of readings in ``[low_mg_dl, high_mg_dl]`` (both ends included)."""
    inside = (glucose_mg_dl >= low_mg_dl) & (glucose_mg_dl <= high_mg_dl)
    return 100.0 * np.count_nonzero(inside) / len(glucose_mg_dl)


def range_percentages(glucose_mg_dl: np.ndarray) -> dict[str, float]:
    """The consensus time-in-ranges metrics of a non-empty array of readings, %."""
    return {
        "tbr_below_54_percent": percent_below(glucose_mg_dl, 54.0),
        "tbr_below_70_percent": percent_below(glucose_mg_dl, 70.0),
        "tir_70_180_percent": percent_within(glucose_mg_dl, 70.0, 180.0),
        "titr_70_140_percent": percent_within(glucose_mg_dl, 70.0, 140.0),
        "tar_above_180_percent": percent_above(glucose_mg_dl, 180.0),
        "tar_above_250_percent": percent_above(glucose_mg_dl, 250.0),
    }
