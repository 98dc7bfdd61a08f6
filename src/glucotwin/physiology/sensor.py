"""CGM sensor model: noisy, drifting, gappy, range-limited readings of subcutaneous glucose.

From a true subcutaneous glucose trajectory sampled every minute the model produces what a
continuous glucose monitor reports:

    reading(t) = gain(t) * glucose(t) + offset(t) + noise(t),

sampled every ``interval_min`` minutes, missing (NaN) during dropouts, and clipped at the
device's reporting limits with a censoring flag.

**Noise** follows Breton & Kovatchev, "Analysis, modeling, and simulation of the accuracy of
continuous glucose sensors", J Diabetes Sci Technol 2(5):853-862, 2008 ("BK2008"): a Gaussian
AR(1) series at 15-minute steps, e(n) = PACF * (e(n-1) + v(n)) with v ~ N(0, 1) and PACF = 0.7,
mapped through the Johnson SU transform noise = xi + lambda * sinh((e - gamma)/delta). The
parameter values (xi = -5.47 mg/dL, lambda = 15.9574 mg/dL, delta = 1.6898, gamma = -0.5444,
PACF = 0.7) are transcribed from simglucose's ``params/sensor_params.csv`` (MIT licence,
J. Xie), which gives the same values for its Dexcom, GuardianRT and Navigator sensors. Two
departures, both chosen so that the noise is a stationary process on any sampling grid:

1. The latent series lives on the 1-minute grid as a Gaussian AR(2),
   e(t) = ar1 * e(t-1) + ar2 * e(t-2) + innovation, scaled to the stationary standard deviation
   ``latent_sd``. :meth:`SensorParams.breton_2008` sets ar1 = PACF**(1/15), ar2 = 0 and
   latent_sd = PACF/sqrt(1 - PACF**2) (the stationary SD of BK2008's recursion), so readings
   taken every 15 minutes have exactly BK2008's law; finer grids see the Gauss-Markov process
   whose 15-minute samples those are. simglucose and the UVA/Padova simulator instead
   interpolate 15-minute values (cubic, resp. linear plus a moving average), which is smoother
   within a 15-minute window and not stationary. A nonzero ``ar2`` gives smoother noise of the
   kind Facchinetti et al. 2014 (below) fit.
2. The series starts from its stationary law (BK2008 and simglucose start at e(1) = v(1)).

The marginal law of the noise is therefore Johnson SU with gamma/latent_sd and
delta/latent_sd in place of gamma and delta (mean 0.72 mg/dL, SD 11.7 mg/dL for BK2008).

**Calibration error** follows the structure of Facchinetti, Del Favero, Sparacino, Castle,
Ward & Cobelli, "Modeling the glucose sensor error", IEEE Trans Biomed Eng 61(3):620-629,
2014: a multiplicative gain and an additive offset that vary slowly over a sensor session.
Here each is an initial Gaussian error (``gain_sd``, ``offset_sd_mg_dl``) plus a Gaussian
random walk whose standard deviation grows as sqrt(days) (``*_drift_sd_*_per_sqrt_day``); the
papers use polynomials in time with fitted coefficients instead (Vettoretti et al., Sensors
19(23):5320, 2019, for the factory-calibrated Dexcom G6). No published values exist for this
random-walk form, so the presets set it to zero; set it with ``params._replace(...)``.

**Dropouts** are a two-state Markov chain on minutes with stationary missing fraction
``dropout_fraction`` and geometric gaps of mean ``dropout_mean_minutes``; it starts from its
stationary law. **Reporting limits**: a value below ``low_limit_mg_dl`` (above
``high_limit_mg_dl``) is reported at the limit with censoring -1 (+1), as devices show
"LOW"/"HIGH"; this maps onto ``censored == "below"/"above"`` of the canonical data model.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from glucotwin.physiology.labels import batch_labels

_MINUTES_PER_DAY = 1440

_BRETON_JOHNSON = {
    "johnson_xi_mg_dl": -5.47,
    "johnson_lambda_mg_dl": 15.9574,
    "johnson_gamma": -0.5444,
    "johnson_delta": 1.6898,
}
"""BK2008's Johnson SU parameters as simglucose's ``sensor_params.csv`` lists them."""

_BRETON_PACF = 0.7
"""BK2008's lag-1 autocorrelation of the latent series at 15-minute steps."""

_SIMGLUCOSE_LIMITS_MG_DL = {
    "Dexcom": (39.0, 600.0),
    "GuardianRT": (39.0, 600.0),
    "Navigator": (32.0, 600.0),
}
"""simglucose ``sensor_params.csv`` min and max columns (sample_time: 3, 5 and 1 min)."""


class SensorParams(NamedTuple):
    """Parameters of one CGM sensor (or a batch: then fields have leading axes).

    Noise (module docstring, BK2008): ``johnson_xi_mg_dl``, ``johnson_lambda_mg_dl`` (mg/dL),
    ``johnson_gamma``, ``johnson_delta`` (dimensionless) map the latent Gaussian series to
    mg/dL; ``lambda = 0`` gives the constant noise ``xi``. The latent series is an AR(2) on
    the 1-minute grid with coefficients ``ar1``, ``ar2`` and stationary SD ``latent_sd``.
    Calibration: ``gain_sd`` (fraction) and ``offset_sd_mg_dl`` are the SDs of the initial
    gain and offset errors; ``gain_drift_sd_per_sqrt_day`` (fraction) and
    ``offset_drift_sd_mg_dl_per_sqrt_day`` the SDs of their random walks after one day.
    Dropouts: ``dropout_fraction`` of minutes missing, in gaps of mean
    ``dropout_mean_minutes``. Limits: ``low_limit_mg_dl`` < ``high_limit_mg_dl`` (may be
    infinite). Build with a preset, then ``_replace`` and :meth:`validate`.
    """

    johnson_xi_mg_dl: ArrayLike
    johnson_lambda_mg_dl: ArrayLike
    johnson_gamma: ArrayLike
    johnson_delta: ArrayLike
    ar1: ArrayLike
    ar2: ArrayLike
    latent_sd: ArrayLike
    gain_sd: ArrayLike
    gain_drift_sd_per_sqrt_day: ArrayLike
    offset_sd_mg_dl: ArrayLike
    offset_drift_sd_mg_dl_per_sqrt_day: ArrayLike
    dropout_fraction: ArrayLike
    dropout_mean_minutes: ArrayLike
    low_limit_mg_dl: ArrayLike
    high_limit_mg_dl: ArrayLike

    @classmethod
    def ideal(cls) -> SensorParams:
        """A perfect sensor: readings equal glucose (no noise, drift, dropouts or limits)."""
        return cls(
            johnson_xi_mg_dl=0.0,
            johnson_lambda_mg_dl=0.0,
            johnson_gamma=0.0,
            johnson_delta=1.0,
            ar1=0.0,
            ar2=0.0,
            latent_sd=1.0,
            gain_sd=0.0,
            gain_drift_sd_per_sqrt_day=0.0,
            offset_sd_mg_dl=0.0,
            offset_drift_sd_mg_dl_per_sqrt_day=0.0,
            dropout_fraction=0.0,
            dropout_mean_minutes=1.0,
            low_limit_mg_dl=-math.inf,
            high_limit_mg_dl=math.inf,
        ).validate()

    @classmethod
    def breton_2008(
        cls, low_limit_mg_dl: float = 40.0, high_limit_mg_dl: float = 400.0
    ) -> SensorParams:
        """BK2008 noise (module docstring) with the given reporting limits, nothing else.

        The latent AR(1) at 1 minute, ar1 = 0.7**(1/15) = 0.97650, with stationary SD
        0.7/sqrt(1 - 0.49) = 0.98020, has BK2008's law at 15-minute steps.
        """
        params = cls.ideal()._replace(
            **_BRETON_JOHNSON,
            ar1=_BRETON_PACF ** (1.0 / 15.0),
            latent_sd=_BRETON_PACF / math.sqrt(1.0 - _BRETON_PACF**2),
            low_limit_mg_dl=low_limit_mg_dl,
            high_limit_mg_dl=high_limit_mg_dl,
        )
        return params.validate()

    @classmethod
    def dexcom_g6(cls) -> SensorParams:
        """Dexcom G6: BK2008 noise (simglucose's "Dexcom" row) and its 40-400 mg/dL range.

        The G6 reports every 5 minutes (use ``interval_min=5``) and shows "LOW" below
        40 mg/dL and "HIGH" above 400 mg/dL (Dexcom G6 user guide). BK2008 fitted the noise
        to an earlier sensor; simglucose uses it for every sensor and so does this preset.
        Calibration drift and dropouts are zero (see the module docstring).
        """
        return cls.breton_2008(40.0, 400.0)

    @classmethod
    def simglucose(cls, name: str) -> SensorParams:
        """simglucose 0.2.11's sensor ``name`` ("Dexcom", "GuardianRT" or "Navigator").

        BK2008 noise with the row's min/max limits (39/600, 39/600, 32/600 mg/dL). Use the
        row's sample_time as ``interval_min``: 3, 5 and 1 min respectively.
        """
        if name not in _SIMGLUCOSE_LIMITS_MG_DL:
            known = ", ".join(_SIMGLUCOSE_LIMITS_MG_DL)
            raise ValueError(f"unknown simglucose sensor {name!r}; known: {known}")
        return cls.breton_2008(*_SIMGLUCOSE_LIMITS_MG_DL[name])

    def validate(self, names: Sequence[str] | str | None = None) -> SensorParams:
        """Check concrete values on the host; return ``self`` or raise ``ValueError``.

        Checks: values finite (limits may be infinite, never NaN); ``johnson_lambda_mg_dl``,
        ``latent_sd`` and the calibration SDs >= 0, ``johnson_delta`` > 0; the AR(2) is
        stationary (|ar2| < 1, ar1 + ar2 < 1, ar2 - ar1 < 1); 0 <= ``dropout_fraction`` < 1,
        ``dropout_mean_minutes`` >= 1 and a gap-start probability <= 1; low < high limit.
        """
        values = {k: np.atleast_1d(np.asarray(v, np.float64)) for k, v in self._asdict().items()}
        shape = np.broadcast_shapes(*(v.shape for v in values.values()))
        values = {k: np.broadcast_to(v, shape).ravel() for k, v in values.items()}
        labels = batch_labels(names, values["ar1"].size, "sensor")
        v = values
        with np.errstate(divide="ignore", invalid="ignore"):
            gap_start = _gap_start_probability(v["dropout_fraction"], v["dropout_mean_minutes"])
        checks: list[tuple[np.ndarray, str]] = [
            (~np.isnan(v[k]) if k in _MAY_BE_INFINITE else np.isfinite(v[k]),
             f"{k} must be {'a number' if k in _MAY_BE_INFINITE else 'finite'}")
            for k in v
        ]  # fmt: skip
        checks += [(v[k] >= 0, f"{k} must be >= 0") for k in _NONNEGATIVE]
        checks += [
            (v["johnson_delta"] > 0, "johnson_delta must be > 0"),
            (np.abs(v["ar2"]) < 1, "ar2 must be in (-1, 1) (stationary AR(2))"),
            (v["ar1"] + v["ar2"] < 1, "ar1 + ar2 must be < 1 (stationary AR(2))"),
            (v["ar2"] - v["ar1"] < 1, "ar2 - ar1 must be < 1 (stationary AR(2))"),
            ((v["dropout_fraction"] >= 0) & (v["dropout_fraction"] < 1),
             "dropout_fraction must be in [0, 1)"),
            (v["dropout_mean_minutes"] >= 1, "dropout_mean_minutes must be >= 1"),
            (gap_start <= 1,
             "dropout_fraction/(dropout_mean_minutes*(1 - dropout_fraction)) must be <= 1"),
            (v["low_limit_mg_dl"] < v["high_limit_mg_dl"],
             "low_limit_mg_dl must be < high_limit_mg_dl"),
        ]  # fmt: skip
        for ok, message in checks:
            bad = np.flatnonzero(~ok)
            if bad.size:
                raise ValueError(f"sensor parameters of {labels[bad[0]]}: {message}")
        return self


_MAY_BE_INFINITE = ("low_limit_mg_dl", "high_limit_mg_dl")

_NONNEGATIVE = (
    "johnson_lambda_mg_dl",
    "latent_sd",
    "gain_sd",
    "gain_drift_sd_per_sqrt_day",
    "offset_sd_mg_dl",
    "offset_drift_sd_mg_dl_per_sqrt_day",
)


def _gap_start_probability(fraction, mean_minutes):
    """Per-minute probability that a gap starts, for stationary missing ``fraction``.

    The chain leaves a gap with probability 1/L per minute, so gaps last L minutes on
    average, and the stationary missing fraction p/(p + 1/L) equals ``fraction`` when
    p = fraction/(L*(1 - fraction)).
    """
    return fraction / (mean_minutes * (1.0 - fraction))  # inf or NaN at fraction 1: invalid


class CgmReadings(NamedTuple):
    """What the sensor reports at minutes ``time_min`` (0, interval, 2*interval, ...).

    ``glucose_mg_dl`` [..., readings]: the reading, NaN when missing, the limit when
    censored. ``censored`` [..., readings] (int8): -1 below the low limit, +1 above the high
    limit, 0 otherwise (missing readings included).
    """

    time_min: jax.Array
    glucose_mg_dl: jax.Array
    censored: jax.Array


def johnson_su_mg_dl(latent: jax.Array, params: SensorParams) -> jax.Array:
    """Johnson SU transform xi + lambda*sinh((latent - gamma)/delta), mg/dL (BK2008).

    With ``latent`` ~ N(0, 1) this samples Johnson's SU law (Johnson, Biometrika
    36(1/2):149-176, 1949), scipy's ``johnsonsu(a=gamma, b=delta, loc=xi, scale=lambda)``.
    """
    p = params
    return p.johnson_xi_mg_dl + p.johnson_lambda_mg_dl * jnp.sinh(
        (latent - p.johnson_gamma) / p.johnson_delta
    )


def latent_noise(standard_normal: jax.Array, params: SensorParams) -> jax.Array:
    """The latent stationary Gaussian AR(2) series of one sensor from i.i.d. N(0, 1) draws.

    With z = ``standard_normal`` [minutes] and s = ``latent_sd``: e(0) = s*z(0),
    e(1) = rho1*e(0) + s*sqrt(1 - rho1^2)*z(1) with rho1 = ar1/(1 - ar2) (so the series
    starts stationary), then e(t) = ar1*e(t-1) + ar2*e(t-2) + sigma*z(t) with
    sigma^2 = s^2*(1 - ar1*rho1 - ar2*rho2) and rho2 = ar1*rho1 + ar2 (Yule-Walker).
    Scalar parameters; ``jax.vmap`` for several sensors.
    """
    p = params
    minutes = standard_normal.shape[0]
    z = jnp.concatenate([standard_normal, jnp.zeros(max(2 - minutes, 0), standard_normal.dtype)])
    rho1 = p.ar1 / (1.0 - p.ar2)
    rho2 = p.ar1 * rho1 + p.ar2
    sigma = p.latent_sd * jnp.sqrt(jnp.maximum(1.0 - p.ar1 * rho1 - p.ar2 * rho2, 0.0))
    e0 = p.latent_sd * z[0]
    e1 = rho1 * e0 + p.latent_sd * jnp.sqrt(1.0 - rho1 * rho1) * z[1]

    def step(carry, innovation):
        previous, before = carry
        current = p.ar1 * previous + p.ar2 * before + sigma * innovation
        return (current, previous), current

    _, rest = lax.scan(step, (e1, e0), z[2:])
    return jnp.concatenate([jnp.stack([e0, e1]), rest])[:minutes]


def _dropouts(uniform: jax.Array, params: SensorParams) -> jax.Array:
    """Missing-minute mask from U(0, 1) draws [minutes], stationary two-state chain."""
    start = _gap_start_probability(params.dropout_fraction, params.dropout_mean_minutes)
    end = 1.0 / params.dropout_mean_minutes
    first = uniform[0] < params.dropout_fraction

    def step(missing, draw):
        missing = jnp.where(missing, draw >= end, draw < start)
        return missing, missing

    _, rest = lax.scan(step, first, uniform[1:])
    return jnp.concatenate([first[None], rest])


def _random_walk(standard_normal: jax.Array, initial_sd, drift_sd_per_sqrt_day) -> jax.Array:
    """initial_sd*z(0) + a Gaussian random walk whose SD is drift_sd*sqrt(t / 1 day)."""
    z = standard_normal
    steps = z[1:] * (drift_sd_per_sqrt_day / math.sqrt(_MINUTES_PER_DAY))
    walk = jnp.concatenate([jnp.zeros((1,), z.dtype), jnp.cumsum(steps)])
    return initial_sd * z[0] + walk


def _one_sensor(key, glucose_mg_dl, params: SensorParams, interval_min: int):
    dtype = glucose_mg_dl.dtype
    minutes = glucose_mg_dl.shape[-1]
    k_normal, k_uniform = jax.random.split(key)
    z = jax.random.normal(k_normal, (3, minutes), dtype)  # noise, gain, offset
    noise = johnson_su_mg_dl(latent_noise(z[0], params), params)
    gain = 1.0 + _random_walk(z[1], params.gain_sd, params.gain_drift_sd_per_sqrt_day)
    offset = _random_walk(z[2], params.offset_sd_mg_dl, params.offset_drift_sd_mg_dl_per_sqrt_day)
    raw = (gain * glucose_mg_dl + offset + noise)[::interval_min]
    missing = _dropouts(jax.random.uniform(k_uniform, (minutes,), dtype), params)
    missing = missing[::interval_min]
    below = raw < params.low_limit_mg_dl
    above = raw > params.high_limit_mg_dl
    value = jnp.clip(raw, params.low_limit_mg_dl, params.high_limit_mg_dl)
    censored = (above.astype(jnp.int8) - below.astype(jnp.int8)) * ~missing
    return jnp.where(missing, jnp.nan, value), censored


@functools.partial(jax.jit, static_argnames=("interval_min", "dtype"))
def cgm_readings(
    key: jax.Array,
    glucose_mg_dl: ArrayLike,
    params: SensorParams,
    *,
    interval_min: int = 5,
    dtype=jnp.float64,
) -> CgmReadings:
    """CGM readings of a subcutaneous glucose trajectory (model in the module docstring).

    ``glucose_mg_dl`` [..., minutes] is the true subcutaneous glucose at 1-minute
    resolution; readings are taken at minutes 0, ``interval_min``, 2*``interval_min``, ...
    (ceil(minutes/interval_min) of them). ``params`` fields are scalars or broadcast
    against the leading axes. Pure and seeded: the same ``key`` gives the same readings; a
    single trajectory uses ``key`` itself and trajectory i of a batch (row-major order) uses
    ``jax.random.split(key, batch)[i]``, so ``jax.vmap`` over keys and trajectories equals a
    loop. Compiled with ``jax.jit``; ``interval_min`` (it sets the output shape) and
    ``dtype`` (float64, or float32: the computation's precision) are static.
    """
    if not isinstance(interval_min, int) or interval_min < 1:
        raise ValueError(f"interval_min must be a positive int, got {interval_min!r}")
    glucose = _as_float(glucose_mg_dl, dtype)
    if glucose.ndim == 0 or glucose.shape[-1] == 0:
        raise ValueError(f"glucose_mg_dl must have shape [..., minutes >= 1], got {glucose.shape}")
    batch, minutes = glucose.shape[:-1], glucose.shape[-1]
    time_min = jnp.arange(0, minutes, interval_min, dtype=jnp.int32)
    run = lambda k, g, p: _one_sensor(k, g, p, interval_min)  # noqa: E731
    value, censored = _per_trajectory(run, key, glucose, params, batch)
    return CgmReadings(time_min, value, censored)


def _as_float(values: ArrayLike, dtype) -> jax.Array:
    dtype = jnp.dtype(dtype)
    if dtype not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if dtype == jnp.float64 and not jax.config.read("jax_enable_x64"):
        raise ValueError("float64 needs jax_enable_x64; enable it or pass dtype=jnp.float32")
    return jnp.asarray(values, dtype)


def _per_trajectory(run: Callable, key, glucose, params: SensorParams, batch):
    """Apply ``run(key, glucose[minutes], params)`` to each trajectory of the batch."""
    cast = jax.tree.map(lambda a: jnp.asarray(a, glucose.dtype), params)
    if not batch:
        return run(key, glucose, cast)
    size = math.prod(batch)
    flat = jax.tree.map(lambda a: jnp.broadcast_to(a, batch).reshape(size), cast)
    outputs = jax.vmap(run)(
        jax.random.split(key, size), glucose.reshape(size, glucose.shape[-1]), flat
    )
    return jax.tree.map(lambda a: a.reshape(*batch, a.shape[-1]), outputs)
