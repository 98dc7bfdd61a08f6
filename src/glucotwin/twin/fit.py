"""Maximum a posteriori identification of the ReplayBG twin (:mod:`glucotwin.twin.model`)
from one subject's CGM, insulin and carbs.

ReplayBG (Cappon et al. 2023, section II-B) samples the posterior with MCMC; this module
finds its mode instead: the twelve identified parameters are log-parametrised, standardised
by their prior (z = (log theta - mu)/sd), and the negative log posterior

    sum_k (y_k - IG(t_k))^2 / (2 sigma^2) + n log sigma + sum_j z_j^2 / 2

is minimised with L-BFGS (:func:`optax.lbfgs`, zoom line search) on gradients taken through
the jit-compiled simulation (:func:`glucotwin.simulate.simulate`). The MAP is that of the
log-parameters (the log-normal densities without their Jacobian). The initial plasma and
interstitial glucose G0 is identified too (ReplayBG fixes it to the first CGM reading, which
may come hours after the first insulin); the insulin compartments start at the basal steady
state under u2ss, the gut empty.

Priors (:data:`PRIORS`, log-normal: mean and SD of the natural log), from ReplayBG's
``py_replay_bg`` T1D priors (``log_prior_single_meal``) unless noted:

- SG: log-normal(-3.8, 0.5), 1/min (ReplayBG, exact).
- SI_B, SI_L, SI_D (each): ReplayBG puts Gamma(shape 3.3, scale 5e-4) on SI·VG; here its
  moment-matched log-normal on SI: mean digamma(3.3) + ln(5e-4) - ln(VG = 1.45) = -6.938,
  SD sqrt(trigamma(3.3)) = 0.595 (median 9.7e-4 mL/(µU·min)).
- Gb: ReplayBG's N(119.13, 7.11) mg/dL as log-normal(ln 119.13, 7.11/119.13 = 0.060).
- p2: ReplayBG's sqrt(p2) ~ N(0.11, 0.004) as log-normal(2 ln 0.11, 2·0.004/0.11).
- ka2: log-normal(-4.2875, 0.4274); kd: (-3.5090, 0.6187); kempt: (-1.9646, 0.7069);
  kabs_B, kabs_L, kabs_D (each): (-5.4591, 1.4396), all 1/min (ReplayBG, exact; its
  orderings ka2 < kd and kabs < kempt are not imposed).
- G0: log-normal(ln first CGM reading, 0.3): our choice, weakly informative.
- CGM noise SD sigma when fitted: log-normal(ln 10 mg/dL, 0.5): our choice (a CGM of about
  10 % MARD near 100 mg/dL); pass ``noise_sd_mg_dl`` to fix it instead.
"""

from __future__ import annotations

import inspect
import math
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu
import pandas as pd

import glucotwin.physiology  # noqa: F401  (turns on float64)
from glucotwin.data.model import Recording
from glucotwin.simulate import simulate
from glucotwin.twin.inputs import (
    MinuteGrid,
    basal_u2ss_mu_per_kg_per_min,
    body_weight_kg,
    minute_grid,
)
from glucotwin.twin.model import FIXED_VALUES, REPLAYBG_TWIN, TwinParams

IDENTIFIED = (
    "Gb", "SG", "SI_B", "SI_L", "SI_D", "p2", "kd", "ka2", "kempt", "kabs_B", "kabs_L", "kabs_D",
)  # fmt: skip
"""The twin parameters MAP identification estimates (the others are fixed or the subject's)."""

PRIORS: dict[str, tuple[float, float]] = {
    "Gb": (4.7802, 0.0597),
    "SG": (-3.8, 0.5),
    **{f"SI_{v}": (-6.9376, 0.5946) for v in "BLD"},
    "p2": (-4.4145, 0.0727),
    "kd": (-3.5090, 0.6187),
    "ka2": (-4.2875, 0.4274),
    "kempt": (-1.9646, 0.7069),
    **{f"kabs_{v}": (-5.4591, 1.4396) for v in "BLD"},
}
"""Log-normal priors (mean, SD of the natural log) of the identified parameters; sources in
the module docstring."""
G0_PRIOR_SD = 0.3
NOISE_PRIOR = (math.log(10.0), 0.5)


class TwinReplay(NamedTuple):
    """Replayed glucose, one row per minute of the grid: ``time`` (UTC, floating local time
    for zone-less sources), ``glucose_mg_dl`` (interstitial, what the CGM sees) and
    ``plasma_glucose_mg_dl``."""

    time: pd.DatetimeIndex
    glucose_mg_dl: np.ndarray
    plasma_glucose_mg_dl: np.ndarray


def _params_from_z(z: jax.Array, bw_kg: float, u2ss: float) -> TwinParams:
    mean = jnp.array([PRIORS[name][0] for name in IDENTIFIED])
    sd = jnp.array([PRIORS[name][1] for name in IDENTIFIED])
    values = jnp.exp(mean + sd * z[: len(IDENTIFIED)])
    named = dict(zip(IDENTIFIED, values, strict=True))
    fixed = {name: jnp.asarray(value) for name, value in FIXED_VALUES.items()}
    return TwinParams(**named, BW=jnp.asarray(bw_kg), u2ss=jnp.asarray(u2ss), **fixed)


def replay_glucose(
    params: TwinParams, carbs_g_per_min, insulin_u_per_min, meal_window, g0_mg_dl
) -> tuple[jax.Array, jax.Array]:
    """Interstitial and plasma glucose (mg/dL, one per minute) of the twin from G = IG =
    ``g0_mg_dl``, insulin at the basal steady state, under per-minute carbs (g/min), insulin
    (U/min) and meal windows (:class:`MinuteGrid`); differentiable, traceable."""
    x0 = REPLAYBG_TWIN.steady_state(params)._replace(G=g0_mg_dl, IG=g0_mg_dl)
    sim = simulate(
        params, carbs_g_per_min, insulin_u_per_min, x0,
        model=REPLAYBG_TWIN, extra_inputs=meal_window, substeps=1, meal_substeps=1,
    )  # fmt: skip
    return sim.glucose_mg_dl, sim.plasma_glucose_mg_dl


def negative_log_posterior(z, grid: MinuteGrid, bw_kg, u2ss, noise_sd_mg_dl):
    """The MAP objective: minus the log-posterior of log-space coordinates ``z``.

    ``z`` holds the identified parameters (:data:`IDENTIFIED`, standardised logs), the initial
    glucose and, when ``noise_sd_mg_dl`` is None, the noise SD; Gaussian likelihood on the CGM
    readings of ``grid`` (mg/dL) plus the log-normal priors. Shared with the Laplace
    approximation in :mod:`glucotwin.twin.posterior` so both use one objective.
    """
    n_model = len(IDENTIFIED)
    params = _params_from_z(z, bw_kg, u2ss)
    g0 = grid.cgm_mg_dl[0] * jnp.exp(G0_PRIOR_SD * z[n_model])
    glucose, _ = replay_glucose(
        params, grid.carbs_g_per_min, grid.insulin_u_per_min, grid.meal_window, g0
    )
    residual = glucose[grid.cgm_minute] - grid.cgm_mg_dl
    if noise_sd_mg_dl is None:
        log_sigma = NOISE_PRIOR[0] + NOISE_PRIOR[1] * z[n_model + 1]
    else:
        log_sigma = jnp.log(noise_sd_mg_dl)
    n = residual.shape[0]
    nll = 0.5 * jnp.sum(residual**2) * jnp.exp(-2.0 * log_sigma) + n * log_sigma
    value = nll + 0.5 * jnp.sum(z**2)
    # Line searches may probe parameters whose simulation overflows: report those as bad.
    return jnp.where(jnp.isfinite(value), value, jnp.inf)


def _minimise(loss, z0: jax.Array, max_iter: int, tol: float):
    """L-BFGS to a gradient norm below ``tol`` or ``max_iter`` iterations (optax's recipe)."""
    optimiser = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss)

    def step(carry):
        z, state = carry
        value, grad = value_and_grad(z, state=state)
        updates, state = optimiser.update(grad, state, z, value=value, grad=grad, value_fn=loss)
        return optax.apply_updates(z, updates), state

    def going(carry):
        _, state = carry
        count = otu.tree_get(state, "count")
        grad_norm = otu.tree_norm(otu.tree_get(state, "grad"))
        return (count == 0) | ((count < max_iter) & (grad_norm >= tol))

    z, state = jax.lax.while_loop(going, step, (z0, optimiser.init(z0)))
    return z, otu.tree_get(state, "value"), otu.tree_get(state, "count")


class TwinFitter:
    """Identify a personal ReplayBG twin from one subject's recording (scikit-learn style).

    Hyper-parameters: ``method`` (only ``"map"``), ``seed`` (draws the extra starting points
    when ``n_starts > 1``; the first start is the prior median), ``noise_sd_mg_dl`` (fixed
    CGM noise SD, mg/dL; ``None`` fits it), ``max_iter`` and ``tol`` (L-BFGS iterations and
    gradient-norm tolerance in standardised coordinates), ``n_starts``.

    Learned attributes after :meth:`fit`: ``params_`` (:class:`TwinParams`),
    ``initial_glucose_mg_dl_``, ``noise_sd_mg_dl_``, ``rmse_mg_dl_`` and ``mard_percent_``
    (replay against the CGM readings), ``neg_log_posterior_``, ``iterations_``,
    ``converged_``, ``seconds_`` (wall time of the fit, compilation included), ``grid_``.
    """

    def __init__(
        self,
        method: str = "map",
        seed: int = 0,
        noise_sd_mg_dl: float | None = None,
        max_iter: int = 500,
        tol: float = 1e-4,
        n_starts: int = 1,
    ) -> None:
        self.method = method
        self.seed = seed
        self.noise_sd_mg_dl = noise_sd_mg_dl
        self.max_iter = max_iter
        self.tol = tol
        self.n_starts = n_starts

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyper-parameters by name (scikit-learn's contract)."""
        del deep
        names = list(inspect.signature(type(self).__init__).parameters)[1:]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params: Any) -> TwinFitter:
        """Set hyper-parameters by name; unknown names raise ``ValueError``."""
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"unknown hyper-parameter {name!r} (known: {sorted(valid)})")
            setattr(self, name, value)
        return self

    def _check(self) -> None:
        if self.method != "map":
            raise ValueError(
                f"method must be 'map' (the only one implemented), got {self.method!r}"
            )
        if self.noise_sd_mg_dl is not None and not self.noise_sd_mg_dl > 0:
            raise ValueError(f"noise_sd_mg_dl must be positive, got {self.noise_sd_mg_dl}")
        if self.max_iter < 1 or self.n_starts < 1 or not self.tol > 0:
            raise ValueError("max_iter and n_starts must be >= 1 and tol > 0")

    def fit(self, recording: Recording) -> TwinFitter:
        """Fit the twin to one subject's ``recording`` (see :func:`minute_grid`); returns self."""
        self._check()
        began = time.perf_counter()
        grid = minute_grid(recording)
        bw = body_weight_kg(recording)
        u2ss = basal_u2ss_mu_per_kg_per_min(recording, grid, bw)
        fixed_sigma = self.noise_sd_mg_dl
        size = len(IDENTIFIED) + 1 + (fixed_sigma is None)
        grid_j = grid._replace(
            carbs_g_per_min=jnp.asarray(grid.carbs_g_per_min),
            insulin_u_per_min=jnp.asarray(grid.insulin_u_per_min),
            cgm_minute=jnp.asarray(grid.cgm_minute),
            cgm_mg_dl=jnp.asarray(grid.cgm_mg_dl),
            meal_window=jnp.asarray(grid.meal_window),
        )

        def loss(z):
            return negative_log_posterior(z, grid_j, bw, u2ss, fixed_sigma)

        solve = jax.jit(lambda z0: _minimise(loss, z0, self.max_iter, self.tol))
        rng = np.random.default_rng(self.seed)
        starts = [np.zeros(size)] + [rng.standard_normal(size) for _ in range(self.n_starts - 1)]
        best = None
        for z0 in starts:
            z, value, count = solve(jnp.asarray(z0))
            if best is None or float(value) < float(best[1]):
                best = (z, value, count)
        z, value, count = best
        grad_norm = float(jnp.linalg.norm(jax.grad(loss)(z)))

        n_model = len(IDENTIFIED)
        self.params_ = _params_from_z(z, bw, u2ss)
        self.initial_glucose_mg_dl_ = float(grid.cgm_mg_dl[0] * np.exp(G0_PRIOR_SD * z[n_model]))
        if fixed_sigma is None:
            self.noise_sd_mg_dl_ = float(np.exp(NOISE_PRIOR[0] + NOISE_PRIOR[1] * z[n_model + 1]))
        else:
            self.noise_sd_mg_dl_ = float(fixed_sigma)
        self.neg_log_posterior_ = float(value)
        self.iterations_ = int(count)
        self.converged_ = bool(grad_norm < self.tol)
        self.grid_ = grid
        replay = self.predict()
        fitted = replay.glucose_mg_dl[grid.cgm_minute]
        error = fitted - grid.cgm_mg_dl
        self.rmse_mg_dl_ = float(np.sqrt(np.mean(error**2)))
        self.mard_percent_ = float(100.0 * np.mean(np.abs(error) / grid.cgm_mg_dl))
        self.seconds_ = time.perf_counter() - began
        return self

    def predict(self, recording: Recording | None = None) -> TwinReplay:
        """Replay glucose with the fitted twin under a recording's carbs and insulin.

        Without ``recording``: the fitted one, from the fitted initial glucose. With one: its
        own minute grid, starting from its first CGM reading with insulin at the basal steady
        state (the fitted subject's body weight and u2ss are kept).
        """
        if not hasattr(self, "params_"):
            raise RuntimeError("TwinFitter is not fitted yet: call fit(recording) first")
        if recording is None:
            grid, g0 = self.grid_, self.initial_glucose_mg_dl_
        else:
            grid = minute_grid(recording)
            g0 = float(grid.cgm_mg_dl[0])
        glucose, plasma = replay_glucose(
            self.params_, grid.carbs_g_per_min, grid.insulin_u_per_min, grid.meal_window, g0
        )
        times = grid.start + pd.to_timedelta(np.arange(grid.minutes), unit="min")
        return TwinReplay(pd.DatetimeIndex(times), np.asarray(glucose), np.asarray(plasma))
