"""Identification of the ReplayBG twin (:mod:`glucotwin.twin.model`) from one subject's CGM,
insulin and carbs: the posterior, its coordinates, and the maximum a posteriori (MAP) fit.

ReplayBG (Cappon et al. 2023, section II-B) samples the posterior with MCMC; this module
writes the same kind of posterior as a function of unconstrained coordinates and finds its
mode with L-BFGS (:func:`optax.lbfgs`, zoom line search) on gradients taken through the fast
solver (:func:`glucotwin.twin.solver.solve_twin`). :mod:`glucotwin.twin.posterior` adds the
Laplace approximation and :mod:`glucotwin.twin.sampling` NUTS and SVI on the same objective.

Coordinates (:class:`TwinObjective`). Each has an unconstrained value u and a standardised one
z with u = offset + scale z, and the prior is z ~ N(0, I), so that the negative log posterior

    sum_k (y_k - IG(t_k))^2 / (2 sigma^2) + n log sigma + |z|^2 / 2

is one expression for every coordinate:

- the thirteen :data:`IDENTIFIED` parameters, u = ln theta, log-normal priors :data:`PRIORS`
  (the MAP is that of the log-parameters: no Jacobian);
- ``beta_B``, ``beta_L``, ``beta_D``, ``beta_S``: meal delay of each route, min, ReplayBG's
  Uniform(0, 60) prior exactly, as beta = 60 Phi(u) with u ~ N(0, 1) (Phi the normal CDF);
- ``G0``, the initial plasma and interstitial glucose (ReplayBG fixes it to the first CGM
  reading, which may come hours after the first insulin): ln G0 ~ N(ln y_1, 0.3);
- ``sigma``, the CGM noise SD when fitted: ln sigma ~ N(ln 10 mg/dL, 0.5), our choice (a CGM
  of about 10 % MARD near 100 mg/dL); pass ``noise_sd_mg_dl`` to fix it instead;
- ``si_day_2`` ... ``si_day_D`` when the data span D >= 2 twin days (04:00 to 04:00 local):
  the log factor on SI_B, SI_L, SI_D of each day after the first, a random walk
  u_d = u_{d-1} + 0.2 z_d (:data:`SI_DAY_SD`; day-to-day variability of insulin sensitivity of
  about 20-30 % in type 1 diabetes: C. Hinshaw et al., "Diurnal pattern of insulin action in
  type 1 diabetes", Diabetes 62(7), 2223-2229, 2013; R. Visentin et al., "Circadian
  variability of insulin sensitivity", Diabetes Technol. Ther. 17(7), 2015). Day 1 is the
  reference (factor 1). A replay beyond the fitted days keeps the last day's factor, and its
  bands let the walk go on (:mod:`glucotwin.twin.posterior`).

Priors of the identified parameters (:data:`PRIORS`, log-normal: mean and SD of the natural
log), from ReplayBG's ``py_replay_bg`` T1D priors (``log_prior_single_meal``) unless noted:

- SG: log-normal(-3.8, 0.5), 1/min (ReplayBG, exact).
- SI_B, SI_L, SI_D (each): ReplayBG puts Gamma(shape 3.3, scale 5e-4) on SI·VG; here its
  moment-matched log-normal on SI: mean digamma(3.3) + ln(5e-4) - ln(VG = 1.45) = -6.938,
  SD sqrt(trigamma(3.3)) = 0.595 (median 9.7e-4 mL/(µU·min)).
- Gb: ReplayBG's N(119.13, 7.11) mg/dL as log-normal(ln 119.13, 7.11/119.13 = 0.060).
- p2: ReplayBG's sqrt(p2) ~ N(0.11, 0.004) as log-normal(2 ln 0.11, 2·0.004/0.11).
- ka2: log-normal(-4.2875, 0.4274); kd: (-3.5090, 0.6187); kempt: (-1.9646, 0.7069);
  kabs_B, kabs_L, kabs_D, kabs_S (each): (-5.4591, 1.4396), all 1/min (ReplayBG, exact; its
  orderings ka2 < kd and kabs < kempt are not imposed).

Compilation: the data enter the compiled fit as arguments, not constants (a
:class:`TwinObjective` is a pytree), and are padded to whole days of minutes and to a
multiple of :data:`CGM_PAD` readings (padded readings weigh 0), so every subject with the
same number of days shares one compiled program, which JAX's persistent cache keeps across
processes.

The insulin compartments start at the basal steady state under u2ss, the gut empty.
"""

from __future__ import annotations

import dataclasses
import functools
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
from glucotwin.twin.inputs import (
    MinuteGrid,
    basal_u2ss_mu_per_kg_per_min,
    body_weight_kg,
    day_index,
    minute_grid,
)
from glucotwin.twin.model import FIXED_VALUES, ROUTES, WINDOWS, TwinParams
from glucotwin.twin.solver import solve_twin

IDENTIFIED = (
    "Gb", "SG", "SI_B", "SI_L", "SI_D", "p2", "kd", "ka2", "kempt",
    "kabs_B", "kabs_L", "kabs_D", "kabs_S",
)  # fmt: skip
"""The twin parameters identification estimates (the others are fixed or the subject's)."""

PRIORS: dict[str, tuple[float, float]] = {
    "Gb": (4.7802, 0.0597),
    "SG": (-3.8, 0.5),
    **{f"SI_{v}": (-6.9376, 0.5946) for v in WINDOWS},
    "p2": (-4.4145, 0.0727),
    "kd": (-3.5090, 0.6187),
    "ka2": (-4.2875, 0.4274),
    "kempt": (-1.9646, 0.7069),
    **{f"kabs_{v}": (-5.4591, 1.4396) for v in ROUTES},
}
"""Log-normal priors (mean, SD of the natural log) of the identified parameters; sources in
the module docstring."""
G0_PRIOR_SD = 0.3
NOISE_PRIOR = (math.log(10.0), 0.5)
MEAL_DELAYS = tuple(f"beta_{v}" for v in ROUTES)
MEAL_DELAY_MAX_MIN = 60.0
"""ReplayBG's meal delays beta are Uniform(0, 60) min."""
SI_DAY_SD = 0.2
"""Random-walk SD of the log insulin-sensitivity factor per day (module docstring)."""


def si_day_names(days: int) -> tuple[str, ...]:
    """Names of the per-day SI coordinates of data spanning ``days`` twin days."""
    return tuple(f"si_day_{d}" for d in range(2, days + 1))


def coordinate_names(days: int = 1) -> tuple[str, ...]:
    """The posterior's coordinates for data spanning ``days`` twin days, in order."""
    return (*IDENTIFIED, *MEAL_DELAYS, "G0", "sigma", *si_day_names(days))


def days_of(coordinates) -> int:
    """How many twin days a list of coordinates covers (1 + its ``si_day_*`` entries)."""
    return 1 + sum(name.startswith("si_day_") for name in coordinates)


class TwinValues(NamedTuple):
    """Natural values of one point of the posterior: ``params`` (:class:`TwinParams`),
    ``meal_delay_min`` (one per route: B, L, D, S), ``g0_mg_dl``, ``sigma_mg_dl`` and
    ``si_day_log`` (one per fitted day; day 1 is 0)."""

    params: TwinParams
    meal_delay_min: jax.Array
    g0_mg_dl: jax.Array
    sigma_mg_dl: jax.Array
    si_day_log: jax.Array


def twin_values(u, days: int, bw_kg: float, u2ss: float) -> TwinValues:
    """:class:`TwinValues` of an unconstrained point ``u`` (ordered as
    :func:`coordinate_names` of ``days``); traceable; ``vmap`` it for rows of draws."""
    n = len(IDENTIFIED)
    values = jnp.exp(u[:n])
    fixed = {name: jnp.asarray(value, float) for name, value in FIXED_VALUES.items()}
    params = TwinParams(**dict(zip(IDENTIFIED, values, strict=True)), BW=jnp.asarray(bw_kg, float),
                        u2ss=jnp.asarray(u2ss, float), **fixed)  # fmt: skip
    m = n + len(MEAL_DELAYS)
    delays = MEAL_DELAY_MAX_MIN * jax.scipy.stats.norm.cdf(u[n:m])
    si_day_log = jnp.concatenate([jnp.zeros(1), u[m + 2 : m + 2 + days - 1]])
    return TwinValues(params, delays, jnp.exp(u[m]), jnp.exp(u[m + 1]), si_day_log)


def si_factor_per_minute(si_day_log: jax.Array, day: np.ndarray) -> jax.Array:
    """exp(log factor) of each minute's day; days past the fitted ones keep the last one."""
    last = si_day_log.shape[-1] - 1
    return jnp.exp(si_day_log[..., jnp.minimum(day, last)])


class TwinReplay(NamedTuple):
    """Replayed glucose, one row per minute of the grid: ``time`` (UTC, floating local time
    for zone-less sources), ``glucose_mg_dl`` (interstitial, what the CGM sees) and
    ``plasma_glucose_mg_dl``."""

    time: pd.DatetimeIndex
    glucose_mg_dl: np.ndarray
    plasma_glucose_mg_dl: np.ndarray


def replay_glucose(
    params: TwinParams,
    carbs_g_per_min,
    insulin_u_per_min,
    meal_window,
    g0_mg_dl,
    si_factor=None,
    meal_delay_min=None,
) -> tuple[jax.Array, jax.Array]:
    """Interstitial and plasma glucose (mg/dL, one per minute) of the twin from G = IG =
    ``g0_mg_dl``, insulin at the basal steady state, under per-minute carbs (g/min), insulin
    (U/min) and meal windows (:class:`MinuteGrid`), optional per-minute SI factors and meal
    delays (min, B, L, D); differentiable, traceable (:func:`~glucotwin.twin.solver.solve_twin`)."""
    trajectory = solve_twin(params, carbs_g_per_min, insulin_u_per_min, meal_window, g0_mg_dl,
                            si_factor, meal_delay_min)  # fmt: skip
    return trajectory.glucose_mg_dl, trajectory.plasma_glucose_mg_dl


CGM_PAD = 288
"""Readings are padded to a multiple of this many (one day of 5-min readings)."""
MINUTES_PAD = 24 * 60
"""Minutes are padded to whole days."""


def _padded(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["offset", "scale", "carbs_g_per_min", "insulin_u_per_min", "meal_window", "day",
                 "cgm_minute", "cgm_mg_dl", "cgm_weight", "bw_kg", "u2ss"],
    meta_fields=["coordinates", "days"],
)  # fmt: skip
@dataclasses.dataclass(frozen=True)
class TwinObjective:
    """The posterior of a twin given one subject's data, in standardised coordinates z.

    ``coordinates`` names the unconstrained values u = ``offset`` + ``scale`` @ z (module
    docstring); ``scale`` has one column per entry of z (none for a fixed sigma). The data:
    per-minute ``carbs_g_per_min``, ``insulin_u_per_min``, ``meal_window`` (meal codes) and
    ``day`` (twin day) of a :class:`MinuteGrid` padded to whole days, the readings
    ``cgm_minute``, ``cgm_mg_dl`` and ``cgm_weight`` (1, or 0 for padding); ``days`` is the
    number of fitted days. A pytree: its arrays are leaves, so jitted functions take it as an
    argument and compile once per shape.
    """

    coordinates: tuple[str, ...]
    days: int
    offset: Any
    scale: Any
    carbs_g_per_min: Any
    insulin_u_per_min: Any
    meal_window: Any
    day: Any
    cgm_minute: Any
    cgm_mg_dl: Any
    cgm_weight: Any
    bw_kg: Any
    u2ss: Any

    @property
    def size(self) -> int:
        """Length of z."""
        return self.scale.shape[1]

    def unconstrained(self, z):
        """u of a point z (or rows of z)."""
        return self.offset + z @ self.scale.T

    def values(self, z) -> TwinValues:
        """:class:`TwinValues` at a point z."""
        return twin_values(self.unconstrained(z), self.days, self.bw_kg, self.u2ss)

    def replay(self, z) -> tuple[jax.Array, jax.Array]:
        """Interstitial and plasma glucose of every minute of the padded grid at z (the
        subject's minutes come first)."""
        v = self.values(z)
        si = si_factor_per_minute(v.si_day_log, self.day)
        return replay_glucose(v.params, self.carbs_g_per_min, self.insulin_u_per_min,
                              self.meal_window, v.g0_mg_dl, si, v.meal_delay_min)  # fmt: skip

    def loss(self, z) -> jax.Array:
        """The negative log posterior at z (module docstring); +inf where the simulation
        overflows, so that line searches and samplers reject such points."""
        glucose, _ = self.replay(z)
        residual = (glucose[self.cgm_minute] - self.cgm_mg_dl) * self.cgm_weight
        log_sigma = jnp.log(self.values(z).sigma_mg_dl)
        n = jnp.sum(self.cgm_weight)
        nll = 0.5 * jnp.sum(residual**2) * jnp.exp(-2.0 * log_sigma) + n * log_sigma
        value = nll + 0.5 * jnp.sum(z**2)
        return jnp.where(jnp.isfinite(value), value, jnp.inf)


def twin_objective(
    grid: MinuteGrid, bw_kg: float, u2ss: float, noise_sd_mg_dl: float | None = None
) -> TwinObjective:
    """The :class:`TwinObjective` of a subject's :class:`MinuteGrid` (body weight, kg; basal
    u2ss, mU/(kg·min); a fixed CGM noise SD, mg/dL, or ``None`` to fit it)."""
    day = day_index(grid.start, grid.minutes, grid.utc_offset_min)
    days = int(day[-1]) + 1
    names = coordinate_names(days)
    n = len(IDENTIFIED)
    offset = np.zeros(len(names))
    scale_diag = np.ones(len(names))
    offset[:n] = [PRIORS[name][0] for name in IDENTIFIED]
    scale_diag[:n] = [PRIORS[name][1] for name in IDENTIFIED]
    i_g0, i_sigma = names.index("G0"), names.index("sigma")
    offset[i_g0], scale_diag[i_g0] = math.log(float(grid.cgm_mg_dl[0])), G0_PRIOR_SD
    scale = np.diag(scale_diag)
    if noise_sd_mg_dl is None:
        offset[i_sigma], scale[i_sigma, i_sigma] = NOISE_PRIOR
    else:
        offset[i_sigma] = math.log(noise_sd_mg_dl)
        scale = np.delete(scale, i_sigma, axis=1)
    # The walk: u of day d sums the increments of days 2..d.
    row, col = i_sigma + 1, scale.shape[1] - (days - 1)
    scale[row:, col:] = SI_DAY_SD * np.tril(np.ones((days - 1, days - 1)))

    def pad(values, length, fill=0.0):
        values = np.asarray(values)
        return np.concatenate([values, np.full(length - len(values), fill, values.dtype)])

    minutes = _padded(grid.minutes, MINUTES_PAD)
    readings = _padded(len(grid.cgm_mg_dl), CGM_PAD)
    arrays = {
        "carbs_g_per_min": pad(grid.carbs_g_per_min, minutes),
        "insulin_u_per_min": pad(grid.insulin_u_per_min, minutes),
        "meal_window": pad(grid.meal_window, minutes, grid.meal_window[-1]),
        "day": pad(day, minutes, day[-1]),
        "cgm_minute": pad(grid.cgm_minute, readings, 0),
        "cgm_mg_dl": pad(grid.cgm_mg_dl, readings, 0.0),
        "cgm_weight": pad(np.ones(len(grid.cgm_mg_dl)), readings, 0.0),
    }
    return TwinObjective(
        coordinates=names, days=days, offset=jnp.asarray(offset), scale=jnp.asarray(scale),
        **{name: jnp.asarray(value) for name, value in arrays.items()},
        bw_kg=jnp.asarray(float(bw_kg)), u2ss=jnp.asarray(float(u2ss)),
    )  # fmt: skip


def objective_loss(objective: TwinObjective, z) -> jax.Array:
    """``objective.loss(z)`` as a function of both (jit and differentiate it with the
    objective as an argument, so that the data are not compiled in as constants)."""
    return objective.loss(z)


objective_hessian = jax.jit(jax.hessian(objective_loss, argnums=1))
"""The Hessian of the negative log posterior in z: ``objective_hessian(objective, z)``."""


STALL_RTOL = 1e-12
"""The loss counts as settled when it changes by less than this relative amount ..."""
STALL_ITERATIONS = 5
"""... on this many iterations in a row: where the posterior has kinks (the hypoglycaemia
risk term, whole-minute steps of the meal delays) the gradient norm need not fall below
``tol`` at the optimum, but the loss stops moving."""


def _minimise(loss, z0: jax.Array, max_iter: int, tol: float):
    """L-BFGS (optax's recipe) to a gradient norm below ``tol``, a settled loss
    (:data:`STALL_RTOL`, :data:`STALL_ITERATIONS`) or ``max_iter`` iterations. Returns z, the
    loss there, the iterations and whether it stopped before ``max_iter``."""
    optimiser = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss)

    def step(carry):
        z, state, previous, stalled = carry
        value, grad = value_and_grad(z, state=state)
        updates, state = optimiser.update(grad, state, z, value=value, grad=grad, value_fn=loss)
        small = jnp.abs(previous - value) <= STALL_RTOL * (1.0 + jnp.abs(value))
        return optax.apply_updates(z, updates), state, value, jnp.where(small, stalled + 1, 0)

    def going(carry):
        _, state, _, stalled = carry
        count = otu.tree_get(state, "count")
        grad_norm = otu.tree_norm(otu.tree_get(state, "grad"))
        settled = (grad_norm < tol) | (stalled >= STALL_ITERATIONS)
        return (count == 0) | ((count < max_iter) & ~settled)

    start = (z0, optimiser.init(z0), jnp.asarray(jnp.inf), jnp.asarray(0))
    z, state, _, stalled = jax.lax.while_loop(going, step, start)
    count = otu.tree_get(state, "count")
    return z, otu.tree_get(state, "value"), count, stalled >= STALL_ITERATIONS


class MapFit(NamedTuple):
    """What :func:`_fit_map` returns: the mode ``z``, the loss ``value`` there, L-BFGS
    ``iterations``, the gradient norm ``grad_norm``, whether the loss ``settled``
    (:func:`_minimise`) and the replayed CGM ``glucose``."""

    z: jax.Array
    value: jax.Array
    iterations: jax.Array
    grad_norm: jax.Array
    settled: jax.Array
    glucose: jax.Array


@functools.partial(jax.jit, static_argnames=("max_iter", "tol"))
def _fit_map(objective: TwinObjective, z0: jax.Array, max_iter: int, tol: float) -> MapFit:
    """The whole MAP fit as one compiled program (the objective's data are arguments)."""
    z, value, count, settled = _minimise(objective.loss, z0, max_iter, tol)
    grad_norm = jnp.linalg.norm(jax.grad(objective.loss)(z))
    return MapFit(z, value, count, grad_norm, settled, objective.replay(z)[0])


class TwinFitter:
    """Identify a personal ReplayBG twin from one subject's recording (scikit-learn style).

    Hyper-parameters: ``method`` (only ``"map"``: the posterior's mode; see
    :mod:`glucotwin.twin.posterior` for the rest), ``seed`` (draws the extra starting points
    when ``n_starts > 1``; the first start is the prior median), ``noise_sd_mg_dl`` (fixed
    CGM noise SD, mg/dL; ``None`` fits it), ``max_iter`` and ``tol`` (L-BFGS iterations and
    gradient-norm tolerance in standardised coordinates), ``n_starts``.

    Learned attributes after :meth:`fit`: ``objective_`` (:class:`TwinObjective`), ``z_`` (the
    MAP in standardised coordinates), ``values_`` (:class:`TwinValues` there), ``params_``
    (:class:`TwinParams`, SI of day 1), ``initial_glucose_mg_dl_``, ``noise_sd_mg_dl_``,
    ``fitted_glucose_mg_dl_`` (the replay, per minute), ``rmse_mg_dl_`` and ``mard_percent_``
    (replay against the CGM readings), ``neg_log_posterior_``, ``iterations_``, ``converged_``
    (gradient norm below ``tol`` or the loss settled), ``seconds_`` (wall time of the fit,
    compilation included), ``grid_``.
    """

    def __init__(
        self,
        method: str = "map",
        seed: int = 0,
        noise_sd_mg_dl: float | None = None,
        max_iter: int = 1000,
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
                f"method must be 'map' (NUTS and SVI live in glucotwin.twin.posterior), "
                f"got {self.method!r}"
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
        objective = twin_objective(grid, bw, u2ss, self.noise_sd_mg_dl)
        rng = np.random.default_rng(self.seed)
        size = objective.size
        starts = [np.zeros(size)] + [rng.standard_normal(size) for _ in range(self.n_starts - 1)]
        best = None
        for z0 in starts:
            found = _fit_map(objective, jnp.asarray(z0), self.max_iter, self.tol)
            if best is None or float(found.value) < float(best.value):
                best = found

        self.objective_ = objective
        self.z_ = np.asarray(best.z)
        self.values_ = objective.values(best.z)
        self.params_ = self.values_.params
        self.initial_glucose_mg_dl_ = float(self.values_.g0_mg_dl)
        self.noise_sd_mg_dl_ = float(self.values_.sigma_mg_dl)
        self.neg_log_posterior_ = float(best.value)
        self.iterations_ = int(best.iterations)
        self.converged_ = bool(float(best.grad_norm) < self.tol or bool(best.settled))
        self.grid_ = grid
        self.fitted_glucose_mg_dl_ = np.asarray(best.glucose)[: grid.minutes]
        error = self.fitted_glucose_mg_dl_[grid.cgm_minute] - grid.cgm_mg_dl
        self.rmse_mg_dl_ = float(np.sqrt(np.mean(error**2)))
        self.mard_percent_ = float(100.0 * np.mean(np.abs(error) / grid.cgm_mg_dl))
        self.seconds_ = time.perf_counter() - began
        return self

    def predict(self, recording: Recording | None = None) -> TwinReplay:
        """Replay glucose with the fitted twin under a recording's carbs and insulin.

        Without ``recording``: the fitted one, from the fitted initial glucose, with the
        fitted per-day SI factors. With one: its own minute grid, starting from its first CGM
        reading with insulin at the basal steady state and the last fitted day's SI (the
        fitted subject's body weight and u2ss are kept).
        """
        if not hasattr(self, "params_"):
            raise RuntimeError("TwinFitter is not fitted yet: call fit(recording) first")
        v = self.values_
        if recording is None:
            grid = self.grid_
            glucose, plasma = jax.jit(TwinObjective.replay)(self.objective_, self.z_)
            glucose, plasma = glucose[: grid.minutes], plasma[: grid.minutes]
        else:
            grid = minute_grid(recording)
            si = jnp.exp(v.si_day_log[-1])
            g0 = float(grid.cgm_mg_dl[0])
            glucose, plasma = jax.jit(replay_glucose)(
                v.params, grid.carbs_g_per_min, grid.insulin_u_per_min, grid.meal_window, g0,
                si, v.meal_delay_min,
            )  # fmt: skip
        times = grid.start + pd.to_timedelta(np.arange(grid.minutes), unit="min")
        return TwinReplay(pd.DatetimeIndex(times), np.asarray(glucose), np.asarray(plasma))
