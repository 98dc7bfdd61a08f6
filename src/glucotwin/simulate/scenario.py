"""Scenarios as per-minute input arrays: the reference open-loop basal-bolus day, sparse rows.

Conventions are those of ``shared/data/reference/simglucose/README.md``: minute 0 is 00:00 of
day 1, entry m of an input array is what is eaten (g) or delivered (U, basal included) during
minute [m, m+1). Everything here is pure (arrays in, arrays out); reading the inputs CSV is
:func:`glucotwin.data.sim_inputs.read_inputs_csv`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from glucotwin.simulate.engine import GlucoseSummary, simulate

MINUTES_PER_DAY = 1440

STANDARD_DAY_MEALS: tuple[tuple[int, float], ...] = ((420, 50.0), (720, 70.0), (1110, 80.0),
                                                      (1320, 15.0))  # fmt: skip
"""(minute of the day, carbs g) of the reference scenario S1: 07:00, 12:00, 18:30, 22:00."""

SCENARIOS = ("standard",)
"""Scenario names the CLI accepts."""


class ScenarioInputs(NamedTuple):
    """Per-minute inputs of a batch: ``carbs_g_per_min`` has shape ``[minutes]`` (the same
    meals for every patient) and ``insulin_u_per_min`` shape ``[patients, minutes]``; pass
    both straight to :func:`glucotwin.simulate.simulate`."""

    carbs_g_per_min: np.ndarray
    insulin_u_per_min: np.ndarray


def standard_days(
    basal_u_per_min: np.ndarray, carb_ratio_g_per_u: np.ndarray, days: int = 1
) -> ScenarioInputs:
    """The reference open-loop basal-bolus day (S1) repeated for ``days`` days.

    Each patient gets its own constant basal (U/min, e.g. ``u2ss*BW/6000`` or
    ``TherapySettings.basal_u_per_h / 60``) every minute and, in each meal minute, a bolus of
    carbs/CR units on top (CR in g/U); no correction boluses. With ``days=1`` and the
    reference cohort's basal and CR this rebuilds the ``S1_inputs_<patient>.csv`` files.
    """
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    basal = np.atleast_1d(np.asarray(basal_u_per_min, dtype=np.float64))
    ratio = np.atleast_1d(np.asarray(carb_ratio_g_per_u, dtype=np.float64))
    if basal.shape != ratio.shape or basal.ndim != 1:
        raise ValueError(f"basal {basal.shape} and carb ratio {ratio.shape} must be equal 1-D")
    if np.any(~np.isfinite(basal) | (basal < 0)) or np.any(~np.isfinite(ratio) | (ratio <= 0)):
        raise ValueError("basal must be finite and >= 0 U/min and carb ratio finite and > 0 g/U")
    minutes = days * MINUTES_PER_DAY
    carbs = np.zeros(minutes)
    for day in range(days):
        for minute, grams in STANDARD_DAY_MEALS:
            carbs[day * MINUTES_PER_DAY + minute] = grams
    insulin = basal[:, None] + carbs[None, :] / ratio[:, None]
    return ScenarioInputs(carbs, insulin)


def dense_inputs(
    minute: np.ndarray,
    carbs_g: np.ndarray,
    insulin_u: np.ndarray,
    minutes: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sparse rows (minute, carbs g, insulin U) to dense per-minute arrays of carbs and insulin.

    A minute without a row gets zero carbs and zero insulin. ``minutes`` sets the length
    (default: last minute + 1). Minutes must be distinct, >= 0 and below the length; amounts
    finite and >= 0 (checked here as ``ValueError``; the CSV reader reports file and line).
    """
    minute = np.asarray(minute, dtype=np.int64)
    carbs_g = np.asarray(carbs_g, dtype=np.float64)
    insulin_u = np.asarray(insulin_u, dtype=np.float64)
    if not minute.shape == carbs_g.shape == insulin_u.shape or minute.ndim != 1:
        raise ValueError("minute, carbs_g and insulin_u must be 1-D arrays of equal length")
    length = (int(minute.max()) + 1 if minute.size else 0) if minutes is None else minutes
    if minute.size and (minute.min() < 0 or minute.max() >= length):
        raise ValueError(f"minutes must lie in [0, {length})")
    if np.unique(minute).size != minute.size:
        raise ValueError("minutes must be distinct")
    for name, values in (("carbs_g", carbs_g), ("insulin_u", insulin_u)):
        if np.any(~np.isfinite(values) | (values < 0)):
            raise ValueError(f"{name} must be finite and >= 0")
    carbs = np.zeros(length)
    insulin = np.zeros(length)
    carbs[minute] = carbs_g
    insulin[minute] = insulin_u
    return carbs, insulin


def simulate_standard_days(cohort, days: int, **options) -> GlucoseSummary:
    """Run every patient of a :class:`~glucotwin.physiology.VirtualCohort` through
    :func:`standard_days` on its own therapy (basal ``basal_u_per_h / 60`` U/min, its CR) from
    its ``x0``, in one summary-only batch (``record="none"``: memory does not grow with the
    days). ``options`` go to :func:`glucotwin.simulate.simulate`."""
    basal = np.asarray(cohort.therapy.basal_u_per_h, np.float64) / 60.0
    inputs = standard_days(basal, np.asarray(cohort.therapy.carb_ratio_g_per_u), days)
    result = simulate(cohort.params, *inputs, cohort.x0, record="none", **options)
    return jax.tree.map(np.asarray, result.summary)


def summary_columns(summary: GlucoseSummary) -> dict[str, np.ndarray]:
    """Per-patient glucose metrics of a :class:`GlucoseSummary` (mg/dL; percent of minutes):
    mean, SD, time in 70-180, below 70 and 54, above 180 and 250, minimum and maximum."""
    percent = lambda count: 100.0 * np.asarray(summary.fraction(count))  # noqa: E731
    return {
        "mean_mg_dl": np.asarray(summary.mean_mg_dl),
        "sd_mg_dl": np.asarray(summary.sd_mg_dl),
        "tir_70_180_percent": percent(summary.in_70_180),
        "tbr_below_70_percent": percent(summary.below_70),
        "tbr_below_54_percent": percent(summary.below_54),
        "tar_above_180_percent": percent(summary.above_180),
        "tar_above_250_percent": percent(summary.above_250),
        "min_mg_dl": np.asarray(summary.min_mg_dl),
        "max_mg_dl": np.asarray(summary.max_mg_dl),
    }
