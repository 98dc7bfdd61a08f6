"""AGP-style PDF report (a view: it draws what :mod:`glucotwin.metrics` computes).

Layout follows the International Diabetes Center's AGP report v5 (Johnson et al. 2019,
*Diabetes Technol Ther* 21(S2)) and the consensus targets of Battelino et al. 2019:

- page 1: glucose statistics against the consensus targets, data sufficiency, the
  time-in-ranges bar, and the AGP percentile ribbon (5-25-50-75-95 % by time of day);
- page 2: daily glucose profiles for the last 14 days, target range shaded.
"""

from __future__ import annotations

from glucotwin.report.agp import write_agp_report

__all__ = ["write_agp_report"]
