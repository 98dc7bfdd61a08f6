"""The posterior of a fitted twin: a Laplace approximation at the MAP (or draws from NUTS or
SVI), posterior draws, and predictive bands of replayed glucose.

The MAP of :class:`~glucotwin.twin.fit.TwinFitter` lives in standardised coordinates z of
the :class:`~glucotwin.twin.fit.TwinObjective` (u = offset + scale z, u the unconstrained
coordinates: natural logs of the positive parameters, probits of the meal delays, log SI
factors of the days). The Laplace approximation (e.g. Gelman et al., *Bayesian Data
Analysis*, 3rd ed., section 4.1) takes the Hessian H of the negative log posterior there
(``jax.hessian``, forward over reverse through the solver) and uses N(z_MAP, H^-1), which in u
is N(u_MAP, S H^-1 S^T) with S = scale. GlucoTwin stores and replays posteriors in u.

Regularisation: at a MAP that L-BFGS left slightly short of the mode, or along directions the
data do not see, H can have tiny or negative eigenvalues. H is symmetrised and its
eigenvalues are raised to at least :data:`MIN_EIGENVALUE`; in z the prior alone contributes
the identity, so this floor caps a posterior SD at 1/sqrt(0.01) = 10 prior SDs rather than
letting it go infinite. :attr:`TwinPosterior.regularised` records whether the floor was used.

Coordinates: :func:`~glucotwin.twin.fit.coordinate_names` (the thirteen identified parameters,
four meal delays, ``G0``, ``sigma``, and one ``si_day_d`` per fitted day after the first).
When the fitter held sigma fixed its variance is zero.
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
from glucotwin.twin.fit import (
    SI_DAY_SD,
    TwinFitter,
    TwinValues,
    coordinate_names,
    days_of,
    objective_hessian,
    twin_values,
)
from glucotwin.twin.inputs import day_index, meal_windows, minute_grid
from glucotwin.twin.model import TwinParams
from glucotwin.twin.solver import solve_twin

COORDINATES = coordinate_names(1)
"""Coordinates of a twin fitted to one day of data (more days add ``si_day_*``)."""
MIN_EIGENVALUE = 1e-2
"""Floor of the Hessian's eigenvalues in standardised coordinates (see the module docstring)."""
MIN_CGM_HOURS = 12.0
"""Least span of CGM readings, hours, that :func:`fit_posterior` accepts."""
METHODS = ("map", "nuts", "svi")


class TwinPosterior(NamedTuple):
    """A fitted twin: its posterior and what replaying it needs.

    ``coordinates`` names the unconstrained coordinates (module docstring). ``mean`` is the
    point twin (the MAP) and ``cov`` the posterior covariance (Laplace, or of the draws);
    ``draws`` (rows of coordinates) holds NUTS or SVI draws, ``None`` for the Laplace
    posterior. ``bw_kg`` body weight, kg; ``u2ss_mu_per_kg_per_min`` basal infusion.
    ``start_local`` is the local wall-clock minute at which minute 0 of the fitted data
    began (the first CGM, insulin or carb record, floored to the minute): replay starts
    there, from G = IG = G0 with insulin at the basal steady state and an empty gut, and
    that clock sets the meal windows and twin days. ``regularised``: the Hessian needed the
    eigenvalue floor. ``metrics``: fit metrics (``rmse_mg_dl``, ``mard_percent``, ...);
    ``data``: a summary of the fitted data; ``method``: ``map``, ``nuts`` or ``svi``.
    """

    mean: np.ndarray
    cov: np.ndarray
    bw_kg: float
    u2ss_mu_per_kg_per_min: float
    start_local: pd.Timestamp
    regularised: bool
    metrics: dict
    data: dict
    coordinates: tuple[str, ...] = COORDINATES
    draws: np.ndarray | None = None
    method: str = "map"

    @property
    def days(self) -> int:
        """Twin days of the fitted data."""
        return days_of(self.coordinates)

    @property
    def noise_sd_mg_dl(self) -> float:
        """The MAP CGM noise SD, mg/dL."""
        return float(math.exp(self.mean[self.coordinates.index("sigma")]))

    @property
    def initial_glucose_mg_dl(self) -> float:
        """The MAP initial glucose G0, mg/dL."""
        return float(math.exp(self.mean[self.coordinates.index("G0")]))

    def values(self) -> TwinValues:
        """The MAP :class:`~glucotwin.twin.fit.TwinValues`."""
        return twin_values(jnp.asarray(self.mean), self.days, self.bw_kg,
                           self.u2ss_mu_per_kg_per_min)  # fmt: skip

    def params(self, day: int = 0) -> TwinParams:
        """The MAP twin parameters with the insulin sensitivities of fitted ``day`` (0-based;
        -1: the last fitted day, the twin's current state)."""
        v = self.values()
        factor = jnp.exp(v.si_day_log[day])
        p = v.params
        return p._replace(SI_B=p.SI_B * factor, SI_L=p.SI_L * factor, SI_D=p.SI_D * factor)


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


def laplace_covariance(fitter: TwinFitter) -> tuple[np.ndarray, bool]:
    """The Laplace covariance in z at a fitted :class:`TwinFitter`'s MAP and whether the
    eigenvalue floor was used (module docstring)."""
    hessian = np.asarray(objective_hessian(fitter.objective_, jnp.asarray(fitter.z_)))
    hessian = 0.5 * (hessian + hessian.T)
    eigenvalues, vectors = np.linalg.eigh(hessian)
    regularised = bool(eigenvalues.min() < MIN_EIGENVALUE)
    eigenvalues = np.maximum(eigenvalues, MIN_EIGENVALUE)
    cov_z = (vectors / eigenvalues) @ vectors.T
    return 0.5 * (cov_z + cov_z.T), regularised


def _posterior(fitter: TwinFitter, start_local, cov_z, regularised, draws_z=None, method="map"):
    objective = fitter.objective_
    scale = np.asarray(objective.scale)
    grid = fitter.grid_
    draws = None
    if draws_z is not None:
        draws = np.asarray(objective.unconstrained(jnp.asarray(draws_z)))
        cov = np.cov(draws, rowvar=False)
    else:
        cov = scale @ cov_z @ scale.T
    return TwinPosterior(
        mean=np.asarray(objective.unconstrained(jnp.asarray(fitter.z_))),
        cov=0.5 * (cov + cov.T),
        bw_kg=float(objective.bw_kg),
        u2ss_mu_per_kg_per_min=float(objective.u2ss),
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
            "days": objective.days,
            "cgm_readings": len(grid.cgm_mg_dl),
            "carbs_g": float(np.sum(grid.carbs_g_per_min)),
            "insulin_u": float(np.sum(grid.insulin_u_per_min)),
            "basal_insulin_u": float(np.sum(grid.basal_u_per_min)),
        },
        coordinates=objective.coordinates,
        draws=draws,
        method=method,
    )


def laplace_posterior(fitter: TwinFitter, start_local: pd.Timestamp) -> TwinPosterior:
    """The Laplace approximation at a fitted :class:`TwinFitter`'s MAP (see the module
    docstring). ``start_local`` is the local wall-clock time of the fitted grid's minute 0."""
    cov_z, regularised = laplace_covariance(fitter)
    return _posterior(fitter, start_local, cov_z, regularised)


def fit_posterior(
    recording: Recording, seed: int = 0, method: str = "map", **options
) -> tuple[TwinPosterior, float]:
    """Check the data (:func:`check_identifiable`), fit the MAP (:class:`TwinFitter`) and
    the posterior: ``map`` the Laplace approximation, ``nuts`` NUTS draws and ``svi`` a
    full-rank Gaussian variational fit (:mod:`glucotwin.twin.sampling`; ``options`` go to the
    sampler), both started at the MAP. Returns the posterior and the wall time in seconds.
    Raises ``ValueError`` for unusable data or an unknown method."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    began = time.perf_counter()
    check_identifiable(recording)
    fitter = TwinFitter(seed=seed).fit(recording)
    cov_z, regularised = laplace_covariance(fitter)
    start_local = fitter.grid_.start_local
    if method == "map":
        posterior = _posterior(fitter, start_local, cov_z, regularised)
    else:
        from glucotwin.twin import sampling

        loss, z_map = fitter.objective_.loss, jnp.asarray(fitter.z_)
        if method == "nuts":
            result = sampling.sample_nuts(loss, z_map, seed=seed, inverse_mass=cov_z, **options)
        else:
            result = sampling.fit_svi(loss, z_map, seed=seed, init_covariance=cov_z, **options)
        posterior = _posterior(fitter, start_local, cov_z, regularised, result.draws, method)
        posterior.metrics.update(
            {k: v for k, v in result.diagnostics.items() if isinstance(v, int | float | bool)}
        )
    return posterior, time.perf_counter() - began


def sample_posterior(fit: TwinPosterior, n: int, seed: int) -> TwinValues:
    """``n`` draws from the posterior (``numpy.random.default_rng(seed)``; the same seed gives
    the same draws): the Gaussian of a Laplace posterior, or ``n`` of the stored NUTS/SVI
    draws (with replacement when fewer are stored). Returns
    :class:`~glucotwin.twin.fit.TwinValues` whose fields have a leading axis of ``n``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    if fit.draws is not None:
        stored = fit.draws.shape[0]
        rows = rng.choice(stored, size=n, replace=n > stored)
        draws = fit.draws[rows]
    else:
        draws = rng.multivariate_normal(fit.mean, fit.cov, size=n, method="eigh")
    unpack = jax.vmap(lambda u: twin_values(u, fit.days, fit.bw_kg, fit.u2ss_mu_per_kg_per_min))
    return unpack(jnp.asarray(draws))


class PredictiveBand(NamedTuple):
    """Per-minute posterior predictive CGM glucose, mg/dL: ``median``, ``lower`` and
    ``upper`` (the central ``level`` interval); row m is the start of minute m."""

    median: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def replay_windows(fit: TwinPosterior, minutes: int) -> np.ndarray:
    """The meal window of each minute from the fitted data's minute 0 (local clock)."""
    return meal_windows(pd.Timestamp(fit.start_local), minutes)


def replay_si_factors(
    si_day_log: np.ndarray, start_local: pd.Timestamp, minutes: int, rng: np.random.Generator
) -> np.ndarray:
    """Per-minute SI factors [n, minutes] of draws' per-day log factors [n, days] over a
    replay from the fitted minute 0: fitted days keep their factor; each later day continues
    the random walk (SD :data:`~glucotwin.twin.fit.SI_DAY_SD` per day) from the last one."""
    day = day_index(pd.Timestamp(start_local), minutes)
    n, fitted = si_day_log.shape
    extra = int(day[-1]) + 1 - fitted
    if extra > 0:
        steps = SI_DAY_SD * rng.standard_normal((n, extra))
        si_day_log = np.concatenate([si_day_log, si_day_log[:, -1:] + np.cumsum(steps, 1)], 1)
    return np.exp(si_day_log[:, day])


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
    default :func:`replay_windows`). Simulates ``n`` posterior draws in one batch (with their
    meal delays and per-day SI, :func:`replay_si_factors`), adds Gaussian CGM noise with each
    draw's SD, and returns per-minute quantiles. Draws whose simulation overflows are left
    out (``ValueError`` when over 10 % do). Deterministic for the same ``seed``."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    carbs = np.asarray(carbs, np.float64)
    insulin = np.asarray(insulin, np.float64)
    extra = replay_windows(fit, carbs.size) if extra is None else np.asarray(extra, np.float64)
    values = sample_posterior(fit, n, seed)
    rng = np.random.default_rng([seed, 1])
    si = replay_si_factors(np.asarray(values.si_day_log), fit.start_local, carbs.size, rng)
    solve = jax.jit(jax.vmap(solve_twin, in_axes=(0, None, None, None, 0, 0, 0)))
    trajectory = solve(values.params, carbs, insulin, extra, values.g0_mg_dl, si,
                       values.meal_delay_min)  # fmt: skip
    glucose = np.asarray(trajectory.glucose_mg_dl)
    sigma = np.asarray(values.sigma_mg_dl)
    # A draw far in a tail of a wide posterior can overflow the simulation: drop such draws
    # (they are physiologically void), but refuse when they are not a small minority.
    valid = np.all(np.isfinite(glucose), axis=1)
    if valid.sum() < 0.9 * n:
        raise ValueError(
            f"{n - valid.sum()} of {n} posterior draws give non-finite glucose: the posterior "
            "is too wide for this replay"
        )
    glucose, sigma = glucose[valid], sigma[valid]
    observed = glucose + rng.standard_normal(glucose.shape) * sigma[:, None]
    tail = (1.0 - level) / 2.0
    lower, median, upper = np.quantile(observed, [tail, 0.5, 1.0 - tail], axis=0)
    return PredictiveBand(median=median, lower=lower, upper=upper)
