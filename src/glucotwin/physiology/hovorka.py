"""Hovorka (Cambridge) model of type-1 glucose-insulin regulation.

Hovorka R, Canonico V, Chassin LJ, et al. "Nonlinear model predictive control of glucose
concentration in subjects with type 1 diabetes", Physiol Meas 25(4):905-920, 2004 ("H2004"),
section 2 (the model): glucose subsystem (Q1, Q2 with the insulin-independent flux F01c
and renal clearance FR), insulin absorption (S1, S2) and kinetics (I), insulin action
(x1 transport, x2 disposal, x3 endogenous production) and gut absorption (D1, D2; two
compartments with time-to-maximum tmaxG, so that UG(t) = AG*D*t*exp(-t/tmaxG)/tmaxG^2
after a meal D at t = 0). Equations are cited below by those subsystem names, and the
parameter values are the population values of H2004's parameter table. Equation numbers:
neither H2004's nor W2010's text was available here, and no secondary source seen numbers
their equations, so every equation below is "(equation number not verified)". The interstitial
glucose compartment C (dC/dt = ka_int*(G - C)) is that of Wilinska ME, Chassin LJ, Acerini
CL, et al. "Simulation environment to evaluate closed-loop insulin delivery systems in
type 1 diabetes", J Diabetes Sci Technol 4(1):132-144, 2010 ("W2010").

Departures, each marked "departure:" where implemented: masses are per kg of body weight
(Q1, Q2, D1, D2 in mmol/kg, S1, S2 in mU/kg), so carbs and insulin are divided by BW;
EGP0*(1 - x3) is clipped at zero (production cannot be negative); the basal insulin is
not a parameter but follows from a target fasting glucose ``Gb`` (:func:`steady_state`).
Time is in minutes; glucose concentrations in mmol/L (18.0156 mg/dL per mmol/L).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from glucotwin.physiology.labels import batch_labels
from glucotwin.physiology.model import Model, keep_memory, no_memory

MG_DL_PER_MMOL_L = 18.0156
"""Glucose mmol/L to mg/dL (molar mass 180.156 g/mol)."""
MMOL_PER_G_GLUCOSE = 1000.0 / 180.156
"""Carbohydrate grams to mmol of glucose equivalent."""
MU_PER_UNIT = 1000.0


class HovorkaParams(NamedTuple):
    """Parameters of the Hovorka model (H2004 symbols; scalar or batched fields).

    - ``BW`` body weight, kg.
    - ``EGP0`` endogenous glucose production at zero insulin, mmol/kg/min.
    - ``F01`` insulin-independent glucose flux, mmol/kg/min.
    - ``k12`` transfer rate Q2 -> Q1, 1/min.
    - ``ka1``, ``ka2``, ``ka3`` deactivation rates of insulin action, 1/min.
    - ``SIT``, ``SID`` insulin sensitivity of transport and disposal, 1/min per mU/L;
      ``SIE`` of endogenous production, 1 per mU/L (kb_i = SI_i * ka_i).
    - ``ke`` insulin elimination, 1/min; ``VI`` insulin and ``VG`` glucose distribution
      volumes, L/kg.
    - ``tmaxI`` time-to-maximum of subcutaneous insulin absorption, min; ``tmaxG`` of
      carbohydrate absorption, min; ``AG`` carbohydrate bioavailability (0, 1].
    - ``ka_int`` plasma-to-interstitial glucose transfer rate (W2010), 1/min.
    - ``Gb`` target fasting plasma glucose, mmol/L: the basal insulin is the infusion that
      holds it (:func:`basal_insulin_u_per_min`).
    """

    BW: jax.Array
    EGP0: jax.Array
    F01: jax.Array
    k12: jax.Array
    ka1: jax.Array
    ka2: jax.Array
    ka3: jax.Array
    SIT: jax.Array
    SID: jax.Array
    SIE: jax.Array
    ke: jax.Array
    VI: jax.Array
    VG: jax.Array
    tmaxI: jax.Array
    tmaxG: jax.Array
    AG: jax.Array
    ka_int: jax.Array
    Gb: jax.Array

    @classmethod
    def from_mapping(
        cls, row: Mapping[str, object], *, names: Sequence[str] | str | None = None
    ) -> HovorkaParams:
        """Build from a mapping of field to value(s) (scalars or equal-length sequences),
        then :meth:`validate`."""
        missing = [field for field in cls._fields if field not in row]
        if missing:
            raise ValueError(f"Hovorka parameters missing: {', '.join(missing)}")
        values = {field: np.asarray(row[field], dtype=np.float64) for field in cls._fields}
        if len({value.shape for value in values.values()}) != 1:
            raise ValueError("Hovorka parameters have different shapes")
        return cls(**{k: jnp.asarray(v) for k, v in values.items()}).validate(names)

    def validate(self, names: Sequence[str] | str | None = None) -> HovorkaParams:
        """Check concrete values on the host; return ``self`` or raise ``ValueError``.

        Every value finite; all fields > 0 except ``AG`` in (0, 1]; ``Gb`` within 2-25
        mmol/L; and EGP0 > F01c + FR at ``Gb`` (else no insulin level holds ``Gb``: the
        liver cannot even cover insulin-independent uptake and renal loss). The message
        names the patient, the parameter, its unit and the value.
        """
        values = {k: np.atleast_1d(np.asarray(v, np.float64)) for k, v in self._asdict().items()}
        labels = batch_labels(names, values["BW"].size)

        def fail(index: int, message: str) -> None:
            raise ValueError(f"Hovorka parameters of {labels[index]}: {message}")

        for field, value in values.items():
            unit = _UNITS[field]
            bad = np.flatnonzero(~np.isfinite(value) | (value <= 0))
            if bad.size:
                fail(
                    bad[0], f"{field} ({unit}) must be finite and > 0, got {float(value[bad[0]])!r}"
                )
        bad = np.flatnonzero(values["AG"] > 1)
        if bad.size:
            fail(
                bad[0], f"AG (dimensionless) must be in (0, 1], got {float(values['AG'][bad[0]])!r}"
            )
        bad = np.flatnonzero((values["Gb"] < 2) | (values["Gb"] > 25))
        if bad.size:
            fail(bad[0], f"Gb (mmol/L) must be in [2, 25], got {float(values['Gb'][bad[0]])!r}")
        net = _net_basal_production(HovorkaParams(**values))
        bad = np.flatnonzero(net <= 0)
        if bad.size:
            fail(
                bad[0],
                f"no basal insulin holds Gb: EGP0 - F01c - FR = {net[bad[0]]:.6g} mmol/kg/min "
                "must be > 0",
            )
        return self


_UNITS = {
    "BW": "kg", "EGP0": "mmol/kg/min", "F01": "mmol/kg/min", "k12": "1/min",
    "ka1": "1/min", "ka2": "1/min", "ka3": "1/min", "SIT": "1/min per mU/L",
    "SID": "1/min per mU/L", "SIE": "1 per mU/L", "ke": "1/min", "VI": "L/kg",
    "VG": "L/kg", "tmaxI": "min", "tmaxG": "min", "AG": "dimensionless",
    "ka_int": "1/min", "Gb": "mmol/L",
}  # fmt: skip


class HovorkaState(NamedTuple):
    """The 11 states (units in the names; masses per kg of body weight).

    Glucose: ``q1_mmol_per_kg`` accessible (plasma) and ``q2_mmol_per_kg`` non-accessible
    compartments. Insulin: ``s1_mu_per_kg``, ``s2_mu_per_kg`` subcutaneous chain,
    ``i_mu_per_l`` plasma concentration. Insulin action: ``x1_per_min`` (transport),
    ``x2_per_min`` (disposal), ``x3`` (endogenous production, dimensionless). Gut:
    ``d1_mmol_per_kg``, ``d2_mmol_per_kg``. Interstitial glucose (W2010): ``c_mmol_per_l``.
    """

    q1_mmol_per_kg: jax.Array
    q2_mmol_per_kg: jax.Array
    s1_mu_per_kg: jax.Array
    s2_mu_per_kg: jax.Array
    i_mu_per_l: jax.Array
    x1_per_min: jax.Array
    x2_per_min: jax.Array
    x3: jax.Array
    d1_mmol_per_kg: jax.Array
    d2_mmol_per_kg: jax.Array
    c_mmol_per_l: jax.Array


class HovorkaInputs(NamedTuple):
    """Carbohydrate (mmol glucose/kg/min) and subcutaneous insulin (mU/kg/min) per minute."""

    carbs_mmol_per_kg_per_min: jax.Array
    insulin_mu_per_kg_per_min: jax.Array


def inputs_from_doses(
    carbs_g_per_min: jax.Array,
    insulin_u_per_min: jax.Array,
    params: HovorkaParams,
    extra: jax.Array | None = None,
) -> HovorkaInputs:
    """Grams/min and U/min to mmol/kg/min (1000/180.156 mmol/g) and mU/kg/min."""
    del extra
    return HovorkaInputs(
        carbs_mmol_per_kg_per_min=carbs_g_per_min * (MMOL_PER_G_GLUCOSE / params.BW),
        insulin_mu_per_kg_per_min=insulin_u_per_min * (MU_PER_UNIT / params.BW),
    )


def _f01c(glucose_mmol_l: jax.Array, params: HovorkaParams) -> jax.Array:
    """Insulin-independent flux F01c = F01 * min(G/4.5, 1), mmol/kg/min (H2004 glucose
    subsystem: total non-insulin-dependent uptake falls linearly below 4.5 mmol/L)."""
    return params.F01 * jnp.minimum(glucose_mmol_l / 4.5, 1.0)


def _renal(glucose_mmol_l: jax.Array, params: HovorkaParams) -> jax.Array:
    """Renal clearance FR = 0.003*(G - 9)*VG above 9 mmol/L, else 0, mmol/kg/min (H2004)."""
    return 0.003 * jnp.maximum(glucose_mmol_l - 9.0, 0.0) * params.VG


def vector_field(
    t: jax.Array,
    state: HovorkaState,
    inputs: HovorkaInputs,
    params: HovorkaParams,
    memory: tuple[()] = (),
) -> HovorkaState:
    """Time derivative of the 11 states, per minute (H2004 section 2; W2010 for C).

    Equation numbers: none verified (see the module docstring); each line below is
    "(equation number not verified)".

    Glucose subsystem: dQ1 = -F01c - x1*Q1 + k12*Q2 - FR + UG + EGP0*(1 - x3),
    dQ2 = x1*Q1 - (k12 + x2)*Q2, G = Q1/VG. Insulin absorption and kinetics:
    dS1 = u - S1/tmaxI, dS2 = (S1 - S2)/tmaxI, dI = S2/(tmaxI*VI) - ke*I. Insulin action:
    dx_i = -ka_i*x_i + ka_i*SI_i*I (i = 1, 2, 3 with SIT, SID, SIE). Gut absorption:
    dD1 = AG*d - D1/tmaxG, dD2 = (D1 - D2)/tmaxG, UG = D2/tmaxG. Interstitial glucose:
    dC = ka_int*(G - C). ``t`` and ``memory`` are unused (autonomous, memoryless).
    """
    del t, memory
    p, x = params, state
    glucose = x.q1_mmol_per_kg / p.VG
    gut_appearance = x.d2_mmol_per_kg / p.tmaxG
    # departure: production clipped at zero when x3 > 1 (high insulin).
    production = p.EGP0 * jnp.maximum(1.0 - x.x3, 0.0)
    d_q1 = (
        production + gut_appearance + p.k12 * x.q2_mmol_per_kg
        - _f01c(glucose, p) - x.x1_per_min * x.q1_mmol_per_kg - _renal(glucose, p)
    )  # fmt: skip
    insulin = x.i_mu_per_l
    return HovorkaState(
        q1_mmol_per_kg=d_q1,
        q2_mmol_per_kg=x.x1_per_min * x.q1_mmol_per_kg - (p.k12 + x.x2_per_min) * x.q2_mmol_per_kg,
        s1_mu_per_kg=inputs.insulin_mu_per_kg_per_min - x.s1_mu_per_kg / p.tmaxI,
        s2_mu_per_kg=(x.s1_mu_per_kg - x.s2_mu_per_kg) / p.tmaxI,
        i_mu_per_l=x.s2_mu_per_kg / (p.tmaxI * p.VI) - p.ke * insulin,
        x1_per_min=p.ka1 * (p.SIT * insulin - x.x1_per_min),
        x2_per_min=p.ka2 * (p.SID * insulin - x.x2_per_min),
        x3=p.ka3 * (p.SIE * insulin - x.x3),
        d1_mmol_per_kg=p.AG * inputs.carbs_mmol_per_kg_per_min - x.d1_mmol_per_kg / p.tmaxG,
        d2_mmol_per_kg=(x.d1_mmol_per_kg - x.d2_mmol_per_kg) / p.tmaxG,
        c_mmol_per_l=p.ka_int * (glucose - x.c_mmol_per_l),
    )


def _net_basal_production(params: HovorkaParams) -> jax.Array:
    """EGP0 - F01c(Gb) - FR(Gb), mmol/kg/min: what insulin-dependent fluxes must balance."""
    return params.EGP0 - _f01c(params.Gb, params) - _renal(params.Gb, params)


def basal_plasma_insulin_mu_per_l(params: HovorkaParams) -> jax.Array:
    """Plasma insulin I (mU/L) at which G = Gb is a steady state.

    dQ2 = 0 gives Q2 = x1*Q1/(k12 + x2); then dQ1 = 0 reads x1*x2*Q1/(k12 + x2) =
    EGP0*(1 - SIE*I) - F01c - FR with x1 = SIT*I, x2 = SID*I, Q1 = Gb*VG: a quadratic
    a*I^2 + b*I - c = 0 with a = SID*(SIT*Q1 + EGP0*SIE), b = EGP0*SIE*k12 - A*SID,
    c = A*k12, A = EGP0 - F01c - FR, solved with its positive root (A > 0 is validated).
    """
    p = params
    net = _net_basal_production(p)
    q1 = p.Gb * p.VG
    a = p.SID * (p.SIT * q1 + p.EGP0 * p.SIE)
    b = p.EGP0 * p.SIE * p.k12 - net * p.SID
    c = net * p.k12
    return 2.0 * c / (b + jnp.sqrt(b * b + 4.0 * a * c))


def basal_insulin_u_per_min(params: HovorkaParams) -> jax.Array:
    """Basal subcutaneous insulin, U/min, that holds G = Gb: I*ke*VI*BW/1000."""
    insulin = basal_plasma_insulin_mu_per_l(params)
    return insulin * params.ke * params.VI * params.BW / MU_PER_UNIT


def steady_state(params: HovorkaParams) -> HovorkaState:
    """Fasting steady state at G = C = Gb under :func:`basal_insulin_u_per_min` (gut empty).

    S1 = S2 = u*tmaxI with u = I*ke*VI (mU/kg/min), x_i = SI_i*I, Q1 = Gb*VG,
    Q2 = x1*Q1/(k12 + x2).
    """
    p = params
    insulin = basal_plasma_insulin_mu_per_l(p)
    s = insulin * p.ke * p.VI * p.tmaxI
    x1, x2, x3 = p.SIT * insulin, p.SID * insulin, p.SIE * insulin
    q1 = p.Gb * p.VG
    zero = jnp.zeros_like(q1)
    return HovorkaState(
        q1_mmol_per_kg=q1,
        q2_mmol_per_kg=x1 * q1 / (p.k12 + x2),
        s1_mu_per_kg=s,
        s2_mu_per_kg=s,
        i_mu_per_l=insulin,
        x1_per_min=x1,
        x2_per_min=x2,
        x3=x3,
        d1_mmol_per_kg=zero,
        d2_mmol_per_kg=zero,
        c_mmol_per_l=p.Gb + zero,
    )


def interstitial_glucose_mg_dl(state: HovorkaState, params: HovorkaParams) -> jax.Array:
    """Interstitial glucose C (W2010), mg/dL."""
    del params
    return state.c_mmol_per_l * MG_DL_PER_MMOL_L


def plasma_glucose_mg_dl(state: HovorkaState, params: HovorkaParams) -> jax.Array:
    """Plasma glucose G = Q1/VG (H2004), mg/dL."""
    return state.q1_mmol_per_kg / params.VG * MG_DL_PER_MMOL_L


HOVORKA = Model(
    name="hovorka",
    vector_field=vector_field,
    inputs_from_doses=inputs_from_doses,
    initial_memory=no_memory,
    update_memory=keep_memory,
    glucose_mg_dl=interstitial_glucose_mg_dl,
    plasma_glucose_mg_dl=plasma_glucose_mg_dl,
    steady_state=steady_state,
    basal_insulin_u_per_min=basal_insulin_u_per_min,
)
"""The Hovorka 2004 model with W2010's interstitial compartment."""

HOVORKA_MEAN = {
    "BW": 70.0,
    "EGP0": 0.0161,
    "F01": 0.0097,
    "k12": 0.066,
    "ka1": 0.006,
    "ka2": 0.06,
    "ka3": 0.03,
    "SIT": 51.2e-4,
    "SID": 8.2e-4,
    "SIE": 520e-4,
    "ke": 0.138,
    "VI": 0.12,
    "VG": 0.16,
    "tmaxI": 55.0,
    "tmaxG": 40.0,
    "AG": 0.8,
    "ka_int": 0.073,
    "Gb": 6.0,
}
"""``hovorka#mean``: H2004's population values (its parameter table) for EGP0 ... AG;
ka_int from W2010; ``BW`` 70 kg and ``Gb`` 6.0 mmol/L (108 mg/dL) are nominal choices of
ours (H2004 normalises by weight and does not define a basal target).

Checked (no value changed): H2004's table itself could not be read here, but EGP0 0.0161,
F01 0.0097, k12 0.066, ka1/ka2/ka3 0.006/0.06/0.03, SIT/SID/SIE 51.2e-4/8.2e-4/520e-4, ke
0.138, VI 0.12, VG 0.16, tmaxI 55, tmaxG 40 and AG 0.8 all match independent
implementations that cite H2004: LoopInsighT1 (github.com/hpeuscher/loopinsight1,
``src/core/models/Hovorka.js``), a MATLAB ``GetSingleHormoneModelParams`` ("glucose and
insulin kinetics taken from Hovorka et al. 2004") and a Python ``hovorka_parameters``
(per-kg VI, VG, F01, EGP0). ka_int = 0.073 1/min (W2010) and the renal constants of
:func:`_renal` (0.003, 9 mmol/L, times VG) were not verified."""

HOVORKA_PATIENTS = {
    "hovorka#mean": HOVORKA_MEAN,
    "hovorka#resistant": {**HOVORKA_MEAN, "SIT": 0.5 * 51.2e-4, "SID": 0.5 * 8.2e-4,
                          "SIE": 0.5 * 520e-4},
    "hovorka#sensitive": {**HOVORKA_MEAN, "SIT": 2.0 * 51.2e-4, "SID": 2.0 * 8.2e-4,
                          "SIE": 2.0 * 520e-4},
}  # fmt: skip
"""Named Hovorka patients: the mean, and the mean with all three insulin sensitivities
halved or doubled (illustrative variants, not published subjects)."""


def load_hovorka_patients(names: Sequence[str] = ("hovorka#mean",)) -> HovorkaParams:
    """Validated, batched (``[len(names)]``) parameters of the named Hovorka patients.

    Known: ``hovorka#mean``, ``hovorka#resistant``, ``hovorka#sensitive``
    (:data:`HOVORKA_PATIENTS`); an unknown name raises ``KeyError`` listing them.
    """
    unknown = [name for name in names if name not in HOVORKA_PATIENTS]
    if unknown:
        raise KeyError(f"unknown Hovorka patients {unknown}; known: {', '.join(HOVORKA_PATIENTS)}")
    rows = [HOVORKA_PATIENTS[name] for name in names]
    table = {field: [row[field] for row in rows] for field in HovorkaParams._fields}
    return HovorkaParams.from_mapping(table, names=list(names))
