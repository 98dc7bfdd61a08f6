"""Sampling of a CGM record: its interval, its wear period, active time and a regular grid.

The consensus (Battelino 2019, Diabetes Care 42:1593, Table 1) reports the days of CGM wear
and the percentage of time the CGM is active, i.e. readings captured over readings
expected at the sensor's interval. Metrics that compare glucose at fixed lags (MODD, CONGA)
or count minutes (episodes) need an equally spaced series: :func:`regular_grid` places the
readings on one by linear interpolation, as the R package iglu does (Broll et al. 2021,
PLoS ONE 16:e0248560, ``CGMS2DayByDay``): slots every interval from local midnight, values
interpolated between neighbouring readings at most ``max_gap_min`` (default 45 min, iglu's
``inter_gap``) apart, and missing (NaN) across longer gaps, which are never bridged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from glucotwin.metrics.readings import NS_PER_DAY, NS_PER_MIN, CgmReadings

MAX_INTERPOLATION_GAP_MIN = 45.0
"""Readings further apart than this are not interpolated between (iglu's ``inter_gap``)."""


def detect_interval_min(time_ns: np.ndarray) -> float | None:
    """The sensor's sampling interval, min: the most common gap between readings.

    Gaps are rounded to whole minutes (at least 1) so that clock jitter of a few seconds
    (e.g. 300 ± 3 s) does not split the mode; ties go to the shorter interval. ``None`` with
    fewer than two distinct instants.
    """
    gaps_ns = np.diff(np.sort(time_ns))
    gaps_ns = gaps_ns[gaps_ns > 0]
    if len(gaps_ns) == 0:
        return None
    minutes = np.sort(np.maximum(np.rint(gaps_ns / NS_PER_MIN), 1).astype(np.int64))
    firsts = np.flatnonzero(np.concatenate(([True], minutes[1:] != minutes[:-1])))
    counts = np.diff(np.concatenate((firsts, [len(minutes)])))
    return float(minutes[firsts[np.argmax(counts)]])


@dataclass(frozen=True)
class Wear:
    """Wear period and data sufficiency (Battelino 2019, Table 1, "% time CGM is active").

    ``days``: expected readings × interval / 24 h, i.e. the span from the first to the last
    reading rounded to whole intervals plus one interval, so that 14 full days of readings
    count as 14.0 days even when the sensor clock jitters by seconds; ``expected``: readings
    expected over that period at the interval;
    ``active_percent``: readings / expected × 100 (at most 100).
    """

    days: float
    expected: int
    active_percent: float


def wear(readings: CgmReadings, interval_min: float) -> Wear:
    """Days of wear and percentage of time the CGM was active."""
    span_ns = int(readings.time_ns[-1] - readings.time_ns[0])
    interval_ns = interval_min * NS_PER_MIN
    expected = round(span_ns / interval_ns) + 1
    active = min(100.0, 100.0 * len(readings) / expected)
    return Wear(days=expected * interval_ns / NS_PER_DAY, expected=expected, active_percent=active)


@dataclass(frozen=True)
class Grid:
    """Glucose on equally spaced slots: slot ``k`` is at ``start_ns + k × interval``.

    ``glucose_mg_dl`` is NaN where no reading lies within ``max_gap_min`` on both sides.
    """

    start_ns: int
    interval_min: float
    glucose_mg_dl: np.ndarray

    @property
    def step_ns(self) -> int:
        """Time between slots, ns."""
        return round(self.interval_min * NS_PER_MIN)

    @property
    def time_ns(self) -> np.ndarray:
        """UTC instant of each slot, ns."""
        return self.start_ns + self.step_ns * np.arange(len(self.glucose_mg_dl), dtype=np.int64)


def regular_grid(
    readings: CgmReadings,
    interval_min: float,
    *,
    max_gap_min: float = MAX_INTERPOLATION_GAP_MIN,
) -> Grid:
    """Interpolate the readings onto slots every ``interval_min`` from local midnight.

    Slots run from the first to the last slot inside the record. A slot between two readings
    more than ``max_gap_min`` apart is NaN (an exact reading on a slot is always kept).
    """
    step_ns = round(interval_min * NS_PER_MIN)
    first_local = int(readings.local_ns[0])
    midnight_utc = first_local - first_local % NS_PER_DAY - (first_local - readings.time_ns[0])
    t = readings.time_ns - midnight_utc
    first_slot = -(-int(t[0]) // step_ns)
    last_slot = int(t[-1]) // step_ns
    slots_ns = step_ns * np.arange(first_slot, last_slot + 1, dtype=np.int64)
    values = np.interp(slots_ns / 1e9, t / 1e9, readings.glucose_mg_dl)
    after = np.searchsorted(t, slots_ns, side="left")
    on_reading = t[np.minimum(after, len(t) - 1)] == slots_ns
    gap_ns = t[np.minimum(after, len(t) - 1)] - t[np.maximum(after - 1, 0)]
    values[~on_reading & (gap_ns > max_gap_min * NS_PER_MIN)] = np.nan
    return Grid(
        start_ns=int(midnight_utc + first_slot * step_ns),
        interval_min=float(interval_min),
        glucose_mg_dl=values,
    )


def segments(values: np.ndarray) -> list[np.ndarray]:
    """The runs of consecutive non-NaN values (the contiguous stretches of a grid)."""
    valid = ~np.isnan(values)
    if not valid.any():
        return []
    edges = np.diff(np.concatenate(([0], valid.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [values[s:e] for s, e in zip(starts, ends, strict=True)]
