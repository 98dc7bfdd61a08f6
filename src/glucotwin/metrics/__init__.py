"""CGM metrics: the international consensus metrics, variability and risk indices, the AGP.

Pure functions over numpy arrays (no I/O). The public surface:

- :func:`compute_metrics` — every metric of one person's CGM record as a JSON-ready dict;
- :func:`agp_profile` — percentiles of glucose by time of day (the AGP);
- :func:`daily_series` — day-by-day traces for overlays;
- :data:`CONSENSUS_TARGETS` and :func:`check_targets` — the Battelino 2019 targets.

Definitions, references and how they compare with the R package iglu: ``docs/metrics.md``.
"""

from glucotwin.metrics.agp import agp_profile, daily_series
from glucotwin.metrics.summary import METRIC_KEYS, compute_metrics
from glucotwin.metrics.targets import CONSENSUS_TARGETS, check_targets

__all__ = [
    "CONSENSUS_TARGETS",
    "METRIC_KEYS",
    "agp_profile",
    "check_targets",
    "compute_metrics",
    "daily_series",
]
