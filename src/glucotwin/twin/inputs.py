"""One subject's :class:`~glucotwin.data.model.Recording` as per-minute model inputs and CGM
observations: what twin identification and replay consume.

Minute m of the grid is [start + m, start + m + 1) min, the engine's convention
(:func:`glucotwin.simulate.simulate`): carbs eaten (g) and insulin delivered (U) in that
minute. The grid starts at the minute of the subject's earliest CGM reading, insulin or carb
event and ends with the minute of the last one.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from glucotwin.data.model import Recording
from glucotwin.twin.model import ROUTES, meal_code

MINUTE = pd.Timedelta(minutes=1)


class MinuteGrid(NamedTuple):
    """Per-minute inputs and CGM observations of one subject.

    ``start`` is the UTC instant of minute 0 (floating local time for zone-less sources).
    ``carbs_g_per_min``, ``insulin_u_per_min`` (basal and boluses) and ``basal_u_per_min``
    (its basal part) have one entry per minute. ``cgm_minute`` (int) and ``cgm_mg_dl`` are
    the CGM readings, sorted by minute (sensor limits kept for censored readings).
    ``meal_window`` is each minute's meal code (:func:`glucotwin.twin.model.meal_code`), the
    twin's extra input: its ReplayBG time window of the local clock (0 = breakfast
    04:00-11:00, 1 = lunch 11:00-17:00, 2 = dinner 17:00-04:00), which picks insulin
    sensitivity, plus 3 × the meal-type label of carbs eaten in that minute, which routes them
    (:data:`ROUTE_OF_MEAL_TYPE`; 0 for none).
    ``utc_offset_min`` is the offset of that local clock (the first CGM reading's; 0 for
    floating local time).
    """

    start: pd.Timestamp
    carbs_g_per_min: np.ndarray
    insulin_u_per_min: np.ndarray
    basal_u_per_min: np.ndarray
    cgm_minute: np.ndarray
    cgm_mg_dl: np.ndarray
    meal_window: np.ndarray
    utc_offset_min: int = 0

    @property
    def minutes(self) -> int:
        return len(self.carbs_g_per_min)

    @property
    def start_local(self) -> pd.Timestamp:
        """Local wall-clock time of minute 0 (naive)."""
        return (self.start + pd.Timedelta(minutes=self.utc_offset_min)).tz_localize(None)


def _single_subject(recording: Recording) -> None:
    subjects = recording.subjects
    if len(subjects) > 1:
        raise ValueError(
            f"recording holds {len(subjects)} subjects ({', '.join(subjects[:3])}, ...): "
            "select one with Recording.for_subject"
        )


WINDOW_STARTS_H = (4, 11, 17)
"""Local hours at which ReplayBG's breakfast, lunch and dinner windows begin."""


def meal_windows(start: pd.Timestamp, minutes: int, utc_offset_min: int = 0) -> np.ndarray:
    """Window index (0 B, 1 L, 2 D; float, for the engine) of each minute of a grid that
    starts at ``start`` (UTC) with the local clock ``utc_offset_min`` minutes east of UTC."""
    local = start + pd.Timedelta(minutes=utc_offset_min)
    minute_of_day = (local.hour * 60 + local.minute + np.arange(minutes)) % (24 * 60)
    breakfast, lunch, dinner = (60 * h for h in WINDOW_STARTS_H)
    window = np.full(minutes, 2.0)
    window[(minute_of_day >= breakfast) & (minute_of_day < lunch)] = 0.0
    window[(minute_of_day >= lunch) & (minute_of_day < dinner)] = 1.0
    return window


DAY_START_H = WINDOW_STARTS_H[0]
"""A twin's day runs from 04:00 to 04:00 local time (ReplayBG's day: breakfast window first)."""


def day_index(start: pd.Timestamp, minutes: int, utc_offset_min: int = 0) -> np.ndarray:
    """Twin day (0, 1, ...; days start at :data:`DAY_START_H` local time) of each minute of a
    grid that starts at ``start`` (UTC, or local when ``utc_offset_min`` is 0 and the times
    are floating) with the local clock ``utc_offset_min`` minutes east of UTC."""
    local = start + pd.Timedelta(minutes=utc_offset_min)
    first = local.hour * 60 + local.minute - 60 * DAY_START_H
    return (first + np.arange(minutes)) // (24 * 60) - first // (24 * 60)


ROUTE_OF_MEAL_TYPE = {
    "breakfast": "B",
    "lunch": "L",
    "dinner": "D",
    "snack": "S",
    "hypo_correction": "S",
    "hypotreatment": "S",
}
"""Absorption route (:data:`glucotwin.twin.model.ROUTES`) of each ``meal_type`` label; carbs
with another label or none take the route of their time window."""


def meal_labels(meal_types: pd.Series) -> np.ndarray:
    """Route label of each carb event (0: none, route by window; 1 + index in ROUTES)."""
    routes = meal_types.astype("string").str.lower().map(ROUTE_OF_MEAL_TYPE)
    return np.array([0 if pd.isna(r) else 1 + ROUTES.index(r) for r in routes], dtype=int)


def _minute_index(times: pd.Series, start: pd.Timestamp) -> np.ndarray:
    return ((times - start) // MINUTE).to_numpy(dtype=np.int64)


def minute_grid(recording: Recording) -> MinuteGrid:
    """Turn one subject's recording into a :class:`MinuteGrid`.

    Carbs and normal boluses fall in the minute of their time stamp; an extended or dual bolus
    delivers ``units_u - extended_units_u`` then, and ``extended_units_u`` evenly over
    ``duration_min``. A basal rate (U/h; a suspension is 0; an event without a rate is skipped)
    holds until the next basal event; one with ``duration_min`` holds that long and then the
    last rate without a duration (the scheduled one) resumes. Before the first basal event the
    basal is 0. Fingersticks and rows without a value are ignored. The local clock of the meal
    windows is the first CGM reading's ``utc_offset_min`` (none: the times are local already).
    Raises ``ValueError`` for a recording of several subjects or without CGM readings.
    """
    _single_subject(recording)
    cgm = recording.cgm()
    cgm = cgm[cgm["glucose_mg_dl"].notna()]
    if cgm.empty:
        raise ValueError("the recording has no CGM readings")
    insulin, carbs = recording.insulin, recording.carbs
    carbs = carbs[carbs["carbs_g"].notna()]
    times = pd.concat([cgm["time"], insulin["time"], carbs["time"]])
    start = times.min().floor("min")
    minutes = int((times.max() - start) // MINUTE) + 1

    carbs_g = np.zeros(minutes)
    np.add.at(carbs_g, _minute_index(carbs["time"], start), carbs["carbs_g"].to_numpy(float))

    bolus_u = np.zeros(minutes)
    boluses = insulin[insulin["event"] == "bolus"]
    total = boluses["units_u"].fillna(0.0).to_numpy(float)
    extended = np.minimum(boluses["extended_units_u"].fillna(0.0).to_numpy(float), total)
    duration = boluses["duration_min"].fillna(0.0).to_numpy(float)
    first = _minute_index(boluses["time"], start)
    spread = (extended > 0) & (duration >= 1)
    np.add.at(bolus_u, first, np.where(spread, total - extended, total))
    for m0, units, length in zip(first[spread], extended[spread], duration[spread], strict=True):
        length = round(length)
        stop = min(m0 + length, minutes)
        bolus_u[m0:stop] += units / length

    basal = np.zeros(minutes)
    events = insulin[insulin["event"] == "basal"]
    # A rate left missing (an importer's flagged outlier, a percent-only temp basal) says
    # nothing about delivery: the previous rate holds. A suspension delivers nothing.
    events = events[events["rate_u_per_h"].notna() | (events["delivery"] == "suspend")]
    event_minute = _minute_index(events["time"], start)
    rate = events["rate_u_per_h"].fillna(0.0).to_numpy(float) / 60.0
    rate[(events["delivery"] == "suspend").to_numpy(bool)] = 0.0
    length = events["duration_min"].to_numpy(float, na_value=np.nan)
    scheduled = 0.0
    for i, m0 in enumerate(event_minute):
        stop = event_minute[i + 1] if i + 1 < len(event_minute) else minutes
        if np.isnan(length[i]):
            scheduled = rate[i]
            basal[m0:stop] = rate[i]
        else:
            end = min(stop, m0 + round(length[i]))
            basal[m0:end] = rate[i]
            basal[end:stop] = scheduled

    offsets = cgm["utc_offset_min"].dropna()
    utc_offset_min = int(offsets.iloc[0]) if len(offsets) else 0
    window = meal_windows(start, minutes, utc_offset_min)
    label = np.zeros(minutes, dtype=int)
    grams = carbs["carbs_g"].to_numpy(float)
    labelled = zip(_minute_index(carbs["time"], start), meal_labels(carbs["meal_type"]), grams,
                   strict=True)  # fmt: skip
    for m, lab, g in sorted(labelled, key=lambda row: row[2]):  # the most grams win
        if g > 0:
            label[m] = lab
    order = np.argsort(_minute_index(cgm["time"], start), kind="stable")
    return MinuteGrid(
        start=start,
        carbs_g_per_min=carbs_g,
        insulin_u_per_min=bolus_u + basal,
        basal_u_per_min=basal,
        cgm_minute=_minute_index(cgm["time"], start)[order],
        cgm_mg_dl=cgm["glucose_mg_dl"].to_numpy(float)[order],
        meal_window=meal_code(window, label).astype(float),
        utc_offset_min=utc_offset_min,
    )


def body_weight_kg(recording: Recording, default: float = 70.0) -> float:
    """Body weight from ``meta["patient_info"]["body_weight_kg"]`` (ReplayBG's
    ``patient_info.csv``), else ``default`` kg."""
    info = recording.meta.get("patient_info") or {}
    value = info.get("body_weight_kg")
    return float(value) if value is not None else default


def basal_u2ss_mu_per_kg_per_min(recording: Recording, grid: MinuteGrid, bw_kg: float) -> float:
    """The steady-state basal insulin u2ss, mU/(kg·min): ReplayBG's ``u2ss`` from
    ``meta["patient_info"]`` when present, else the basal rate at the grid start, else the
    mean basal over the grid."""
    info = recording.meta.get("patient_info") or {}
    value = info.get("u2ss_mu_per_kg_per_min")
    if value is not None:
        return float(value)
    rate = grid.basal_u_per_min[0] if grid.basal_u_per_min[0] > 0 else grid.basal_u_per_min.mean()
    return float(rate) * 1000.0 / bw_kg
