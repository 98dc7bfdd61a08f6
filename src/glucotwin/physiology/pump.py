"""Insulin pump model: requested basal rates and boluses in, insulin delivered per minute out.

A pump does not deliver what it is asked to, exactly when it is asked. This model, minute by
minute (``lax.scan`` over minutes, ``vmap`` over pumps), applies in order:

1. **Limits.** A basal rate above ``max_basal_u_per_h`` is delivered at the limit; a bolus
   request above ``max_bolus_u`` is cut to it (its immediate part first, then its extended
   part). What was refused is reported per minute. Negative requests count as zero.
2. **Extended (square-wave) and dual boluses.** The extended part of a request made at minute
   s is spread evenly over minutes s .. s+D-1 (D = ``extended_minutes``, at least 1); a dual
   bolus is a request with both an immediate and an extended part. Extended insulin joins the
   bolus queue minute by minute; a part that would run past the last minute is not requested.
3. **Pulses with carried residue.** The motor moves in pulses: basal insulin accrues and is
   delivered in whole ``basal_pulse_u`` pulses as soon as one has accrued, the remainder
   carried to the next minute; the bolus queue is delivered in whole ``bolus_pulse_u``
   pulses, at most ``bolus_speed_u_per_min`` per minute, so a large bolus spreads over
   several minutes and a sub-pulse remainder waits for the next bolus. Nothing is lost: at
   any minute the basal residue is below one basal pulse and, once the queue has drained, the
   bolus residue below one bolus pulse, so over any schedule the delivered total trails the
   accepted total by less than one pulse of each kind.
4. **Occlusion.** In an occluded minute the pump still pulses, unaware, but the insulin stays
   in the blocked line (``withheld_u``) and nothing reaches the tissue. In the first clear
   minute after an occlusion a fraction ``occlusion_release_fraction`` of what is held is
   delivered at once (a partial occlusion or kink that gives way pushes the pressurised
   insulin through) and the rest is lost (``lost_u``; 0 models an occlusion alarm followed by
   an infusion-set change that discards the line). Occlusion schedules are boolean masks over
   minutes: build one by hand (e.g. from a given minute for a given duration) or draw one
   with :func:`occlusion_schedule`.

Every minute therefore satisfies: cumulative accepted = cumulative delivered + ``pending_u``
+ cumulative ``lost_u``. Not modelled: the rate-programming resolution of basal rates
(rounding a rate to 0.05 U/h would lose insulin systematically), minimum bolus, suspend on
alarm, reservoir volume and battery.

Presets: :meth:`PumpParams.simglucose` transcribes simglucose 0.2.11's ``pump_params.csv``
(MIT licence, J. Xie), reading its ``inc_basal``/``inc_bolus`` columns as pulse sizes in U
(simglucose itself rounds amounts in pmol to those multiples, which hardly quantises) and
delivering a bolus within its minute as simglucose does.
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

_MINUTES_PER_HOUR = 60.0
_MINUTES_PER_DAY = 1440.0

_SIMGLUCOSE_PUMPS = {
    "Cozmo": {"max_bolus_u": 75.0, "max_basal_u_per_h": 35.0, "pulse_u": 0.05},
    "Insulet": {"max_bolus_u": 30.0, "max_basal_u_per_h": 30.0, "pulse_u": 0.05},
}
"""simglucose ``pump_params.csv``: max_bolus, max_basal and inc_bolus = inc_basal columns."""


class PumpParams(NamedTuple):
    """Parameters of one insulin pump (or a batch: then fields have leading axes).

    ``basal_pulse_u``, ``bolus_pulse_u``: smallest amounts the motor delivers, U (0: no
    quantisation). ``max_basal_u_per_h``: highest basal rate delivered, U/h;
    ``max_bolus_u``: largest bolus accepted (immediate + extended), U; both may be infinite.
    ``bolus_speed_u_per_min``: bolus delivery speed, U/min (infinite: within its minute).
    ``occlusion_rate_per_day``: expected occlusions starting per day of clear line and
    ``occlusion_mean_minutes``: their mean duration, min (for :func:`occlusion_schedule`).
    ``occlusion_release_fraction``: share of the insulin held in an occluded line that is
    delivered when it clears, in [0, 1]. Build with a preset, then ``_replace`` and
    :meth:`validate`.
    """

    basal_pulse_u: ArrayLike
    bolus_pulse_u: ArrayLike
    max_basal_u_per_h: ArrayLike
    max_bolus_u: ArrayLike
    bolus_speed_u_per_min: ArrayLike
    occlusion_rate_per_day: ArrayLike
    occlusion_mean_minutes: ArrayLike
    occlusion_release_fraction: ArrayLike

    @classmethod
    def ideal(cls) -> PumpParams:
        """A perfect pump: delivers every request exactly, in its minute, without limits."""
        return cls(
            basal_pulse_u=0.0,
            bolus_pulse_u=0.0,
            max_basal_u_per_h=math.inf,
            max_bolus_u=math.inf,
            bolus_speed_u_per_min=math.inf,
            occlusion_rate_per_day=0.0,
            occlusion_mean_minutes=1.0,
            occlusion_release_fraction=1.0,
        ).validate()

    @classmethod
    def omnipod(cls) -> PumpParams:
        """Insulet Omnipod: 0.05 U pulses, 30 U/h and 30 U limits, boluses at 1.5 U/min.

        Limits and pulse as simglucose's "Insulet" row; the bolus speed (0.05 U every 2 s) is
        the Omnipod user guide's. No occlusions (no published rate; set your own).
        """
        return cls.simglucose("Insulet")._replace(bolus_speed_u_per_min=1.5).validate()

    @classmethod
    def simglucose(cls, name: str) -> PumpParams:
        """simglucose 0.2.11's pump ``name`` ("Cozmo" or "Insulet"): limits and pulses.

        Boluses are delivered within their minute (as simglucose does); no occlusions.
        """
        if name not in _SIMGLUCOSE_PUMPS:
            raise ValueError(f"unknown simglucose pump {name!r}; known: Cozmo, Insulet")
        row = _SIMGLUCOSE_PUMPS[name]
        params = cls.ideal()._replace(
            basal_pulse_u=row["pulse_u"],
            bolus_pulse_u=row["pulse_u"],
            max_basal_u_per_h=row["max_basal_u_per_h"],
            max_bolus_u=row["max_bolus_u"],
        )
        return params.validate()

    def validate(self, names: Sequence[str] | str | None = None) -> PumpParams:
        """Check concrete values on the host; return ``self`` or raise ``ValueError``.

        Checks: no NaN; pulses finite and >= 0; limits >= 0 (may be infinite); bolus speed
        > 0 and at least one bolus pulse per minute; occlusion rate finite, >= 0 and at most
        one start per minute; mean duration finite and >= 1 min; release fraction in [0, 1].
        """
        values = {k: np.atleast_1d(np.asarray(v, np.float64)) for k, v in self._asdict().items()}
        shape = np.broadcast_shapes(*(v.shape for v in values.values()))
        v = {k: np.broadcast_to(x, shape).ravel() for k, x in values.items()}
        labels = batch_labels(names, v["basal_pulse_u"].size, "pump")
        finite = ("basal_pulse_u", "bolus_pulse_u", "occlusion_rate_per_day",
                  "occlusion_mean_minutes", "occlusion_release_fraction")  # fmt: skip
        checks: list[tuple[np.ndarray, str]] = [(~np.isnan(v[k]), f"{k} is NaN") for k in v]
        checks += [(np.isfinite(v[k]), f"{k} must be finite") for k in finite]
        checks += [
            (v["basal_pulse_u"] >= 0, "basal_pulse_u must be >= 0"),
            (v["bolus_pulse_u"] >= 0, "bolus_pulse_u must be >= 0"),
            (v["max_basal_u_per_h"] >= 0, "max_basal_u_per_h must be >= 0"),
            (v["max_bolus_u"] >= 0, "max_bolus_u must be >= 0"),
            (v["bolus_speed_u_per_min"] > 0, "bolus_speed_u_per_min must be > 0"),
            (v["bolus_speed_u_per_min"] >= v["bolus_pulse_u"],
             "bolus_speed_u_per_min must be >= bolus_pulse_u (one pulse per minute)"),
            ((v["occlusion_rate_per_day"] >= 0)
             & (v["occlusion_rate_per_day"] <= _MINUTES_PER_DAY),
             "occlusion_rate_per_day must be in [0, 1440]"),
            (v["occlusion_mean_minutes"] >= 1, "occlusion_mean_minutes must be >= 1"),
            ((v["occlusion_release_fraction"] >= 0) & (v["occlusion_release_fraction"] <= 1),
             "occlusion_release_fraction must be in [0, 1]"),
        ]  # fmt: skip
        for ok, message in checks:
            bad = np.flatnonzero(~ok)
            if bad.size:
                raise ValueError(f"pump parameters of {labels[bad[0]]}: {message}")
        return self


class PumpDelivery(NamedTuple):
    """What the pump did in each minute, every field [..., minutes], amounts in U.

    ``insulin_u_per_min``: insulin reaching the tissue in the minute (U/min, the input of
    :func:`glucotwin.physiology.inputs_from_doses`). ``basal_capped_u``: basal refused by
    the max basal rate. ``bolus_capped_u``: bolus refused by the max bolus, at the request
    minute. ``withheld_u``: pulses pushed into an occluded line. ``lost_u``: insulin
    discarded when an occlusion clears. ``pending_u``: accepted but not yet delivered at the
    end of the minute (basal residue, bolus queue, insulin held in an occluded line).
    """

    insulin_u_per_min: jax.Array
    basal_capped_u: jax.Array
    bolus_capped_u: jax.Array
    withheld_u: jax.Array
    lost_u: jax.Array
    pending_u: jax.Array


def _whole_pulses(amount: jax.Array, pulse: jax.Array) -> jax.Array:
    """The largest multiple of ``pulse`` not above ``amount`` (``amount`` if pulse is 0).

    The tolerance of sqrt(machine epsilon) pulses stops an amount that is a whole number of
    pulses up to rounding (29.999999999 pulses after many additions) from waiting a minute.
    """
    tolerance = math.sqrt(float(jnp.finfo(amount.dtype).eps))
    safe = jnp.where(pulse > 0, pulse, 1.0)
    return jnp.where(pulse > 0, jnp.floor(amount / safe + tolerance) * safe, amount)


def _one_pump(basal_u_per_h, bolus_u, extended_u, extended_minutes, occluded, p: PumpParams):
    minutes = basal_u_per_h.shape[0]
    basal_requested = jnp.maximum(basal_u_per_h, 0.0)
    basal_rate = jnp.minimum(basal_requested, p.max_basal_u_per_h)
    basal_u = basal_rate / _MINUTES_PER_HOUR
    basal_capped_u = (basal_requested - basal_rate) / _MINUTES_PER_HOUR
    immediate_requested = jnp.maximum(bolus_u, 0.0)
    extended_requested = jnp.maximum(extended_u, 0.0)
    immediate = jnp.minimum(immediate_requested, p.max_bolus_u)
    extended = jnp.minimum(extended_requested, p.max_bolus_u - immediate)
    bolus_capped_u = immediate_requested - immediate + extended_requested - extended
    # Square waves as a difference array: +rate at the start, -rate after the last minute.
    duration = jnp.maximum(extended_minutes, 1)
    rate = extended / duration
    start = jnp.arange(minutes)
    steps = jnp.zeros(minutes + 1, rate.dtype).at[start].add(rate)
    steps = steps.at[jnp.minimum(start + duration, minutes)].add(-rate)
    bolus_in_u = immediate + jnp.maximum(jnp.cumsum(steps)[:minutes], 0.0)

    def minute(carry, inputs):
        basal_residue, queue, held = carry
        basal_in, bolus_in, blocked = inputs
        basal_residue = basal_residue + basal_in
        basal_out = _whole_pulses(basal_residue, p.basal_pulse_u)
        queue = queue + bolus_in
        bolus_out = _whole_pulses(jnp.minimum(queue, p.bolus_speed_u_per_min), p.bolus_pulse_u)
        basal_residue, queue = basal_residue - basal_out, queue - bolus_out
        pushed = basal_out + bolus_out
        released = held * p.occlusion_release_fraction
        delivered = jnp.where(blocked, 0.0, pushed + released)
        lost = jnp.where(blocked, 0.0, held - released)
        withheld = jnp.where(blocked, pushed, 0.0)
        held = jnp.where(blocked, held + pushed, 0.0)
        pending = basal_residue + queue + held
        return (basal_residue, queue, held), (delivered, withheld, lost, pending)

    zero = jnp.zeros((), basal_u.dtype)
    _, (delivered, withheld, lost, pending) = lax.scan(
        minute, (zero, zero, zero), (basal_u, bolus_in_u, occluded)
    )
    return PumpDelivery(delivered, basal_capped_u, bolus_capped_u, withheld, lost, pending)


@functools.partial(jax.jit, static_argnames="dtype")
def deliver_insulin(
    basal_u_per_h: ArrayLike,
    bolus_u: ArrayLike,
    params: PumpParams,
    *,
    extended_bolus_u: ArrayLike | None = None,
    extended_minutes: ArrayLike = 1,
    occluded: ArrayLike | None = None,
    dtype=jnp.float64,
) -> PumpDelivery:
    """Insulin delivered per minute by a pump given requests per minute (module docstring).

    ``basal_u_per_h`` [..., minutes]: requested basal rate in each minute, U/h.
    ``bolus_u`` [..., minutes]: immediate bolus requested at the start of each minute, U.
    ``extended_bolus_u`` [..., minutes]: extended part of a bolus requested at each minute,
    U, spread over ``extended_minutes`` (int, scalar or [..., minutes]) minutes.
    ``occluded`` [..., minutes] (bool): minutes in which the line is blocked (default none;
    see :func:`occlusion_schedule`). Inputs broadcast against each other, ``params`` fields
    against the leading axes. Deterministic and ``vmap``-friendly; compiled with
    ``jax.jit``, ``dtype`` (float64, or float32: the computation's precision) static.
    """
    dtype = _checked_dtype(dtype)
    basal = jnp.asarray(basal_u_per_h, dtype)
    bolus = jnp.asarray(bolus_u, dtype)
    extended = jnp.zeros((), dtype) if extended_bolus_u is None else jnp.asarray(extended_bolus_u)
    blocked = jnp.zeros((), bool) if occluded is None else jnp.asarray(occluded, bool)
    durations = jnp.asarray(extended_minutes, jnp.int32)
    shape = jnp.broadcast_shapes(basal.shape, bolus.shape, extended.shape, blocked.shape)
    shape = jnp.broadcast_shapes(shape, durations.shape)
    if not shape or shape[-1] == 0:
        raise ValueError(f"pump inputs must have shape [..., minutes >= 1], got {shape}")
    inputs = [jnp.broadcast_to(a, shape) for a in (basal, bolus, extended.astype(dtype))]
    inputs += [jnp.broadcast_to(durations, shape), jnp.broadcast_to(blocked, shape)]
    cast = jax.tree.map(lambda a: jnp.asarray(a, dtype), params)
    return _per_pump(_one_pump, inputs, cast, shape[:-1])


@functools.partial(jax.jit, static_argnames=("minutes", "dtype"))
def occlusion_schedule(
    key: jax.Array, minutes: int, params: PumpParams, *, dtype=jnp.float64
) -> jax.Array:
    """A random occlusion mask, bool [..., minutes] (``params`` fields shape the ``...``).

    A two-state Markov chain on minutes that starts clear: an occlusion starts in a clear
    minute with probability ``occlusion_rate_per_day``/1440 and ends after a geometric
    duration of mean ``occlusion_mean_minutes``. Seeded: the same ``key`` gives the same
    mask; pump i of a batch (row-major order) uses ``jax.random.split(key, batch)[i]``.
    Compiled with ``jax.jit``; ``minutes`` and ``dtype`` are static.
    """
    if not isinstance(minutes, int) or minutes < 1:
        raise ValueError(f"minutes must be a positive int, got {minutes!r}")
    dtype = _checked_dtype(dtype)
    cast = jax.tree.map(lambda a: jnp.asarray(a, dtype), params)
    batch = jnp.broadcast_shapes(*(jnp.shape(a) for a in cast))

    def one(k, p: PumpParams):
        start = p.occlusion_rate_per_day / _MINUTES_PER_DAY
        end = 1.0 / p.occlusion_mean_minutes

        def minute(blocked, draw):
            blocked = jnp.where(blocked, draw >= end, draw < start)
            return blocked, blocked

        draws = jax.random.uniform(k, (minutes,), dtype)
        return lax.scan(minute, jnp.zeros((), bool), draws)[1]

    if not batch:
        return one(key, cast)
    size = math.prod(batch)
    flat = jax.tree.map(lambda a: jnp.broadcast_to(a, batch).reshape(size), cast)
    return jax.vmap(one)(jax.random.split(key, size), flat).reshape(*batch, minutes)


def _checked_dtype(dtype) -> jnp.dtype:
    dtype = jnp.dtype(dtype)
    if dtype not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if dtype == jnp.float64 and not jax.config.read("jax_enable_x64"):
        raise ValueError("float64 needs jax_enable_x64; enable it or pass dtype=jnp.float32")
    return dtype


def _per_pump(run: Callable, inputs: list[jax.Array], params: PumpParams, batch):
    """Apply ``run(*inputs[minutes], params)`` to each pump of the batch."""
    if not batch:
        return run(*inputs, params)
    size = math.prod(batch)
    flat_inputs = [a.reshape(size, a.shape[-1]) for a in inputs]
    flat = jax.tree.map(lambda a: jnp.broadcast_to(a, batch).reshape(size), params)
    outputs = jax.vmap(run)(*flat_inputs, flat)
    return jax.tree.map(lambda a: a.reshape(*batch, a.shape[-1]), outputs)
