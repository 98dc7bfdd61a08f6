"""Batched fixed-step simulation of any physiology model (:class:`glucotwin.physiology.Model`,
UVA/Padova by default): ``lax.scan`` over minutes, ``vmap`` over patients, the same
jit-compiled code for one patient and for a million, and for every model.

Conventions are simglucose 0.2.11's (see ``shared/data/reference/simglucose/README.md``):
minute m is the interval [m, m+1) min; its carbs (g) and insulin (U) are spread evenly over
it (inputs held constant); the model's memory (UVA/Padova's meal size Dbar) is updated at
the start of the minute (``Model.update_memory``); the ODE restarts at every minute boundary, so
input steps and Dbar jumps fall exactly on step boundaries. Recorded row m is the state at
t = m, before minute m's inputs act.

Each minute is integrated with ``substeps`` classic fourth-order Runge-Kutta steps, and a
patient who eats in that minute takes ``meal_substeps`` steps instead. Why: while food
enters the stomach within one minute, Qsto sweeps through the steep tanh switch of gastric
emptying; one RK4 step over such a minute is off by up to 85 mg in Qsto2 (under 1 mg in any
other minute), and that error is then absorbed into glucose for hours. Refining only eating
minutes (4 of 1440 in the reference day) buys the accuracy of a fine step everywhere for
almost no time. Max |error| against the 30 reference trajectories (either glucose column):
substeps=1, meal_substeps=8 (the defaults): 4.1e-3 mg/dL; 2 and 16: 5.5e-4; 4 and 32:
1.2e-4 (the reference's own accuracy is ~1e-4); plain RK4 with 1, 2, 4, 8 steps in every
minute: 0.21, 0.040, 0.012, 3.4e-3. Speed for each is in benchmarks/RESULTS.md.

The refined steps run in a ``lax.cond`` branch taken only in minutes in which some patient
of the (chunk of the) batch eats; patients who do not eat take their ``substeps`` steps in
it too (masked), so every patient's numbers depend only on its own inputs, never on the
batch. When eating minutes of different patients do not coincide (randomised meal times),
the refined branch runs nearly every minute and the cost approaches ``meal_substeps``
steps everywhere: then consider ``meal_substeps=substeps`` with a larger ``substeps``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from glucotwin.physiology.model import UVA_PADOVA, Model
from glucotwin.physiology.uva_padova import (
    MealMemory,
    UvaPadovaInputs,
    UvaPadovaParams,
    UvaPadovaState,
    vector_field,
)

Record = Literal["glucose", "states", "none"]

GLUCOSE_THRESHOLDS_MG_DL = (54.0, 70.0, 180.0, 250.0)
"""Range limits of :class:`GlucoseSummary` (international consensus on time in ranges)."""


class GlucoseSummary(NamedTuple):
    """Running statistics of subcutaneous glucose (Gs/Vg, mg/dL), one value per patient.

    Accumulated in the scan carry over the samples at the start of every simulated minute
    (the rows a full trajectory would hold), so memory does not grow with the horizon.
    Counts are minutes: ``below_54`` (< 54), ``below_70`` (< 70), ``in_70_180`` (70-180
    inclusive), ``above_180`` (> 180), ``above_250`` (> 250). Sums are kept in the
    simulation dtype. Consensus metrics on recorded traces live in ``glucotwin.metrics``.
    """

    minutes: jax.Array
    sum_mg_dl: jax.Array
    sum_squares_mg2_dl2: jax.Array
    min_mg_dl: jax.Array
    max_mg_dl: jax.Array
    below_54: jax.Array
    below_70: jax.Array
    in_70_180: jax.Array
    above_180: jax.Array
    above_250: jax.Array

    @property
    def mean_mg_dl(self) -> jax.Array:
        """Mean glucose, mg/dL."""
        return self.sum_mg_dl / self.minutes

    @property
    def sd_mg_dl(self) -> jax.Array:
        """Population standard deviation of glucose, mg/dL."""
        mean = self.mean_mg_dl
        return jnp.sqrt(jnp.maximum(self.sum_squares_mg2_dl2 / self.minutes - mean * mean, 0.0))

    def fraction(self, count: jax.Array) -> jax.Array:
        """A count field as a fraction of the summarised minutes (e.g. time in range)."""
        return count / self.minutes


def _empty_summary(shape: tuple[int, ...], dtype: jnp.dtype) -> GlucoseSummary:
    zero = jnp.zeros(shape, dtype)
    count = jnp.zeros(shape, jnp.int32)
    return GlucoseSummary(
        count, zero, zero, jnp.full(shape, jnp.inf, dtype), jnp.full(shape, -jnp.inf, dtype),
        count, count, count, count, count,
    )  # fmt: skip


def _add_sample(summary: GlucoseSummary, glucose: jax.Array) -> GlucoseSummary:
    low, hypo, high, very_high = GLUCOSE_THRESHOLDS_MG_DL
    count = lambda mask: mask.astype(jnp.int32)  # noqa: E731
    return GlucoseSummary(
        minutes=summary.minutes + 1,
        sum_mg_dl=summary.sum_mg_dl + glucose,
        sum_squares_mg2_dl2=summary.sum_squares_mg2_dl2 + glucose * glucose,
        min_mg_dl=jnp.minimum(summary.min_mg_dl, glucose),
        max_mg_dl=jnp.maximum(summary.max_mg_dl, glucose),
        below_54=summary.below_54 + count(glucose < low),
        below_70=summary.below_70 + count(glucose < hypo),
        in_70_180=summary.in_70_180 + count((glucose >= hypo) & (glucose <= high)),
        above_180=summary.above_180 + count(glucose > high),
        above_250=summary.above_250 + count(glucose > very_high),
    )


class Simulation(NamedTuple):
    """Result of :func:`simulate`; arrays have a leading patient axis when the input had one.

    ``glucose_mg_dl`` (the model's sensor-site glucose: UVA/Padova's subcutaneous Gs/Vg) and
    ``plasma_glucose_mg_dl`` (UVA/Padova's Gp/Vg) have shape ``[patients, minutes]``
    (``None`` when ``record="none"``); ``states`` holds the model's states with that shape
    per field (``record="states"`` only). Row m is the state at t = m min. ``summary`` is
    always filled. ``final_state`` and ``final_meal_memory`` (the model's memory: a
    :class:`MealMemory` for UVA/Padova, ``()`` for memoryless models) are at t = minutes:
    pass them as ``x0`` and ``meal_memory`` to continue the run exactly.
    """

    glucose_mg_dl: jax.Array | None
    plasma_glucose_mg_dl: jax.Array | None
    states: UvaPadovaState | Any | None
    summary: GlucoseSummary
    final_state: UvaPadovaState | Any
    final_meal_memory: MealMemory | Any


def _rk4_step(
    state: UvaPadovaState,
    t: jax.Array,
    h: float,
    field: Callable[[jax.Array, UvaPadovaState], UvaPadovaState],
) -> UvaPadovaState:
    """One classic fourth-order Runge-Kutta step of length h (min)."""

    def shifted(k: UvaPadovaState, scale: float) -> UvaPadovaState:
        return jax.tree.map(lambda y, dy: y + scale * dy, state, k)

    k1 = field(t, state)
    k2 = field(t + 0.5 * h, shifted(k1, 0.5 * h))
    k3 = field(t + 0.5 * h, shifted(k2, 0.5 * h))
    k4 = field(t + h, shifted(k3, h))
    return jax.tree.map(
        lambda y, a, b, c, d: y + (h / 6.0) * (a + 2.0 * (b + c) + d), state, k1, k2, k3, k4
    )


def integrate_minute(
    state: UvaPadovaState,
    t: jax.Array,
    inputs: UvaPadovaInputs,
    params: UvaPadovaParams,
    memory: MealMemory,
    substeps: int,
    meal_substeps: int | None = None,
    *,
    eating: jax.Array | None = None,
    field_of: Callable[..., Any] = vector_field,
) -> UvaPadovaState:
    """Advance one patient over [t, t+1) min with inputs and memory held constant.

    ``substeps`` RK4 steps of the vector field ``field_of`` (UVA/Padova's by default); with
    ``meal_substeps`` given, a patient who eats in this minute (``eating``, default: carbs in
    UVA/Padova inputs > 0) takes ``meal_substeps`` steps instead (the loop runs that often;
    the others' extra iterations are masked no-ops), so each patient's numbers depend only
    on its own inputs.
    """

    def field(time: jax.Array, y: UvaPadovaState) -> UvaPadovaState:
        return field_of(time, y, inputs, params, memory)

    # A loop, not unrolled steps: XLA's compile time grows steeply with unrolled RK stages.
    if meal_substeps is None:
        h = 1.0 / substeps
        return lax.fori_loop(
            0, substeps, lambda i, y: _rk4_step(y, t + i * h, h, field), state, unroll=substeps <= 2
        )
    if eating is None:
        eating = inputs.carbs_mg_per_min > 0
    n_steps = jnp.where(eating, meal_substeps, substeps)
    h = jnp.where(eating, 1.0 / meal_substeps, 1.0 / substeps).astype(t.dtype)

    def masked_step(i: int, y: UvaPadovaState) -> UvaPadovaState:
        stepped = _rk4_step(y, t + i * h, h, field)
        return jax.tree.map(lambda new, old: jnp.where(i < n_steps, new, old), stepped, y)

    return lax.fori_loop(0, meal_substeps, masked_step, state)


def _simulate_batch(
    params: UvaPadovaParams,
    carbs_g: jax.Array,
    insulin_u: jax.Array,
    x0: UvaPadovaState,
    memory0: Any,
    extra: jax.Array | None = None,
    *,
    substeps: int,
    meal_substeps: int,
    record: Record,
    shared_carbs: bool,
    shared_insulin: bool,
    shared_extra: bool = True,
    model: Model = UVA_PADOVA,
) -> Simulation:
    """The one code path for every model: params, x0, memory batched ``[B]``; inputs (and
    the optional extra input) ``[N]`` or ``[B, N]``."""
    leaf = jax.tree.leaves(x0)[0]
    dtype, batch = leaf.dtype, leaf.shape
    carbs_t = carbs_g if shared_carbs else carbs_g.T  # time-major for the scan
    insulin_t = insulin_u if shared_insulin else insulin_u.T
    extra_t = extra if extra is None or shared_extra else extra.T
    minutes = jnp.arange(carbs_t.shape[0], dtype=dtype)
    input_axis = (
        None if shared_carbs else 0,
        None if shared_insulin else 0,
        None if shared_extra else 0,
    )

    def step_patient(refine, state, memory, carbs, insulin, extra_in, p, t):
        memory = model.update_memory(memory, state, carbs)
        inputs = model.inputs_from_doses(carbs, insulin, p, extra_in)
        refined = meal_substeps if refine else None
        state = integrate_minute(
            state, t, inputs, p, memory, substeps, refined,
            eating=carbs > 0, field_of=model.vector_field,
        )  # fmt: skip
        return state, memory

    def step_batch(refine, state, memory, carbs, insulin, extra_in, t):
        return jax.vmap(
            functools.partial(step_patient, refine),
            in_axes=(0, 0, *input_axis, 0, None),
        )(state, memory, carbs, insulin, extra_in, params, t)

    def body(carry, xs):
        state, memory, summary = carry
        t, carbs, insulin, extra_in = xs
        glucose = model.glucose_mg_dl(state, params)
        summary = _add_sample(summary, glucose)
        if meal_substeps == substeps:
            new_state, memory = step_batch(False, state, memory, carbs, insulin, extra_in, t)
        else:  # the refined branch only runs in minutes in which someone eats
            new_state, memory = lax.cond(
                jnp.any(carbs > 0),
                functools.partial(step_batch, True),
                functools.partial(step_batch, False),
                state, memory, carbs, insulin, extra_in, t,
            )  # fmt: skip
        glucose_pair = (glucose, model.plasma_glucose_mg_dl(state, params))
        out = {"glucose": glucose_pair, "states": (glucose_pair, state), "none": None}[record]
        return (new_state, memory, summary), out

    carry0 = (x0, memory0, _empty_summary(batch, dtype))
    # Two minutes per loop iteration saves carry copies (12% faster on CPU) when each minute's
    # integration sits in a cond; without one, XLA fuses the pair badly (5x slower): measured.
    unroll = 2 if meal_substeps != substeps else 1
    (final_state, final_memory, summary), out = lax.scan(
        body, carry0, (minutes, carbs_t, insulin_t, extra_t), unroll=unroll
    )
    to_patient_major = lambda a: jnp.moveaxis(a, 0, -1)  # noqa: E731
    glucose = plasma = states = None
    if record == "glucose":
        glucose, plasma = jax.tree.map(to_patient_major, out)
    elif record == "states":
        (glucose, plasma), states = jax.tree.map(to_patient_major, out)
    return Simulation(glucose, plasma, states, summary, final_state, final_memory)


_STATIC = (
    "substeps", "meal_substeps", "record", "shared_carbs", "shared_insulin", "shared_extra",
    "model",
)  # fmt: skip
CPU_COMPILER_OPTIONS = {"xla_cpu_prefer_vector_width": 512}
"""XLA options for CPU compilations: 512-bit vectors (AVX-512) ran the reference day 1.2-1.6x
faster than XLA's default of 256 on the AMD EPYC (Zen 5) of benchmarks/RESULTS.md; CPUs
without AVX-512 ignore it."""
_compiled = {
    "cpu": jax.jit(_simulate_batch, static_argnames=_STATIC, compiler_options=CPU_COMPILER_OPTIONS),
    "other": jax.jit(_simulate_batch, static_argnames=_STATIC),
}

DEFAULT_CPU_CHUNK = 512
"""Patients per compiled call on CPU. Each thread's scan keeps about a hundred arrays of
``chunk`` values live, which should stay in the core's L2 cache: for 10,000 patient-days on
the 2-core AMD EPYC of benchmarks/RESULTS.md, chunks of 256 or 512 ran at 17-18k
patient-days/s, 4096 at 11.7k; 512 also leaves room for CPUs with smaller caches."""


def simulate(
    params: UvaPadovaParams | Any,
    carbs_g_per_min: jax.Array | np.ndarray,
    insulin_u_per_min: jax.Array | np.ndarray,
    x0: UvaPadovaState | Any | None = None,
    *,
    model: Model = UVA_PADOVA,
    extra_inputs: jax.Array | np.ndarray | None = None,
    meal_memory: MealMemory | Any | None = None,
    substeps: int = 1,
    meal_substeps: int = 8,
    dtype: jnp.dtype = jnp.float64,
    record: Record = "glucose",
    chunk_size: int | None = None,
    workers: int | None = None,
) -> Simulation:
    """Simulate patients of ``model`` minute by minute under per-minute carbs (g) and insulin (U).

    ``model`` (default UVA/Padova, :data:`glucotwin.physiology.UVA_PADOVA`) is a
    :class:`glucotwin.physiology.Model`; ``params`` are that model's parameters, with scalar
    fields (one patient) or fields of shape ``[B]`` (a batch, e.g.
    ``load_virtual_patients().params``). Each input has shape ``[minutes]`` (shared by all
    patients), ``[1, minutes]`` (likewise) or ``[B, minutes]``; entry m is what is eaten or
    delivered during minute m, basal included (simglucose's ``Action(CHO, insulin)`` per
    minute). ``extra_inputs`` (same shapes) is the model's extra per-minute input
    (``model.extra_input``, e.g. heart rate in bpm for the exercise model); without it the
    model uses its basal value. ``x0`` defaults to ``model.steady_state(params)`` (for
    UVA/Padova :func:`glucotwin.physiology.steady_state` under ``u2ss``) and
    ``meal_memory`` to the model's memory of that state before any meal. ``substeps`` and
    ``meal_substeps`` are the RK4 steps per minute (errors for each in the module
    docstring; the defaults give 4e-3 mg/dL on the reference). ``dtype`` is float64
    (default) or float32 (faster, same accuracy on the reference: see
    benchmarks/RESULTS.md). ``record`` chooses what is returned per minute: ``"glucose"``
    (both glucose columns), ``"states"`` (all 13 states as well) or ``"none"`` (only the
    streamed :class:`GlucoseSummary` and the final state, so memory does not grow with the
    horizon). For UVA/Padova, ``states`` are the 13 :class:`UvaPadovaState` fields.

    Execution: on CPU the batch runs in chunks of ``chunk_size`` patients (default 512;
    the last chunk is padded) spread over ``workers`` threads (default: the CPUs this
    process may use), each chunk one call of the same jit-compiled scan; elsewhere, and
    whenever the arguments are being traced (``jax.grad``, ``jax.jit`` around this), one
    call takes the whole batch. Results do not depend on the chunking. Arrays sharded over
    several devices (``jax.sharding``; on CPU after
    ``XLA_FLAGS=--xla_force_host_platform_device_count=2``) also work, in one call when
    ``chunk_size >= B``: with shared carbs that ran 1.3x faster than the default threads on
    2 cores (benchmarks/RESULTS.md). Differentiable w.r.t. ``params``, ``x0`` and inputs.
    """
    if record not in ("glucose", "states", "none"):
        raise ValueError(f"record must be 'glucose', 'states' or 'none', got {record!r}")
    if substeps < 1 or meal_substeps < 1:
        raise ValueError("substeps and meal_substeps must be >= 1")
    dtype = jnp.dtype(dtype)
    if dtype not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if dtype == jnp.float64 and not jax.config.read("jax_enable_x64"):
        raise RuntimeError(
            "float64 simulation needs jax_enable_x64 (importing glucotwin.physiology sets it "
            "unless GLUCOTWIN_KEEP_JAX_X64=1); enable it or pass dtype=jnp.float32"
        )
    if not isinstance(model, Model):
        raise TypeError(f"model must be a glucotwin.physiology.Model, got {type(model)!r}")
    cast = lambda tree: jax.tree.map(lambda a: jnp.asarray(a, dtype), tree)  # noqa: E731
    params = cast(params)
    shape = _params_shape(params)
    single = shape == ()
    if single:
        params = jax.tree.map(lambda a: a[None], params)
    elif len(shape) != 1:
        raise ValueError(f"params fields must be scalars or 1-D, got shape {shape}")
    batch = jax.tree.leaves(params)[0].shape[0]
    carbs, shared_carbs = _batched_input(carbs_g_per_min, batch, "carbs_g_per_min", dtype)
    insulin, shared_insulin = _batched_input(insulin_u_per_min, batch, "insulin_u_per_min", dtype)
    if carbs.shape[-1] != insulin.shape[-1]:
        raise ValueError(
            f"carbs cover {carbs.shape[-1]} minutes but insulin {insulin.shape[-1]} minutes"
        )
    extra, shared_extra = None, True
    if extra_inputs is not None:
        if model.extra_input is None:
            raise ValueError(f"model {model.name!r} takes no extra_inputs")
        extra, shared_extra = _batched_input(extra_inputs, batch, "extra_inputs", dtype)
        if extra.shape[-1] != carbs.shape[-1]:
            raise ValueError(
                f"carbs cover {carbs.shape[-1]} minutes but extra_inputs {extra.shape[-1]}"
            )
    x0 = model.steady_state(params) if x0 is None else _batched_tree(cast(x0), batch, single, "x0")
    if meal_memory is None:
        meal_memory = model.initial_memory(x0)
    else:
        meal_memory = _batched_tree(cast(meal_memory), batch, single, "meal_memory")
    per_patient = (
        params, x0, meal_memory, None if shared_carbs else carbs,
        None if shared_insulin else insulin, None if shared_extra else extra,
    )  # fmt: skip
    traced = any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(per_patient))
    on_cpu = jax.default_backend() == "cpu"
    run = functools.partial(
        _compiled["cpu" if on_cpu and not traced else "other"],
        substeps=substeps, meal_substeps=meal_substeps, record=record,
        shared_carbs=shared_carbs, shared_insulin=shared_insulin, shared_extra=shared_extra,
        model=model,
    )  # fmt: skip
    if chunk_size is None:
        chunk_size = DEFAULT_CPU_CHUNK if on_cpu else batch
    if traced or batch <= chunk_size:
        result = run(params, carbs, insulin, x0, meal_memory, extra)
    else:
        shared = (carbs, insulin, extra)
        result = _run_in_chunks(run, per_patient, shared, batch, chunk_size, workers)
    if single:
        result = jax.tree.map(lambda a: a[0], result)
    return result


def _run_in_chunks(run, per_patient, shared, batch, chunk_size, workers) -> Simulation:
    """Split the patient axis into chunks of ``chunk_size`` (the last padded with copies of
    its last patient, then trimmed), run them on a thread pool, concatenate.

    XLA runs each call on its own CPU thread pool and releases the GIL, so two chunks in
    flight keep two cores busy; small chunks also keep the scan's working set in cache.
    Slicing and padding are done on host (numpy) views so that no small XLA operations
    queue behind running chunks.
    """
    host = jax.tree.map(np.asarray, per_patient)
    n_chunks = -(-batch // chunk_size)

    def chunk(i: int) -> Simulation:
        low, high = i * chunk_size, min((i + 1) * chunk_size, batch)
        pad = chunk_size - (high - low)

        def take(a: np.ndarray) -> np.ndarray:
            part = a[low:high]
            return np.concatenate([part, np.repeat(part[-1:], pad, axis=0)]) if pad else part

        params, x0, memory, *inputs = jax.tree.map(take, host)
        carbs, insulin, extra = (
            whole if part is None else part for part, whole in zip(inputs, shared, strict=True)
        )
        out = run(params, carbs, insulin, x0, memory, extra)
        out = jax.block_until_ready(out)
        return jax.tree.map(lambda a: a[: high - low], out) if pad else out

    if workers is None:
        workers = _available_cpus()
    with ThreadPoolExecutor(max_workers=max(1, min(workers, n_chunks))) as pool:
        parts = list(pool.map(chunk, range(n_chunks)))
    return jax.tree.map(lambda *leaves: jnp.concatenate(leaves), *parts)


def _available_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _batched_input(values, batch: int, name: str, dtype) -> tuple[jax.Array, bool]:
    array = jnp.asarray(values, dtype)
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 1:
        return array, True
    if array.ndim == 2 and array.shape[0] == batch:
        return array, False
    raise ValueError(f"{name} must have shape [minutes] or [{batch}, minutes], got {array.shape}")


def _params_shape(params) -> tuple[int, ...]:
    shapes = {leaf.shape for leaf in jax.tree.leaves(params)}
    if len(shapes) != 1:
        raise ValueError(f"params fields have different shapes: {sorted(shapes)}")
    return shapes.pop()


def _batched_tree(tree, batch: int, single: bool, name: str):
    if single:
        tree = jax.tree.map(lambda a: a[None], tree)
    shapes = {a.shape for a in jax.tree.leaves(tree)}
    if shapes and shapes != {(batch,)}:
        raise ValueError(f"{name} fields must have shape ({batch},), got {sorted(shapes)}")
    return tree
