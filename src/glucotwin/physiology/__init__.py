"""Physiological models as pure JAX vector fields over named states.

Importing this package turns on JAX's 64-bit mode (``jax_enable_x64``) for the whole
process, because the models are validated in float64 (the UVA/Padova reference trajectories
are matched to 1e-4 mg/dL) and JAX otherwise silently downcasts float64 inputs to float32.
The side effect on other JAX code in the same process: Python floats and ``jnp.arange`` and
friends then default to 64-bit types. Code that wants float32 passes explicit dtypes (as
``glucotwin.simulate.simulate(..., dtype=jnp.float32)`` does); set the environment variable
``GLUCOTWIN_KEEP_JAX_X64=1`` to leave the flag as it is (float64 simulations then raise).
"""

import os

import jax

if os.environ.get("GLUCOTWIN_KEEP_JAX_X64") != "1":
    jax.config.update("jax_enable_x64", True)

from glucotwin.physiology.exercise import (
    DEFAULT_EXERCISE,
    UVA_PADOVA_EXERCISE,
    ExerciseParams,
    ExerciseState,
    UvaPadovaExerciseParams,
    with_exercise,
)
from glucotwin.physiology.hovorka import (
    HOVORKA,
    HOVORKA_PATIENTS,
    HovorkaParams,
    HovorkaState,
    load_hovorka_patients,
)
from glucotwin.physiology.model import UVA_PADOVA, Model
from glucotwin.physiology.pump import (
    PumpDelivery,
    PumpParams,
    deliver_insulin,
    occlusion_schedule,
)
from glucotwin.physiology.sensor import CgmReadings, SensorParams, cgm_readings
from glucotwin.physiology.t2d import (
    MEDICATION_EFFECTS,
    T2D,
    T2D_PATIENTS,
    T2dParams,
    T2dState,
    apply_medication,
    insulin_secretion_pmol_per_kg_per_min,
    load_t2d_patients,
)
from glucotwin.physiology.uva_padova import (
    MG_PER_G,
    PMOL_PER_UNIT,
    MealMemory,
    UvaPadovaInputs,
    UvaPadovaParams,
    UvaPadovaState,
    basal_insulin_u_per_min,
    gastric_emptying_rate,
    initial_meal_memory,
    inputs_from_doses,
    plasma_glucose_mg_dl,
    remember_meal,
    steady_state,
    subcutaneous_glucose_mg_dl,
    vector_field,
)
from glucotwin.physiology.virtual_patients import (
    PATIENT_NAMES,
    TherapySettings,
    VirtualCohort,
    load_virtual_patients,
)

__all__ = [
    "DEFAULT_EXERCISE",
    "HOVORKA",
    "HOVORKA_PATIENTS",
    "MEDICATION_EFFECTS",
    "MG_PER_G",
    "PATIENT_NAMES",
    "PMOL_PER_UNIT",
    "T2D",
    "T2D_PATIENTS",
    "UVA_PADOVA",
    "UVA_PADOVA_EXERCISE",
    "CgmReadings",
    "ExerciseParams",
    "ExerciseState",
    "HovorkaParams",
    "HovorkaState",
    "MealMemory",
    "Model",
    "PumpDelivery",
    "PumpParams",
    "SensorParams",
    "T2dParams",
    "T2dState",
    "TherapySettings",
    "UvaPadovaExerciseParams",
    "UvaPadovaInputs",
    "UvaPadovaParams",
    "UvaPadovaState",
    "VirtualCohort",
    "apply_medication",
    "basal_insulin_u_per_min",
    "cgm_readings",
    "deliver_insulin",
    "gastric_emptying_rate",
    "initial_meal_memory",
    "inputs_from_doses",
    "insulin_secretion_pmol_per_kg_per_min",
    "load_hovorka_patients",
    "load_t2d_patients",
    "load_virtual_patients",
    "occlusion_schedule",
    "plasma_glucose_mg_dl",
    "remember_meal",
    "steady_state",
    "subcutaneous_glucose_mg_dl",
    "vector_field",
    "with_exercise",
]
