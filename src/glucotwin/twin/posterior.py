"""A Gaussian (Laplace) approximation of the twin's posterior at the MAP, posterior draws, and
predictive bands of replayed glucose.

The MAP of :class:`~glucotwin.twin.fit.TwinFitter` lives in standardised log coordinates z
(log theta = mu + sd z, priors in :data:`~glucotwin.twin.fit.PRIORS`). The Laplace
approximation (e.g. Gelman et al., *Bayesian Data Analysis*, 3rd ed., section 4.1) takes the
Hessian H of the negative log posterior there (``jax.hessian``, forward over reverse through
the simulation) and uses N(z_MAP, H^-1). In the log-parameter space that the rest of
GlucoTwin stores, with D = diag(prior SDs), the posterior is N(log theta_MAP, D H^-1 D).

Regularisation: at a MAP that L-BFGS left slightly short of the mode, or along directions the
data do not see, H can have tiny or negative eigenvalues. H is symmetrised and its
eigenvalues are raised to at least :data:`MIN_EIGENVALUE`; in z the prior alone contributes
the identity, so this floor caps a posterior SD at 1/sqrt(0.01) = 10 prior SDs rather than
letting it go infinite. :attr:`TwinPosterior.regularised` records whether the floor was used.

Coordinates (:data:`COORDINATES`): the twelve identified parameters, the initial glucose
``G0`` (mg/dL) and the CGM noise SD ``sigma`` (mg/dL), all as natural logs. When the fitter
held sigma fixed its variance is zero.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

import glucotwin.physiology  # noqa: F401  (turns on float64)
from glucotwin.data.model import Recording
from glucotwin.simulate import simulate
from glucotwin.twin.fit import (
    G0_PRIOR_SD,
    IDENTIFIED,
    NOISE_PRIOR,
    PRIORS,
    TwinFitter,
    negative_log_posterior,
)
from glucotwin.twin.inputs import meal_windows, minute_grid
from glucotwin.twin.model import FIXED_VALUES, REPLAYBG_TWIN, TwinParams

COORDINATES = (*IDENTIFIED, "G0", "sigma")
"""Names of the log-space posterior coordinates, in order."""
MIN_EIGENVALUE = 1e-2
"""Floor of the Hessian's eigenvalues in standardised coordinates (see the module docstring)."""
MIN_CGM_HOURS = 12.0
"""Least span of CGM readings, hours, that :func:`fit_posterior` accepts."""


class TwinPosterior(NamedTuple):
    """A fitted twin: the Laplace posterior and what replaying it needs.

    ``mean`` and ``cov`` are the Gaussian over the natural logs of :data:`COORDINATES`
    (``mean`` is the MAP). ``bw_kg`` body weight, kg; ``u2ss_mu_per_kg_per_min`` basal
    infusion. ``start_local`` is the local wall-clock minute at which minute 0 of the fitted
    data began (the first CGM, insulin or carb record, floored to the minute): replay starts
    there, from G = IG = G0 with insulin at the basal steady state and an empty gut, and
    that clock sets the meal windows. ``regularised``: the Hessian needed the eigenvalue
    floor. ``metrics``: fit metrics (``rmse_mg_dl``, ``mard_percent``, ...); ``data``: a
    summary of the fitted data.
    """

    mean: np.ndarray
    cov: np.ndarray
    bw_kg: float
    u2ss_mu_per_kg_per_min: float
    start_local: pd.Timestamp
    regularised: bool
    metrics: dict
    data: dict

    @property
    def noise_sd_mg_dl(self) -> float:
        """The MAP CGM noise SD, mg/dL."""
        return float(math.exp(self.mean[COORDINATES.index("sigma")]))

    @property
    def initial_glucose_mg_dl(self) -> float:
        """The MAP initial glucose G0, mg/dL."""
        return float(math.exp(self.mean[COORDINATES.index("G0")]))

    def params(self) -> TwinParams:
        """The MAP twin parameters."""
        return jax.tree.map(lambda a: a[0], _twin_params(self.mean[None, :], self))


def _twin_params(log_values: np.ndarray, posterior: TwinPosterior) -> TwinParams:
    """TwinParams with fields of shape [n] from rows of log coordinates."""
    n = log_values.shape[0]
    named = {name: jnp.exp(jnp.asarray(log_values[:, i])) for i, name in enumerate(IDENTIFIED)}
    fixed = {name: jnp.full(n, value) for name, value in FIXED_VALUES.items()}
    return TwinParams(**named, BW=jnp.full(n, posterior.bw_kg),
                      u2ss=jnp.full(n, posterior.u2ss_mu_per_kg_per_min), **fixed)  # fmt: skip


def check_identifiable(recording: Recording) -> None:
    """Raise ``ValueError`` naming what is missing when ``recording`` cannot identify a twin:
    fewer than :data:`MIN_CGM_HOURS` hours between its first and last CGM reading, or no
    insulin delivered (no bolus or basal record with a positive amount)."""
    cgm = recording.cgm()
    times = cgm.loc[cgm["glucose_mg_dl"].notna(), "time"]
    hours = 0.0 if times.empty else (times.max() - times.min()) / pd.Timedelta(hours=1)
    if hours < MIN_CGM_HOURS:
        raise ValueError(
            f"the data hold {hours:.1f} h of CGM readings; a twin needs at least "
            f"{MIN_CGM_HOURS:.0f} h"
        )
    grid = minute_grid(recording)
    if not np.any(grid.insulin_u_per_min > 0):
        raise ValueError(
            "the data hold no insulin records (boluses or basal rates): a twin needs the "
            "insulin delivered to identify insulin sensitivity"
        )


def laplace_posterior(fitter: TwinFitter, start_local: pd.Timestamp) -> TwinPosterior:
    """The Laplace approximation at a fitted :class:`TwinFitter`'s MAP (see the module
    docstring). ``start_local`` is the local wall-clock time of the fitted grid's minute 0."""
    grid = fitter.grid_
    bw = float(fitter.params_.BW)
    u2ss = float(fitter.params_.u2ss)
    fixed_sigma = fitter.noise_sd_mg_dl
    prior_mean = np.array([PRIORS[name][0] for name in IDENTIFIED])
    prior_sd = np.array([PRIORS[name][1] for name in IDENTIFIED])
    log_params = np.log([float(getattr(fitter.params_, name)) for name in IDENTIFIED])
    log_g0 = math.log(fitter.initial_glucose_mg_dl_)
    log_sigma = math.log(fitter.noise_sd_mg_dl_)
    z = [
        *((log_params - prior_mean) / prior_sd),
        (log_g0 - math.log(grid.cgm_mg_dl[0])) / G0_PRIOR_SD,
    ]
    scale = [*prior_sd, G0_PRIOR_SD]
    if fixed_sigma is None:
        z.append((log_sigma - NOISE_PRIOR[0]) / NOISE_PRIOR[1])
        scale.append(NOISE_PRIOR[1])
    grid_j = grid._replace(
        carbs_g_per_min=jnp.asarray(grid.carbs_g_per_min),
        insulin_u_per_min=jnp.asarray(grid.insulin_u_per_min),
        cgm_minute=jnp.asarray(grid.cgm_minute),
        cgm_mg_dl=jnp.asarray(grid.cgm_mg_dl),
        meal_window=jnp.asarray(grid.meal_window),
    )
    hessian = jax.jit(
        jax.hessian(lambda z: negative_log_posterior(z, grid_j, bw, u2ss, fixed_sigma))
    )(jnp.asarray(z))
    hessian = np.asarray(hessian)
    hessian = 0.5 * (hessian + hessian.T)
    eigenvalues, vectors = np.linalg.eigh(hessian)
    regularised = bool(eigenvalues.min() < MIN_EIGENVALUE)
    eigenvalues = np.maximum(eigenvalues, MIN_EIGENVALUE)
    cov_z = (vectors / eigenvalues) @ vectors.T
    size = len(COORDINATES)
    cov = np.zeros((size, size))
    k = len(scale)
    cov[:k, :k] = np.asarray(scale)[:, None] * cov_z * np.asarray(scale)[None, :]
    cov = 0.5 * (cov + cov.T)
    return TwinPosterior(
        mean=np.array([*log_params, log_g0, log_sigma]),
        cov=cov,
        bw_kg=bw,
        u2ss_mu_per_kg_per_min=u2ss,
        start_local=start_local,
        regularised=regularised,
        metrics={
            "rmse_mg_dl": fitter.rmse_mg_dl_,
            "mard_percent": fitter.mard_percent_,
            "neg_log_posterior": fitter.neg_log_posterior_,
            "iterations": fitter.iterations_,
            "converged": fitter.converged_,
        },
        data={
            "minutes": grid.minutes,
            "cgm_readings": len(grid.cgm_mg_dl),
            "carbs_g": float(np.sum(grid.carbs_g_per_min)),
            "insulin_u": float(np.sum(grid.insulin_u_per_min)),
            "basal_insulin_u": float(np.sum(grid.basal_u_per_min)),
        },
    )


def fit_posterior(recording: Recording, seed: int = 0) -> tuple[TwinPosterior, float]:
    """Check the data (:func:`check_identifiable`), fit the MAP (:class:`TwinFitter`) and
    approximate the posterior (:func:`laplace_posterior`). Returns the posterior and the wall
    time of the fit in seconds (Hessian included). Raises ``ValueError`` for unusable data."""
    began = time.perf_counter()
    check_identifiable(recording)
    fitter = TwinFitter(seed=seed).fit(recording)
    posterior = laplace_posterior(fitter, fitter.grid_.start_local)
    return posterior, time.perf_counter() - began


def sample_posterior(
    fit: TwinPosterior, n: int, seed: int
) -> tuple[TwinParams, np.ndarray, np.ndarray]:
    """``n`` draws from the Laplace posterior (``numpy.random.default_rng(seed)``; the same
    seed gives the same draws): :class:`TwinParams` with fields of shape [n], initial
    glucose G0 (mg/dL, [n]) and CGM noise SD (mg/dL, [n])."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    draws = rng.multivariate_normal(fit.mean, fit.cov, size=n, method="eigh")
    g0 = np.exp(draws[:, COORDINATES.index("G0")])
    sigma = np.exp(draws[:, COORDINATES.index("sigma")])
    return _twin_params(draws, fit), g0, sigma


class PredictiveBand(NamedTuple):
    """Per-minute posterior predictive CGM glucose, mg/dL: ``median``, ``lower`` and
    ``upper`` (the central ``level`` interval); row m is the start of minute m."""

    median: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def replay_windows(fit: TwinPosterior, minutes: int) -> np.ndarray:
    """The meal window of each minute from the fitted data's minute 0 (local clock)."""
    return meal_windows(pd.Timestamp(fit.start_local), minutes)


def predictive_band(
    fit: TwinPosterior,
    carbs,
    insulin,
    extra=None,
    n: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> PredictiveBand:
    """Posterior predictive band of CGM glucose under per-minute ``carbs`` (g) and
    ``insulin`` (U, basal included) from minute 0 of the fitted data (``extra``: meal windows,
    default :func:`replay_windows`). Simulates ``n`` posterior draws in one batch, adds
    Gaussian CGM noise with each draw's SD, and returns per-minute quantiles. Deterministic
    for the same ``seed``."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    carbs = np.asarray(carbs, np.float64)
    insulin = np.asarray(insulin, np.float64)
    extra = replay_windows(fit, carbs.size) if extra is None else np.asarray(extra, np.float64)
    params, g0, sigma = sample_posterior(fit, n, seed)
    x0 = REPLAYBG_TWIN.steady_state(params)._replace(G=jnp.asarray(g0), IG=jnp.asarray(g0))
    sim = simulate(params, carbs, insulin, x0, model=REPLAYBG_TWIN, extra_inputs=extra,
                   substeps=1, meal_substeps=1)  # fmt: skip
    glucose = np.asarray(sim.glucose_mg_dl)
    noise = np.random.default_rng([seed, 1]).standard_normal(glucose.shape) * sigma[:, None]
    observed = glucose + noise
    tail = (1.0 - level) / 2.0
    lower, median, upper = np.quantile(observed, [tail, 0.5, 1.0 - tail], axis=0)
    return PredictiveBand(median=median, lower=lower, upper=upper)
