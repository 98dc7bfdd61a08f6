"""UVA/Padova type-1 diabetes model (S2008) exactly as simglucose 0.2.11 implements it.

The model is the meal simulation model of Dalla Man, Rizza & Cobelli, "Meal simulation model
of the glucose-insulin system", IEEE Trans Biomed Eng 54(10):1740-1749, 2007 (below
"DM2007"), in the type-1 form of the UVA/Padova simulator S2008 (Kovatchev, Breton,
Dalla Man & Cobelli, "In silico preclinical trials: a proof of concept in closed-loop control
of type 1 diabetes", J Diabetes Sci Technol 3(1):44-55, 2009, "K2009"): no insulin
secretion, subcutaneous insulin absorption (Isc1, Isc2) and a subcutaneous glucose
compartment (Gs) added to the 2007 model. Its successor S2013 (Dalla Man et al., "The
UVA/PADOVA type 1 diabetes simulator: new features", J Diabetes Sci Technol 8(1):26-34,
2014, "DM2014") adds glucagon kinetics and secretion, an insulin action on utilisation that
grows in hypoglycaemia, and new absorption routes; simglucose implements none of those, and
neither does this module.

Equations are cited below by the subsystem headings of DM2007 (glucose kinetics, insulin
kinetics, endogenous production, rate of appearance, utilisation, renal excretion) and K2009
(subcutaneous insulin, subcutaneous glucose), with equation numbers. Provenance of the
numbers: the papers' own text could not be read here beyond DM2007's first page, so every
DM2007 "(n)" and DM2014 "(An)" below is as cited, equation by equation, by LoopInsighT1
(github.com/hpeuscher/loopinsight1, ``src/core/models/UvaPadova.js``), cross-checked where
possible against a second, independent implementation of DM2007 (a Julia ``Dalla_Man``
module whose comments cite eqs (6), (9), (12), (20), (22), (23)); the two agree wherever they
overlap. Treat them as secondary-source citations. K2009's equations are unnumbered in what
was available: "(equation number not verified)". What this module reproduces is simglucose's
``T1DPatient.model`` (MIT licence, J. Xie), which departs from the papers in these places
(each is marked "simglucose:" at the line that implements it):

1. Gastric emptying uses a *remembered* meal size Dbar (:class:`MealMemory`): the stomach
   content at the start of the current eating episode plus everything eaten in it, held
   after the episode ends. DM2007 uses the amount D of the last meal.
2. EGP = max(kp1 - kp2*Gp - kp3*Id, 0): no portal-insulin term kp4*Ipo (there is no
   secretion in type 1), clipped at zero.
3. Utilisation uses Km(X) = Km0 (no Kmx*X term), and Uii = Fsnc is a constant.
4. Hepatic insulin degradation uses the constant m30 instead of DM2007's HE-dependent
   m3(t) = HE(t)*m1/(1-HE(t)).
5. The derivatives of Gp, Gt, Ip, Il, Isc1, Isc2 and Gs are multiplied by (x >= 0): a state
   that has gone negative is frozen. Not in the papers.
6. Subcutaneous glucose is kept in mg/kg like Gp (dGs/dt = -ksc*Gs + ksc*Gp), so the
   sensor-site concentration is Gs/Vg; K2009 writes it in mg/dL.
7. Meals enter the first stomach compartment as a rate d (mg/min) held over each minute,
   not as an impulse D*delta(t); insulin enters Isc1 as a rate in pmol/kg/min converted
   from U/min with 1 U = 6000 pmol.
8. There is no separate grinding rate kgri: kmax moves Qsto1 into Qsto2.

All rates are per minute; glucose masses are mg/kg of body weight, insulin masses pmol/kg,
insulin concentrations pmol/L. Every function here is pure and elementwise, so it works on
one patient (scalar fields) or, unchanged, on batched fields under ``jax.vmap``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from glucotwin.physiology.labels import batch_labels

PMOL_PER_UNIT = 6000.0
"""Insulin units to pmol, as simglucose converts (1 U = 6 nmol)."""

MG_PER_G = 1000.0


class UvaPadovaParams(NamedTuple):
    """Parameters of one virtual patient (or a batch: then every field has a leading axis).

    Field names are the papers' symbols, as in simglucose's ``vpatient_params.csv``, so that
    they can be checked against DM2007 Table 1 and the parameter file. Build from a file row
    with :meth:`from_mapping`, which validates; direct construction (as ``jax.tree`` and
    ``vmap`` do) does not. Units:

    - ``BW`` body weight, kg.
    - ``Vg`` glucose distribution volume, dL/kg; ``Vi`` insulin distribution volume, L/kg.
    - ``kabs`` intestinal absorption rate, 1/min; ``kmax``, ``kmin`` maximal and minimal
      gastric emptying rates, 1/min (``kmax`` is also the grinding rate kgri).
    - ``b``, ``d`` fractions of Dbar at which gastric emptying is half-way down and back up
      (dimensionless; ``d`` is DM2007's ``c``); ``f`` fraction of absorbed glucose that
      appears in plasma (dimensionless).
    - ``kp1`` EGP extrapolated at zero glucose and insulin, mg/kg/min; ``kp2`` liver glucose
      effectiveness, 1/min; ``kp3`` liver insulin action, (mg/kg/min)/(pmol/L).
    - ``Fsnc`` insulin-independent utilisation (DM2007's Fcns), mg/kg/min.
    - ``ke1`` glomerular filtration rate, 1/min; ``ke2`` renal threshold, mg/kg.
    - ``k1``, ``k2`` plasma-to-tissue and tissue-to-plasma glucose rates, 1/min.
    - ``Vm0`` basal maximal utilisation, mg/kg/min; ``Vmx`` insulin action on it,
      (mg/kg/min)/(pmol/L); ``Km0`` Michaelis-Menten constant, mg/kg.
    - ``m1``, ``m2``, ``m4``, ``m30`` insulin transfer and degradation rates, 1/min.
    - ``ka1``, ``ka2``, ``kd`` subcutaneous insulin absorption and diffusion rates, 1/min.
    - ``ki`` delay of insulin action on the liver, 1/min; ``p2u`` delay of insulin action
      on utilisation, 1/min; ``Ib`` basal plasma insulin, pmol/L.
    - ``ksc`` plasma-to-subcutaneous glucose rate, 1/min.
    - ``u2ss`` basal (steady-state) insulin infusion, pmol/kg/min.

    The parameter file's other columns (EGPb, Gb, Gpb, Gtb, Ipb, Ilb, isc1ss, isc2ss, Rdb,
    PCRb, HEb, m5, CL, dosekempt and the initial state) are basal values or secretion
    parameters that the type-1 vector field does not read.
    """

    BW: jax.Array
    Vg: jax.Array
    Vi: jax.Array
    kabs: jax.Array
    kmax: jax.Array
    kmin: jax.Array
    b: jax.Array
    d: jax.Array
    f: jax.Array
    kp1: jax.Array
    kp2: jax.Array
    kp3: jax.Array
    Fsnc: jax.Array
    ke1: jax.Array
    ke2: jax.Array
    k1: jax.Array
    k2: jax.Array
    Vm0: jax.Array
    Vmx: jax.Array
    Km0: jax.Array
    m1: jax.Array
    m2: jax.Array
    m4: jax.Array
    m30: jax.Array
    ka1: jax.Array
    ka2: jax.Array
    kd: jax.Array
    ki: jax.Array
    p2u: jax.Array
    Ib: jax.Array
    ksc: jax.Array
    u2ss: jax.Array

    @classmethod
    def from_mapping(
        cls, row: Mapping[str, object], *, names: Sequence[str] | str | None = None
    ) -> UvaPadovaParams:
        """Build from a mapping of column name to value(s) (a file row), then :meth:`validate`.

        Values may be scalars (one patient) or equal-length sequences (a batch); they become
        float64 arrays. ``names`` labels the patients in error messages.
        """
        missing = [field for field in cls._fields if field not in row]
        if missing:
            raise ValueError(f"UVA/Padova parameters missing: {', '.join(missing)}")
        values = {field: np.asarray(row[field], dtype=np.float64) for field in cls._fields}
        shapes = {value.shape for value in values.values()}
        if len(shapes) != 1:
            raise ValueError(f"UVA/Padova parameters have different shapes: {sorted(shapes)}")
        return cls(**{k: jnp.asarray(v) for k, v in values.items()}).validate(names)

    def validate(self, names: Sequence[str] | str | None = None) -> UvaPadovaParams:
        """Check concrete values on the host; return ``self`` or raise ``ValueError``.

        Checks: every value finite; volumes, body weight and rate constants > 0; ``b``, ``d``
        in (0, 1), ``f`` in (0, 1], ``kmin <= kmax``; the remaining coefficients >= 0; and a
        basal steady state with positive glucose exists under the infusion ``u2ss``
        (:func:`steady_state`). The message names the patient, the parameter, its unit and
        the offending value.
        """
        values = {
            k: np.atleast_1d(np.asarray(v, dtype=np.float64)) for k, v in self._asdict().items()
        }
        size = values["BW"].size
        labels = batch_labels(names, size)

        def fail(index: int, message: str) -> None:
            raise ValueError(f"UVA/Padova parameters of {labels[index]}: {message}")

        for field, value in values.items():
            bad = np.flatnonzero(~np.isfinite(value))
            if bad.size:
                fail(bad[0], f"{field} must be finite, got {float(value[bad[0]])!r}")
        for field, (check, relation, unit) in _BOUNDS.items():
            bad = np.flatnonzero(~check(values[field]))
            if bad.size:
                got = float(values[field][bad[0]])
                fail(bad[0], f"{field} ({unit}) must be {relation}, got {got!r}")
        bad = np.flatnonzero(values["kmin"] > values["kmax"])
        if bad.size:
            fail(bad[0], f"kmin must be <= kmax, got {float(values['kmin'][bad[0]])!r} > "
                 f"{float(values['kmax'][bad[0]])!r}")  # fmt: skip
        net_hepatic, max_utilisation = _basal_balance(UvaPadovaParams(**values), values["u2ss"])
        bad = np.flatnonzero((net_hepatic <= 0) | (max_utilisation <= 0))
        if bad.size:
            fail(
                bad[0],
                "no basal steady state with positive glucose under u2ss: kp1 - kp3*I - Fsnc = "
                f"{net_hepatic[bad[0]]:.6g} mg/kg/min and Vm0 + Vmx*X = "
                f"{max_utilisation[bad[0]]:.6g} mg/kg/min must both be > 0",
            )
        ss = steady_state(UvaPadovaParams(**values))
        bad = np.flatnonzero(~(np.isfinite(ss.gp_mg_per_kg) & (np.asarray(ss.gt_mg_per_kg) > 0)))
        if bad.size:
            fail(bad[0], "the basal steady state has no positive tissue glucose")
        return self


def _positive(unit: str) -> tuple[Callable[[np.ndarray], np.ndarray], str, str]:
    return (lambda v: v > 0, "> 0", unit)


def _nonnegative(unit: str) -> tuple[Callable[[np.ndarray], np.ndarray], str, str]:
    return (lambda v: v >= 0, ">= 0", unit)


def _fraction(upper_closed: bool) -> tuple[Callable[[np.ndarray], np.ndarray], str, str]:
    if upper_closed:
        return (lambda v: (v > 0) & (v <= 1), "in (0, 1]", "dimensionless")
    return (lambda v: (v > 0) & (v < 1), "in (0, 1)", "dimensionless")


_RATE = "1/min"
_BOUNDS = {
    "BW": _positive("kg"),
    "Vg": _positive("dL/kg"),
    "Vi": _positive("L/kg"),
    "kabs": _positive(_RATE),
    "kmax": _positive(_RATE),
    "kmin": _positive(_RATE),
    "b": _fraction(upper_closed=False),
    "d": _fraction(upper_closed=False),
    "f": _fraction(upper_closed=True),
    "kp1": _positive("mg/kg/min"),
    "kp2": _nonnegative(_RATE),
    "kp3": _nonnegative("(mg/kg/min)/(pmol/L)"),
    "Fsnc": _nonnegative("mg/kg/min"),
    "ke1": _nonnegative(_RATE),
    "ke2": _nonnegative("mg/kg"),
    "k1": _positive(_RATE),
    "k2": _positive(_RATE),
    "Vm0": _positive("mg/kg/min"),
    "Vmx": _nonnegative("(mg/kg/min)/(pmol/L)"),
    "Km0": _positive("mg/kg"),
    "m1": _positive(_RATE),
    "m2": _positive(_RATE),
    "m4": _positive(_RATE),
    "m30": _positive(_RATE),
    "ka1": _positive(_RATE),
    "ka2": _positive(_RATE),
    "kd": _positive(_RATE),
    "ki": _positive(_RATE),
    "p2u": _positive(_RATE),
    "Ib": _nonnegative("pmol/L"),
    "ksc": _positive(_RATE),
    "u2ss": _nonnegative("pmol/kg/min"),
}
"""Field -> (check on the values, the relation in words, unit) used by ``validate``."""


class UvaPadovaState(NamedTuple):
    """The 13 states of the model, simglucose's x1..x13 in that order (units in the names).

    Gut: ``qsto1_mg`` solid and ``qsto2_mg`` liquid stomach content, ``qgut_mg`` intestine
    (mg, not per kg). Glucose: ``gp_mg_per_kg`` plasma and rapidly equilibrating tissues,
    ``gt_mg_per_kg`` slowly equilibrating tissues, ``gs_mg_per_kg`` subcutaneous. Insulin:
    ``ip_pmol_per_kg`` plasma, ``il_pmol_per_kg`` liver, ``isc1_pmol_per_kg`` and
    ``isc2_pmol_per_kg`` the two subcutaneous compartments; ``x_pmol_per_l`` remote insulin
    action on utilisation; ``i1_pmol_per_l`` and ``id_pmol_per_l`` the delayed insulin
    signal acting on the liver. A derivative is a value of the same type (units per minute).
    """

    qsto1_mg: jax.Array
    qsto2_mg: jax.Array
    qgut_mg: jax.Array
    gp_mg_per_kg: jax.Array
    gt_mg_per_kg: jax.Array
    ip_pmol_per_kg: jax.Array
    x_pmol_per_l: jax.Array
    i1_pmol_per_l: jax.Array
    id_pmol_per_l: jax.Array
    il_pmol_per_kg: jax.Array
    isc1_pmol_per_kg: jax.Array
    isc2_pmol_per_kg: jax.Array
    gs_mg_per_kg: jax.Array


class UvaPadovaInputs(NamedTuple):
    """Exogenous inputs, held constant over each integration interval (one minute).

    ``carbs_mg_per_min``: carbohydrate eaten, entering the solid stomach compartment.
    ``insulin_pmol_per_kg_per_min``: subcutaneous insulin infusion (basal + bolus).
    Build from grams and units with :func:`inputs_from_doses`.
    """

    carbs_mg_per_min: jax.Array
    insulin_pmol_per_kg_per_min: jax.Array


def inputs_from_doses(
    carbs_g_per_min: jax.Array, insulin_u_per_min: jax.Array, params: UvaPadovaParams
) -> UvaPadovaInputs:
    """Convert carbs (g/min) and insulin (U/min) to model inputs: 1000 mg/g, 6000/BW pmol/kg/U."""
    return UvaPadovaInputs(
        carbs_mg_per_min=MG_PER_G * carbs_g_per_min,
        insulin_pmol_per_kg_per_min=insulin_u_per_min * (PMOL_PER_UNIT / params.BW),
    )


def basal_insulin_u_per_min(params: UvaPadovaParams) -> jax.Array:
    """Nominal basal insulin, U/min: ``u2ss * BW / 6000`` (simglucose's BBController)."""
    return params.u2ss * params.BW / PMOL_PER_UNIT


class MealMemory(NamedTuple):
    """What gastric emptying remembers of past eating (simglucose: departure 1 above).

    ``previous_carbs_g``: carbs of the previous minute (an episode starts at a minute with
    carbs > 0 after one with carbs <= 0). ``qsto_at_episode_start_mg``: Qsto1 + Qsto2 at the
    start of the current (or last) episode. ``eaten_in_episode_g``: carbs eaten since then.
    Dbar = qsto_at_episode_start_mg + 1000 * eaten_in_episode_g (:attr:`dbar_mg`) is held
    after an episode ends and reset only when the next one starts.
    """

    previous_carbs_g: jax.Array
    qsto_at_episode_start_mg: jax.Array
    eaten_in_episode_g: jax.Array

    @property
    def dbar_mg(self) -> jax.Array:
        """The remembered meal size Dbar, mg, that scales the gastric emptying switch."""
        return self.qsto_at_episode_start_mg + MG_PER_G * self.eaten_in_episode_g


def initial_meal_memory(state: UvaPadovaState) -> MealMemory:
    """Memory before any eating: Dbar = Qsto1 + Qsto2 of the initial state, nothing eaten."""
    zero = jnp.zeros_like(state.qsto1_mg)
    return MealMemory(zero, state.qsto1_mg + state.qsto2_mg, zero)


def remember_meal(memory: MealMemory, state: UvaPadovaState, carbs_g: jax.Array) -> MealMemory:
    """Update the memory at the start of a minute with that minute's carbs (g).

    simglucose ``T1DPatient.step``: a minute with carbs > 0 after a minute with carbs <= 0
    starts an episode, storing Qsto1 + Qsto2 of the state at the start of the minute and
    resetting the eaten total; the minute's carbs are then added before the minute is
    integrated (a minute with no carbs adds zero, so Dbar is held between episodes).
    """
    starts = (carbs_g > 0) & (memory.previous_carbs_g <= 0)
    qsto = jnp.where(starts, state.qsto1_mg + state.qsto2_mg, memory.qsto_at_episode_start_mg)
    eaten = jnp.where(starts, 0.0, memory.eaten_in_episode_g) + carbs_g
    return MealMemory(jnp.asarray(carbs_g, qsto.dtype), qsto, eaten)


def gastric_emptying_rate(
    qsto_mg: jax.Array, dbar_mg: jax.Array, params: UvaPadovaParams
) -> jax.Array:
    """Gastric emptying rate kgut (DM2007 kempt, rate of appearance subsystem), 1/min.

    kgut = kmin + (kmax-kmin)/2 * (tanh(aa*(Qsto - b*Dbar)) - tanh(cc*(Qsto - d*Dbar)) + 2)
    with aa = 5/(2*Dbar*(1-b)), cc = 5/(2*Dbar*d); kgut = kmax when Dbar <= 0 (simglucose).
    Part of DM2007's rate-of-appearance block (13) / DM2014 (A3) with Qsto = Qsto1 + Qsto2;
    the number of the kempt formula itself: equation number not verified.
    """
    has_meal = dbar_mg > 0
    dbar = jnp.where(has_meal, dbar_mg, 1.0)  # keeps the unused branch (and its grad) finite
    aa = 2.5 / ((1.0 - params.b) * dbar)
    cc = 2.5 / (params.d * dbar)
    switch = jnp.tanh(aa * (qsto_mg - params.b * dbar)) - jnp.tanh(cc * (qsto_mg - params.d * dbar))
    # kmin + (kmax-kmin)/2*(switch+2) rearranged to save two operations per evaluation.
    kgut = params.kmax + 0.5 * (params.kmax - params.kmin) * switch
    return jnp.where(has_meal, kgut, params.kmax)


def vector_field(
    t: jax.Array,
    state: UvaPadovaState,
    inputs: UvaPadovaInputs,
    params: UvaPadovaParams,
    meal_memory: MealMemory,
) -> UvaPadovaState:
    """Time derivative of the 13 states (units per minute); pure, autonomous (``t`` unused).

    Equation numbers: DM2007 "(n)", DM2014 appendix "(An)" (provenance in the module
    docstring).

    - Rate of appearance (DM2007 (13); DM2014 (A3)): dQsto1 = -kmax*Qsto1 + d,
      dQsto2 = kmax*Qsto1 - kgut*Qsto2, dQgut = kgut*Qsto2 - kabs*Qgut,
      Ra = f*kabs*Qgut/BW, with kgut from :func:`gastric_emptying_rate`.
    - Glucose kinetics (DM2007 (1); DM2014 (A1)): dGp = EGP + Ra - Uii - E - k1*Gp + k2*Gt,
      dGt = -Uid + k1*Gp - k2*Gt, G = Gp/Vg.
    - Endogenous production (DM2007 (10) with kp4*Ipo = 0; DM2014 (A5)):
      EGP = max(kp1 - kp2*Gp - kp3*Id, 0).
    - Utilisation: Uii = Fsnc (DM2007 (14); DM2014 (A9)); Uid = (Vm0 + Vmx*X)*Gt/(Km0 + Gt)
      (DM2007 (15) with Km(X) = Km0; DM2014 (A10) without its hypoglycaemia risk term);
      dX = -p2u*X + p2u*(Ip/Vi - Ib) (DM2007 (18); DM2014 (A11)).
    - Renal excretion (DM2007 (27); DM2014 (A14)): E = ke1*(Gp - ke2) if Gp > ke2 else 0.
    - Insulin kinetics (I = Ip/Vi: DM2007 (3); DM2014 (A2)): dIp = -(m2+m4)*Ip + m1*Il +
      Rai with Rai = ka1*Isc1 + ka2*Isc2 (DM2014 (A15)), dIl = -(m1+m30)*Il + m2*Ip
      (DM2014 (A2); DM2007's m3(t) is its (5)).
    - Delayed insulin signal on the liver (DM2007 (11); DM2014 (A6), (A7)):
      dI1 = -ki*(I1 - Ip/Vi), dId = -ki*(Id - I1).
    - Subcutaneous insulin (K2009; DM2014 (A16)): dIsc1 = u - (ka1+kd)*Isc1,
      dIsc2 = kd*Isc1 - ka2*Isc2.
    - Subcutaneous glucose (K2009; equation number not verified): dGs = -ksc*Gs + ksc*Gp.

    simglucose's departures from the papers are listed in the module docstring.
    """
    del t
    p, x = params, state
    kgut = gastric_emptying_rate(x.qsto1_mg + x.qsto2_mg, meal_memory.dbar_mg, p)
    rate_of_appearance = p.f * p.kabs * x.qgut_mg / p.BW
    # simglucose: no kp4*Ipo term, and EGP clipped at zero.
    egp = jnp.maximum(p.kp1 - p.kp2 * x.gp_mg_per_kg - p.kp3 * x.id_pmol_per_l, 0.0)
    renal = p.ke1 * jnp.maximum(x.gp_mg_per_kg - p.ke2, 0.0)
    # simglucose: Km(X) = Km0.
    uid = (p.Vm0 + p.Vmx * x.x_pmol_per_l) * x.gt_mg_per_kg / (p.Km0 + x.gt_mg_per_kg)
    plasma_insulin = x.ip_pmol_per_kg / p.Vi

    def gated(value: jax.Array, derivative: jax.Array) -> jax.Array:
        # simglucose: a state that has gone negative is frozen.
        return jnp.where(value >= 0, derivative, 0.0)

    gp, gt, ip = x.gp_mg_per_kg, x.gt_mg_per_kg, x.ip_pmol_per_kg
    d_gp = egp + rate_of_appearance - p.Fsnc - renal - p.k1 * gp + p.k2 * gt
    d_ip = (
        p.m1 * x.il_pmol_per_kg + p.ka1 * x.isc1_pmol_per_kg + p.ka2 * x.isc2_pmol_per_kg
        - (p.m2 + p.m4) * ip
    )  # fmt: skip
    return UvaPadovaState(
        qsto1_mg=inputs.carbs_mg_per_min - p.kmax * x.qsto1_mg,
        qsto2_mg=p.kmax * x.qsto1_mg - kgut * x.qsto2_mg,
        qgut_mg=kgut * x.qsto2_mg - p.kabs * x.qgut_mg,
        gp_mg_per_kg=gated(gp, d_gp),
        gt_mg_per_kg=gated(gt, -uid + p.k1 * gp - p.k2 * gt),
        ip_pmol_per_kg=gated(ip, d_ip),
        x_pmol_per_l=p.p2u * (plasma_insulin - p.Ib - x.x_pmol_per_l),
        i1_pmol_per_l=p.ki * (plasma_insulin - x.i1_pmol_per_l),
        id_pmol_per_l=p.ki * (x.i1_pmol_per_l - x.id_pmol_per_l),
        il_pmol_per_kg=gated(x.il_pmol_per_kg, p.m2 * ip - (p.m1 + p.m30) * x.il_pmol_per_kg),
        isc1_pmol_per_kg=gated(
            x.isc1_pmol_per_kg,
            inputs.insulin_pmol_per_kg_per_min - (p.ka1 + p.kd) * x.isc1_pmol_per_kg,
        ),
        isc2_pmol_per_kg=gated(
            x.isc2_pmol_per_kg, p.kd * x.isc1_pmol_per_kg - p.ka2 * x.isc2_pmol_per_kg
        ),
        gs_mg_per_kg=gated(x.gs_mg_per_kg, p.ksc * (gp - x.gs_mg_per_kg)),
    )


def _basal_insulin(params: UvaPadovaParams, basal: jax.Array):
    """Insulin states at steady state under a constant infusion (pmol/kg/min)."""
    isc1 = basal / (params.ka1 + params.kd)
    isc2 = params.kd * isc1 / params.ka2
    # dIl = 0 gives Il = m2*Ip/(m1+m30); dIp = 0 with ka1*Isc1 + ka2*Isc2 = basal gives Ip.
    liver_return = params.m1 * params.m2 / (params.m1 + params.m30)
    ip = basal / (params.m2 + params.m4 - liver_return)
    il = params.m2 * ip / (params.m1 + params.m30)
    return isc1, isc2, ip, il, ip / params.Vi


def _basal_balance(params: UvaPadovaParams, basal: jax.Array):
    """kp1 - kp3*I - Fsnc and Vm0 + Vmx*X at the insulin steady state; both must be > 0."""
    plasma_insulin = _basal_insulin(params, basal)[4]
    net_hepatic = params.kp1 - params.kp3 * plasma_insulin - params.Fsnc
    max_utilisation = params.Vm0 + params.Vmx * (plasma_insulin - params.Ib)
    return net_hepatic, max_utilisation


def _glucose_steady_state(net, kp2, params: UvaPadovaParams, vm):
    """Solve dGp = dGt = 0 for one renal branch: net - (kp2+k1)*Gp + k2*Gt = 0 and
    vm*Gt/(Km0+Gt) = k1*Gp - k2*Gt, i.e. s*Gt^2 + B*Gt - a*Km0 = 0 with the stable root."""
    k1, k2, km0 = params.k1, params.k2, params.Km0
    a = k1 * net / (kp2 + k1)
    s = k2 * kp2 / (kp2 + k1)
    big_b = vm - a + s * km0
    gt = 2.0 * a * km0 / (big_b + jnp.sqrt(big_b * big_b + 4.0 * s * a * km0))
    gp = (net + k2 * gt) / (kp2 + k1)
    return gp, gt


def steady_state(
    params: UvaPadovaParams, basal_insulin_pmol_per_kg_per_min: jax.Array | None = None
) -> UvaPadovaState:
    """The fasting steady state under a constant insulin infusion (default ``u2ss``).

    Insulin states follow from the linear insulin kinetics; X = Ip/Vi - Ib and I1 = Id =
    Ip/Vi; then Gp and Gt solve the two glucose equations (a quadratic in Gt through the
    Michaelis-Menten utilisation), on the renal-excretion branch where the root lies; the
    gut is empty and Gs = Gp. Under ``u2ss`` this reproduces the parameter file's initial
    state ``x0`` (to about 1e-9 relative). Returns NaN or non-positive glucose where no
    steady state exists (too much insulin for the liver to balance); :meth:`validate`
    reports that case.
    """
    p = params
    basal = (
        p.u2ss if basal_insulin_pmol_per_kg_per_min is None else basal_insulin_pmol_per_kg_per_min
    )
    isc1, isc2, ip, il, plasma_insulin = _basal_insulin(p, basal)
    x = plasma_insulin - p.Ib
    vm = p.Vm0 + p.Vmx * x
    net = p.kp1 - p.kp3 * plasma_insulin - p.Fsnc
    gp, gt = _glucose_steady_state(net, p.kp2, p, vm)
    gp_renal, gt_renal = _glucose_steady_state(net + p.ke1 * p.ke2, p.kp2 + p.ke1, p, vm)
    above = gp > p.ke2
    gp = jnp.where(above, gp_renal, gp)
    gt = jnp.where(above, gt_renal, gt)
    zero = jnp.zeros_like(gp)
    return UvaPadovaState(
        qsto1_mg=zero,
        qsto2_mg=zero,
        qgut_mg=zero,
        gp_mg_per_kg=gp,
        gt_mg_per_kg=gt,
        ip_pmol_per_kg=ip,
        x_pmol_per_l=x,
        i1_pmol_per_l=plasma_insulin,
        id_pmol_per_l=plasma_insulin,
        il_pmol_per_kg=il,
        isc1_pmol_per_kg=isc1,
        isc2_pmol_per_kg=isc2,
        gs_mg_per_kg=gp,
    )


def subcutaneous_glucose_mg_dl(state: UvaPadovaState, params: UvaPadovaParams) -> jax.Array:
    """Subcutaneous (interstitial) glucose Gs/Vg, mg/dL: simglucose's ``BG`` (no CGM model)."""
    return state.gs_mg_per_kg / params.Vg


def plasma_glucose_mg_dl(state: UvaPadovaState, params: UvaPadovaParams) -> jax.Array:
    """Plasma glucose G = Gp/Vg, mg/dL (DM2007 glucose kinetics, (1); DM2014 (A1))."""
    return state.gp_mg_per_kg / params.Vg
