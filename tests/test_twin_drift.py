"""The twin's drift monitor: calibrated bands pass, a changed person is flagged, bad input fails."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from glucotwin.data.model import Recording
from glucotwin.simulate import simulate
from glucotwin.twin import REPLAYBG_TWIN, twin_params
from glucotwin.twin.drift import (
    DriftReport,
    band_from_samples,
    binomial_upper_tail,
    check_drift,
    effective_sample_size,
    residual_autocorrelation,
    rolling_drift,
)
from glucotwin.twin.inputs import meal_windows

TRUTH = dict(
    Gb=125.0, SG=0.015, SI=1.2e-3, p2=0.012, kd=0.03, ka2=0.015, kempt=0.12, kabs=0.02,
    BW=75.0, u2ss=0.2,
)  # fmt: skip
MEALS = ((7 * 60 + 30, 50.0, 5.0), (12 * 60 + 30, 75.0, 7.0), (19 * 60, 80.0, 8.0))
"""(minute of the day, carbs g, bolus U), every day."""
DAY = 1440
NOISE_SD = 4.0
Z95 = 1.959963984540054
START = pd.Timestamp("2027-05-11 00:00", tz="UTC")


def _days(n_days: int):
    """Per-minute carbs (g), insulin (U, basal = u2ss) and meal windows of ``n_days``."""
    minutes = n_days * DAY
    carbs = np.zeros(minutes)
    insulin = np.full(minutes, TRUTH["u2ss"] * TRUTH["BW"] / 1000.0)
    for day in range(n_days):
        for minute, grams, units in MEALS:
            carbs[day * DAY + minute] += grams
            insulin[day * DAY + minute] += units
    return carbs, insulin, meal_windows(START, minutes)


def _glucose(n_days: int, changed_from_day: int | None = None, si_factor: float = 1.0):
    """Twin glucose (mg/dL, per minute) under TRUTH, simulated day by day (one compilation);
    from day ``changed_from_day`` (0-based) on, the person's SI is ``si_factor`` times
    TRUTH's (the state carries over)."""
    carbs, insulin, window = _days(n_days)
    same, changed = twin_params(**TRUTH), twin_params(**{**TRUTH, "SI": si_factor * TRUTH["SI"]})
    state, glucose = None, []
    for day in range(n_days):
        params = same if changed_from_day is None or day < changed_from_day else changed
        today = slice(day * DAY, (day + 1) * DAY)
        sim = simulate(params, carbs[today], insulin[today], state, model=REPLAYBG_TWIN,
                       extra_inputs=window[today], substeps=1, meal_substeps=1)  # fmt: skip
        state = sim.final_state
        glucose.append(np.asarray(sim.glucose_mg_dl))
    return np.concatenate(glucose)


@pytest.fixture(scope="module")
def week():
    """Seven days: the twin's own band (TRUTH, noise SD 4 mg/dL, 95 %) at 5-min readings,
    readings of the unchanged person and of one whose SI halves from day 6 (index 5)."""
    minutes = np.arange(0, 7 * DAY, 5)
    model = _glucose(7)[minutes]
    changed = _glucose(7, changed_from_day=5, si_factor=0.5)[minutes]
    noise = np.random.default_rng(0).normal(0.0, NOISE_SD, minutes.size)
    band = (model, model - Z95 * NOISE_SD, model + Z95 * NOISE_SD)
    return minutes, model + noise, changed + noise, band


def test_the_twins_own_data_are_not_flagged(week):
    minutes, same, _, band = week
    reports = rolling_drift(minutes, same, *band, level=0.95)
    assert len(reports) == 7 and all(isinstance(r, DriftReport) for r in reports)
    assert not any(r.drifting for r in reports), [r.reason for r in reports]
    assert all(r.n_readings == 288 for r in reports)
    assert all(abs(r.coverage - 0.95) < 0.04 for r in reports)
    assert all(r.rmse_mg_dl == pytest.approx(NOISE_SD, rel=0.15) for r in reports)
    assert all(r.reason.startswith("consistent") for r in reports)


def test_halved_insulin_sensitivity_is_flagged_from_the_day_it_began(week):
    minutes, _, changed, band = week
    reports = rolling_drift(minutes, changed, *band, level=0.95, origin_min=0)
    assert [r.drifting for r in reports] == [False] * 5 + [True] * 2
    for r in reports[5:]:
        assert r.coverage < 0.8 and r.bias_mg_dl > 5.0 and r.bias_p_value < 1e-6
        assert r.reason.startswith("drifting")
        # Estimated from a drifting window, rho is high (a smooth offset): few effective
        # readings, so the coverage test alone stays cautious.
        assert r.lag1_autocorrelation > 0.9 and r.n_effective < 10
    assert reports[5].start_minute == 5 * DAY and reports[5].end_minute == 6 * DAY
    last_day = check_drift(minutes, changed, *band, window_min=DAY)
    assert last_day.drifting and last_day.n_readings == 288


def test_a_reference_rho_from_fitting_days_sharpens_the_coverage_test(week):
    minutes, _, changed, band = week
    before = minutes < 5 * DAY
    rho = residual_autocorrelation(minutes[before], changed[before], *(b[before] for b in band))
    assert 0.0 <= rho < 0.2  # white CGM noise around the twin's own glucose
    reports = rolling_drift(minutes, changed, *band, origin_min=0, rho=rho)
    assert [r.drifting for r in reports] == [False] * 5 + [True] * 2
    for r in reports[5:]:
        assert r.lag1_autocorrelation == rho and r.n_effective > 200
        assert r.coverage_p_value < 1e-20


def test_a_constant_bias_is_flagged_by_the_bias_test(week):
    minutes, same, _, band = week
    shifted = same + 3.0  # 0.75 noise SDs: coverage stays near 88 %, the mean moves
    report = check_drift(minutes, shifted, *band, window_min=DAY)
    assert report.drifting and report.bias_p_value < 1e-6
    assert report.bias_mg_dl == pytest.approx(3.0, abs=0.6)
    assert "mean residual" in report.reason


def _ar1(rng, n: int, rho: float) -> np.ndarray:
    """A stationary AR(1) series of unit variance."""
    e = rng.standard_normal(n) * math.sqrt(1.0 - rho**2)
    x = np.empty(n)
    x[0] = rng.standard_normal()
    for t in range(1, n):
        x[t] = rho * x[t - 1] + e[t]
    return x


def test_false_alarms_stay_near_alpha_under_autocorrelated_errors():
    """A calibrated band with AR(1) residuals (rho 0.95 at 5 min, a 100-min memory): the
    n_eff correction keeps false alarms near alpha, the i.i.d. binomial would not."""
    rng = np.random.default_rng(1)
    minutes = np.arange(288) * 5.0
    zeros = np.zeros(288)
    flagged = naive = 0
    trials = 200
    for _ in range(trials):
        y = _ar1(rng, 288, 0.95)
        report = check_drift(minutes, y, zeros, zeros - Z95, zeros + Z95, alpha=0.01)
        flagged += report.drifting
        misses = round((1.0 - report.coverage) * 288)
        naive += binomial_upper_tail(misses, 288, 0.05) < 0.005
        assert report.lag1_autocorrelation > 0.7
    assert flagged / trials <= 0.05
    assert naive / trials > 0.1  # more than ten times alpha


def test_white_noise_false_alarm_rate_is_at_most_alpha():
    rng = np.random.default_rng(2)
    minutes = np.arange(288) * 5.0
    zeros = np.zeros(288)
    reports = [check_drift(minutes, rng.standard_normal(288), zeros, zeros - Z95, zeros + Z95)
               for _ in range(300)]  # fmt: skip
    assert sum(r.drifting for r in reports) / 300 <= 0.02
    assert np.median([r.n_effective for r in reports]) > 250


@pytest.mark.parametrize(("k", "n", "p"), [(1, 10, 0.05), (3, 20, 0.05), (5, 5, 0.3), (7, 50, 0.1)])
def test_binomial_tail_equals_the_exact_sum_for_integers(k, n, p):
    exact = sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))
    assert binomial_upper_tail(k, n, p) == pytest.approx(exact, rel=1e-10)
    assert binomial_upper_tail(0, n, p) == 1.0
    assert binomial_upper_tail(k + 0.5, n + 0.5, p) < binomial_upper_tail(k, n + 0.5, p)


def test_effective_sample_size():
    assert effective_sample_size(100, 0.0) == 100
    assert effective_sample_size(100, -0.5) == 100  # negative rho: no inflation
    assert effective_sample_size(100, 0.9) == pytest.approx(100 * 0.1 / 1.9)


def test_band_from_samples_matches_the_gaussian_quantiles():
    samples = np.random.default_rng(3).normal(100.0, 10.0, size=(20_000, 3))
    median, lower, upper = band_from_samples(samples, level=0.9)
    np.testing.assert_allclose(median, 100.0, atol=0.3)
    np.testing.assert_allclose(upper - median, 16.449, atol=0.4)
    np.testing.assert_allclose(median - lower, 16.449, atol=0.4)
    with pytest.raises(ValueError, match="n_draws"):
        band_from_samples(samples[:1])


def test_too_few_readings_are_not_judged():
    minutes = np.arange(10) * 5.0
    y = np.full(10, 300.0)  # far outside the band, but only 50 min of data
    report = check_drift(minutes, y, np.full(10, 100.0), np.full(10, 90.0), np.full(10, 110.0))
    assert not report.drifting and report.n_readings == 10
    assert "not judged" in report.reason and "fewer than 36" in report.reason
    assert report.coverage == 0.0 and math.isnan(report.coverage_p_value)
    empty = check_drift([], [], [], [], [])
    assert not empty.drifting and empty.n_readings == 0 and math.isnan(empty.rmse_mg_dl)


def test_nan_readings_are_dropped_but_a_nan_band_is_an_error(week):
    minutes, same, _, (median, lower, upper) = week
    day = slice(0, 288)
    y = same[day].copy()
    y[::4] = np.nan
    report = check_drift(minutes[day], y, median[day], lower[day], upper[day])
    assert report.n_readings == 288 - 72 and not report.drifting
    broken = median[day].copy()
    broken[1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        check_drift(minutes[day], same[day], broken, lower[day], upper[day])
    broken[1] = np.nan
    y[1] = np.nan  # no reading there: the band there does not matter
    check_drift(minutes[day], y, broken, lower[day], upper[day])


def test_bad_input_raises():
    m, y = np.arange(40) * 5.0, np.full(40, 100.0)
    with pytest.raises(ValueError, match="one length"):
        check_drift(m, y[:-1], y, y - 10, y + 10)
    with pytest.raises(ValueError, match="one length"):
        rolling_drift(m, y, y, y - 10, (y + 10)[:, None])
    with pytest.raises(ValueError, match="level"):
        check_drift(m, y, y, y - 10, y + 10, level=95)
    with pytest.raises(ValueError, match="lower <= median <= upper"):
        check_drift(m, y, y, y + 10, y - 10)
    with pytest.raises(ValueError, match="finite"):
        check_drift(np.full(40, np.nan), y, y, y - 10, y + 10)
    with pytest.raises(ValueError, match="positive"):
        rolling_drift(m, y, y, y - 10, y + 10, window_min=0)


def test_rolling_windows_follow_the_origin_and_step():
    minutes = np.arange(0, 3 * DAY, 5) + 600.0  # starts at 10:00
    y = np.full(minutes.size, 100.0)
    reports = rolling_drift(minutes, y, y, y - 10, y + 10, origin_min=0)
    assert [r.start_minute for r in reports] == [0, DAY, 2 * DAY, 3 * DAY]
    assert [r.n_readings for r in reports] == [168, 288, 288, 120]
    overlapping = rolling_drift(minutes, y, y, y - 10, y + 10, window_min=DAY, step_min=DAY / 2)
    assert overlapping[0].start_minute == 600.0 - DAY / 2
    assert all(r.end_minute - r.start_minute == DAY for r in overlapping)
    assert rolling_drift([], [], [], [], []) == []


def _recording(minutes, cgm, n_days: int) -> Recording:
    """A Recording of ``n_days`` of the synthetic inputs (basal = u2ss) and CGM readings."""
    at = lambda m: START + pd.to_timedelta(np.asarray(m, float), unit="min")  # noqa: E731
    meals = [(d * DAY + m, g, u) for d in range(n_days) for m, g, u in MEALS]
    glucose = pd.DataFrame({"time": at(minutes), "glucose_mg_dl": cgm, "subject": "s"})
    carbs = pd.DataFrame({"time": at([m for m, _, _ in meals]),
                          "carbs_g": [g for _, g, _ in meals], "subject": "s"})  # fmt: skip
    bolus = pd.DataFrame({"time": at([m for m, _, _ in meals]), "event": "bolus",
                          "delivery": "normal", "units_u": [u for _, _, u in meals]})  # fmt: skip
    basal = pd.DataFrame({"time": at([0]), "event": "basal", "delivery": "scheduled",
                          "rate_u_per_h": [TRUTH["u2ss"] * TRUTH["BW"] * 60 / 1000]})  # fmt: skip
    insulin = pd.concat([bolus, basal], ignore_index=True).assign(subject="s")
    meta = {
        "patient_info": {"body_weight_kg": TRUTH["BW"], "u2ss_mu_per_kg_per_min": TRUTH["u2ss"]}
    }
    return Recording.build(glucose=glucose, insulin=insulin, carbs=carbs, meta=meta)


@pytest.mark.slow
def test_fitted_twin_band_passes_its_own_days_and_flags_halved_si():
    """End to end: fit the twin on 2 synthetic days, replay 4 days with its predictive band;
    the person's SI halves on day 3. Days 1-2 pass, days 3-4 are flagged."""
    from glucotwin.twin.posterior import fit_posterior, predictive_band

    n_days = 4
    minutes = np.arange(0, n_days * DAY, 5)
    glucose = _glucose(n_days, changed_from_day=2, si_factor=0.5)[minutes]
    cgm = glucose + np.random.default_rng(4).normal(0.0, NOISE_SD, minutes.size)
    fit_days = minutes < 2 * DAY
    fit, _ = fit_posterior(_recording(minutes[fit_days], cgm[fit_days], 2), seed=0)
    carbs, insulin, _ = _days(n_days)
    band = predictive_band(fit, carbs, insulin, n=200, seed=0, level=0.95)
    at = minutes.astype(int)
    reports = rolling_drift(minutes, cgm, band.median[at], band.lower[at], band.upper[at],
                            origin_min=0)  # fmt: skip
    assert [r.drifting for r in reports] == [False, False, True, True], [r.reason for r in reports]
