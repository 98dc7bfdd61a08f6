"""Drift monitor: does recent CGM still fall inside the twin's own predictive band?

A fitted twin (:mod:`glucotwin.twin.posterior`) states its uncertainty as a central
predictive band at a nominal ``level`` (e.g. 95 %). While the twin still describes the person,
about that share of new, out-of-sample CGM readings falls inside the band and the readings
scatter around the band's median without a systematic offset. When the person changes (insulin
sensitivity drifts, a new pump site, illness, a new insulin), readings leave the band more often
and sit on one side of it. :func:`check_drift` tests both on a recent window and
:func:`rolling_drift` repeats it window by window (e.g. per day) to show when drift began.

Tests (each at ``alpha / 2``, Bonferroni, so that the flag's false-alarm rate is at most about
``alpha`` per window; "about" because n_eff below is an approximation):

- **Coverage** (P. F. Christoffersen, "Evaluating interval forecasts", International Economic
  Review 39(4), 841-862, 1998: its test of unconditional coverage, here as a binomial tail
  rather than its likelihood ratio, which stays valid for few readings): under the null each
  reading misses the band with probability p = 1 - level; the one-sided binomial tail
  P(X >= k | Bin(n_eff, p)) with k = misses * n_eff / n. Only too many misses count (a band
  that is too wide is not a drift). For non-integer n_eff and k the tail is the regularised
  incomplete beta function, P(X >= k) = I_p(k, n_eff - k + 1) (exact for integers; e.g.
  Abramowitz & Stegun, *Handbook of Mathematical Functions*, 26.5.24), computed with
  :func:`jax.scipy.special.betainc` (scipy is not a dependency).
- **Bias**: the standardised residual z = (y - median) / s, with s the Gaussian-equivalent SD
  of the band on the residual's side ((upper - median) / z_q above the median, (median -
  lower) / z_q below, z_q the standard normal quantile of (1 + level) / 2); two-sided normal
  test of mean(z) = 0 with standard error 1 / sqrt(n_eff).

Autocorrelation. 5-min CGM errors of a twin replay are strongly autocorrelated (a meal the
model misjudges leaves the band for an hour, not for one reading), so n readings hold far less
than n independent pieces of evidence. Treating them as independent would flag a well
calibrated twin most days. The effective sample size of an AR(1) series,

    n_eff = n (1 - rho) / (1 + rho),

(G. V. Bayley and J. M. Hammersley, "The 'effective' number of independent observations in an
autocorrelated time series", Suppl. J. R. Stat. Soc. 8(2), 184-197, 1946; D. S. Wilks,
*Statistical Methods in the Atmospheric Sciences*, 3rd ed., 2011, chapter 5, the variance
inflation factor (1 + rho) / (1 - rho) of the mean; section and equation numbers not verified
here) is used
for both tests (at least 1). rho is the lag-1 autocorrelation of z under the null: pass it
from a period when the twin is known to fit (:func:`residual_autocorrelation` of, e.g., the
fitted days' replay), or leave it to be estimated from the window itself. The estimate is the
sample autocorrelation r over pairs of consecutive readings at most :data:`MAX_GAP_FACTOR`
times the median reading interval apart, corrected for its O(1/n) bias E[r] = rho - (1 + 3
rho)/n (M. G. Kendall, "Note on bias in the estimation of autocorrelation", Biometrika 41,
403-404, 1954; F. H. C. Marriott and J. A. Pope, Biometrika 41, 390-402, 1954), i.e. rho =
(n r + 1)/(n - 3), then clipped to [0, 1). Estimated from the window, rho is inflated exactly
when the twin drifts (its residuals become a smooth offset), which shrinks n_eff and makes the
tests conservative; a reference rho avoids that. For a Gaussian AR(1) z the miss indicator
1{|z| > z_q} is less autocorrelated than z itself, so the coverage test is conservative.
Errors whose correlation decays slower than geometrically (hours-long model error) make the
AR(1) n_eff too large and both tests somewhat liberal.

Everything here is a pure function of arrays; no I/O.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import NamedTuple

import jax
import jax.scipy.special as jsp
import numpy as np

import glucotwin.physiology  # noqa: F401  (turns on float64 for betainc)

DEFAULT_ALPHA = 0.01
"""False-alarm probability per window of :func:`check_drift` (both tests together)."""
MIN_READINGS = 36
"""Fewest readings (3 h at 5-min sampling) in a window that :func:`check_drift` judges."""
MAX_GAP_FACTOR = 1.5
"""Consecutive readings further apart than this many median intervals do not enter rho."""
MIN_HALF_WIDTH_MG_DL = 1e-6
"""Floor of a band half-width, mg/dL, so that z stays finite for a degenerate band."""
MINUTES_PER_DAY = 1440.0

_betainc = jax.jit(jsp.betainc)  # compiled once: op-by-op dispatch costs ~10 ms a call
_NORMAL = NormalDist()


class DriftReport(NamedTuple):
    """The drift check of one window.

    ``start_minute``, ``end_minute``: the window [start, end) on the caller's minute axis;
    ``n_readings``: CGM readings judged (NaNs dropped); ``n_effective``: their effective
    number (module docstring); ``lag1_autocorrelation``: the rho used (given, or estimated
    from the window and bias-corrected); ``coverage``: share of readings inside the band;
    ``nominal_coverage``: the band's level; ``coverage_p_value``: one-sided binomial tail of
    that many misses; ``rmse_mg_dl``: RMSE of the band median; ``bias_mg_dl``: mean of
    reading - median; ``mean_z``: mean standardised residual (band SDs); ``bias_p_value``:
    two-sided p of mean_z = 0; ``drifting``: either p below alpha / 2 (False when too few
    readings); ``reason``: one human-readable sentence. Statistics of a window without
    readings are NaN.
    """

    start_minute: float
    end_minute: float
    n_readings: int
    n_effective: float
    lag1_autocorrelation: float
    coverage: float
    nominal_coverage: float
    coverage_p_value: float
    rmse_mg_dl: float
    bias_mg_dl: float
    mean_z: float
    bias_p_value: float
    drifting: bool
    reason: str


def band_from_samples(
    samples_mg_dl, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, lower and upper limits (mg/dL) of the central ``level`` interval of predictive
    samples of shape (n_draws, n_readings), e.g. simulated CGM of posterior draws with their
    noise. Raises ``ValueError`` for a level outside (0, 1) or fewer than 2 draws."""
    _check_level(level)
    samples = np.asarray(samples_mg_dl, np.float64)
    if samples.ndim != 2 or samples.shape[0] < 2:
        raise ValueError(f"samples must have shape (n_draws >= 2, n_readings), got {samples.shape}")
    tail = (1.0 - level) / 2.0
    lower, median, upper = np.quantile(samples, [tail, 0.5, 1.0 - tail], axis=0)
    return median, lower, upper


def binomial_upper_tail(k: float, n: float, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), continued to real k and n by the regularised
    incomplete beta I_p(k, n - k + 1) (module docstring); 1 for k <= 0."""
    if not 0.0 <= p <= 1.0 or n < 0 or k > n + 1e-9:
        raise ValueError(f"need 0 <= p <= 1 and k <= n, got k={k}, n={n}, p={p}")
    if k <= 0:
        return 1.0
    return float(_betainc(float(k), max(n - k, 0.0) + 1.0, float(p)))


def effective_sample_size(n: int, rho: float) -> float:
    """n (1 - rho) / (1 + rho) with rho clipped to [0, 1), at least 1 (at most n) for n >= 1
    (Bayley & Hammersley 1946)."""
    rho = min(max(float(rho), 0.0), 1.0 - 1e-12)
    return min(float(n), max(n * (1.0 - rho) / (1.0 + rho), 1.0)) if n >= 1 else 0.0


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


def _lag1_autocorrelation(minutes: np.ndarray, z: np.ndarray) -> float:
    """Bias-corrected lag-1 autocorrelation of ``z`` over pairs of consecutive readings with a
    regular gap (module docstring); may exceed [0, 1), which the caller clips."""
    if z.size < 4:
        return 0.0
    gaps = np.diff(minutes)
    positive = gaps[gaps > 0]
    if positive.size == 0:
        return 0.0
    regular = (gaps > 0) & (gaps <= MAX_GAP_FACTOR * np.median(positive))
    d = z - z.mean()
    denominator = float(d @ d)
    if not regular.any() or denominator == 0.0:
        return 0.0
    r = float(np.sum(d[:-1][regular] * d[1:][regular]) / denominator * z.size / regular.sum())
    n = z.size
    return (n * r + 1.0) / (n - 3.0)


def _standardised(y, median, lower, upper, level: float) -> np.ndarray:
    """z = (y - median) / s, s the band's Gaussian-equivalent SD on the residual's side."""
    z_q = _NORMAL.inv_cdf(0.5 + level / 2.0)
    residual = y - median
    half = np.where(residual > 0, upper - median, median - lower)
    return residual / (np.maximum(half, MIN_HALF_WIDTH_MG_DL) / z_q)


def residual_autocorrelation(
    minutes, glucose_mg_dl, median_mg_dl, lower_mg_dl, upper_mg_dl, level: float = 0.95
) -> float:
    """The bias-corrected lag-1 autocorrelation of the standardised residuals of readings
    against a band (module docstring), clipped to [0, 1): the ``rho`` to pass to
    :func:`check_drift` from a period when the twin fits. Arguments and errors as there;
    0 for fewer than 4 readings."""
    minute, y, median, lower, upper = _validated(
        minutes, glucose_mg_dl, median_mg_dl, lower_mg_dl, upper_mg_dl, level
    )
    z = _standardised(y, median, lower, upper, level)
    return min(max(_lag1_autocorrelation(minute, z), 0.0), 1.0 - 1e-12)


def _validated(minutes, glucose_mg_dl, median_mg_dl, lower_mg_dl, upper_mg_dl, level):
    """Arrays sorted by minute with NaN readings dropped; ``ValueError`` for bad input."""
    _check_level(level)
    arrays = [np.asarray(a, np.float64) for a in
              (minutes, glucose_mg_dl, median_mg_dl, lower_mg_dl, upper_mg_dl)]  # fmt: skip
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or arrays[0].ndim != 1:
        raise ValueError(
            "minutes, readings, median, lower and upper must be 1-D and of one length, got "
            f"shapes {[a.shape for a in arrays]}"
        )
    minute, y, median, lower, upper = arrays
    if not np.all(np.isfinite(minute)):
        raise ValueError("minutes must be finite")
    keep = ~np.isnan(y)
    band = np.stack([median, lower, upper])[:, keep]
    if not np.all(np.isfinite(band)):
        raise ValueError("the band (median, lower, upper) must be finite at every reading")
    if np.any(band[1] > band[0]) or np.any(band[0] > band[2]):
        raise ValueError("the band must satisfy lower <= median <= upper")
    order = np.argsort(minute[keep], kind="stable")
    return minute[keep][order], y[keep][order], *(row[order] for row in band)


def _report(minute, y, median, lower, upper, level, start, end, alpha, min_readings, rho):
    n = int(y.size)
    if n < min_readings:
        nan = math.nan
        coverage = float(np.mean((y >= lower) & (y <= upper))) if n else nan
        rmse = float(np.sqrt(np.mean((y - median) ** 2))) if n else nan
        bias = float(np.mean(y - median)) if n else nan
        reason = f"not judged: {n} readings, fewer than {min_readings}"
        return DriftReport(
            start, end, n, nan, nan, coverage, level, nan, rmse, bias, nan, nan, False, reason
        )
    residual = y - median
    z = _standardised(y, median, lower, upper, level)
    rho = _lag1_autocorrelation(minute, z) if rho is None else float(rho)
    rho = min(max(rho, 0.0), 1.0 - 1e-12)
    n_eff = effective_sample_size(n, rho)
    misses = int(np.sum((y < lower) | (y > upper)))
    coverage = 1.0 - misses / n
    p_coverage = binomial_upper_tail(misses * n_eff / n, n_eff, 1.0 - level)
    mean_z = float(np.mean(z))
    p_bias = math.erfc(abs(mean_z) * math.sqrt(n_eff / 2.0))  # two-sided normal tail
    bias = float(np.mean(residual))
    rmse = float(np.sqrt(np.mean(residual**2)))
    low_coverage = p_coverage < alpha / 2.0
    biased = p_bias < alpha / 2.0
    coverage_text = (
        f"{coverage:.0%} of {n} readings inside the {level:.0%} band "
        f"(n_eff {n_eff:.1f}, p = {p_coverage:.2g})"
    )
    bias_text = f"mean residual {bias:+.1f} mg/dL ({mean_z:+.2f} band SDs, p = {p_bias:.2g})"
    if low_coverage or biased:
        parts = [text for flag, text in ((low_coverage, coverage_text), (biased, bias_text))
                 if flag]  # fmt: skip
        reason = "drifting: " + "; ".join(parts)
    else:
        reason = f"consistent with the twin: {coverage_text}; {bias_text}"
    return DriftReport(
        start_minute=start,
        end_minute=end,
        n_readings=n,
        n_effective=n_eff,
        lag1_autocorrelation=rho,
        coverage=coverage,
        nominal_coverage=level,
        coverage_p_value=p_coverage,
        rmse_mg_dl=rmse,
        bias_mg_dl=bias,
        mean_z=mean_z,
        bias_p_value=p_bias,
        drifting=low_coverage or biased,
        reason=reason,
    )


def check_drift(
    minutes,
    glucose_mg_dl,
    median_mg_dl,
    lower_mg_dl,
    upper_mg_dl,
    level: float = 0.95,
    *,
    window_min: float | None = None,
    rho: float | None = None,
    alpha: float = DEFAULT_ALPHA,
    min_readings: int = MIN_READINGS,
) -> DriftReport:
    """Check whether CGM readings (mg/dL, at ``minutes``) are consistent with the twin's
    predictive band at the same minutes (``median``, ``lower``, ``upper``: the central
    ``level`` interval, mg/dL; e.g. :func:`glucotwin.twin.posterior.predictive_band` indexed
    at the reading minutes, or :func:`band_from_samples`). ``window_min``: only readings in
    the last ``window_min`` minutes before the latest reading (e.g. 1440 for the last 24 h);
    None uses all. ``rho``: lag-1 autocorrelation of the standardised residuals under the
    null (:func:`residual_autocorrelation` of a period when the twin fits); None estimates it
    from the window. Coverage and bias tests with an autocorrelation-corrected sample size,
    as the module docstring describes. NaN readings are dropped (missing CGM). Raises
    ``ValueError`` for arrays of different lengths, a level outside (0, 1), non-finite
    minutes, or a band that is not finite or not ordered where there is a reading."""
    minute, y, median, lower, upper = _validated(
        minutes, glucose_mg_dl, median_mg_dl, lower_mg_dl, upper_mg_dl, level
    )
    if minute.size and window_min is not None:
        start = float(minute[-1] - window_min)
        inside = minute > start
        minute, y, median, lower, upper = (a[inside] for a in (minute, y, median, lower, upper))
    else:
        start = float(minute[0]) if minute.size else math.nan
    end = float(minute[-1]) + 1.0 if minute.size else math.nan
    return _report(minute, y, median, lower, upper, level, start, end, alpha, min_readings, rho)


def rolling_drift(
    minutes,
    glucose_mg_dl,
    median_mg_dl,
    lower_mg_dl,
    upper_mg_dl,
    level: float = 0.95,
    *,
    window_min: float = MINUTES_PER_DAY,
    step_min: float | None = None,
    origin_min: float | None = None,
    rho: float | None = None,
    alpha: float = DEFAULT_ALPHA,
    min_readings: int = MIN_READINGS,
) -> list[DriftReport]:
    """:func:`check_drift` on consecutive windows [origin + k step, origin + k step +
    window_min) that cover the readings: per day by default (``step_min`` defaults to
    ``window_min``; ``origin_min`` to the first reading's minute, e.g. pass the minute of a
    local midnight for calendar days). One report per window, in time order, including
    windows with too few readings (not judged), so that the first drifting window shows when
    drift began. Same arguments (``rho`` for every window) and errors as :func:`check_drift`."""
    step = window_min if step_min is None else step_min
    if not window_min > 0 or not step > 0:
        raise ValueError(f"window_min and step_min must be positive, got {window_min}, {step}")
    minute, y, median, lower, upper = _validated(
        minutes, glucose_mg_dl, median_mg_dl, lower_mg_dl, upper_mg_dl, level
    )
    if not minute.size:
        return []
    origin = float(minute[0]) if origin_min is None else float(origin_min)
    first = math.floor((minute[0] - origin - window_min) / step) + 1
    last = math.floor((minute[-1] - origin) / step)
    reports = []
    for k in range(first, last + 1):
        start = origin + k * step
        inside = (minute >= start) & (minute < start + window_min)
        rows = (a[inside] for a in (minute, y, median, lower, upper))
        reports.append(_report(*rows, level, start, start + window_min, alpha, min_readings, rho))
    return reports
