"""Hypo- and hyperglycaemic events (episodes) by the 2023 consensus definitions.

Battelino et al. 2023, Lancet Diabetes Endocrinol 11:42, "Continuous glucose monitoring and
metrics for clinical trials: an international consensus statement", Table 3:

- a hypoglycaemic event of level 1 (level 2) starts with at least 15 consecutive minutes
  below 70 (54) mg/dL and ends with at least 15 consecutive minutes at or above 70 (54);
- an extended hypoglycaemic event: more than 120 consecutive minutes below 70 mg/dL, ending
  like a level-1 event;
- a hyperglycaemic event of level 1 (level 2) starts with at least 15 consecutive minutes
  above 180 (250) mg/dL and ends with at least 15 consecutive minutes at or below it.

Level-2 events are counted on their own threshold, so a level-2 event also lies within a
level-1 event (as iglu's ``episode_calculation`` counts them).

Minutes are counted on the regular grid (:func:`glucotwin.metrics.sampling.regular_grid`):
each slot stands for one sensor interval, so "15 minutes" is 3 slots at 5 min and 1 slot at
15 min (a duration that is not a multiple of the interval is rounded up to the next slot).
Between a qualifying start and the next qualifying end, shorter dips and rises belong to the
event. A gap of the grid (no reading within 45 min) cuts the series: an event open at a gap
ends there, and a new one may start after it, because nobody knows what happened in
between.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from glucotwin.metrics.sampling import Grid

EVENT_DURATION_MIN = 15.0
EXTENDED_HYPO_DURATION_MIN = 120.0


@dataclass(frozen=True)
class EventRule:
    """One kind of event: glucose below (``"hypo"``) or above (``"hyper"``) a threshold.

    It starts after ``start_min`` minutes beyond the threshold (more than ``start_min`` when
    ``strictly_longer``) and ends after ``end_min`` minutes back at or within it.
    """

    name: str
    kind: Literal["hypo", "hyper"]
    threshold_mg_dl: float
    start_min: float = EVENT_DURATION_MIN
    end_min: float = EVENT_DURATION_MIN
    strictly_longer: bool = False


CONSENSUS_EVENTS = (
    EventRule("hypo_events_level1", "hypo", 70.0),
    EventRule("hypo_events_level2", "hypo", 54.0),
    EventRule(
        "hypo_events_extended", "hypo", 70.0, EXTENDED_HYPO_DURATION_MIN, strictly_longer=True
    ),
    EventRule("hyper_events_level1", "hyper", 180.0),
    EventRule("hyper_events_level2", "hyper", 250.0),
)


def _slots(minutes: float, interval_min: float, strictly_longer: bool) -> int:
    """Grid slots that make at least (or, strictly, more than) ``minutes``."""
    if strictly_longer:
        return int(np.floor(minutes / interval_min)) + 1
    return max(1, int(np.ceil(minutes / interval_min - 1e-9)))


def event_slots(grid: Grid, rule: EventRule) -> np.ndarray:
    """Events as slot index pairs ``[start, end)``, shape (n, 2), in time order."""
    values = grid.glucose_mg_dl
    valid = ~np.isnan(values)
    if not valid.any():
        return np.empty((0, 2), dtype=np.int64)
    with np.errstate(invalid="ignore"):
        beyond = (
            values < rule.threshold_mg_dl
            if rule.kind == "hypo"
            else (values > rule.threshold_mg_dl)
        )
    # Runs of equal state; NaN slots form runs of their own (state 2) that cut the series.
    state = np.where(valid, beyond.astype(np.int8), 2)
    change = np.flatnonzero(np.diff(state)) + 1
    run_start = np.concatenate(([0], change))
    run_end = np.concatenate((change, [len(state)]))
    run_state = state[run_start]
    run_length = run_end - run_start
    start_slots = _slots(rule.start_min, grid.interval_min, rule.strictly_longer)
    end_slots = _slots(rule.end_min, grid.interval_min, False)
    opens = (run_state == 1) & (run_length >= start_slots)
    closes = (run_state == 0) & (run_length >= end_slots)
    cut = run_state == 2
    # Walk the qualifying runs in order: an opening run starts an event unless one is
    # already open; a closing run or a gap ends the open event.
    marks = np.flatnonzero(opens | closes | cut)
    events: list[tuple[int, int]] = []
    open_at = -1
    for r in marks.tolist():
        if opens[r]:
            if open_at < 0:
                open_at = int(run_start[r])
        elif open_at >= 0:
            events.append((open_at, int(run_start[r])))
            open_at = -1
    if open_at >= 0:
        events.append((open_at, len(values)))
    return np.asarray(events, dtype=np.int64).reshape(-1, 2)


def count_events(grid: Grid) -> dict[str, int]:
    """Number of events of each consensus kind (:data:`CONSENSUS_EVENTS`)."""
    return {rule.name: len(event_slots(grid, rule)) for rule in CONSENSUS_EVENTS}


def event_table(grid: Grid, rule: EventRule) -> pd.DataFrame:
    """Events of one kind: ``start``, ``end`` (UTC), ``duration_min`` and the extreme glucose.

    An event ends at the first slot of the run that closes it (or at the end of the
    stretch of data it lies in); ``extreme_mg_dl`` is its lowest (hypo) or highest (hyper)
    grid value.
    """
    pairs = event_slots(grid, rule)
    times = grid.time_ns
    values = grid.glucose_mg_dl
    pick = np.nanmin if rule.kind == "hypo" else np.nanmax
    end_ns = np.array([times[e - 1] + grid.step_ns for _, e in pairs], dtype=np.int64)
    return pd.DataFrame(
        {
            "start": pd.to_datetime(times[pairs[:, 0]], unit="ns", utc=True),
            "end": pd.to_datetime(end_ns, unit="ns", utc=True),
            "duration_min": (end_ns - times[pairs[:, 0]]) / 60e9,
            "extreme_mg_dl": [float(pick(values[s:e])) for s, e in pairs],
        }
    )
