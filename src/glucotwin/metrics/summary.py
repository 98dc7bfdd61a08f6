"""All CGM metrics of one person's record in one JSON-serialisable dictionary."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd

from glucotwin.data.model import Recording
from glucotwin.metrics.events import CONSENSUS_EVENTS, count_events
from glucotwin.metrics.mage import (
    MageAlgorithm,
    MageDirection,
    mage_mg_dl,
    mage_moving_average_mg_dl,
)
from glucotwin.metrics.ranges import gmi_percent, range_percentages
from glucotwin.metrics.readings import CgmReadings, cgm_readings
from glucotwin.metrics.risk_indices import adrr, gri, lbgi_hbgi
from glucotwin.metrics.sampling import detect_interval_min, regular_grid, wear
from glucotwin.metrics.variability import conga_mg_dl, j_index, modd_mg_dl, sd_mg_dl

METRIC_KEYS = (
    "subject", "readings", "days", "interval_min", "first_time", "last_time",
    "cgm_active_percent", "censored_below_readings", "censored_above_readings",
    "scan_readings_dropped",
    "mean_mg_dl", "sd_mg_dl", "cv_percent", "gmi_percent", "j_index",
    "tbr_below_54_percent", "tbr_below_70_percent", "tir_70_180_percent",
    "titr_70_140_percent", "tar_above_180_percent", "tar_above_250_percent",
    "lbgi", "hbgi", "adrr", "gri", "gri_hypo_component", "gri_hyper_component",
    "mage_mg_dl", "modd_mg_dl", "conga_1h_mg_dl",
    *(rule.name for rule in CONSENSUS_EVENTS),
)  # fmt: skip
"""Every key of :func:`compute_metrics`'s result, in the order of the result."""


def compute_metrics(
    data: Recording | pd.DataFrame,
    *,
    subject: str | None = None,
    interval_min: float | None = None,
    mage_algorithm: MageAlgorithm = "hysteresis",
    mage_direction: MageDirection = "service",
) -> dict[str, Any]:
    """The consensus CGM metrics and classic variability indices of one person.

    ``data`` is a :class:`~glucotwin.data.model.Recording` or a glucose table of the
    canonical schema; only CGM readings count (see :mod:`glucotwin.metrics.readings` for
    the selection: one subject, scans, repeated instants, censored values). With several
    subjects ``subject`` must name one. ``interval_min`` overrides the detected sensor
    interval. ``mage_algorithm`` and ``mage_direction`` choose how MAGE is computed
    (:mod:`glucotwin.metrics.mage`; the defaults follow Service 1970). Units are in the
    keys; a metric that cannot be computed from the data (e.g. an SD from one reading) is
    ``None``. Definitions and references: the modules :mod:`~glucotwin.metrics.ranges`,
    :mod:`~glucotwin.metrics.variability`, :mod:`~glucotwin.metrics.mage`,
    :mod:`~glucotwin.metrics.risk_indices`, :mod:`~glucotwin.metrics.events` and
    :mod:`~glucotwin.metrics.sampling`, and ``docs/metrics.md``.
    """
    readings = cgm_readings(data, subject=subject)
    result: dict[str, Any] = dict.fromkeys(METRIC_KEYS)
    result.update(
        subject=readings.subject,
        readings=len(readings),
        censored_below_readings=readings.censored_below,
        censored_above_readings=readings.censored_above,
        scan_readings_dropped=readings.scans_dropped,
    )
    if len(readings) == 0:
        return result
    glucose = readings.glucose_mg_dl
    mean = float(glucose.mean())
    sd = sd_mg_dl(glucose)
    percentages = range_percentages(glucose)
    lbgi, hbgi = lbgi_hbgi(glucose)
    result.update(
        first_time=_iso(readings, 0),
        last_time=_iso(readings, -1),
        mean_mg_dl=mean,
        sd_mg_dl=sd,
        cv_percent=None if sd is None else 100.0 * sd / mean,
        gmi_percent=gmi_percent(mean),
        j_index=None if sd is None else j_index(mean, sd),
        **percentages,
        lbgi=lbgi,
        hbgi=hbgi,
        adrr=adrr(glucose, readings.local_ns),
        **gri(percentages),
    )
    interval = interval_min if interval_min is not None else detect_interval_min(readings.time_ns)
    if interval is None:
        return _clean(result)
    worn = wear(readings, interval)
    grid = regular_grid(readings, interval)
    result.update(
        interval_min=float(interval),
        days=worn.days,
        cgm_active_percent=worn.active_percent,
        mage_mg_dl=(
            mage_mg_dl(grid, sd, mage_direction)
            if mage_algorithm == "hysteresis"
            else mage_moving_average_mg_dl(readings, mage_direction)
        ),
        modd_mg_dl=modd_mg_dl(grid),
        conga_1h_mg_dl=conga_mg_dl(grid, hours=1.0),
        **count_events(grid),
    )
    return _clean(result)


def _iso(readings: CgmReadings, position: int) -> str:
    """ISO 8601 local time of a reading, with its UTC offset where known."""
    local = pd.Timestamp(int(readings.local_ns[position]), unit="ns").to_pydatetime()
    offset = readings.utc_offset_min[position]
    if np.isnan(offset):
        return local.isoformat()
    return local.replace(tzinfo=dt.timezone(dt.timedelta(minutes=float(offset)))).isoformat()


def _clean(result: dict[str, Any]) -> dict[str, Any]:
    """Plain Python numbers, NaN and infinities as ``None`` (valid JSON)."""
    for key, value in result.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        result[key] = value
    return result
