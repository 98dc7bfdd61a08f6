"""Simulation-based calibration of the twin's posterior: virtual subjects with known truth,
and whether posterior intervals cover that truth at their nominal rate.

S. Talts, M. Betancourt, D. Simpson, A. Vehtari, A. Gelman, "Validating Bayesian inference
algorithms with simulation-based calibration", arXiv:1804.06788 (2018). If the truth
theta~ is drawn from the prior, data y~ from the likelihood given theta~, and the posterior
p(theta | y~) is computed exactly, then the posterior CDF at the truth, u = F(theta~ | y~),
is uniform on [0, 1] for every coordinate (their Theorem 1 for ranks among L posterior
draws, u = rank/(L+1) up to discreteness; section 4's histograms). Equivalently every
central interval of level l covers the truth in a fraction l of the fits:
|u - 1/2| < l/2. Over-confident posteriors put too many u near 0 and 1 (a U-shaped
histogram, coverage below nominal); biased ones shift the mass to one side.

Coordinates are the posterior's own, by name (:attr:`TwinPosterior.coordinates`,
:func:`~glucotwin.twin.fit.coordinate_names`): unconstrained values (natural logs of the
positive parameters, G0 and sigma; probits of the meal delays; log SI factors of the days).

Generation (:func:`synthetic_subject`) uses the fitter's own model and prior so that SBC
tests the inference, not model error: the truth is u = offset + scale z with z ~ N(0, I), the
prior of :class:`~glucotwin.twin.fit.TwinObjective` (whatever coordinates it holds), the
glucose is replayed as the fitter replays it (:func:`twin_glucose`: G = IG = G0 at minute 0,
insulin at the basal steady state under u2ss, empty gut) under a :class:`Scenario` of meals,
boluses by a carb ratio with dosing error, and basal = u2ss, and the CGM reads the
interstitial glucose every ``cgm_period_min`` with Gaussian noise of the drawn sigma (nothing
censored). The scenario (meal times and sizes, carb ratio, dosing error, body weight, u2ss)
is drawn independently of the truth: a carb ratio tuned to the drawn insulin sensitivity
would carry information about it that the fitter's likelihood ignores, and SBC would then
(rightly) fail.

Two departures from textbook SBC, both deliberate:

- Truncated prior. Some prior draws give impossible days (glucose falling to 0 after a
  bolus, or climbing past 600 mg/dL). A draw is rejected, and the truth and scenario drawn
  again, unless the noise-free interstitial glucose stays within
  :data:`GLUCOSE_LIMITS_MG_DL` (40-400 mg/dL, a CGM's reporting range, so no reading would
  have been censored) for the whole day. The truth then follows the prior truncated to that
  set A(scenario), and the exact posterior is the fitter's posterior restricted to A.
  :func:`truncated_draws` scores consistently with that: it replays every posterior draw
  under the subject's inputs and keeps those inside the limits. Scores of the untruncated
  posterior are reported too; they differ only when posterior mass crosses the limits.
- G0. The fitter centres its prior on the initial glucose on the first CGM reading
  (ln G0 ~ N(ln y_1, 0.3)), a data-dependent prior that no generative model reproduces.
  The generator draws ln G0 ~ N(ln Gb, 0.3) (the same SD, centred on the subject's basal
  glucose); since the first readings pin G0 much more tightly than 0.3 in log, SBC checks
  G0 only approximately.

Scoring (:func:`calibration_table`) per coordinate: coverage of the central 50/90/95 %
intervals with its binomial standard error under the nominal rate, sqrt(l (1-l)/n); a
chi-square test that the histogram of u is uniform (Talts et al., section 4.1); and
posterior contraction, the median posterior SD over the prior SD (of the unconstrained
coordinate).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.special as jsp
import numpy as np
import pandas as pd

import glucotwin.physiology  # noqa: F401  (turns on float64)
from glucotwin.data.model import Recording
from glucotwin.twin.fit import (
    G0_PRIOR_SD,
    TwinObjective,
    days_of,
    replay_glucose,
    si_factor_per_minute,
    twin_objective,
    twin_values,
)
from glucotwin.twin.inputs import MinuteGrid, day_index, meal_windows
from glucotwin.twin.posterior import TwinPosterior, fit_posterior

LEVELS = (0.5, 0.9, 0.95)
"""Nominal levels of the central posterior intervals scored."""
GLUCOSE_LIMITS_MG_DL = (40.0, 400.0)
"""Noise-free interstitial glucose must stay within these limits, mg/dL, for a prior draw to
be kept (the truncation of the prior; module docstring)."""
START = pd.Timestamp("2027-01-04 00:00", tz="UTC")
"""Minute 0 of every synthetic recording: midnight, UTC; the readings carry no UTC offset, so
the meal windows (and :attr:`Meal.clock_min`) read this clock."""
MIN_CGM_MG_DL = 5.0
"""Least glucose a :class:`Recording` accepts; noisy readings below are raised to it and
counted (:attr:`SyntheticSubject.raised_readings`). Rare, and a small departure from the
likelihood: with the noise-free glucose >= 40 mg/dL, about 3 % of subjects (those near 40
with a large drawn sigma) have one or more such readings."""


class Meal(NamedTuple):
    """One daily meal of a :class:`Scenario`: eaten at ``clock_min`` (minutes after local
    midnight) plus Gaussian jitter of SD ``clock_sd_min``; ``carbs_g`` the median size, g,
    log-normal with SD ``carbs_log_sd``; eaten each day with ``probability``; ``bolused``:
    whether the subject doses for it."""

    clock_min: float
    clock_sd_min: float
    carbs_g: float
    carbs_log_sd: float
    probability: float = 1.0
    bolused: bool = True


DEFAULT_MEALS = (
    Meal(7 * 60 + 30, 30.0, 45.0, 0.3),
    Meal(12 * 60 + 30, 40.0, 65.0, 0.3),
    Meal(16 * 60, 60.0, 15.0, 0.3, probability=0.5, bolused=False),
    Meal(19 * 60 + 30, 40.0, 75.0, 0.3),
)
"""Breakfast, lunch, an unbolused snack on half the days, dinner: times and sizes of an
adult's day (median 185 g of carbs in meals, plus the snack)."""


class Scenario(NamedTuple):
    """What a synthetic subject's days look like (all drawn independently of the truth).

    ``days`` of data, CGM every ``cgm_period_min``; ``meals`` (:class:`Meal`) each day.
    Boluses: carbs / carb ratio, the ratio (g/U) log-normal per subject with median and log-SD
    ``carb_ratio_g_per_u``, times a per-bolus dosing error exp(N(0, ``bolus_error_log_sd``)),
    rounded to ``bolus_step_u``, given ``prebolus_min`` (uniform range) before eating. Body
    weight (kg) and basal u2ss (mU/(kg·min)) log-normal with medians and log-SDs
    ``body_weight_kg`` and ``u2ss_mu_per_kg_per_min``; the basal rate is u2ss all day.
    ``batch`` prior draws are simulated at once, at most ``max_draws`` in all.
    """

    days: int = 1
    cgm_period_min: int = 5
    meals: tuple[Meal, ...] = DEFAULT_MEALS
    carb_ratio_g_per_u: tuple[float, float] = (10.0, 0.3)
    bolus_error_log_sd: float = 0.2
    bolus_step_u: float = 0.1
    prebolus_min: tuple[float, float] = (0.0, 15.0)
    body_weight_kg: tuple[float, float] = (75.0, 0.15)
    u2ss_mu_per_kg_per_min: tuple[float, float] = (0.2, 0.25)
    batch: int = 64
    max_draws: int = 4096

    @property
    def minutes(self) -> int:
        """Minutes of the grid: from the first to the last CGM reading, inclusive."""
        return self.days * 24 * 60 - self.cgm_period_min + 1


class SyntheticSubject(NamedTuple):
    """A virtual subject with known truth.

    ``truth``: the value of each unconstrained coordinate (names in ``coordinates``, the
    fitter's for these data). ``recording``: what the fitter sees. ``carbs_g_per_min``,
    ``insulin_u_per_min`` (basal included), ``meal_window``, ``day`` (twin day): the
    per-minute inputs (minute 0 = :data:`START`); ``glucose_mg_dl``: the noise-free
    interstitial glucose per minute. ``bw_kg``, ``u2ss_mu_per_kg_per_min``: the subject's.
    ``draws``: prior draws made until one was accepted (1 / acceptance rate, in mean).
    ``raised_readings``: readings raised to :data:`MIN_CGM_MG_DL`.
    """

    truth: dict[str, float]
    coordinates: tuple[str, ...]
    recording: Recording
    carbs_g_per_min: np.ndarray
    insulin_u_per_min: np.ndarray
    meal_window: np.ndarray
    day: np.ndarray
    glucose_mg_dl: np.ndarray
    bw_kg: float
    u2ss_mu_per_kg_per_min: float
    draws: int
    raised_readings: int


DERIVED: dict[str, Callable[[Mapping[str, np.ndarray]], np.ndarray]] = {
    "kd_ka2_min": lambda v: np.minimum(v["kd"], v["ka2"]),
    "kd_ka2_max": lambda v: np.maximum(v["kd"], v["ka2"]),
}
"""Functions of the coordinates scored from draws besides the coordinates. Why: plasma
insulin is the two subcutaneous compartments' chain kd -> ka2 started from its basal steady
state, whose transfer function kd ka2 / ((s + kd)(s + ka2)) is symmetric, so swapping kd and
ka2 replays the same glucose and the data identify only the unordered pair; its smaller and
larger rate are identifiable where kd and ka2 are not."""


def with_derived(values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``values`` (keyed by coordinate, scalars or draws) plus :data:`DERIVED`."""
    return {**values, **{name: function(values) for name, function in DERIVED.items()}}


def prior_template(scenario: Scenario) -> TwinObjective:
    """The fitter's :class:`~glucotwin.twin.fit.TwinObjective` for the scenario's minute grid
    with placeholder data: its ``coordinates``, and the prior u = ``offset`` + ``scale`` z,
    z ~ N(0, I) (the G0 offset there is a placeholder's; see :func:`draw_truth`)."""
    minutes = scenario.minutes
    cgm_minute = np.arange(0, minutes, scenario.cgm_period_min)
    zeros = np.zeros(minutes)
    grid = MinuteGrid(start=START, carbs_g_per_min=zeros, insulin_u_per_min=zeros,
                      basal_u_per_min=zeros, cgm_minute=cgm_minute,
                      cgm_mg_dl=np.full(cgm_minute.size, 100.0),
                      meal_window=meal_windows(START, minutes))  # fmt: skip
    return twin_objective(grid, 75.0, 0.2)


def draw_truth(rng: np.random.Generator, n: int, prior: TwinObjective) -> dict[str, np.ndarray]:
    """``n`` draws of every coordinate of ``prior`` (:func:`prior_template`) from the
    generating prior: the fitter's, u = offset + scale z with z ~ N(0, I), except
    ln G0 = ln Gb + 0.3 z (module docstring)."""
    z = rng.standard_normal((n, prior.size))
    u = np.asarray(prior.offset) + z @ np.asarray(prior.scale).T
    names = prior.coordinates
    i_g0 = names.index("G0")
    u[:, i_g0] = u[:, names.index("Gb")] + G0_PRIOR_SD * z[:, i_g0]
    return {name: u[:, k] for k, name in enumerate(names)}


def prior_sd(prior: TwinObjective) -> dict[str, float]:
    """Prior SD of each coordinate of ``prior`` (sqrt of diag(scale scale^T); G0 as generated)
    and of :data:`DERIVED` (Monte Carlo, 10^5 fixed draws: no closed form)."""
    draws = draw_truth(np.random.default_rng(0), 100_000, prior)
    sd = np.sqrt(np.sum(np.asarray(prior.scale) ** 2, axis=1))
    out = {name: float(sd[k]) for k, name in enumerate(prior.coordinates)}
    out["G0"] = float(np.std(draws["G0"]))
    out.update({name: float(np.std(f(draws))) for name, f in DERIVED.items()})
    return out


@functools.cache
def _replayer(days: int, day: bytes):
    """The fitter's replay (``TwinObjective.replay``, from u instead of z), jit-compiled and
    vmapped over twins, for one layout of twin days (``day``: the int64 bytes of each
    minute's day, concrete because the fitter indexes with it)."""
    minute_day = np.frombuffer(day, dtype=np.int64)

    def replay(u, carbs, insulin, window, bw_kg, u2ss):
        v = twin_values(u, days, bw_kg, u2ss)
        si = si_factor_per_minute(v.si_day_log, minute_day)
        glucose, _ = replay_glucose(v.params, carbs, insulin, window, v.g0_mg_dl, si,
                                    v.meal_delay_min)  # fmt: skip
        return glucose

    return jax.jit(jax.vmap(replay, in_axes=(0, 0, 0, None, 0, 0)))


REPLAY_BATCH = 64
"""Twins replayed per compiled call (:func:`twin_glucose` pads to it: one compilation)."""


def twin_glucose(
    values: Mapping[str, np.ndarray],
    coordinates: Sequence[str],
    carbs_g_per_min: np.ndarray,
    insulin_u_per_min: np.ndarray,
    meal_window: np.ndarray,
    day: np.ndarray,
    bw_kg: float | np.ndarray,
    u2ss_mu_per_kg_per_min: float | np.ndarray,
) -> np.ndarray:
    """Noise-free interstitial glucose, mg/dL, shape [B, minutes], of B twins whose
    unconstrained ``coordinates`` are ``values`` (arrays [B] keyed by name), under per-minute
    inputs ([minutes] or [B, minutes]), meal windows and twin days ([minutes]), body weights
    and u2ss (scalars or [B]): the fitter's replay (``TwinObjective.replay``), for generation
    and truncation alike."""
    u = np.stack([np.atleast_1d(np.asarray(values[name], float)) for name in coordinates], 1)
    n, minutes = u.shape[0], len(meal_window)
    columns = [np.broadcast_to(np.asarray(x, float), (n, minutes))
               for x in (carbs_g_per_min, insulin_u_per_min)]  # fmt: skip
    per_twin = [
        np.broadcast_to(np.asarray(x, float), (n,)) for x in (bw_kg, u2ss_mu_per_kg_per_min)
    ]
    replay = _replayer(days_of(coordinates), np.asarray(day, np.int64).tobytes())
    out = []
    for first in range(0, n, REPLAY_BATCH):
        rows = slice(first, first + REPLAY_BATCH)
        pad = REPLAY_BATCH - u[rows].shape[0]

        def padded(x, rows=rows, pad=pad):
            return np.concatenate([x[rows], np.repeat(x[rows][-1:], pad, axis=0)])

        glucose = replay(padded(u), padded(columns[0]), padded(columns[1]),
                         jnp.asarray(meal_window, float), padded(per_twin[0]),
                         padded(per_twin[1]))  # fmt: skip
        out.append(np.asarray(glucose)[: REPLAY_BATCH - pad])
    return np.concatenate(out)


def within_limits(glucose_mg_dl: np.ndarray, limits=GLUCOSE_LIMITS_MG_DL) -> np.ndarray:
    """Per row of ``glucose_mg_dl`` [B, minutes]: every value finite and within ``limits``."""
    low, high = limits
    return np.all(np.isfinite(glucose_mg_dl) & (glucose_mg_dl >= low) & (glucose_mg_dl <= high),
                  axis=-1)  # fmt: skip


def _draw_inputs(rng: np.random.Generator, scenario: Scenario, n: int):
    """Per-minute carbs and insulin ([n, minutes]), body weights and u2ss ([n]) of n
    subjects, with their meal and bolus events."""
    minutes = scenario.minutes
    bw = scenario.body_weight_kg[0] * np.exp(rng.normal(0.0, scenario.body_weight_kg[1], n))
    u2ss = scenario.u2ss_mu_per_kg_per_min[0] * np.exp(
        rng.normal(0.0, scenario.u2ss_mu_per_kg_per_min[1], n)
    )
    ratio = scenario.carb_ratio_g_per_u[0] * np.exp(
        rng.normal(0.0, scenario.carb_ratio_g_per_u[1], n)
    )
    basal_u_per_h = u2ss * bw / 1000.0 * 60.0
    carbs = np.zeros((n, minutes))
    insulin = np.repeat((basal_u_per_h / 60.0)[:, None], minutes, axis=1)
    meals: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    boluses: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for day in range(scenario.days):
        for meal in scenario.meals:
            eaten = rng.random(n) < meal.probability
            clock = rng.normal(meal.clock_min, meal.clock_sd_min, n)
            grams = np.round(meal.carbs_g * np.exp(rng.normal(0.0, meal.carbs_log_sd, n)))
            error = np.exp(rng.normal(0.0, scenario.bolus_error_log_sd, n))
            lead = rng.uniform(*scenario.prebolus_min, n)
            meal_minute = np.clip(np.round(day * 1440 + clock), 0, minutes - 1).astype(int)
            bolus_minute = np.clip(np.round(meal_minute - lead), 0, minutes - 1).astype(int)
            units = np.round(grams / ratio * error / scenario.bolus_step_u) * scenario.bolus_step_u
            for i in np.nonzero(eaten)[0]:
                carbs[i, meal_minute[i]] += grams[i]
                meals[i].append((int(meal_minute[i]), float(grams[i])))
                if meal.bolused and units[i] > 0:
                    insulin[i, bolus_minute[i]] += units[i]
                    boluses[i].append((int(bolus_minute[i]), float(units[i])))
    return carbs, insulin, bw, u2ss, basal_u_per_h, meals, boluses


def _recording(cgm_minutes, cgm_mg_dl, meals, boluses, basal_u_per_h, bw_kg, u2ss) -> Recording:
    def at(minutes):
        return START + pd.to_timedelta(np.asarray(minutes, float), unit="min")

    glucose = pd.DataFrame({"time": at(cgm_minutes), "glucose_mg_dl": cgm_mg_dl})
    carbs = pd.DataFrame({"time": at([m for m, _ in meals]), "carbs_g": [g for _, g in meals]})
    bolus = pd.DataFrame({"time": at([m for m, _ in boluses]), "event": "bolus",
                          "delivery": "normal", "units_u": [u for _, u in boluses]})  # fmt: skip
    basal = pd.DataFrame({"time": at([0]), "event": "basal", "delivery": "scheduled",
                          "rate_u_per_h": [basal_u_per_h]})  # fmt: skip
    insulin = pd.concat([bolus, basal], ignore_index=True)
    meta = {"patient_info": {"body_weight_kg": bw_kg, "u2ss_mu_per_kg_per_min": u2ss}}
    return Recording.build(
        glucose=glucose.assign(subject="virtual"),
        insulin=insulin.assign(subject="virtual"),
        carbs=carbs.assign(subject="virtual"),
        meta=meta,
    )


def synthetic_subject(
    seed: int | Sequence[int], scenario: Scenario = Scenario()
) -> SyntheticSubject:
    """One virtual subject: truth from the prior, a day (or ``scenario.days``) of inputs, CGM.

    Draws the truth (:func:`draw_truth`) and the scenario's inputs together in batches of
    ``scenario.batch``, replays them (:func:`twin_glucose`) and keeps the first draw whose
    glucose stays within :data:`GLUCOSE_LIMITS_MG_DL` (the truncated prior of the module
    docstring); then adds CGM noise of the drawn sigma every ``cgm_period_min``. Deterministic
    for a ``seed`` (anything :func:`numpy.random.default_rng` takes, e.g. ``(base, i)``).
    Raises ``RuntimeError`` when ``scenario.max_draws`` draws found none.
    """
    if scenario.days < 1 or scenario.cgm_period_min < 1:
        raise ValueError("days and cgm_period_min must be >= 1")
    rng = np.random.default_rng(seed)
    prior = prior_template(scenario)
    names = prior.coordinates
    window = meal_windows(START, scenario.minutes)
    day = day_index(START, scenario.minutes)
    drawn = 0
    while drawn < scenario.max_draws:
        truth = draw_truth(rng, scenario.batch, prior)
        carbs, insulin, bw, u2ss, basal, meals, boluses = _draw_inputs(
            rng, scenario, scenario.batch
        )
        glucose = twin_glucose(truth, names, carbs, insulin, window, day, bw, u2ss)
        kept = np.nonzero(within_limits(glucose))[0]
        if kept.size:
            i = int(kept[0])
            drawn += i + 1
            break
        drawn += scenario.batch
    else:
        raise RuntimeError(
            f"no prior draw in {scenario.max_draws} kept glucose within {GLUCOSE_LIMITS_MG_DL}"
        )
    cgm_minutes = np.arange(0, scenario.minutes, scenario.cgm_period_min)
    sigma = math.exp(truth["sigma"][i])
    cgm = glucose[i, cgm_minutes] + rng.normal(0.0, sigma, cgm_minutes.size)
    raised = int(np.sum(cgm < MIN_CGM_MG_DL))
    cgm = np.maximum(cgm, MIN_CGM_MG_DL)
    recording = _recording(cgm_minutes, cgm, meals[i], boluses[i], float(basal[i]),
                           float(bw[i]), float(u2ss[i]))  # fmt: skip
    return SyntheticSubject(
        truth={name: float(values[i]) for name, values in truth.items()},
        coordinates=names,
        recording=recording,
        carbs_g_per_min=carbs[i],
        insulin_u_per_min=insulin[i],
        meal_window=window,
        day=day,
        glucose_mg_dl=glucose[i],
        bw_kg=float(bw[i]),
        u2ss_mu_per_kg_per_min=float(u2ss[i]),
        draws=drawn,
        raised_readings=raised,
    )


def gaussian_draws(
    mean: np.ndarray, cov: np.ndarray, names: Sequence[str], n: int, seed
) -> dict[str, np.ndarray]:
    """``n`` draws of a Gaussian over coordinates ``names`` (e.g. a Laplace posterior's
    ``mean`` and ``cov``), keyed by name."""
    draws = np.random.default_rng(seed).multivariate_normal(mean, cov, size=n, method="eigh")
    return {name: draws[:, k] for k, name in enumerate(names)}


def truncated_draws(
    draws: Mapping[str, np.ndarray], subject: SyntheticSubject, limits=GLUCOSE_LIMITS_MG_DL
) -> tuple[dict[str, np.ndarray], float]:
    """Posterior ``draws`` (unconstrained coordinates, keyed by name: every one of
    ``subject.coordinates``) restricted to the truncation set of ``subject``: each draw is
    replayed under the subject's inputs and kept when its glucose stays within ``limits``.
    Returns the kept draws and the fraction kept (the posterior mass inside the set). Works
    for any posterior given as draws (Laplace, NUTS, SVI)."""
    glucose = twin_glucose(draws, subject.coordinates, subject.carbs_g_per_min,
                           subject.insulin_u_per_min, subject.meal_window, subject.day,
                           subject.bw_kg, subject.u2ss_mu_per_kg_per_min)  # fmt: skip
    keep = within_limits(glucose, limits)
    return {name: np.asarray(values)[keep] for name, values in draws.items()}, float(keep.mean())


class CoordinateScore(NamedTuple):
    """One fit's score of one coordinate: ``u`` the posterior CDF at the truth (the
    normalised SBC rank, in (0, 1)), ``sd`` the posterior SD (of the unconstrained
    coordinate)."""

    u: float
    sd: float


def score_gaussian(
    truth: Mapping[str, float], mean: Mapping[str, float], sd: Mapping[str, float]
) -> dict[str, CoordinateScore]:
    """Scores of a Gaussian posterior with marginal ``mean`` and ``sd`` per coordinate:
    u = Phi((truth - mean)/sd). Coordinates absent from ``truth`` or with sd = 0 (held fixed)
    are left out."""
    scores = {}
    for name, s in sd.items():
        if name in truth and s > 0:
            u = 0.5 * math.erfc(-(truth[name] - mean[name]) / (s * math.sqrt(2.0)))
            scores[name] = CoordinateScore(u, float(s))
    return scores


def score_draws(
    truth: Mapping[str, float], draws: Mapping[str, np.ndarray]
) -> dict[str, CoordinateScore]:
    """Scores of a posterior given as L draws per coordinate: the SBC rank r (draws below the
    truth, Talts et al. Algorithm 1) as u = (r + 1/2)/(L + 1), and the SD of the draws. With
    L + 1 a multiple of the number of histogram bins, the bins of u are equiprobable."""
    scores = {}
    for name, values in draws.items():
        values = np.asarray(values)
        if name in truth and values.size > 1 and np.ptp(values) > 0:
            rank = int(np.sum(values < truth[name]))
            scores[name] = CoordinateScore((rank + 0.5) / (values.size + 1), float(values.std()))
    return scores


def score_posterior(
    subject: SyntheticSubject, posterior: TwinPosterior, n_draws: int = 999, seed=0
) -> tuple[dict[str, CoordinateScore], dict[str, CoordinateScore], float]:
    """Score a :class:`TwinPosterior` of ``subject`` as it is and truncated like the prior.

    Its draws are ``posterior.draws`` (NUTS, SVI) or, for a Laplace posterior (no draws),
    ``n_draws`` from its Gaussian. As it is: :func:`score_gaussian` of ``mean`` and ``cov``
    for a Laplace posterior, :func:`score_draws` of the draws otherwise. Truncated:
    :func:`truncated_draws` then :func:`score_draws`, with :data:`DERIVED` coordinates too.
    Returns both and the posterior mass kept by the truncation. Coordinates are matched by
    name (``posterior.coordinates``)."""
    names = tuple(posterior.coordinates)
    if posterior.draws is None:
        sd = np.sqrt(np.clip(np.diag(posterior.cov), 0.0, None))
        as_is = score_gaussian(subject.truth, dict(zip(names, posterior.mean, strict=True)),
                               dict(zip(names, sd, strict=True)))  # fmt: skip
        draws = gaussian_draws(posterior.mean, posterior.cov, names, n_draws, seed)
    else:
        draws = {name: posterior.draws[:, k] for k, name in enumerate(names)}
        as_is = score_draws(subject.truth, draws)
    kept, mass = truncated_draws(draws, subject)
    return as_is, score_draws(with_derived(subject.truth), with_derived(kept)), mass


def coverage(u: np.ndarray, levels: Sequence[float] = LEVELS) -> np.ndarray:
    """Fraction of fits whose central interval of each level covers the truth, from the
    posterior CDFs at the truth ``u``: covered when |u - 1/2| < level/2."""
    u = np.asarray(u, float)
    return np.array([np.mean(np.abs(u - 0.5) < level / 2.0) for level in levels])


def binomial_se(level: float | np.ndarray, n: int) -> np.ndarray:
    """Standard error of a coverage fraction over ``n`` independent fits when the true rate
    is ``level``: sqrt(level (1 - level) / n)."""
    level = np.asarray(level, float)
    return np.sqrt(level * (1.0 - level) / n)


class UniformityTest(NamedTuple):
    """Pearson's chi-square test of a histogram against the uniform: ``counts`` per bin,
    ``statistic``, degrees of freedom ``dof`` (bins - 1) and ``p_value``."""

    counts: np.ndarray
    statistic: float
    dof: int
    p_value: float


def rank_uniformity(u: np.ndarray, bins: int | None = None) -> UniformityTest:
    """Chi-square test that normalised ranks ``u`` in (0, 1) are uniform (Talts et al. 2018,
    section 4.1), on ``bins`` equal bins (default: n // 10 within 2..20, so each bin expects
    at least about 10 fits). p = Q(dof/2, X^2/2), the regularised upper incomplete gamma
    function (:func:`jax.scipy.special.gammaincc`; SciPy is not a dependency)."""
    u = np.asarray(u, float)
    n = u.size
    if n < 2:
        raise ValueError(f"need at least 2 ranks, got {n}")
    bins = int(np.clip(n // 10, 2, 20)) if bins is None else bins
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    index = np.clip(np.floor(u * bins).astype(int), 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    expected = n / bins
    statistic = float(np.sum((counts - expected) ** 2) / expected)
    dof = bins - 1
    p_value = float(jsp.gammaincc(dof / 2.0, statistic / 2.0))
    return UniformityTest(counts, statistic, dof, p_value)


class Calibration(NamedTuple):
    """Calibration of one coordinate over ``n`` fits: ``coverage`` at each of ``levels``,
    its binomial ``coverage_se`` under the nominal rate, the rank ``uniformity`` test, and
    ``contraction`` = median posterior SD / prior SD (1: the data say nothing, 0: the data
    pin it down)."""

    n: int
    levels: tuple[float, ...]
    coverage: np.ndarray
    coverage_se: np.ndarray
    uniformity: UniformityTest
    contraction: float


def calibrate_coordinate(
    u: np.ndarray,
    posterior_sd: np.ndarray,
    prior_sd: float,
    levels: Sequence[float] = LEVELS,
    bins: int | None = None,
) -> Calibration:
    """:class:`Calibration` of one coordinate from its per-fit posterior CDFs at the truth
    ``u`` and posterior SDs."""
    u = np.asarray(u, float)
    levels = tuple(levels)
    return Calibration(
        n=u.size,
        levels=levels,
        coverage=coverage(u, levels),
        coverage_se=binomial_se(np.asarray(levels), u.size),
        uniformity=rank_uniformity(u, bins),
        contraction=float(np.median(np.asarray(posterior_sd, float)) / prior_sd),
    )


def calibration_table(
    scores: Sequence[Mapping[str, CoordinateScore]],
    prior_sds: Mapping[str, float],
    levels: Sequence[float] = LEVELS,
    bins: int | None = None,
) -> dict[str, Calibration]:
    """:func:`calibrate_coordinate` for every coordinate scored in all of ``scores`` (one
    mapping per fit) and in ``prior_sds`` (e.g. :func:`prior_sd`), in the order of the
    first fit."""
    names = [n for n in scores[0] if n in prior_sds and all(n in s for s in scores)]
    return {
        name: calibrate_coordinate(
            [s[name].u for s in scores],
            [s[name].sd for s in scores],
            prior_sds[name],
            levels,
            bins,
        )
        for name in names
    }


class FitRecord(NamedTuple):
    """One virtual subject's fit, scored: ``index`` (subject ``(seed, index)``), ``truth``;
    ``as_is`` and ``truncated``, the scores of the posterior as it is and truncated like the
    prior (:func:`score_posterior`); ``facts``: ``seconds``, ``method``, ``converged``,
    ``regularised``, ``rmse_mg_dl``, ``iterations``, ``kept_mass`` (the posterior mass inside
    the truncation set), ``prior_draws`` (draws the subject took), ``raised_readings``."""

    index: int
    truth: dict[str, float]
    as_is: dict[str, CoordinateScore]
    truncated: dict[str, CoordinateScore]
    facts: dict


def calibrate_subject(
    index: int,
    seed: int = 0,
    scenario: Scenario = Scenario(),
    fit: Callable[[Recording], tuple[TwinPosterior, float]] = fit_posterior,
    n_draws: int = 999,
) -> FitRecord:
    """Generate subject ``synthetic_subject((seed, index), scenario)``, fit it with ``fit``
    (default :func:`fit_posterior`: MAP + Laplace; e.g.
    ``functools.partial(fit_posterior, method="nuts")`` for draws) and score it
    (:func:`score_posterior`, ``n_draws`` Gaussian draws for a Laplace posterior)."""
    subject = synthetic_subject((seed, index), scenario)
    posterior, seconds = fit(subject.recording)
    as_is, truncated, mass = score_posterior(subject, posterior, n_draws, seed=(seed, index))
    metrics = posterior.metrics
    facts = {
        "seconds": seconds,
        "method": posterior.method,
        "converged": bool(metrics.get("converged", True)),
        "regularised": bool(posterior.regularised),
        "rmse_mg_dl": float(metrics.get("rmse_mg_dl", math.nan)),
        "iterations": int(metrics.get("iterations", -1)),
        "kept_mass": mass,
        "prior_draws": subject.draws,
        "raised_readings": subject.raised_readings,
    }
    return FitRecord(index, subject.truth, as_is, truncated, facts)


class CalibrationRun(NamedTuple):
    """Result of :func:`run_calibration`: ``records`` (:class:`FitRecord`, by index) and
    ``prior_sds``, the prior SD of each coordinate (:func:`prior_sd`)."""

    records: list[FitRecord]
    prior_sds: dict[str, float]


def run_calibration(
    n: int,
    seed: int = 0,
    scenario: Scenario = Scenario(),
    fit: Callable[[Recording], tuple[TwinPosterior, float]] = fit_posterior,
    n_draws: int = 999,
    progress: Callable[[FitRecord], None] | None = None,
    done: Sequence[FitRecord] = (),
) -> CalibrationRun:
    """SBC over ``n`` virtual subjects, indices 0..n-1 (:func:`calibrate_subject`). Every fit
    is kept, converged or not: dropping some would bias the calibration. ``progress(record)``
    is called after each fit; records in ``done`` (e.g. from a checkpoint of an interrupted
    run: each subject depends only on ``(seed, index)``) are kept and not refitted."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    records = {r.index: r for r in done if r.index < n}
    for i in range(n):
        if i not in records:
            records[i] = calibrate_subject(i, seed, scenario, fit, n_draws)
            if progress is not None:
                progress(records[i])
    return CalibrationRun([records[i] for i in range(n)], prior_sd(prior_template(scenario)))
