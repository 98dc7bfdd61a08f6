"""The twin's ensemble Kalman filter on data from the twin itself, with known truth."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from glucotwin.simulate import simulate
from glucotwin.twin import REPLAYBG_TWIN, steady_state, twin_params
from glucotwin.twin.filter import estimate, init_filter, predict, step, update
from glucotwin.twin.inputs import meal_windows

TRUTH = dict(
    Gb=125.0, SG=0.015, SI=1.2e-3, p2=0.012, kd=0.03, ka2=0.015, kempt=0.12, kabs=0.02,
    BW=75.0, u2ss=0.2,
)  # fmt: skip
MEALS = ((7 * 60 + 30, 50.0, 5.0), (12 * 60 + 30, 75.0, 7.0), (19 * 60, 80.0, 8.0))
DAY = 24 * 60
NOISE_SD = 4.0
SI_STEP = 1.3
"""Day 2's insulin sensitivity relative to day 1's (the fitted value)."""


def _two_days():
    """Per-minute carbs, insulin and windows, and noisy CGM every 5 min of two days
    simulated by the twin: TRUTH on day 1, SI x 1.3 on day 2."""
    basal_u_per_min = TRUTH["u2ss"] * TRUTH["BW"] / 1000.0
    carbs, insulin = np.zeros(2 * DAY), np.full(2 * DAY, basal_u_per_min)
    for day in range(2):
        for minute, grams, units in MEALS:
            carbs[day * DAY + minute] += grams
            insulin[day * DAY + minute] += units
    window = meal_windows(pd.Timestamp("2027-05-11", tz="UTC"), 2 * DAY)
    options = dict(model=REPLAYBG_TWIN, substeps=1, meal_substeps=1)
    day1 = simulate(twin_params(**TRUTH), carbs[:DAY], insulin[:DAY], extra_inputs=window[:DAY],
                    **options)  # fmt: skip
    day2_params = twin_params(**{**TRUTH, "SI": SI_STEP * TRUTH["SI"]})
    day2 = simulate(day2_params, carbs[DAY:], insulin[DAY:], day1.final_state,
                    extra_inputs=window[DAY:], **options)  # fmt: skip
    glucose = np.concatenate([day1.glucose_mg_dl, day2.glucose_mg_dl])  # row m: at t = m
    cgm_minute = np.arange(5, 2 * DAY, 5)
    cgm = glucose[cgm_minute] + np.random.default_rng(1).normal(0.0, NOISE_SD, len(cgm_minute))
    return carbs, insulin, window, cgm_minute, cgm, glucose[0]


def _run(seed: int, steps: int | None = None):
    carbs, insulin, window, cgm_minute, cgm, g0 = _two_days()
    params = twin_params(**TRUTH)
    state0 = steady_state(params)._replace(G=jnp.asarray(g0), IG=jnp.asarray(g0))
    fs = init_filter(params, state0, n_members=64, seed=seed)
    forecasts, analyses = [], []
    for minute, reading in list(zip(cgm_minute, cgm, strict=True))[:steps]:
        span = slice(minute - 5, minute)
        fs, forecast = step(fs, carbs[span], insulin[span], reading, NOISE_SD, minutes=5,
                            meal_window=window[span])  # fmt: skip
        forecasts.append(forecast)
        analyses.append(estimate(fs))
    stack = lambda rows: jax.tree.map(lambda *x: np.asarray(x), *rows)  # noqa: E731
    return cgm, stack(forecasts), stack(analyses)


@pytest.fixture(scope="module")
def run():
    return _run(seed=0)


def test_one_step_ahead_beats_persistence(run):
    cgm, forecast, _ = run
    filter_rmse = np.sqrt(np.mean((forecast.glucose_mg_dl[1:] - cgm[1:]) ** 2))
    persistence_rmse = np.sqrt(np.mean((cgm[:-1] - cgm[1:]) ** 2))
    assert filter_rmse < 0.75 * persistence_rmse


def test_si_moves_toward_the_new_value_within_a_day(run):
    _, _, analysis = run
    old, new = TRUTH["SI"], SI_STEP * TRUTH["SI"]
    per_day = len(analysis.si) // 2
    end_day1 = analysis.si[per_day - 12 : per_day].mean()  # the last hour of each day
    end_day2 = analysis.si[-12:].mean()
    assert abs(end_day1 - old) < abs(end_day1 - new)
    assert abs(end_day2 - new) < abs(end_day2 - old)
    assert np.all(analysis.si_sd > 0)


def test_spread_is_positive_and_shrinks_after_updates(run):
    _, forecast, analysis = run
    assert np.all(forecast.glucose_sd > 0) and np.all(analysis.glucose_sd > 0)
    assert analysis.glucose_sd[0] < 0.5 * forecast.glucose_sd[0]  # from the 10 mg/dL prior
    assert np.mean(analysis.glucose_sd < forecast.glucose_sd) > 0.95


def test_same_seed_same_output():
    first, again, other = (_run(seed, steps=20)[1] for seed in (3, 3, 4))
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.glucose_mg_dl, other.glucose_mg_dl)


def test_insulin_and_carbs_on_board():
    params = twin_params(**TRUTH)
    fs = init_filter(params, steady_state(params), n_members=8, seed=0, glucose_sd_mg_dl=0.0)
    basal = TRUTH["u2ss"] * TRUTH["BW"] / 1000.0
    at_rest = estimate(predict(fs, 0.0, 60 * basal, minutes=60))
    assert float(at_rest.insulin_on_board_u) == pytest.approx(0.0, abs=1e-9)
    assert float(at_rest.carbs_on_board_g) == 0.0
    # 50 g and 5 U in the first minute: after it almost all of both is still on board.
    fed = estimate(predict(fs, jnp.array([50.0]), jnp.array([5.0 + basal]), minutes=1))
    assert float(fed.carbs_on_board_g) == pytest.approx(50.0, rel=1e-3)
    assert float(fed.insulin_on_board_u) == pytest.approx(5.0, rel=1e-3)
    later = estimate(predict(fs, 50.0, 5.0 + 240 * basal, minutes=240))
    assert 0.0 < float(later.carbs_on_board_g) < 50.0
    assert 0.0 < float(later.insulin_on_board_u) < 5.0


def test_missing_reading_leaves_the_ensemble_unchanged():
    params = twin_params(**TRUTH)
    fs = init_filter(params, steady_state(params), n_members=16, seed=0)
    same = update(fs, jnp.nan, NOISE_SD)
    np.testing.assert_array_equal(same.states.G, fs.states.G)
    np.testing.assert_array_equal(same.log_si, fs.log_si)


def test_init_rejects_bad_settings():
    params = twin_params(**TRUTH)
    with pytest.raises(ValueError, match="n_members"):
        init_filter(params, steady_state(params), n_members=1)
    with pytest.raises(ValueError, match="must be >= 0"):
        init_filter(params, steady_state(params), glucose_sd_mg_dl=-1.0)


def test_a_non_finite_member_is_replaced_and_log_si_stays_bounded():
    params = twin_params(**TRUTH)
    fs = init_filter(params, steady_state(params), n_members=8, seed=0, log_si_sd=0.1)
    poisoned = fs.states._replace(G=fs.states.G.at[3].set(jnp.nan))
    fs = fs._replace(states=poisoned, log_si=fs.log_si.at[0].set(10.0))
    after = predict(fs, 0.0, 0.0, minutes=5)
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in after.states)
    assert float(jnp.max(jnp.abs(after.log_si))) <= np.log(5.0) + 1e-12
    # The replaced member sits at the others' mean, not at an arbitrary value.
    others = np.delete(np.asarray(after.states.Isc1), 3)
    assert float(after.states.Isc1[3]) == pytest.approx(float(np.mean(others)), rel=0.05)
    analysed = update(after, 150.0, 5.0)
    assert float(jnp.max(jnp.abs(analysed.log_si))) <= np.log(5.0) + 1e-12
