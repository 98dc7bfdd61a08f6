"""The ambulatory glucose profile (AGP) and the day-by-day traces of a report.

The AGP (Johnson et al. 2019, Diabetes Technol Ther 21(S2):S2-17, "Utilizing the ambulatory
glucose profile to standardize and implement continuous glucose monitoring in clinical
practice"; the International Diabetes Center's AGP report v4/v5) overlays all days on one
24-hour axis and draws the 5th, 25th, 50th, 75th and 95th percentiles of glucose by time of
day. The IDC does not publish its smoothing. GlucoTwin computes, for each bin of
``bin_minutes`` of local time (centre ``minute_of_day``), the percentiles of all readings
whose local time of day lies within ± ``window_minutes`` / 2 of the centre, wrapping around
midnight; with the default one-hour window a 14-day 5-min record gives about 170 readings
per percentile, enough for a stable 5th/95th percentile, and no further smoothing is done.
Percentiles interpolate linearly between order statistics (numpy's default, R type 7).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from glucotwin.data.model import Recording
from glucotwin.metrics.readings import NS_PER_DAY, NS_PER_MIN, cgm_readings

AGP_PERCENTILES = (5, 25, 50, 75, 95)
MAX_TRACE_GAP_MIN = 45.0
"""Daily traces are broken where readings are further apart than this."""


def agp_profile(
    data: Recording | pd.DataFrame,
    *,
    bin_minutes: int = 5,
    window_minutes: int = 60,
    subject: str | None = None,
) -> pd.DataFrame:
    """Percentiles of glucose by local time of day (see the module docstring).

    Returns one row per bin: ``minute_of_day`` (bin centre, min after local midnight),
    ``p5``, ``p25``, ``p50``, ``p75``, ``p95`` (mg/dL; NaN where the window holds no
    reading) and ``readings`` (how many readings the window held).
    """
    if bin_minutes <= 0 or 1440 % bin_minutes:
        raise ValueError(f"bin_minutes must divide 1440, got {bin_minutes}")
    if window_minutes < bin_minutes:
        raise ValueError("window_minutes must be at least bin_minutes")
    readings = cgm_readings(data, subject=subject)
    minute = (readings.local_ns % NS_PER_DAY) / NS_PER_MIN
    order = np.argsort(minute, kind="stable")
    minute, glucose = minute[order], readings.glucose_mg_dl[order]
    centres = np.arange(bin_minutes / 2, 1440, bin_minutes)
    half = window_minutes / 2
    # Readings of the wrapped window [c - half, c + half) on a circle: look them up on the
    # axis extended by one day on each side.
    extended_minute = np.concatenate((minute - 1440, minute, minute + 1440))
    extended_glucose = np.concatenate((glucose, glucose, glucose))
    lo = np.searchsorted(extended_minute, centres - half, side="left")
    hi = np.searchsorted(extended_minute, centres + half, side="left")
    rows = np.full((len(centres), len(AGP_PERCENTILES)), np.nan)
    for i, (a, b) in enumerate(zip(lo.tolist(), hi.tolist(), strict=True)):
        if b > a:
            rows[i] = np.percentile(extended_glucose[a:b], AGP_PERCENTILES)
    profile = pd.DataFrame(rows, columns=[f"p{p}" for p in AGP_PERCENTILES])
    profile.insert(0, "minute_of_day", centres)
    profile["readings"] = hi - lo
    return profile


def daily_series(data: Recording | pd.DataFrame, *, subject: str | None = None) -> pd.DataFrame:
    """One row per reading for day-by-day overlays: local ``date``, ``minute_of_day``, glucose.

    A row with NaN glucose is inserted after each reading that is followed by a gap longer
    than 45 min or by the next local day, so that a line plot breaks there instead of
    drawing across missing data or from 23:55 back to 00:00.
    """
    readings = cgm_readings(data, subject=subject)
    local_ns = readings.local_ns
    day = local_ns // NS_PER_DAY
    breaks = np.zeros(len(local_ns), dtype=bool)
    breaks[:-1] = (np.diff(readings.time_ns) > MAX_TRACE_GAP_MIN * NS_PER_MIN) | (np.diff(day) != 0)
    position = np.arange(len(local_ns)) + np.concatenate(([0], np.cumsum(breaks)[:-1]))
    size = len(local_ns) + int(breaks.sum())
    minute = np.full(size, np.nan)
    glucose = np.full(size, np.nan)
    day_out = np.empty(size, dtype=np.int64)
    minute[position] = (local_ns % NS_PER_DAY) / NS_PER_MIN
    glucose[position] = readings.glucose_mg_dl
    day_out[position] = day
    day_out[position[breaks] + 1] = day[breaks]
    return pd.DataFrame(
        {
            "date": pd.to_datetime(day_out * NS_PER_DAY, unit="ns").date,
            "minute_of_day": minute,
            "glucose_mg_dl": glucose,
        }
    )
