"""The twin's fast solver against the engine's RK4, and its delays and SI factors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from glucotwin.simulate import simulate
from glucotwin.twin import REPLAYBG_TWIN, twin_params
from glucotwin.twin.fit import PRIORS, coordinate_names, twin_values
from glucotwin.twin.inputs import day_index, meal_windows
from glucotwin.twin.model import ROUTES, meal_code
from glucotwin.twin.solver import delayed, solve_twin

MINUTES = 2 * 24 * 60
START = pd.Timestamp("2027-05-11 06:00")


def _inputs(bw=80.0, u2ss=0.2):
    basal = np.full(MINUTES, u2ss * bw / 1000.0)
    carbs, bolus = np.zeros(MINUTES), np.zeros(MINUTES)
    for day in range(2):
        for minute, grams, units in ((90, 45, 4.0), (360, 80, 7.0), (720, 70, 6.5), (900, 25, 0)):
            carbs[day * 1440 + minute] = grams
            bolus[day * 1440 + minute] = units
    bolus[1440 + 200] = 3.0  # a correction with no food: glucose goes low
    codes = meal_windows(START, MINUTES)
    codes[900] = meal_code(codes[900], 1 + ROUTES.index("S"))  # day 1's 15:00 snack: route S
    return carbs, basal + bolus, codes


def _prior_draw(seed: int, bw=80.0, u2ss=0.2):
    rng = np.random.default_rng(seed)
    names = coordinate_names(1)
    u = np.zeros(len(names))
    u[: len(PRIORS)] = [mean + 0.7 * sd * rng.standard_normal() for mean, sd in PRIORS.values()]
    u[names.index("G0")], u[names.index("sigma")] = np.log(150.0), np.log(10.0)
    return twin_values(jnp.asarray(u), 1, bw, u2ss).params


def _rk4(params, carbs, insulin, window, g0, substeps):
    x0 = REPLAYBG_TWIN.steady_state(params)._replace(G=g0, IG=g0)
    return simulate(params, carbs, insulin, x0, model=REPLAYBG_TWIN, extra_inputs=window,
                    substeps=substeps, meal_substeps=substeps).glucose_mg_dl  # fmt: skip


@pytest.mark.parametrize("seed", range(4))
def test_matches_a_converged_rk4_on_prior_draws(seed):
    carbs, insulin, window = _inputs()
    params = _prior_draw(seed)
    reference = np.asarray(_rk4(params, carbs, insulin, window, 150.0, substeps=16))
    fast = np.asarray(solve_twin(params, carbs, insulin, window, 150.0).glucose_mg_dl)
    # Second-order steps: well under the CGM's own error, even through hypoglycaemia,
    # where the risk term makes the equation steep.
    assert np.max(np.abs(fast - reference)) < 0.5
    above = reference > 90.0
    assert np.max(np.abs(fast - reference)[above]) < 0.25


def test_matches_rk4_closely_without_hypoglycaemia():
    params = twin_params(Gb=120.0, SG=0.02, SI=6e-4, p2=0.012, kd=0.03, ka2=0.015, kempt=0.1,
                         kabs=0.02, BW=80.0, u2ss=0.2)  # fmt: skip
    carbs, _, window = _inputs()
    insulin = np.full(MINUTES, 0.2 * 80.0 / 1000.0)  # basal only: G never goes below Gb
    reference = np.asarray(_rk4(params, carbs, insulin, window, 120.0, substeps=16))
    fast = solve_twin(params, carbs, insulin, window, 120.0)
    assert reference.min() > params.Gb - 1e-6
    assert np.max(np.abs(np.asarray(fast.glucose_mg_dl) - reference)) < 0.05


def test_the_basal_steady_state_stays_put():
    params = _prior_draw(7)
    basal = np.full(600, 0.2 * 80.0 / 1000.0)
    run = solve_twin(params, basal * 0, basal, np.zeros(600), params.Gb)
    np.testing.assert_allclose(run.glucose_mg_dl, params.Gb, rtol=1e-9)
    np.testing.assert_allclose(run.insulin_action, 0.0, atol=1e-10)


def test_delay_shifts_carbs_and_keeps_their_mass():
    carbs = np.zeros(200)
    carbs[[10, 50]] = [30.0, 60.0]
    np.testing.assert_allclose(delayed(jnp.asarray(carbs), 7.0), np.roll(carbs, 7), atol=1e-12)
    half = np.asarray(delayed(jnp.asarray(carbs), 7.25))
    assert half.sum() == pytest.approx(90.0)
    assert half[17] == pytest.approx(22.5) and half[18] == pytest.approx(7.5)
    slope = jax.grad(lambda d: jnp.sum(delayed(jnp.asarray(carbs), d) * jnp.arange(200.0)))
    assert float(slope(3.4)) == pytest.approx(90.0)  # the mean time moves 1 min per minute


def test_meal_delay_equals_eating_later():
    carbs, insulin, window = _inputs()
    params = _prior_draw(3)
    later = np.zeros_like(carbs)
    later[12:] = carbs[:-12]
    later_codes = window.copy()
    later_codes[900], later_codes[912] = window[912], window[900]  # the snack's label moves too
    delayed_run = solve_twin(params, carbs, insulin, window, 150.0, meal_delay_min=12.0)
    eaten_later = solve_twin(params, later, insulin, later_codes, 150.0)
    # Same route: none of these meals crosses a window boundary within 12 min.
    np.testing.assert_allclose(delayed_run.glucose_mg_dl, eaten_later.glucose_mg_dl, atol=1e-9)


def test_si_factor_equals_scaled_sensitivity():
    carbs, insulin, window = _inputs()
    params = _prior_draw(5)
    doubled = params._replace(SI_B=2 * params.SI_B, SI_L=2 * params.SI_L, SI_D=2 * params.SI_D)
    by_factor = solve_twin(params, carbs, insulin, window, 150.0, si_factor=np.full(MINUTES, 2.0))
    by_params = solve_twin(doubled, carbs, insulin, window, 150.0)
    np.testing.assert_allclose(by_factor.glucose_mg_dl, by_params.glucose_mg_dl, rtol=1e-12)


def test_twin_days_start_at_four_in_the_morning():
    days = day_index(pd.Timestamp("2027-05-11 06:00"), 2 * 1440)
    assert days[0] == 0 and days[22 * 60 - 1] == 0 and days[22 * 60] == 1
    assert days[-1] == 2  # 06:00 on day 3 is after its 04:00
    local = day_index(pd.Timestamp("2027-05-11 10:00", tz="UTC"), 61, utc_offset_min=-420)
    assert local[0] == 0 and local[-1] == 1  # 03:00 to 04:00 local crosses the boundary
