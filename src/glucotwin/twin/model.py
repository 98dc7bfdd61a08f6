"""The ReplayBG twin: a reduced type 1 model that routine CGM, insulin and carb data identify.

G. Cappon, M. Vettoretti, G. Sparacino, S. Del Favero, A. Facchinetti, "ReplayBG: a digital
twin-based methodology to identify a personalized model from type 1 diabetes data and simulate
glucose concentrations to assess alternative therapies", IEEE Trans. Biomed. Eng. 70(11),
2023, doi:10.1109/TBME.2023.3286856, section II-A (the model), as implemented by
``py_replay_bg`` (``model_step`` of the T1D model). Equation numbers of the paper were not
verified here, so equations are cited by subsystem. Time in minutes; per-kg masses.

ReplayBG's multi-meal model: insulin sensitivity differs by time of day, with three windows of
the local clock (breakfast B 04:00-11:00, lunch L 11:00-17:00, dinner D 17:00-04:00; w below
is the window of the current minute), and carbs are absorbed along one of four routes by meal
type (B, L, D and S for snacks and hypotreatments; r below), each with its own absorption
rate. Carbs without a meal type take the route of the window they are eaten in.

Glucose-insulin minimal model (Bergman), plasma glucose G (mg/dL), remote insulin action X
(µU/mL)::

    dG/dt = -(SG + risk(G) SI_w X) G + SG Gb + Ra/VG
    dX/dt = -p2 (X - (I - Ib))

Subcutaneous insulin, two compartments Isc1, Isc2 and plasma insulin Ip (mU/kg), I = Ip/VI
(mU/L = µU/mL), with u the insulin infusion in mU/(kg·min)::

    dIsc1/dt = -kd Isc1 + u
    dIsc2/dt = kd Isc1 - ka2 Isc2
    dIp/dt   = ka2 Isc2 - ke Ip

Meal: per route v in {B, L, D, S}, two stomach compartments and the gut (mg/kg); carbs cho
(mg/(kg·min)) of route r enter route r only; kgri = kempt as in ReplayBG; rate of
appearance Ra = f sum_v kabs_v Qgut_v (mg/(kg·min))::

    dQsto1_v/dt = -kempt Qsto1_v + cho [v = r]
    dQsto2_v/dt = kempt (Qsto1_v - Qsto2_v)
    dQgut_v/dt  = kempt Qsto2_v - kabs_v Qgut_v

Sensor: interstitial glucose IG (mg/dL) follows G with first-order delay alpha (min)::

    dIG/dt = (G - IG) / alpha

Ib is the plasma insulin at the basal steady state under ``u2ss``: Ib = u2ss/(ke VI).

Window and route are the model's extra per-minute input ``meal_window``, a meal code
(:func:`meal_code`): w + 3 l with w the window (0 = B, 1 = L, 2 = D; see
:func:`glucotwin.twin.inputs.meal_windows`) and l the meal-type label of the minute's carbs
(0 none: route by window; 1 B, 2 L, 3 D, 4 S), so plain windows 0, 1, 2 are valid codes;
without it every minute is in window B, so the B parameters make a single-meal model.

Hypoglycaemia: below Gb insulin action grows, as in ReplayBG and the UVA/Padova S2013
simulator (C. Dalla Man et al., "The UVA/PADOVA type 1 diabetes simulator: new features",
J. Diabetes Sci. Technol. 8(1), 26-34, 2014): SI X is multiplied by
risk(G) = 1 + 10 r1 (ln(G)^r2 - ln(Gb)^r2)^2 for G < Gb (G held at 60 mg/dL below 60),
1 otherwise, with r1 = 1.4407 and r2 = 0.8124 (``py_replay_bg`` values; the constants of
Kovatchev's symmetrised risk scale). Departures from ReplayBG: hypotreatments share the
snack route (ReplayBG gives them a fifth, H); unlabelled carbs route by window; the meal delay beta
(ReplayBG's per-meal-type delay) is applied to the inputs by the fitter and the fast solver
(:mod:`glucotwin.twin.solver`), not by this vector field.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from glucotwin.physiology.model import Model, keep_memory, no_memory

MU_PER_UNIT = 1000.0
MG_PER_G = 1000.0

RISK_R1 = 1.4407
RISK_R2 = 0.8124
"""Constants of the hypoglycaemia risk term (module docstring)."""
HYPO_FLOOR_MG_DL = 60.0

WINDOWS = "BLD"
"""Time windows of insulin sensitivity (breakfast, lunch, dinner)."""
ROUTES = "BLDS"
"""Meal absorption routes (breakfast, lunch, dinner, snack/hypotreatment)."""


def meal_code(window, route_label=0):
    """The per-minute meal code w + 3 l (module docstring): ``window`` 0, 1, 2 (B, L, D) and
    ``route_label`` 0 (none: route by window) or 1 + the index of a route in :data:`ROUTES`."""
    return window + 3 * route_label


def window_of(code: jax.Array) -> jax.Array:
    """Time window (0 B, 1 L, 2 D) of meal codes (float or int)."""
    return jnp.mod(code, 3)


def route_of(code: jax.Array) -> jax.Array:
    """Absorption route (index in :data:`ROUTES`) of meal codes: the label's when set, else the
    window's."""
    label = jnp.floor_divide(code, 3)
    return jnp.where(label == 0, jnp.mod(code, 3), label - 1)


def hypoglycaemia_risk(glucose_mg_dl: jax.Array, gb_mg_dl: jax.Array) -> jax.Array:
    """risk(G) >= 1, the factor on insulin action below basal glucose (module docstring)."""
    g = jnp.maximum(glucose_mg_dl, HYPO_FLOOR_MG_DL)
    diff = jnp.log(g) ** RISK_R2 - jnp.log(gb_mg_dl) ** RISK_R2
    return jnp.where(glucose_mg_dl < gb_mg_dl, 1.0 + 10.0 * RISK_R1 * diff**2, 1.0)


FIXED_VALUES = {"VG": 1.45, "VI": 0.126, "ke": 0.127, "f": 0.9, "alpha": 7.0}
"""ReplayBG's fixed population values: VG dL/kg, VI L/kg, ke 1/min, f (unitless), alpha
min (``py_replay_bg`` T1D model parameters)."""


class TwinParams(NamedTuple):
    """Parameters of the ReplayBG twin (paper symbols; scalar or batched fields).

    Identified: ``Gb`` basal glucose, mg/dL; ``SG`` glucose effectiveness, 1/min; ``SI_B``,
    ``SI_L``, ``SI_D`` insulin sensitivity per time window, mL/(µU·min); ``p2`` insulin
    action rate, 1/min; ``kd``, ``ka2`` subcutaneous insulin rates, 1/min; ``kempt`` gastric
    emptying, 1/min; ``kabs_B``, ``kabs_L``, ``kabs_D``, ``kabs_S`` gut absorption per route,
    1/min.
    Fixed (:data:`FIXED_VALUES`): ``VG`` glucose distribution volume, dL/kg; ``VI`` insulin
    distribution volume, L/kg; ``ke`` insulin clearance, 1/min; ``f``
    fraction of carbs that appears in plasma; ``alpha`` sensor delay, min. Subject: ``BW``
    body weight, kg; ``u2ss`` basal insulin infusion, mU/(kg·min).

    Build with :func:`twin_params`, which fills the fixed values and validates.
    """

    Gb: jax.Array
    SG: jax.Array
    SI_B: jax.Array
    SI_L: jax.Array
    SI_D: jax.Array
    p2: jax.Array
    kd: jax.Array
    ka2: jax.Array
    kempt: jax.Array
    kabs_B: jax.Array
    kabs_L: jax.Array
    kabs_D: jax.Array
    kabs_S: jax.Array
    BW: jax.Array
    u2ss: jax.Array
    VG: jax.Array
    VI: jax.Array
    ke: jax.Array
    f: jax.Array
    alpha: jax.Array


class TwinState(NamedTuple):
    """States of the twin: ``G`` plasma glucose, mg/dL; ``X`` insulin action, µU/mL;
    ``Isc1``, ``Isc2``, ``Ip`` insulin, mU/kg; ``Qsto1_v``, ``Qsto2_v``, ``Qgut_v`` carbs of
    route v, mg/kg; ``IG`` interstitial glucose, mg/dL."""

    G: jax.Array
    X: jax.Array
    Isc1: jax.Array
    Isc2: jax.Array
    Ip: jax.Array
    Qsto1_B: jax.Array
    Qsto2_B: jax.Array
    Qgut_B: jax.Array
    Qsto1_L: jax.Array
    Qsto2_L: jax.Array
    Qgut_L: jax.Array
    Qsto1_D: jax.Array
    Qsto2_D: jax.Array
    Qgut_D: jax.Array
    Qsto1_S: jax.Array
    Qsto2_S: jax.Array
    Qgut_S: jax.Array
    IG: jax.Array


class TwinInputs(NamedTuple):
    """One minute's inputs: ``cho_mg_per_kg_per_min``, ``insulin_mu_per_kg_per_min`` and
    ``meal_window``, the meal code (:func:`meal_code`)."""

    cho_mg_per_kg_per_min: jax.Array
    insulin_mu_per_kg_per_min: jax.Array
    meal_window: jax.Array


def twin_params(
    *,
    Gb: float,
    SG: float,
    SI: float,
    p2: float,
    kd: float,
    ka2: float,
    kempt: float,
    kabs: float,
    BW: float,
    u2ss: float,
    **overrides: float,
) -> TwinParams:
    """Validated :class:`TwinParams` (units there). ``SI`` fills every window and ``kabs`` every
    route; ``overrides`` sets per-window or per-route values (``SI_L=...``, ``kabs_S=...``) or
    :data:`FIXED_VALUES`.

    Raises ``ValueError`` naming the first parameter that is not finite and positive
    (``u2ss`` may be zero), or an unknown fixed name.
    """
    windows = {f"SI_{v}": SI for v in WINDOWS} | {f"kabs_{v}": kabs for v in ROUTES}
    values = dict(Gb=Gb, SG=SG, p2=p2, kd=kd, ka2=ka2, kempt=kempt, BW=BW, u2ss=u2ss,
                  **windows, **FIXED_VALUES)  # fmt: skip
    unknown = set(overrides) - set(windows) - set(FIXED_VALUES)
    if unknown:
        raise ValueError(f"unknown twin parameters: {sorted(unknown)}")
    values.update(overrides)
    for name, value in values.items():
        ok = math.isfinite(value) and (value >= 0 if name == "u2ss" else value > 0)
        if not ok:
            raise ValueError(f"twin parameter {name} must be finite and positive, got {value}")
    return TwinParams(**{name: jnp.asarray(values[name], float) for name in TwinParams._fields})


def basal_plasma_insulin_mu_per_l(params: TwinParams) -> jax.Array:
    """Ib = u2ss/(ke VI): plasma insulin at the basal steady state, mU/L (= µU/mL)."""
    return params.u2ss / (params.ke * params.VI)


def inputs_from_doses(carbs_g_per_min, insulin_u_per_min, params: TwinParams, extra=None):
    """Per-minute carbs (g/min) and insulin (U/min) as per-kg rates, and the meal code
    ``extra`` (:func:`meal_code`; window B when ``None``), as :class:`TwinInputs`."""
    window = jnp.zeros_like(carbs_g_per_min) if extra is None else extra
    return TwinInputs(
        cho_mg_per_kg_per_min=carbs_g_per_min * MG_PER_G / params.BW,
        insulin_mu_per_kg_per_min=insulin_u_per_min * MU_PER_UNIT / params.BW,
        meal_window=window,
    )


def vector_field(t, state: TwinState, inputs: TwinInputs, params: TwinParams, memory=()):
    """d(state)/dt per minute: the equations of the module docstring."""
    del t, memory
    p, y = params, state
    insulin = y.Ip / p.VI
    cho = inputs.cho_mg_per_kg_per_min
    window, route = window_of(inputs.meal_window), route_of(inputs.meal_window)
    si = jnp.where(window == 0, p.SI_B, jnp.where(window == 1, p.SI_L, p.SI_D))
    ra = p.f * sum(getattr(p, f"kabs_{v}") * getattr(y, f"Qgut_{v}") for v in ROUTES)
    eaten = {v: jnp.where(route == k, cho, 0.0) for k, v in enumerate(ROUTES)}
    meal = {}
    for v in ROUTES:
        sto1, sto2, gut = (getattr(y, f"{name}_{v}") for name in ("Qsto1", "Qsto2", "Qgut"))
        meal[f"Qsto1_{v}"] = -p.kempt * sto1 + eaten[v]
        meal[f"Qsto2_{v}"] = p.kempt * (sto1 - sto2)
        meal[f"Qgut_{v}"] = p.kempt * sto2 - getattr(p, f"kabs_{v}") * gut
    return TwinState(
        G=-(p.SG + hypoglycaemia_risk(y.G, p.Gb) * si * y.X) * y.G + p.SG * p.Gb + ra / p.VG,
        X=-p.p2 * (y.X - (insulin - basal_plasma_insulin_mu_per_l(p))),
        Isc1=-p.kd * y.Isc1 + inputs.insulin_mu_per_kg_per_min,
        Isc2=p.kd * y.Isc1 - p.ka2 * y.Isc2,
        Ip=p.ka2 * y.Isc2 - p.ke * y.Ip,
        **meal,
        IG=(y.G - y.IG) / p.alpha,
    )


def steady_state(params: TwinParams) -> TwinState:
    """The fasting steady state under the basal infusion ``u2ss``: G = IG = Gb, X = 0,
    Isc1 = u2ss/kd, Isc2 = u2ss/ka2, Ip = u2ss/ke (mU/kg), empty stomach and gut."""
    zero = jnp.zeros_like(params.Gb)
    return TwinState(
        G=params.Gb,
        X=zero,
        Isc1=params.u2ss / params.kd,
        Isc2=params.u2ss / params.ka2,
        Ip=params.u2ss / params.ke,
        **{f"{name}_{v}": zero for v in ROUTES for name in ("Qsto1", "Qsto2", "Qgut")},
        IG=params.Gb,
    )


def basal_insulin_u_per_min(params: TwinParams) -> jax.Array:
    """The basal infusion ``u2ss`` in U/min."""
    return params.u2ss * params.BW / MU_PER_UNIT


def interstitial_glucose_mg_dl(state: TwinState, params: TwinParams) -> jax.Array:
    """IG, mg/dL: what the CGM sees."""
    del params
    return state.IG


def plasma_glucose_mg_dl(state: TwinState, params: TwinParams) -> jax.Array:
    """G, mg/dL."""
    del params
    return state.G


REPLAYBG_TWIN = Model(
    name="replaybg_twin",
    vector_field=vector_field,
    inputs_from_doses=inputs_from_doses,
    initial_memory=no_memory,
    update_memory=keep_memory,
    glucose_mg_dl=interstitial_glucose_mg_dl,
    plasma_glucose_mg_dl=plasma_glucose_mg_dl,
    steady_state=steady_state,
    basal_insulin_u_per_min=basal_insulin_u_per_min,
    extra_input="meal_window",
)
"""The ReplayBG twin (Cappon et al. 2023) as a :class:`glucotwin.physiology.Model`."""
