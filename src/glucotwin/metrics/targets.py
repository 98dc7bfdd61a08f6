"""Consensus targets for the metrics table of a report.

Targets for most adults with type 1 or type 2 diabetes from Battelino et al. 2019, Diabetes
Care 42:1593, "Clinical targets for continuous glucose monitoring data interpretation:
recommendations from the international consensus on time in range" (Table 1 for data
sufficiency and CV, Figure 3 for the ranges). The GMI has no consensus target; the 7 % shown
is the A1C goal of the ADA Standards of Care for many non-pregnant adults (ADA 2024,
Diabetes Care 47(Suppl 1):S111, section 6), to be individualised. Targets for older or
high-risk people and for pregnancy differ (Battelino 2019, Figure 3) and are not applied.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from typing import Any

COMPARISONS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}

CONSENSUS_TARGETS: dict[str, tuple[str, float, str]] = {
    "tir_70_180_percent": (">", 70.0, "Time in range 70–180 mg/dL"),
    "tbr_below_70_percent": ("<", 4.0, "Time below 70 mg/dL (incl. < 54)"),
    "tbr_below_54_percent": ("<", 1.0, "Time below 54 mg/dL"),
    "tar_above_180_percent": ("<", 25.0, "Time above 180 mg/dL (incl. > 250)"),
    "tar_above_250_percent": ("<", 5.0, "Time above 250 mg/dL"),
    "cv_percent": ("<=", 36.0, "Coefficient of variation"),
    "gmi_percent": ("<", 7.0, "Glucose management indicator"),
    "cgm_active_percent": (">=", 70.0, "Time CGM active"),
    "days": (">=", 14.0, "Days of CGM wear"),
}
"""Metric key -> (comparison, target value, label); values in the metric's own unit."""


def _unit(key: str) -> str:
    if key.endswith("_percent"):
        return " %"
    if key == "days":
        return " days"
    return ""


def check_targets(
    metrics: Mapping[str, Any],
    targets: Mapping[str, tuple[str, float, str]] = CONSENSUS_TARGETS,
) -> list[tuple[str, float | None, str, bool]]:
    """Compare metrics with targets: a list of (label, value, target text, met).

    ``target text`` reads like ``"> 70 %"``. A metric that is missing or ``None`` (not
    computable from the data) is reported with value ``None`` and ``met`` False.
    """
    rows = []
    for key, (comparison, target, label) in targets.items():
        value = metrics.get(key)
        if value is not None and not math.isfinite(value):
            value = None
        met = value is not None and COMPARISONS[comparison](value, target)
        rows.append(
            (
                label,
                value,
                f"{comparison.replace('<=', '≤').replace('>=', '≥')} {target:g}{_unit(key)}",
                bool(met),
            )
        )
    return rows
