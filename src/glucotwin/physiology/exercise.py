"""Physical activity in the UVA/Padova type-1 model, driven by heart rate ("model C").

Dalla Man C, Breton MD, Cobelli C. "Physical activity into the meal glucose-insulin model
of type 1 diabetes: in silico studies", J Diabetes Sci Technol 3(1):56-67, 2009 ("DM2009"),
building on Breton MD, "Physical activity - the major unaccounted impediment to closed loop
control", J Diabetes Sci Technol 2(1):169-174, 2008. Of the candidate models DM2009
compares, this is the one the literature calls model C: heart rate HR (bpm) above its basal
HRb raises insulin-independent utilisation at once and insulin action for hours after.
Three states are added to UVA/Padova (equation numbers as the open implementations cite
DM2009):

    dY/dt = -(Y - (HR - HRb))/T_HR                              (7)  Y, bpm
    dZ/dt = -(f(Y)/T_in + 1/T_ex)*Z + f(Y)                       (8)  Z, dimensionless
    f(Y)  = (Y/(a*HRb))^n / (1 + (Y/(a*HRb))^n)                  (9)
    dW/dt = HR - HRb                                             (12) W, bpm*min
    Uid   = [Vm0*(1 + beta*Y) + Vmx*(1 + alpha*Z*W)*(X + Ib) - Vmx*Ib] * Gt
            / (Km0*(1 - gamma*Z*W*(X + Ib)) + Gt)                (12)

Y is heart rate above basal, filtered; Z switches on within minutes of exercise (T_in) and
decays over hours (T_ex) after it; W is the accumulated exercise. X is simglucose's
insulin action above basal (pmol/L), so X + Ib is the action referred to plasma insulin.
We evaluate Uid in the algebraically equal form [Vm0 + Vmx*X + beta*Vm0*Y +
alpha*Vmx*Z*W*(X + Ib)]*Gt/(Km0*(1 - gamma*Z*W*(X + Ib)) + Gt), so that at rest (Y = Z = W
= 0) every exercise term is an exact zero and the model is UVA/Padova's :mod:`.uva_padova`
(simglucose 0.2.11) bit for bit.

Three choices are ours, each marked "ours:" at its line:

1. Reset of W. DM2009's reference implementation sets W to 0 once Z has decayed back to
   about 0 (Z < 0.05); a jump in a state does not fit a jit-compiled vector field, so W
   instead relaxes to 0 with time constant ``tau_reset_min`` while Z < ``z_reset``:
   dW/dt = (HR - HRb) - [Z < z_reset]*W/tau_reset. Exercise so leaves no permanent
   effect, and the Z*W term fades continuously instead of dropping at the reset.
2. f(Y) uses max(Y, 0): with n = 4 a heart rate below basal would otherwise count as
   exercise (and a negative base to a real power is NaN).
3. The Michaelis-Menten constant Km0*(1 - gamma*Z*W*(X + Ib)) is clipped at 0, which
   only matters after days of accumulated exercise.

Parameter values (:data:`DEFAULT_EXERCISE`) are DM2009's published model-C parameter set
as reproduced in open implementations (the MIT-licensed LoopInsighT1 simulator and a
literature review agree on them): T_HR = 5 min, a = 0.1, n = 4, T_in = 1 min, T_ex = 600
min, alpha = 3e-4, beta = 0.01 /bpm, gamma = 1e-7, HRb = 60 bpm (per patient settable).
z_reset = 0.05 is the reference implementation's threshold; tau_reset = 30 min is ours.

Consequence to know: Z decays with T_ex = 600 min, so a bout of exercise keeps insulin
action raised for about a day (Z = 0.05 about 30 h after it); the effect has gone only
after W's reset. :func:`with_exercise` attaches exercise parameters and the engine's
``extra_inputs`` carries HR per minute (``simulate(..., model=UVA_PADOVA_EXERCISE,
extra_inputs=heart_rate_bpm)``).
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
    """Exercise parameters of DM2009 model C (scalar or batched like the patient's).

    - ``hr_basal_bpm`` resting heart rate HRb, bpm (in [30, 120]).
    - ``tau_hr_min`` time constant T_HR of Y, min (> 0).
    - ``a_fraction_of_hrb`` a: Y at which f(Y) = 1/2, as a fraction of HRb (> 0).
    - ``hill_n`` n: steepness of f(Y), dimensionless (> 0).
    - ``tau_in_min`` T_in: time constant of Z's rise during exercise, min (> 0).
    - ``tau_ex_min`` T_ex: time constant of Z's decay after exercise, min (> 0).
    - ``alpha_per_bpm_min`` alpha: gain of insulin action per unit Z*W, 1/(bpm*min) (>= 0).
    - ``beta_per_bpm`` beta: relative rise of Vm0 per bpm of Y, 1/bpm (>= 0).
    - ``gamma_l_per_pmol_per_bpm_min`` gamma: fall of Km per unit Z*W*(X + Ib),
      1/(bpm*min*pmol/L) (>= 0).
    - ``z_reset`` Z below which W is reset, dimensionless (>= 0).
    - ``tau_reset_min`` time constant of that reset, min (> 0).
    """

    hr_basal_bpm: jax.Array
    tau_hr_min: jax.Array
    a_fraction_of_hrb: jax.Array
    hill_n: jax.Array
    tau_in_min: jax.Array
    tau_ex_min: jax.Array
    alpha_per_bpm_min: jax.Array
    beta_per_bpm: jax.Array
    gamma_l_per_pmol_per_bpm_min: jax.Array
    z_reset: jax.Array
    tau_reset_min: jax.Array

    def validate(self) -> ExerciseParams:
        """Check concrete values; return ``self`` or raise ``ValueError`` naming the field."""
        positive = (lambda v: v > 0, "> 0")
        nonnegative = (lambda v: v >= 0, ">= 0")
        checks = (
            ("hr_basal_bpm", "bpm", (lambda v: (v >= 30) & (v <= 120), "in [30, 120]")),
            ("tau_hr_min", "min", positive),
            ("a_fraction_of_hrb", "dimensionless", positive),
            ("hill_n", "dimensionless", positive),
            ("tau_in_min", "min", positive),
            ("tau_ex_min", "min", positive),
            ("alpha_per_bpm_min", "1/(bpm*min)", nonnegative),
            ("beta_per_bpm", "1/bpm", nonnegative),
            ("gamma_l_per_pmol_per_bpm_min", "L/pmol/(bpm*min)", nonnegative),
            ("z_reset", "dimensionless", nonnegative),
            ("tau_reset_min", "min", positive),
        )
        for field, unit, (check, relation) in checks:
            value = np.atleast_1d(np.asarray(getattr(self, field), np.float64))
            bad = np.flatnonzero(~np.isfinite(value) | ~check(value))
            if bad.size:
                raise ValueError(
                    f"exercise parameter {field} ({unit}) must be {relation}, "
                    f"got {float(value[bad[0]])!r} (index {bad[0]})"
                )
        return self


DEFAULT_EXERCISE = ExerciseParams(
    hr_basal_bpm=60.0,
    tau_hr_min=5.0,
    a_fraction_of_hrb=0.1,
    hill_n=4.0,
    tau_in_min=1.0,
    tau_ex_min=600.0,
    alpha_per_bpm_min=3e-4,
    beta_per_bpm=0.01,
    gamma_l_per_pmol_per_bpm_min=1e-7,
    z_reset=0.05,
    tau_reset_min=30.0,
)
"""DM2009 model C as published (module docstring); z_reset from the reference
implementation, tau_reset ours."""


class UvaPadovaExerciseParams(NamedTuple):
    """A UVA/Padova patient (``patient``) with its exercise parameters (``exercise``)."""

    patient: UvaPadovaParams
    exercise: ExerciseParams


class ExerciseState(NamedTuple):
    """The 13 UVA/Padova states (``patient``) and DM2009's exercise states.

    ``y_bpm`` filtered heart rate above basal Y, ``z`` post-exercise switch Z
    (dimensionless), ``w_bpm_min`` accumulated exercise W.
    """

    patient: UvaPadovaState
    y_bpm: jax.Array
    z: jax.Array
    w_bpm_min: jax.Array


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


def activation(y_bpm: jax.Array, exercise: ExerciseParams) -> jax.Array:
    """DM2009 eq. (9): f(Y) = r^n/(1 + r^n), r = max(Y, 0)/(a*HRb); dimensionless, in [0, 1)."""
    # ours: Y <= 0 (heart rate at or below basal) is no exercise.
    r = jnp.maximum(y_bpm, 0.0) / (exercise.a_fraction_of_hrb * exercise.hr_basal_bpm)
    rn = r**exercise.hill_n
    return rn / (1.0 + rn)


def vector_field(
    t: jax.Array,
    state: ExerciseState,
    inputs: ExerciseInputs,
    params: UvaPadovaExerciseParams,
    meal_memory: MealMemory,
) -> ExerciseState:
    """UVA/Padova's derivative with DM2009 model C's utilisation and states, per minute.

    dY, dZ, dW from eqs. (7), (8), (12) (W with our smooth reset, module docstring); dGt
    uses eq. (12)'s Uid in place of UVA/Padova's (Vm0 + Vmx*X)*Gt/(Km0 + Gt), with the same
    simglucose freeze when Gt < 0.
    """
    p, e, x = params.patient, params.exercise, state.patient
    base = uva_padova.vector_field(t, x, inputs.patient, p, meal_memory)
    y, z, w = state.y_bpm, state.z, state.w_bpm_min
    gt = x.gt_mg_per_kg
    action = x.x_pmol_per_l + p.Ib  # X + Ib, pmol/L
    exercise_dose = z * w  # Z*W, bpm*min
    # The same expression as uva_padova's Uid plus terms that are exact zeros at rest.
    uid_rest = (p.Vm0 + p.Vmx * x.x_pmol_per_l) * gt / (p.Km0 + gt)
    vm = (
        p.Vm0 + p.Vmx * x.x_pmol_per_l
        + e.beta_per_bpm * p.Vm0 * y
        + e.alpha_per_bpm_min * p.Vmx * exercise_dose * action
    )  # fmt: skip
    # ours: Km clipped at 0.
    km = p.Km0 * jnp.maximum(1.0 - e.gamma_l_per_pmol_per_bpm_min * exercise_dose * action, 0.0)
    uid = vm * gt / (km + gt)
    extra_uptake = jnp.where(gt >= 0, uid - uid_rest, 0.0)
    f = activation(y, e)
    hr_above_basal = inputs.heart_rate_bpm - e.hr_basal_bpm
    # ours: W relaxes to 0 once Z has decayed (the reference implementation jumps to 0).
    reset = jnp.where(z < e.z_reset, w / e.tau_reset_min, 0.0)
    return ExerciseState(
        patient=base._replace(gt_mg_per_kg=base.gt_mg_per_kg - extra_uptake),
        y_bpm=(hr_above_basal - y) / e.tau_hr_min,
        z=f - (f / e.tau_in_min + 1.0 / e.tau_ex_min) * z,
        w_bpm_min=hr_above_basal - reset,
    )


def steady_state(params: UvaPadovaExerciseParams) -> ExerciseState:
    """At rest (HR = HRb, Y = Z = W = 0) the UVA/Padova steady state under ``u2ss``."""
    basal = uva_padova.steady_state(params.patient)
    zero = jnp.zeros_like(basal.gp_mg_per_kg)
    return ExerciseState(basal, zero, zero, zero)


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
"""UVA/Padova with DM2009 model C heart-rate exercise; extra input: heart rate, bpm."""
