"""Virtual populations: new UVA/Padova patients drawn from a fit to a reference cohort.

**Distribution.** Every parameter that varies across the reference cohort (28 of the 32
fields for simglucose's 30 patients) and the age are mapped to an unbounded latent scale:
log for positive quantities, logit for the fractions ``b`` and ``d``. The latent vector is
multivariate normal with a mean per age group (adolescent, adult, child) and one covariance
pooled over the groups (the within-group residuals), i.e. group enters as a covariate of
the mean. Why pooled: ten patients per group cannot estimate a 29 x 29 covariance (rank 9);
the pooled residuals have 27 degrees of freedom, still fewer than 29 dimensions, so the
correlation matrix is shrunk toward the identity with the Ledoit-Wolf intensity (Ledoit &
Wolf, "A well-conditioned estimator for large-dimensional covariance matrices", J
Multivariate Anal 88:365-411, 2004, eq. 14, on the standardised residuals); the variances
are kept. Parameters that are constant in the reference (``f``, ``Fsnc``, ``ke1``, ``ke2``)
stay fixed.

**Therapy.** Derived the way ``Quest.csv`` relates to ``vpatient_params.csv``:

- basal = u2ss * BW / 6000 * 60 U/h (exact, simglucose's BBController);
- CF = the largest drop of subcutaneous glucose per unit after a 3 U correction bolus on top
  of the basal, fasting, from the basal steady state, over 24 h. This reproduces Quest's CF
  within 1.6 % for 29 of the 30 patients (adult#004: Quest's CF is 1.46x the model's), so it
  is evidently how the UVA/Padova simulator computed it; rules of thumb fit far worse
  (1800/TDI is off by a factor of 1.3-3.5);
- CR is not a function of TDI: Quest's TDI is *defined* from CR, TDI = 24 h basal + 200/CR
  (exact to 1e-9 for all 30), so "CR = 500/TDI" is circular and wrong by up to 2x (adult#007:
  500/TDI = 11.9 vs CR 22). No model response tried (peak or area of the glucose rise per
  gram vs the drop per unit) matched CR either, so CR comes from the regression
  log CR = c0 + c1 log CF + c2 log BW fitted on the reference (residual SD about 0.33 in log,
  i.e. a typical error of x/÷ 1.4), rounded to whole g/U as Quest's are and clipped to
  3-30 g/U;
- TDI = 24 h basal + 200/CR, as in Quest.

**Plausibility** (:class:`PlausibilityRules`, all must hold; the 30 reference patients pass):
the parameters pass :meth:`UvaPadovaParams.validate` (bounds and an existing basal steady
state); basal glucose at the nominal basal in 70-180 mg/dL; 24 h fasting at the nominal basal
from the steady state moves glucose by at most 1 mg/dL (catches fixed-step instability of
extreme rate constants); CF in 3-100 mg/dL/U; the standard day (see
:mod:`glucotwin.simulate.scenario`) on the patient's own basal and CR gives a mean glucose in
80-250 mg/dL, never below 25 and never above 500 mg/dL. The reference spans 94-212 mg/dL
mean, 32-448 mg/dL extremes.

Sampling is seeded (``numpy.random.Generator``) and reproducible: the same fit, ``n`` and
seed give the same cohort, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from glucotwin.physiology.uva_padova import (
    PMOL_PER_UNIT,
    UvaPadovaParams,
    basal_insulin_u_per_min,
    steady_state,
)
from glucotwin.physiology.virtual_patients import TherapySettings, VirtualCohort
from glucotwin.simulate.engine import DEFAULT_CPU_CHUNK, GlucoseSummary, simulate
from glucotwin.simulate.scenario import MINUTES_PER_DAY, standard_days

GROUPS: tuple[str, ...] = ("adolescent", "adult", "child")
"""Age groups, as the reference patients' name prefixes."""

LOGIT_FIELDS = ("b", "d")
"""Fractions in (0, 1), sampled on the logit scale; every other varying quantity on log."""

AGE = "age_years"
CORRECTION_BOLUS_U = 3.0
"""Bolus (U) whose glucose drop per unit defines the correction factor (see module doc)."""

DAILY_BOLUS_CARBS_G = 200.0
"""Quest.csv's TDI counts boluses for 200 g of carbs a day: TDI = 24 h basal + 200/CR."""

CARB_RATIO_RANGE_G_PER_U = (3.0, 30.0)


class PlausibilityRules(NamedTuple):
    """Limits a virtual patient must meet (mg/dL unless named otherwise; ranges inclusive)."""

    basal_glucose_mg_dl: tuple[float, float] = (70.0, 180.0)
    fasting_drift_mg_dl: float = 1.0
    correction_factor_mg_dl_per_u: tuple[float, float] = (3.0, 100.0)
    standard_day_mean_mg_dl: tuple[float, float] = (80.0, 250.0)
    standard_day_range_mg_dl: tuple[float, float] = (25.0, 500.0)


class Plausibility(NamedTuple):
    """Which patients pass each rule (boolean arrays ``[n]``; a rule not evaluated because an
    earlier one failed reads False)."""

    valid_params: np.ndarray
    basal_glucose: np.ndarray
    fasting_stable: np.ndarray
    correction_factor: np.ndarray
    standard_day: np.ndarray

    @property
    def accepted(self) -> np.ndarray:
        """Patients that pass every rule."""
        return np.logical_and.reduce(self)


class PopulationFit(NamedTuple):
    """The fitted distribution (see module docstring) and the therapy regression.

    ``fields``: latent variables (varying parameter fields, then ``age_years``); ``logit``:
    which use the logit scale; ``group_means`` ``[len(GROUPS), k]`` and ``covariance``
    ``[k, k]`` on the latent scale; ``shrinkage``: the Ledoit-Wolf intensity used;
    ``fixed``: (field, value) of the constant parameters; ``carb_ratio_coef``: (c0, c1, c2)
    of log CR = c0 + c1 log CF + c2 log BW; ``carb_ratio_residual_sd``: its residual SD (log).
    """

    fields: tuple[str, ...]
    logit: np.ndarray
    group_means: np.ndarray
    covariance: np.ndarray
    shrinkage: float
    fixed: tuple[tuple[str, float], ...]
    carb_ratio_coef: np.ndarray
    carb_ratio_residual_sd: float


class SampledPopulation(NamedTuple):
    """Accepted patients with their ``groups``; ``drawn`` candidates were checked, of which
    ``plausible`` passed (the last round may pass more than needed) and ``rejected`` counts,
    per rule, those that failed it first (``drawn = plausible + sum(rejected)``)."""

    cohort: VirtualCohort
    groups: tuple[str, ...]
    drawn: int
    plausible: int
    rejected: dict[str, int]

    @property
    def acceptance_rate(self) -> float:
        """Fraction of drawn candidates that passed every plausibility rule."""
        return self.plausible / self.drawn if self.drawn else float("nan")


def to_latent(fit: PopulationFit, params: UvaPadovaParams, age_years: np.ndarray) -> np.ndarray:
    """Patients' latent vectors ``[n, k]`` (log / logit scale) in the order of ``fit.fields``."""
    values = {**{k: np.asarray(v, np.float64) for k, v in params._asdict().items()}, AGE: age_years}
    columns = []
    for field, logit in zip(fit.fields, fit.logit, strict=True):
        value = np.atleast_1d(np.asarray(values[field], np.float64))
        columns.append(np.log(value / (1.0 - value)) if logit else np.log(value))
    return np.column_stack(columns)


def from_latent(fit: PopulationFit, latent: np.ndarray) -> tuple[UvaPadovaParams, np.ndarray]:
    """Inverse of :func:`to_latent`: parameters (numpy leaves ``[n]``) and ages (years)."""
    latent = np.atleast_2d(latent)
    values = {k: np.full(latent.shape[0], v) for k, v in fit.fixed}
    for column, (field, logit) in enumerate(zip(fit.fields, fit.logit, strict=True)):
        z = latent[:, column]
        values[field] = 1.0 / (1.0 + np.exp(-z)) if logit else np.exp(z)
    age = values.pop(AGE)
    return UvaPadovaParams(**{k: values[k] for k in UvaPadovaParams._fields}), age


def fit_population(cohort: VirtualCohort, groups: Sequence[str]) -> PopulationFit:
    """Fit the latent normal (group means, pooled shrunk covariance) and the CR regression
    to a cohort with therapy (e.g. ``load_virtual_patients()`` and its name prefixes)."""
    groups = tuple(groups)
    if len(groups) != len(cohort) or set(groups) - set(GROUPS):
        raise ValueError(f"groups must give one of {GROUPS} per patient")
    index = np.array([GROUPS.index(g) for g in groups])
    missing = [g for i, g in enumerate(GROUPS) if np.sum(index == i) < 2]
    if missing:
        raise ValueError(f"need at least two patients in each group, not in {missing}")
    params = jax.tree.map(lambda a: np.asarray(a, np.float64), cohort.params)
    age = np.asarray(cohort.therapy.age_years, np.float64)
    fields, fixed = [], []
    for field, value in params._asdict().items():
        if np.ptp(value) > 0:
            fields.append(field)
        else:
            fixed.append((field, float(value[0])))
    fields.append(AGE)
    logit = np.array([field in LOGIT_FIELDS for field in fields])
    shell = PopulationFit(tuple(fields), logit, np.empty(0), np.empty(0), 0.0, tuple(fixed),
                          np.empty(0), 0.0)  # fmt: skip
    latent = to_latent(shell, params, age)
    means = np.stack([latent[index == i].mean(axis=0) for i in range(len(GROUPS))])
    covariance, shrinkage = _ledoit_wolf(latent - means[index], dof=len(latent) - len(GROUPS))
    cf = correction_factor_mg_dl_per_u(cohort.params)
    design = np.column_stack([np.ones(len(cf)), np.log(cf), np.log(params.BW)])
    target = np.log(np.asarray(cohort.therapy.carb_ratio_g_per_u, np.float64))
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual_sd = float(np.sqrt(np.sum((target - design @ coef) ** 2) / (len(cf) - 3)))
    return shell._replace(group_means=means, covariance=covariance, shrinkage=shrinkage,
                          carb_ratio_coef=coef, carb_ratio_residual_sd=residual_sd)  # fmt: skip


def _ledoit_wolf(residuals: np.ndarray, dof: int) -> tuple[np.ndarray, float]:
    """Covariance with the correlations shrunk toward zero (Ledoit & Wolf 2004, eq. 14 with
    the identity target on standardised data); variances unchanged. Hand-written: the
    project has no scikit-learn, and this is a few lines."""
    sd = np.sqrt(np.sum(residuals**2, axis=0) / dof)
    x = residuals / sd
    n = len(x)
    sample = x.T @ x / dof
    delta = np.sum((sample - np.eye(len(sd))) ** 2)
    outer = np.einsum("ni,nj->nij", x, x)
    beta = np.sum((outer - sample) ** 2) / n**2
    shrinkage = float(np.clip(beta / delta, 0.0, 1.0)) if delta > 0 else 1.0
    correlation = shrinkage * np.eye(len(sd)) + (1.0 - shrinkage) * sample
    np.fill_diagonal(correlation, 1.0)
    return correlation * np.outer(sd, sd), shrinkage


def draw_latent(fit: PopulationFit, group_index: np.ndarray, rng: np.random.Generator):
    """Raw latent draws ``[n, k]`` for patients of the given group indices (no rejection)."""
    factor = np.linalg.cholesky(fit.covariance)
    noise = rng.standard_normal((len(group_index), len(fit.fields)))
    return fit.group_means[np.asarray(group_index)] + noise @ factor.T


def correction_factor_mg_dl_per_u(params: UvaPadovaParams) -> np.ndarray:
    """Model correction factor, mg/dL/U: the largest fall of subcutaneous glucose per unit in
    24 h after a 3 U bolus on top of the nominal basal, fasting, from the basal steady state
    (reproduces Quest.csv's CF, see module docstring)."""
    basal = np.asarray(basal_insulin_u_per_min(params), np.float64)
    insulin = np.repeat(basal[:, None], MINUTES_PER_DAY, axis=1)
    insulin[:, 0] += CORRECTION_BOLUS_U
    summary = _summarise(params, np.zeros(MINUTES_PER_DAY), insulin)
    start = np.asarray(steady_state(params).gs_mg_per_kg / params.Vg)
    return (start - np.asarray(summary.min_mg_dl)) / CORRECTION_BOLUS_U


def derive_therapy(
    params: UvaPadovaParams, age_years: np.ndarray, fit: PopulationFit
) -> TherapySettings:
    """Basal, CR, CF and TDI of patients as the reference cohort's are derived (module doc)."""
    basal_u_per_h = np.asarray(params.u2ss * params.BW, np.float64) / PMOL_PER_UNIT * 60.0
    cf = correction_factor_mg_dl_per_u(params)
    c0, c1, c2 = fit.carb_ratio_coef
    with np.errstate(invalid="ignore", divide="ignore"):
        raw = np.exp(c0 + c1 * np.log(cf) + c2 * np.log(np.asarray(params.BW, np.float64)))
    cr = np.clip(np.round(raw), *CARB_RATIO_RANGE_G_PER_U)
    tdi = 24.0 * basal_u_per_h + DAILY_BOLUS_CARBS_G / cr
    return TherapySettings(*(jnp.asarray(v) for v in (basal_u_per_h, cr, cf, age_years, tdi)))


def check_plausibility(
    params: UvaPadovaParams, therapy: TherapySettings, rules: PlausibilityRules | None = None
) -> Plausibility:
    """Evaluate the plausibility rules (module docstring) for a batch of patients; only
    patients that pass the cheap checks are simulated."""
    rules = rules or PlausibilityRules()
    params = jax.tree.map(lambda a: np.atleast_1d(np.asarray(a, np.float64)), params)
    n = len(params.BW)
    valid = _valid_mask(params)
    basal_glucose = np.zeros(n, bool)
    ss = steady_state(_take(params, valid))
    glucose0 = np.asarray(ss.gp_mg_per_kg) / params.Vg[valid]
    low, high = rules.basal_glucose_mg_dl
    basal_glucose[valid] = (glucose0 >= low) & (glucose0 <= high)
    cf = np.asarray(therapy.correction_factor_mg_dl_per_u, np.float64)
    ratio = np.asarray(therapy.carb_ratio_g_per_u, np.float64)
    with np.errstate(invalid="ignore"):
        cf_ok = (cf >= rules.correction_factor_mg_dl_per_u[0]) & (
            cf <= rules.correction_factor_mg_dl_per_u[1]
        )
        cf_ok &= np.isfinite(ratio) & (ratio > 0)
    fasting = np.zeros(n, bool)
    day = np.zeros(n, bool)
    run = valid & basal_glucose
    if run.any():
        sub = _take(params, run)
        basal = np.asarray(therapy.basal_u_per_h, np.float64)[run] / 60.0
        summary = _summarise(sub, np.zeros(MINUTES_PER_DAY), np.repeat(basal[:, None],
                             MINUTES_PER_DAY, axis=1))  # fmt: skip
        drift = np.asarray(summary.max_mg_dl - summary.min_mg_dl)
        fasting[run] = drift <= rules.fasting_drift_mg_dl
    run &= fasting & cf_ok
    if run.any():
        sub = _take(params, run)
        basal = np.asarray(therapy.basal_u_per_h, np.float64)[run] / 60.0
        summary = _summarise(sub, *standard_days(basal, ratio[run]))
        mean = np.asarray(summary.mean_mg_dl)
        lowest, highest = np.asarray(summary.min_mg_dl), np.asarray(summary.max_mg_dl)
        (mean_low, mean_high), (floor, ceiling) = (rules.standard_day_mean_mg_dl,
                                                   rules.standard_day_range_mg_dl)  # fmt: skip
        day[run] = ((mean >= mean_low) & (mean <= mean_high) & (lowest >= floor)
                    & (highest <= ceiling))  # fmt: skip
    return Plausibility(valid, basal_glucose, fasting, cf_ok & valid, day)


def _valid_mask(params: UvaPadovaParams) -> np.ndarray:
    """Which patients pass :meth:`UvaPadovaParams.validate`. It raises at the first bad
    patient, so the batch is bisected: one call when all pass, about log2(n) per failure."""
    n = len(params.BW)

    def check(low: int, high: int) -> np.ndarray:
        try:
            jax.tree.map(lambda a: a[low:high], params).validate()
            return np.ones(high - low, bool)
        except ValueError:
            if high - low == 1:
                return np.zeros(1, bool)
            middle = (low + high) // 2
            return np.concatenate([check(low, middle), check(middle, high)])

    return check(0, n) if n else np.zeros(0, bool)


def _summarise(params: UvaPadovaParams, carbs: np.ndarray, insulin: np.ndarray) -> GlucoseSummary:
    """Summary-only simulation from the basal steady state, the batch padded to a power of
    two (or whole engine chunks) so that repeated calls reuse a few compiled shapes."""
    n = len(np.atleast_1d(params.BW))
    if n == 0:
        return GlucoseSummary(*(np.zeros(0) for _ in GlucoseSummary._fields))
    size = DEFAULT_CPU_CHUNK * math.ceil(n / DEFAULT_CPU_CHUNK) if n > DEFAULT_CPU_CHUNK else (
        max(32, 1 << (n - 1).bit_length()))  # fmt: skip
    pad = np.concatenate([np.arange(n), np.zeros(size - n, np.int64)])
    padded = jax.tree.map(lambda a: np.asarray(a)[pad], params)
    insulin = np.asarray(insulin)[pad] if np.ndim(insulin) == 2 else insulin
    summary = simulate(padded, carbs, insulin, record="none").summary
    return jax.tree.map(lambda a: np.asarray(a)[:n], summary)


def reference_groups(names: Sequence[str]) -> tuple[str, ...]:
    """Age group of each reference patient from its name (``adult#001`` -> ``adult``)."""
    return tuple(name.split("#", 1)[0] for name in names)


def sample_population(
    fit: PopulationFit,
    n: int,
    seed: int,
    *,
    rules: PlausibilityRules | None = None,
    group_counts: dict[str, int] | None = None,
    max_draws: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SampledPopulation:
    """Draw ``n`` plausible virtual patients, reproducibly from ``seed``.

    Groups get ``group_counts`` patients (default: ``n`` split evenly, like the reference's
    10/10/10, remainder to the first groups). Candidates are drawn in rounds sized from the
    acceptance so far, derived a therapy (:func:`derive_therapy`), checked
    (:func:`check_plausibility`) and kept in draw order. Patients are named
    ``<group>#v<number>``; ``x0`` is their basal steady state. ``progress(accepted, drawn)``
    is called after each round. Raises ``RuntimeError`` after ``max_draws`` candidates
    (default 50 n + 1000).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if group_counts is None:
        group_counts = {g: n // len(GROUPS) + (i < n % len(GROUPS)) for i, g in enumerate(GROUPS)}
    if set(group_counts) - set(GROUPS) or sum(group_counts.values()) != n:
        raise ValueError(f"group_counts must map groups of {GROUPS} to counts summing to {n}")
    max_draws = 50 * n + 1000 if max_draws is None else max_draws
    rng = np.random.default_rng(seed)
    kept: dict[str, list[np.ndarray]] = {g: [] for g in GROUPS}
    kept_therapy: dict[str, list[np.ndarray]] = {g: [] for g in GROUPS}
    tried = {g: 0 for g in GROUPS}
    rejected = {field: 0 for field in Plausibility._fields}
    drawn = accepted_total = plausible = 0
    while True:
        need = {g: group_counts.get(g, 0) - sum(len(k) for k in kept[g]) for g in GROUPS}
        if all(v <= 0 for v in need.values()):
            break
        if drawn >= max_draws:
            raise RuntimeError(
                f"only {accepted_total} of {n} plausible patients after {drawn} draws; "
                f"rejections by rule: {rejected}"
            )
        index = []
        for i, g in enumerate(GROUPS):
            if need[g] > 0:
                have = sum(len(k) for k in kept[g])
                rate = max((have + 1) / (tried[g] + 2), 0.05)
                index += [i] * (math.ceil(1.2 * need[g] / rate) + 2)
        index = np.asarray(index)
        latent = draw_latent(fit, index, rng)
        params, age = from_latent(fit, latent)
        passed = _valid_mask(params)
        therapy = derive_therapy(_take(params, passed), age[passed], fit)
        full_therapy = TherapySettings(*(_scatter(np.asarray(v), passed) for v in therapy))
        verdict = check_plausibility(params, full_therapy, rules)
        failed = np.ones(len(index), bool)
        for field, mask in zip(Plausibility._fields, verdict, strict=True):
            rejected[field] += int(np.sum(failed & ~mask))
            failed &= mask
        for i, g in enumerate(GROUPS):
            in_group = index == i
            tried[g] += int(in_group.sum())
            kept[g].append(latent[in_group & verdict.accepted])
            kept_therapy[g].append(np.column_stack(full_therapy)[in_group & verdict.accepted])
        drawn += len(index)
        plausible += int(verdict.accepted.sum())
        accepted_total = sum(min(sum(len(k) for k in kept[g]), group_counts.get(g, 0))
                             for g in GROUPS)  # fmt: skip
        if progress is not None:
            progress(accepted_total, drawn)

    def first(rows: dict[str, list[np.ndarray]]) -> np.ndarray:
        return np.concatenate([np.concatenate(rows[g])[: group_counts.get(g, 0)] for g in GROUPS
                               if group_counts.get(g, 0) > 0])  # fmt: skip

    latent = first(kept)
    groups = tuple(g for g in GROUPS for _ in range(group_counts.get(g, 0)))
    names = tuple(f"{g}#v{i + 1:04d}" for g in GROUPS for i in range(group_counts.get(g, 0)))
    params = jax.tree.map(jnp.asarray, from_latent(fit, latent)[0])
    therapy = TherapySettings(*(jnp.asarray(column) for column in first(kept_therapy).T))
    cohort = VirtualCohort(names, params, steady_state(params), therapy)
    return SampledPopulation(cohort, groups, drawn, plausible, rejected)


def _scatter(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = np.full(mask.shape, np.nan)
    out[mask] = values
    return out


def _take(params: UvaPadovaParams, mask: np.ndarray) -> UvaPadovaParams:
    return jax.tree.map(lambda a: np.asarray(a)[mask], params)
