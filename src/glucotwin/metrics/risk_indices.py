"""Risk indices: LBGI, HBGI, ADRR (Kovatchev) and the glycemia risk index GRI (Klonoff).

Kovatchev's symmetrised scale (Kovatchev et al. 1997, Diabetes Care 20:1655, "Symmetrization
of the blood glucose measurement scale and its applications"):
f(BG) = 1.509 × ((ln BG)^1.084 − 5.381) with BG in mg/dL, risk r(BG) = 10 f(BG)²; the low
risk rl = r where f < 0 (BG < 112.5 mg/dL), else 0; the high risk rh = r where f > 0.
LBGI and HBGI are the means of rl and rh over all readings (Kovatchev et al. 2006, Diabetes
Care 29:2433, "Evaluation of a new measure of blood glucose variability in diabetes", whose
Methods restate the risk function and both indices). ADRR (same paper) is the mean over days
of (max rl + max rh) of the day; days are local calendar days, and every day with a reading
counts (Kovatchev used ≥ 3 SMBG readings a day; CGM gives hundreds).

GRI (Klonoff et al. 2023, J Diabetes Sci Technol 17:1226, "A Glycemia Risk Index (GRI) of
hypoglycemia and hyperglycemia for continuous glucose monitoring validated by clinician
ratings", the GRI formula): with VLow = % < 54, Low = % 54–< 70, High = % > 180–250 and
VHigh = % > 250, hypo component = VLow + 0.8 Low, hyper component = VHigh + 0.5 High and
GRI = 3.0 × hypo + 1.6 × hyper = 3.0 VLow + 2.4 Low + 1.6 VHigh + 0.8 High, capped at 100.
"""

from __future__ import annotations

import numpy as np

from glucotwin.metrics.readings import NS_PER_DAY


def symmetrized_bg(glucose_mg_dl: np.ndarray) -> np.ndarray:
    """Kovatchev's f(BG) = 1.509 × ((ln BG)^1.084 − 5.381), BG in mg/dL (Kovatchev 1997)."""
    return 1.509 * (np.log(glucose_mg_dl) ** 1.084 - 5.381)


def low_high_risk(glucose_mg_dl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-reading low and high risk (rl, rh) = 10 f² on the side of f's sign (Kovatchev 2006)."""
    f = symmetrized_bg(glucose_mg_dl)
    risk = 10.0 * f * f
    return np.where(f < 0, risk, 0.0), np.where(f > 0, risk, 0.0)


def lbgi_hbgi(glucose_mg_dl: np.ndarray) -> tuple[float, float]:
    """Low and high blood glucose indices: means of rl and rh (Kovatchev 2006)."""
    rl, rh = low_high_risk(glucose_mg_dl)
    return float(rl.mean()), float(rh.mean())


def adrr(glucose_mg_dl: np.ndarray, local_ns: np.ndarray) -> float:
    """Average daily risk range (Kovatchev 2006): mean over local days of max rl + max rh."""
    rl, rh = low_high_risk(glucose_mg_dl)
    day = local_ns // NS_PER_DAY
    day = day - day.min()
    days = int(day.max()) + 1
    max_rl = np.zeros(days)
    max_rh = np.zeros(days)
    np.maximum.at(max_rl, day, rl)
    np.maximum.at(max_rh, day, rh)
    worn = np.bincount(day, minlength=days) > 0
    return float(np.mean(max_rl[worn] + max_rh[worn]))


def gri(percentages: dict[str, float]) -> dict[str, float]:
    """Glycemia risk index and its components from the consensus range percentages.

    ``percentages`` holds ``tbr_below_54_percent``, ``tbr_below_70_percent``,
    ``tar_above_180_percent`` and ``tar_above_250_percent`` (Klonoff 2023).
    """
    very_low = percentages["tbr_below_54_percent"]
    low = percentages["tbr_below_70_percent"] - very_low
    very_high = percentages["tar_above_250_percent"]
    high = percentages["tar_above_180_percent"] - very_high
    hypo = very_low + 0.8 * low
    hyper = very_high + 0.5 * high
    return {
        "gri": min(100.0, 3.0 * hypo + 1.6 * hyper),
        "gri_hypo_component": hypo,
        "gri_hyper_component": hyper,
    }
