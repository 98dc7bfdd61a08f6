"""MAGE, the mean amplitude of glycaemic excursions, by two algorithms.

Service et al. 1970 (Diabetes 19:644, "Mean amplitude of glycemic excursions, a measure of
diabetic instability") defined MAGE by hand on a glucose trace: the mean height of the
excursions (nadir to next peak, or peak to next nadir) larger than one SD of the glucose
values, counted in one direction only, that of the first such excursion. Automating it
means deciding which wiggles of a noisy CGM trace are peaks and nadirs; GlucoTwin offers:

``"hysteresis"`` (default) — :func:`mage_mg_dl`
    Turning points are confirmed with a hysteresis of one SD of the readings: a peak once
    glucose has fallen more than one SD below it, a nadir once it has risen more than one SD
    above it. Every excursion between the confirmed peaks and nadirs therefore exceeds one
    SD, and the small non-countable oscillations in between are dropped, which is what
    Baghurst's elimination of non-countable turning points achieves (Baghurst 2011, Diabetes
    Technol Ther 13:296). It runs on the regular grid of the sensor interval
    (:func:`glucotwin.metrics.sampling.regular_grid`), each contiguous stretch on its own,
    so an excursion never spans a gap of more than 45 min. It has no tuning parameter
    besides Service's one SD.

``"moving_average"`` — :func:`mage_moving_average_mg_dl`
    Fernandes et al. 2022 (J Diabetes Sci Technol 16:576, "Open-source algorithm to
    calculate mean amplitude of glycemic excursions using short and long moving averages"),
    the default of the R package iglu and of iglu-python: readings are interpolated onto a
    5-min grid, split where the data stop for more than 180 min, the crossings of a 5-point
    and a 32-point moving average bracket each peak and nadir, which are then taken from the
    glucose values, and excursions larger than the stretch's SD are counted; stretches are
    weighted by their duration. This port follows iglu-python 0.4 step by step so that the
    two agree; it is offered to reproduce iglu's numbers.

``direction`` selects the excursions averaged: ``"service"`` (those in the direction of the
first countable excursion, as Service 1970), ``"plus"`` (upward, MAGE+), ``"minus"``
(downward, MAGE−) or ``"avg"`` (the mean of MAGE+ and MAGE−, iglu's default).
"""

from __future__ import annotations

import itertools
from typing import Literal

import numpy as np
import pandas as pd

from glucotwin.metrics.readings import CgmReadings
from glucotwin.metrics.sampling import Grid, regular_grid, segments

MageAlgorithm = Literal["hysteresis", "moving_average"]
MageDirection = Literal["service", "plus", "minus", "avg"]

MA_GRID_MIN = 5.0
MA_SHORT_POINTS = 5
MA_LONG_POINTS = 32
MA_SPLIT_GAP_MIN = 180.0


def excursions(values: np.ndarray, threshold_mg_dl: float) -> np.ndarray:
    """Signed heights of the excursions larger than ``threshold_mg_dl`` in one stretch.

    The series is reduced to its turning points, then scanned with a hysteresis of
    ``threshold_mg_dl``: the alternating peaks and nadirs it confirms are each more than the
    threshold apart. Returns nadir-to-peak (+) and peak-to-nadir (−) heights in time order.
    """
    if len(values) < 2:
        return np.empty(0)
    rises = np.diff(values)
    turning = np.ones(len(values), dtype=bool)
    turning[1:-1] = rises[:-1] * rises[1:] <= 0
    points = values[turning].tolist()
    pivots: list[float] = []
    high = low = extreme = points[0]
    direction = 0  # +1 rising from the last nadir, -1 falling from the last peak
    for x in points:
        if direction == 0:
            high, low = max(high, x), min(low, x)
            if high - low > threshold_mg_dl:
                direction = 1 if x == high else -1
                pivots.append(low if direction == 1 else high)
                extreme = x
        elif direction == 1:
            if x > extreme:
                extreme = x
            elif extreme - x > threshold_mg_dl:
                pivots.append(extreme)
                direction, extreme = -1, x
        else:
            if x < extreme:
                extreme = x
            elif x - extreme > threshold_mg_dl:
                pivots.append(extreme)
                direction, extreme = 1, x
    if direction != 0:
        pivots.append(extreme)
    return np.diff(np.asarray(pivots))


def _summarise(
    plus: float | None, minus: float | None, plus_first: bool, direction: MageDirection
) -> float | None:
    if direction == "service":
        direction = "plus" if plus_first else "minus"
    if direction == "plus":
        return plus
    if direction == "minus":
        return minus
    present = [m for m in (plus, minus) if m is not None]
    return float(np.mean(present)) if present else None


def mage_mg_dl(grid: Grid, sd: float | None, direction: MageDirection = "service") -> float | None:
    """MAGE by the one-SD hysteresis algorithm (module docstring), mg/dL.

    ``sd`` is the SD of the readings, mg/dL. ``None`` when no excursion exceeds it.
    """
    if sd is None or sd <= 0:
        return None
    heights = [h for s in segments(grid.glucose_mg_dl) if len(h := excursions(s, sd))]
    if not heights:
        return None
    signed = np.concatenate(heights)
    plus, minus = signed[signed > 0], -signed[signed < 0]
    return _summarise(
        float(plus.mean()) if len(plus) else None,
        float(minus.mean()) if len(minus) else None,
        bool(signed[0] > 0),
        direction,
    )


def mage_moving_average_mg_dl(
    readings: CgmReadings,
    direction: MageDirection = "avg",
    *,
    short_points: int = MA_SHORT_POINTS,
    long_points: int = MA_LONG_POINTS,
) -> float | None:
    """MAGE by Fernandes 2022's moving-average algorithm as iglu-python 0.4 computes it."""
    if len(readings) < 2:
        return None
    grid = regular_grid(readings, MA_GRID_MIN)
    values = grid.glucose_mg_dl
    valid = np.flatnonzero(~np.isnan(values))
    if len(valid) == 0:  # no 5-min slot within the record
        return None
    # Stretches: split where consecutive grid values are more than 180 min apart; shorter
    # holes stay inside a stretch as NaN.
    split = np.flatnonzero(np.diff(valid) * MA_GRID_MIN > MA_SPLIT_GAP_MIN)
    bounds = zip(
        np.concatenate(([valid[0]], valid[split + 1])),
        np.concatenate((valid[split], [valid[-1]])) + 1,
        strict=True,
    )
    rows = [
        row
        for start, end in bounds
        if (row := _ma_stretch(values[start:end], short_points, long_points)) is not None
    ]
    if not rows:
        return None
    chosen = []
    for length, plus, minus, plus_first in rows:
        value = _summarise(plus, minus, plus_first, direction)
        if value is None:
            continue
        if direction == "avg":  # iglu weights MAGE+ and MAGE- rows separately
            chosen += [(length, m) for m in (plus, minus) if m is not None]
        else:
            chosen.append((length, value))
    if not chosen:
        return None
    # Weights: each stretch's duration, (points - 1) grid steps; a stretch has >= 7 points.
    weights = np.array([length - 1 for length, _ in chosen], dtype=float)
    heights = np.array([m for _, m in chosen])
    return float(np.sum(heights * weights) / weights.sum())


def _ma_stretch(
    gl: np.ndarray, short_points: int, long_points: int
) -> tuple[int, float | None, float | None, bool] | None:
    """(length, MAGE+, MAGE−, plus first) of one stretch, or None when it has no excursion."""
    n = len(gl)
    series = pd.Series(gl)
    sd = series.std()
    if n < 7 or n < short_points or not sd >= 1:
        return None
    short = series.rolling(short_points, min_periods=1).mean().to_numpy(copy=True)
    long = series.rolling(long_points, min_periods=1).mean().to_numpy(copy=True)
    short[:short_points] = short[-1] if short_points > n else short[short_points - 1]
    long[:long_points] = long[-1] if long_points > n else long[long_points - 1]
    delta = short - long
    crosses = _crossings(gl, delta)
    extremes = _extremes(gl, crosses)
    plus, plus_pairs = _mage_plus(extremes, sd)
    minus, minus_pairs = _mage_minus(extremes, sd)
    if not plus and not minus:
        return None
    plus_first = bool(plus) and (not minus or plus_pairs[0][1] <= minus_pairs[0][0])
    return (
        n,
        float(np.mean(plus)) if plus else None,
        abs(float(np.mean(minus))) if minus else None,
        plus_first,
    )


def _crossings(gl: np.ndarray, delta: np.ndarray) -> list[tuple[int, bool]]:
    """Crossings of the short and long moving averages: (index, a maximum follows).

    The first and last points always count; a difference of exactly 0 counts as missing;
    across missing values the sign is compared with that at the last crossing.
    """
    first_is_max = bool(delta[0] > 0)
    delta = np.where(delta == 0, np.nan, delta)
    known = ~np.isnan(delta)
    both = known[1:] & known[:-1] & ~np.isnan(gl[1:]) & ~np.isnan(gl[:-1])
    flips = both & (delta[1:] * delta[:-1] < 0)
    gap_points = ~both & known[1:]
    candidates = np.flatnonzero(flips | gap_points) + 1
    crosses = [(0, first_is_max)]
    for i in candidates.tolist():
        if flips[i - 1]:
            crosses.append((i, bool(delta[i] > delta[i - 1])))
        else:
            previous = delta[crosses[-1][0]]
            if delta[i] * previous < 0:
                crosses.append((i, bool(delta[i] > previous)))
    crosses.append((len(gl) - 1, bool(delta[-1] > 0)))
    return crosses


def _extremes(gl: np.ndarray, crosses: list[tuple[int, bool]]) -> list[float]:
    """The peak or nadir between consecutive crossings, searched from the last extreme."""
    values: list[float] = []
    start = crosses[0][0]
    for (_, is_max), (end, _) in itertools.pairwise(crosses):
        window = gl[start : end + 1]
        position = int(np.nanargmax(window) if is_max else np.nanargmin(window))
        values.append(float(window[position]))
        start += position
    return values


def _mage_plus(extremes: list[float], sd: float) -> tuple[list[float], list[tuple[int, int]]]:
    """Upward excursions > SD (iglu's ``calculate_mage_plus``): heights and (nadir, peak)."""
    m = np.asarray(extremes)
    n = len(m)
    heights: list[float] = []
    pairs: list[tuple[int, int]] = []
    j = previous = 0
    while j < n:
        rise = m[j] - m[previous : j + 1]
        if rise.max() > sd:
            nadir = previous + int(np.argmax(rise))
            for k in range(j, n):
                if m[k] >= m[j]:
                    j = k
                if m[k] - m[j] < -sd or k == n - 1:
                    heights.append(float(m[j] - m[nadir]))
                    pairs.append((nadir, j))
                    previous = j = k
                    break
        else:
            j += 1
    return heights, pairs


def _mage_minus(extremes: list[float], sd: float) -> tuple[list[float], list[tuple[int, int]]]:
    """Downward excursions > SD (iglu's ``calculate_mage_minus``): heights and (peak, nadir)."""
    m = np.asarray(extremes)
    n = len(m)
    heights: list[float] = []
    pairs: list[tuple[int, int]] = []
    j = previous = 0
    while j < n:
        fall = m[j] - m[previous : j + 1]
        if fall.min() < -sd:
            peak = previous + int(np.argmin(fall))
            for k in range(j, n):
                if m[k] <= m[j]:
                    j = k
                if m[k] - m[j] > sd or k == n - 1:
                    heights.append(float(m[j] - m[peak]))
                    pairs.append((peak, j))
                    previous, j = j, k
                    break
        else:
            j += 1
    return heights, pairs
