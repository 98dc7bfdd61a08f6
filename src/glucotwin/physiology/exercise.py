"""Physical activity in the UVA/Padova type-1 model, driven by heart rate.

Dalla Man C, Breton MD, Cobelli C. "Physical activity into the meal glucose-insulin model
of type 1 diabetes: in silico studies", J Diabetes Sci Technol 3(1):56-67, 2009 ("DM2009"),
building on Breton MD, "Physical activity - the major unaccounted impediment to closed loop
control", J Diabetes Sci Technol 2(1):169-174, 2008. Heart rate HR (bpm) above its basal HRb
drives a filtered signal Y (bpm):

    dY/dt = -Y/tau_HR + (HR - HRb)/tau_HR

which raises glucose utilisation in the slowly equilibrating tissues in two ways,
insulin-independently (beta*Y) and by amplifying insulin action (alpha*Y*X):

    Uid = (Vm0 + beta*Y + Vmx*X*(1 + alpha*Y)) * Gt/(Km0 + Gt).

Everything else is the UVA/Padova model of :mod:`.uva_padova` (simglucose 0.2.11), so any
of its patients can exercise: :func:`with_exercise` attaches exercise parameters and the
engine's ``extra_inputs`` carries HR per minute (``simulate(..., model=UVA_PADOVA_EXERCISE,
extra_inputs=heart_rate_bpm)``). With HR = HRb the model equals UVA/Padova exactly.

Parameter values: tau_HR = 5 min and HRb = 60 bpm as in DM2009's simulations; alpha and
beta below are illustrative defaults of ours, sized so that 45 min at 120 bpm lowers
glucose of the simglucose adults by tens of mg/dL. DM2009's estimates were not available
to us offline: replace them with the paper's table values before quantitative use.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from glucotwin.physiology import uva_padova
from glucotwin.physiology.model import Model
from glucotwin.physiology.uva_padova import (
    MealMemory,
    UvaPadovaInputs,
    UvaPadovaParams,
    UvaPadovaState,
)


class ExerciseParams(NamedTuple):
    """Exercise parameters (scalar or batched like the patient's).

    - ``hr_basal_bpm`` resting heart rate HRb, bpm (valid 30-120).
    - ``tau_hr_min`` time constant of Y, min (> 0).
    - ``alpha_per_bpm`` gain of insulin action on utilisation per bpm of Y, 1/bpm (>= 0).
    - ``beta_mg_per_kg_per_min_per_bpm`` insulin-independent utilisation per bpm of Y,
      (mg/kg/min)/bpm (>= 0).
    """

    hr_basal_bpm: jax.Array
    tau_hr_min: jax.Array
    alpha_per_bpm: jax.Array
    beta_mg_per_kg_per_min_per_bpm: jax.Array

    def validate(self) -> ExerciseParams:
        """Check concrete values; return ``self`` or raise ``ValueError`` naming the field."""
        checks = (
            ("hr_basal_bpm", "bpm", lambda v: (v >= 30) & (v <= 120), "in [30, 120]"),
            ("tau_hr_min", "min", lambda v: v > 0, "> 0"),
            ("alpha_per_bpm", "1/bpm", lambda v: v >= 0, ">= 0"),
            ("beta_mg_per_kg_per_min_per_bpm", "(mg/kg/min)/bpm", lambda v: v >= 0, ">= 0"),
        )
        for field, unit, check, relation in checks:
            value = np.atleast_1d(np.asarray(getattr(self, field), np.float64))
            bad = np.flatnonzero(~np.isfinite(value) | ~check(value))
            if bad.size:
                raise ValueError(
                    f"exercise parameter {field} ({unit}) must be {relation}, "
                    f"got {float(value[bad[0]])!r} (index {bad[0]})"
                )
        return self


DEFAULT_EXERCISE = ExerciseParams(
    hr_basal_bpm=60.0, tau_hr_min=5.0, alpha_per_bpm=0.02, beta_mg_per_kg_per_min_per_bpm=0.02
)
"""Defaults: HRb and tau_HR as in DM2009; alpha, beta illustrative (module docstring)."""


class UvaPadovaExerciseParams(NamedTuple):
    """A UVA/Padova patient (``patient``) with its exercise parameters (``exercise``)."""

    patient: UvaPadovaParams
    exercise: ExerciseParams


class ExerciseState(NamedTuple):
    """The 13 UVA/Padova states (``patient``) and the heart-rate signal ``y_bpm``."""

    patient: UvaPadovaState
    y_bpm: jax.Array


class ExerciseInputs(NamedTuple):
    """UVA/Padova inputs and the minute's heart rate, bpm."""

    patient: UvaPadovaInputs
    heart_rate_bpm: jax.Array


def with_exercise(
    params: UvaPadovaParams, exercise: ExerciseParams = DEFAULT_EXERCISE
) -> UvaPadovaExerciseParams:
    """Attach (validated) exercise parameters, broadcast to the patients' batch shape."""
    exercise.validate()
    shape = jnp.shape(params.BW)
    dtype = jnp.asarray(params.BW).dtype
    broadcast = ExerciseParams(
        *(jnp.broadcast_to(jnp.asarray(value, dtype), shape) for value in exercise)
    )
    return UvaPadovaExerciseParams(params, broadcast)


def inputs_from_doses(
    carbs_g_per_min: jax.Array,
    insulin_u_per_min: jax.Array,
    params: UvaPadovaExerciseParams,
    heart_rate_bpm: jax.Array | None = None,
) -> ExerciseInputs:
    """UVA/Padova inputs plus heart rate (bpm; ``None`` means resting, HR = HRb)."""
    if heart_rate_bpm is None:
        heart_rate_bpm = params.exercise.hr_basal_bpm
    return ExerciseInputs(
        uva_padova.inputs_from_doses(carbs_g_per_min, insulin_u_per_min, params.patient),
        heart_rate_bpm,
    )


def vector_field(
    t: jax.Array,
    state: ExerciseState,
    inputs: ExerciseInputs,
    params: UvaPadovaExerciseParams,
    meal_memory: MealMemory,
) -> ExerciseState:
    """UVA/Padova's derivative with DM2009's exercise utilisation, per minute.

    dY = (HR - HRb - Y)/tau_HR; dGt loses the extra utilisation
    (beta*Y + Vmx*X*alpha*Y)*Gt/(Km0 + Gt) on top of UVA/Padova's Uid (frozen, like
    simglucose's, when Gt < 0).
    """
    p, e, x = params.patient, params.exercise, state.patient
    base = uva_padova.vector_field(t, x, inputs.patient, p, meal_memory)
    y = state.y_bpm
    gt = x.gt_mg_per_kg
    extra_vm = e.beta_mg_per_kg_per_min_per_bpm * y + p.Vmx * x.x_pmol_per_l * e.alpha_per_bpm * y
    extra_uptake = jnp.where(gt >= 0, extra_vm * gt / (p.Km0 + gt), 0.0)
    return ExerciseState(
        patient=base._replace(gt_mg_per_kg=base.gt_mg_per_kg - extra_uptake),
        y_bpm=(inputs.heart_rate_bpm - e.hr_basal_bpm - y) / e.tau_hr_min,
    )


def steady_state(params: UvaPadovaExerciseParams) -> ExerciseState:
    """At rest (HR = HRb, Y = 0) the UVA/Padova steady state under ``u2ss``."""
    basal = uva_padova.steady_state(params.patient)
    return ExerciseState(basal, jnp.zeros_like(basal.gp_mg_per_kg))


def _initial_memory(state: ExerciseState) -> MealMemory:
    return uva_padova.initial_meal_memory(state.patient)


def _update_memory(memory: MealMemory, state: ExerciseState, carbs_g: jax.Array) -> MealMemory:
    return uva_padova.remember_meal(memory, state.patient, carbs_g)


def _glucose_mg_dl(state: ExerciseState, params: UvaPadovaExerciseParams) -> jax.Array:
    return uva_padova.subcutaneous_glucose_mg_dl(state.patient, params.patient)


def _plasma_glucose_mg_dl(state: ExerciseState, params: UvaPadovaExerciseParams) -> jax.Array:
    return uva_padova.plasma_glucose_mg_dl(state.patient, params.patient)


def _basal_insulin_u_per_min(params: UvaPadovaExerciseParams) -> jax.Array:
    return uva_padova.basal_insulin_u_per_min(params.patient)


UVA_PADOVA_EXERCISE = Model(
    name="uva_padova_exercise",
    vector_field=vector_field,
    inputs_from_doses=inputs_from_doses,
    initial_memory=_initial_memory,
    update_memory=_update_memory,
    glucose_mg_dl=_glucose_mg_dl,
    plasma_glucose_mg_dl=_plasma_glucose_mg_dl,
    steady_state=steady_state,
    basal_insulin_u_per_min=_basal_insulin_u_per_min,
    extra_input="heart_rate_bpm",
)
"""UVA/Padova with DM2009's heart-rate-driven exercise; extra input: heart rate, bpm."""
