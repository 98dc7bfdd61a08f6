"""Online state estimation for a fitted ReplayBG twin: an ensemble Kalman filter.

G. Evensen, "The Ensemble Kalman Filter: theoretical formulation and practical
implementation", Ocean Dynamics 53, 343-367, 2003, doi:10.1007/s10236-003-0036-9: the
stochastic EnKF of its section 3-4 (analysis with perturbed observations, Burgers, van
Leeuwen and Evensen, Mon. Weather Rev. 126, 1719-1724, 1998).

The filter state is an ensemble of the twin's 18 states (:class:`TwinState`, one value per
member) augmented with ``log_si``: the log of a factor on the fitted insulin sensitivities
SI_B, SI_L, SI_D (0 = the fitted values), a random walk, so that insulin sensitivity can
drift over days while the windows keep their fitted ratios.

- :func:`predict` propagates each member with the twin's vector field, one classic RK4 step
  per minute with the minute's inputs held constant (the engine's ``substeps=1``,
  ``meal_substeps=1``: the fitter's setting), with process noise after every minute: plasma
  glucose G += N(0, q_G²) (mg/dL; model error of the glucose equation, added minute by
  minute so that by the reading IG has taken up part of it and the analysis can correct G
  through their correlation) and IG += N(0, q_IG²); and once per interval log_si +=
  N(0, q_SI² minutes/1440) (q_SI per square-root day). G and IG stay >= 1 mg/dL.
- :func:`update` assimilates one CGM reading y of the interstitial glucose IG: with
  ensemble anomalies A (states), a (IG), K = cov(A, a) / (var(a) + R), R the CGM noise
  variance, each member moves by K (y + e_i - IG_i), e_i ~ N(0, R). Masses (insulin and
  carbs compartments) are clipped at zero after the analysis; a NaN reading leaves the
  ensemble unchanged. log_si stays within ±ln 5 (:data:`MAX_LOG_SI`), and a member that
  turns non-finite is replaced by the mean of the others.

Everything is a pure function of :class:`FilterState` (a pytree); :func:`step` is the
jit-compiled predict + update.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

import glucotwin.physiology  # noqa: F401  (turns on float64)
from glucotwin.simulate.engine import integrate_minute  # propagate exactly as simulate()
from glucotwin.twin.model import (
    MG_PER_G,
    MU_PER_UNIT,
    TwinParams,
    TwinState,
    inputs_from_doses,
    steady_state,
    vector_field,
    window_of,
)

MINUTES_PER_DAY = 24.0 * 60.0
MAX_LOG_SI = math.log(5.0)
"""log_si is kept within ±ln 5: insulin sensitivity at most 5× above or below the fit."""
_MASSES = tuple(name for name in TwinState._fields if name not in ("G", "X", "IG"))
_GUT = tuple(name for name in TwinState._fields if name.startswith("Q"))
_INSULIN = ("Isc1", "Isc2", "Ip")


class FilterState(NamedTuple):
    """The ensemble and what the filter needs to advance it.

    ``states``: :class:`TwinState` whose fields have shape (n_members,); ``log_si``
    (n_members,): log factor on the fitted SI; ``params``: the fitted :class:`TwinParams`
    (scalars); ``meal_window``: the meal code (window and route) of the last predicted minute;
    ``key``: the JAX random key; ``glucose_noise_mg_dl``: q_G, mg/dL per square-root minute;
    ``interstitial_noise_mg_dl``: q_IG, the same for IG;
    ``log_si_noise``: q_SI per square-root day.
    """

    states: TwinState
    log_si: jax.Array
    params: TwinParams
    meal_window: jax.Array
    key: jax.Array
    glucose_noise_mg_dl: jax.Array
    interstitial_noise_mg_dl: jax.Array
    log_si_noise: jax.Array


class Estimate(NamedTuple):
    """Ensemble mean and SD of what a user wants to know.

    ``glucose_mg_dl``, ``glucose_sd``: interstitial glucose (what the CGM sees), mg/dL;
    ``insulin_on_board_u``: insulin in the subcutaneous compartments and plasma above the
    basal steady state under u2ss, U (bolus insulin not yet cleared; negative after a basal
    suspension); ``carbs_on_board_g``: carbs still in the stomach and gut compartments of
    all routes, g (eaten, not yet absorbed); ``si``, ``si_sd``: insulin sensitivity of the
    current meal window, mL/(µU·min).
    """

    glucose_mg_dl: jax.Array
    glucose_sd: jax.Array
    insulin_on_board_u: jax.Array
    carbs_on_board_g: jax.Array
    si: jax.Array
    si_sd: jax.Array


def init_filter(
    params: TwinParams,
    state0: TwinState,
    n_members: int = 64,
    seed: int = 0,
    *,
    glucose_sd_mg_dl: float = 10.0,
    log_si_sd: float = 0.2,
    glucose_noise_mg_dl: float = 1.0,
    interstitial_noise_mg_dl: float = 0.0,
    log_si_noise: float = 0.3,
    meal_window: int = 0,
) -> FilterState:
    """An ensemble of ``n_members`` around ``state0`` (scalar fields; e.g.
    :func:`steady_state` with G and IG set to the first CGM reading).

    G and IG get the same N(0, ``glucose_sd_mg_dl``²) draw, log_si N(0, ``log_si_sd``²);
    the other states start at ``state0``. ``glucose_noise_mg_dl`` and
    ``interstitial_noise_mg_dl`` (per square-root minute) and ``log_si_noise`` (per
    square-root day) are the process noises of :func:`predict`; q_IG, model error seen by the
    sensor, lets the analysis follow the readings closely when the twin's glucose equation
    misses real dynamics (as on free-living data).
    Raises ``ValueError`` for fewer than 2 members or a negative SD.
    """
    if n_members < 2:
        raise ValueError(f"n_members must be >= 2, got {n_members}")
    noises = (glucose_noise_mg_dl, interstitial_noise_mg_dl, log_si_noise)
    if min(glucose_sd_mg_dl, log_si_sd, *noises) < 0:
        raise ValueError("standard deviations and process noises must be >= 0")
    key, k_glucose, k_si = jax.random.split(jax.random.key(seed), 3)
    states = jax.tree.map(lambda x: jnp.full(n_members, x, float), state0)
    shift = glucose_sd_mg_dl * jax.random.normal(k_glucose, (n_members,))
    states = states._replace(
        G=jnp.maximum(states.G + shift, 1.0), IG=jnp.maximum(states.IG + shift, 1.0)
    )
    return FilterState(
        states=states,
        log_si=log_si_sd * jax.random.normal(k_si, (n_members,)),
        params=params,
        meal_window=jnp.asarray(meal_window, float),
        key=key,
        glucose_noise_mg_dl=jnp.asarray(glucose_noise_mg_dl, float),
        interstitial_noise_mg_dl=jnp.asarray(interstitial_noise_mg_dl, float),
        log_si_noise=jnp.asarray(log_si_noise, float),
    )


def _per_minute(amount, minutes: int) -> jax.Array:
    amount = jnp.asarray(amount, float)
    return jnp.full(minutes, amount / minutes) if amount.ndim == 0 else amount


def _member_params(fs: FilterState) -> TwinParams:
    scale = jnp.exp(fs.log_si)
    p = fs.params
    return p._replace(SI_B=p.SI_B * scale, SI_L=p.SI_L * scale, SI_D=p.SI_D * scale)


def predict(fs: FilterState, carbs_g, insulin_u, minutes: int = 5, meal_window=0) -> FilterState:
    """Propagate every member over ``minutes`` (static under jit).

    ``carbs_g`` and ``insulin_u`` (basal and boluses) are per-minute amounts of shape
    (minutes,), or scalars: totals spread evenly over the interval. ``meal_window`` (meal
    codes, :func:`~glucotwin.twin.model.meal_code`) is a scalar or one value per minute.
    Process noise as in the module docstring.
    """
    carbs = _per_minute(carbs_g, minutes)
    insulin = _per_minute(insulin_u, minutes)
    window = jnp.broadcast_to(jnp.asarray(meal_window, float), (minutes,))
    params = _member_params(fs)

    key, k_glucose, k_si, k_ig = jax.random.split(fs.key, 4)
    n = fs.log_si.shape[0]
    g_noise = fs.glucose_noise_mg_dl * jax.random.normal(k_glucose, (minutes, n))
    ig_noise = fs.interstitial_noise_mg_dl * jax.random.normal(k_ig, (minutes, n))

    def minute(states, xs):
        c, u, w, dg, dig = xs
        inputs = inputs_from_doses(c, u, fs.params, w)
        t = jnp.zeros(())
        states = integrate_minute(states, t, inputs, params, (), 1, field_of=vector_field)
        states = states._replace(
            G=jnp.maximum(states.G + dg, 1.0), IG=jnp.maximum(states.IG + dig, 1.0)
        )
        return states, None

    states, _ = jax.lax.scan(minute, fs.states, (carbs, insulin, window, g_noise, ig_noise))
    states = _repair(states, fs.states)
    si_step = fs.log_si_noise * jnp.sqrt(minutes / MINUTES_PER_DAY)
    return fs._replace(
        states=states,
        log_si=jnp.clip(
            fs.log_si + si_step * jax.random.normal(k_si, (n,)), -MAX_LOG_SI, MAX_LOG_SI
        ),
        meal_window=window[-1],
        key=key,
    )


def update(fs: FilterState, cgm_mg_dl, noise_sd_mg_dl) -> FilterState:
    """Assimilate one CGM reading (mg/dL; NaN: no update) with noise SD ``noise_sd_mg_dl``
    (mg/dL) by the stochastic EnKF analysis (module docstring)."""
    names = TwinState._fields
    ensemble = jnp.stack([*fs.states, fs.log_si], axis=1)
    n = ensemble.shape[0]
    observed = fs.states.IG
    anomalies = ensemble - ensemble.mean(axis=0)
    obs_anomalies = observed - observed.mean()
    cov_xy = anomalies.T @ obs_anomalies / (n - 1)
    var_y = obs_anomalies @ obs_anomalies / (n - 1)
    variance = jnp.asarray(noise_sd_mg_dl, float) ** 2
    gain = cov_xy / (var_y + variance)
    key, k_obs = jax.random.split(fs.key)
    perturbed = cgm_mg_dl + jnp.sqrt(variance) * jax.random.normal(k_obs, (n,))
    analysed = ensemble + jnp.outer(perturbed - observed, gain)
    analysed = jnp.where(jnp.isnan(cgm_mg_dl), ensemble, analysed)
    fields = dict(zip(names, analysed[:, : len(names)].T, strict=True))
    for name in _MASSES:
        fields[name] = jnp.maximum(fields[name], 0.0)
    for name in ("G", "IG"):
        fields[name] = jnp.maximum(fields[name], 1.0)
    log_si = jnp.clip(analysed[:, -1], -MAX_LOG_SI, MAX_LOG_SI)
    return fs._replace(states=_repair(TwinState(**fields), fs.states), log_si=log_si, key=key)


def _repair(states: TwinState, before: TwinState) -> TwinState:
    """A member whose propagation or analysis gave a non-finite value (an extreme member of
    a wide ensemble) takes the mean of the finite members, or its state before the step
    when none is finite, so that one member cannot poison the ensemble's covariances."""
    stacked = jnp.stack(states, axis=1)
    finite = jnp.all(jnp.isfinite(stacked), axis=1)
    count = jnp.sum(finite)
    mean = jnp.sum(jnp.where(finite[:, None], stacked, 0.0), axis=0) / jnp.maximum(count, 1)
    fallback = jnp.where(count > 0, mean, 0.0)
    repaired = jnp.where(finite[:, None], stacked, fallback[None, :])
    repaired = jnp.where(count > 0, repaired, jnp.stack(before, axis=1))
    return TwinState(*repaired.T)


@partial(jax.jit, static_argnames="minutes")
def step(
    fs: FilterState,
    carbs_g,
    insulin_u,
    cgm_mg_dl,
    noise_sd_mg_dl,
    minutes: int = 5,
    meal_window=0,
) -> tuple[FilterState, Estimate]:
    """:func:`predict` over ``minutes`` then :func:`update` with the reading at its end,
    compiled; also returns the forecast :func:`estimate` (before the update), the filter's
    one-step-ahead prediction of the reading."""
    forecast = predict(fs, carbs_g, insulin_u, minutes, meal_window)
    return update(forecast, cgm_mg_dl, noise_sd_mg_dl), estimate(forecast)


def estimate(fs: FilterState) -> Estimate:
    """Ensemble means and SDs (:class:`Estimate`) of the filter state."""
    p, y = fs.params, fs.states
    basal = steady_state(p)
    iob_mu_per_kg = sum(getattr(y, name) - getattr(basal, name) for name in _INSULIN)
    cob_mg_per_kg = sum(getattr(y, name) for name in _GUT)
    w = window_of(fs.meal_window)
    si_fitted = jnp.where(w == 0, p.SI_B, jnp.where(w == 1, p.SI_L, p.SI_D))
    si = si_fitted * jnp.exp(fs.log_si)
    return Estimate(
        glucose_mg_dl=y.IG.mean(),
        glucose_sd=y.IG.std(ddof=1),
        insulin_on_board_u=(iob_mu_per_kg * p.BW / MU_PER_UNIT).mean(),
        carbs_on_board_g=(cob_mg_per_kg * p.BW / MG_PER_G).mean(),
        si=si.mean(),
        si_sd=si.std(ddof=1),
    )
