"""Type-2 diabetes: the Dalla Man 2007 meal model with endogenous insulin secretion.

Dalla Man C, Rizza RA, Cobelli C. "Meal simulation model of the glucose-insulin system",
IEEE Trans Biomed Eng 54(10):1740-1749, 2007 ("DM2007"), with the parameters its Table 1
gives for type 2 diabetes. Subsystems (DM2007's headings; equation numbers "(n)" as cited by
LoopInsighT1, github.com/hpeuscher/loopinsight1 ``src/core/models/UvaPadova.js``, and by an
independent Julia ``Dalla_Man`` implementation, which agree where they overlap; DM2007's own
text past its first page was not available, so these are secondary-source citations; see
also :mod:`glucotwin.physiology.uva_padova`): glucose kinetics (Gp, Gt; (1)), insulin
kinetics (Il, Ip; I = Ip/Vi (3)) with hepatic extraction HE(t) = -m5*S(t) + m6 (4) and
m3(t) = HE*m1/(1 - HE) (5), endogenous production EGP = kp1 - kp2*Gp - kp3*Id - kp4*Ipo
(10) with the delayed signal I1, Id (11), rate of appearance (Qsto1, Qsto2, Qgut; (13)) with
the tanh gastric emptying of :func:`glucotwin.physiology.gastric_emptying_rate` (number of
the kempt formula not verified), utilisation Uii = Fcns (14) and Uid = (Vm0 + Vmx*X)*Gt/(Km0
+ Gt) ((15) with Km(X) = Km0; remote insulin X (18)), renal excretion E = ke1*max(Gp - ke2, 0)
(27), and insulin secretion (the beta-cell model; S = gamma*Ipo and dIpo/dt with Ipo(0) =
Sb/gamma are (23); the numbers of the Spo and Y equations: equation number not verified):

    S = gamma*Ipo,  dIpo/dt = -gamma*Ipo + Spo,
    Spo = Y + K*dG/dt + Sb  if dG/dt > 0,  Y + Sb  otherwise,
    dY/dt = -alpha*(Y - beta*(G - h))  if beta*(G - h) >= -Sb,  -alpha*(Y + Sb) otherwise,

with h = Gb. As DM2007 does, Vm0 is derived from the basal state (``Vm0 = (EGPb - Fcns -
Eb)*(Km0 + Gtb)/Gtb``, (22); Gtb from (20)) and Sb from the basal hepatic extraction
(``Sb = (m6 - HEb)/m5``, from (6)); basal insulin Ib then follows from the insulin kinetics
(basal relations (8), (9)); kp1's basal balance EGPb = kp1 - kp2*Gpb - kp3*Ib - kp4*Ipob is
(12). Added to DM2007: optional
subcutaneous exogenous insulin (Isc1, Isc2 with UVA/Padova's ka1, ka2, kd; Kovatchev et al.
2009) and a subcutaneous glucose compartment Gs (dGs = ksc*(Gp - Gs), mg/kg as in
simglucose) for the sensor-site glucose. Meal size D in gastric emptying is UVA/Padova's
remembered Dbar (:class:`glucotwin.physiology.MealMemory`), EGP and HE are clipped at zero.

Medications (:func:`apply_medication`) are documented parameter changes; their sizes are
approximate (see :data:`MEDICATION_EFFECTS`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from glucotwin.physiology import uva_padova
from glucotwin.physiology.labels import batch_labels
from glucotwin.physiology.model import Model
from glucotwin.physiology.uva_padova import MG_PER_G, PMOL_PER_UNIT, MealMemory


class T2dParams(NamedTuple):
    """Parameters of the type-2 model (DM2007 symbols; scalar or batched fields).

    Glucose: ``BW`` kg; ``Vg`` dL/kg; ``k1``, ``k2`` 1/min; ``kp1`` mg/kg/min, ``kp2``
    1/min, ``kp3`` (mg/kg/min)/(pmol/L), ``kp4`` (mg/kg/min)/(pmol/kg); ``ki`` 1/min;
    ``Fsnc`` (DM2007's Fcns) mg/kg/min; ``Vm0`` mg/kg/min (derived), ``Vmx``
    (mg/kg/min)/(pmol/L), ``Km0`` mg/kg; ``p2u`` 1/min; ``ke1`` 1/min, ``ke2`` mg/kg.
    Insulin: ``Vi`` L/kg; ``m1``, ``m2``, ``m4`` 1/min; ``m5`` min*kg/pmol; ``m6`` and
    ``HEb`` dimensionless in (0, 1); ``Ib`` basal insulin pmol/L (derived). Gut: ``kmax``,
    ``kmin``, ``kabs`` 1/min; ``b``, ``d`` in (0, 1) (DM2007's b and c); ``f`` in (0, 1].
    Secretion: ``K`` (pmol/kg)/(mg/dL), ``alpha`` 1/min, ``beta`` (pmol/kg/min)/(mg/dL),
    ``gamma`` 1/min, ``Gb`` basal glucose (= threshold h) mg/dL. Exogenous insulin:
    ``ka1``, ``ka2``, ``kd`` 1/min. Sensor site: ``ksc`` 1/min.
    """

    BW: jax.Array
    Vg: jax.Array
    k1: jax.Array
    k2: jax.Array
    Vi: jax.Array
    m1: jax.Array
    m2: jax.Array
    m4: jax.Array
    m5: jax.Array
    m6: jax.Array
    HEb: jax.Array
    kmax: jax.Array
    kmin: jax.Array
    kabs: jax.Array
    b: jax.Array
    d: jax.Array
    f: jax.Array
    kp1: jax.Array
    kp2: jax.Array
    kp3: jax.Array
    kp4: jax.Array
    ki: jax.Array
    Fsnc: jax.Array
    Vm0: jax.Array
    Vmx: jax.Array
    Km0: jax.Array
    p2u: jax.Array
    K: jax.Array
    alpha: jax.Array
    beta: jax.Array
    gamma: jax.Array
    ke1: jax.Array
    ke2: jax.Array
    Gb: jax.Array
    Ib: jax.Array
    ka1: jax.Array
    ka2: jax.Array
    kd: jax.Array
    ksc: jax.Array

    @classmethod
    def from_mapping(
        cls, row: Mapping[str, object], *, names: Sequence[str] | str | None = None
    ) -> T2dParams:
        """Build from DM2007-style values (every field but the derived ``Vm0`` and ``Ib``),
        derive those two from the basal state at G = Gb, then :meth:`validate`."""
        given = [field for field in cls._fields if field not in ("Vm0", "Ib")]
        missing = [field for field in given if field not in row]
        if missing:
            raise ValueError(f"type-2 parameters missing: {', '.join(missing)}")
        values = {field: np.asarray(row[field], dtype=np.float64) for field in given}
        if len({value.shape for value in values.values()}) != 1:
            raise ValueError("type-2 parameters have different shapes")
        _check(values, names)
        nan = np.full_like(values["BW"], np.nan)
        partial = cls(**values, Vm0=nan, Ib=nan)
        ip, _, _, _ = _basal_insulin(partial)
        ib = ip / values["Vi"]
        partial = partial._replace(Ib=ib)
        gp = values["Gb"] * values["Vg"]
        renal = values["ke1"] * np.maximum(gp - values["ke2"], 0.0)
        egp = (
            values["kp1"] - values["kp2"] * gp - values["kp3"] * ib
            - values["kp4"] * _basal_secretion(partial) / values["gamma"]
        )  # fmt: skip
        uptake = egp - values["Fsnc"] - renal
        gt = (values["k1"] * gp - uptake) / values["k2"]
        labels = batch_labels(names, values["BW"].size)
        bad = np.flatnonzero(~((uptake > 0) & (gt > 0)))
        if bad.size:
            i = bad[0]
            raise ValueError(
                f"type-2 parameters of {labels[i]}: no basal state at Gb = {values['Gb'].flat[i]}"
                f" mg/dL: EGPb - Fcns - E = {np.ravel(uptake)[i]:.6g} mg/kg/min and Gtb = "
                f"{np.ravel(gt)[i]:.6g} mg/kg must both be > 0 (lower kp2..kp4 or raise kp1)"
            )
        derived = {**values, "Vm0": uptake * (values["Km0"] + gt) / gt, "Ib": ib}
        return cls(**{field: jnp.asarray(value) for field, value in derived.items()})


_UNITS = {
    "BW": "kg", "Vg": "dL/kg", "k1": "1/min", "k2": "1/min", "Vi": "L/kg", "m1": "1/min",
    "m2": "1/min", "m4": "1/min", "m5": "min*kg/pmol", "m6": "dimensionless",
    "HEb": "dimensionless", "kmax": "1/min", "kmin": "1/min", "kabs": "1/min",
    "b": "dimensionless", "d": "dimensionless", "f": "dimensionless", "kp1": "mg/kg/min",
    "kp2": "1/min", "kp3": "(mg/kg/min)/(pmol/L)", "kp4": "(mg/kg/min)/(pmol/kg)",
    "ki": "1/min", "Fsnc": "mg/kg/min", "Vmx": "(mg/kg/min)/(pmol/L)", "Km0": "mg/kg",
    "p2u": "1/min", "K": "(pmol/kg)/(mg/dL)", "alpha": "1/min",
    "beta": "(pmol/kg/min)/(mg/dL)", "gamma": "1/min", "ke1": "1/min", "ke2": "mg/kg",
    "Gb": "mg/dL", "ka1": "1/min", "ka2": "1/min", "kd": "1/min", "ksc": "1/min",
}  # fmt: skip
_NONNEGATIVE = {"kp2", "kp3", "kp4", "Fsnc", "Vmx", "K", "beta", "ke1", "ke2"}
_FRACTIONS = {"m6", "HEb", "b", "d"}


def _check(values: dict[str, np.ndarray], names: Sequence[str] | str | None) -> None:
    """Ranges of the given fields: finite; fractions in (0, 1); f in (0, 1]; the
    coefficients in ``_NONNEGATIVE`` >= 0, all others > 0; kmin <= kmax; m6 > HEb (positive
    basal secretion); Gb in 40-400 mg/dL."""
    flat = {k: np.atleast_1d(v) for k, v in values.items()}
    labels = batch_labels(names, flat["BW"].size)

    def fail(field: str, index: int, relation: str) -> None:
        got = float(flat[field][index])
        raise ValueError(
            f"type-2 parameters of {labels[index]}: {field} ({_UNITS[field]}) must be "
            f"{relation}, got {got!r}"
        )

    for field, value in flat.items():
        if field in _FRACTIONS:
            ok, relation = (value > 0) & (value < 1), "in (0, 1)"
        elif field == "f":
            ok, relation = (value > 0) & (value <= 1), "in (0, 1]"
        elif field == "Gb":
            ok, relation = (value >= 40) & (value <= 400), "in [40, 400]"
        elif field in _NONNEGATIVE:
            ok, relation = value >= 0, ">= 0"
        else:
            ok, relation = value > 0, "> 0"
        bad = np.flatnonzero(~(np.isfinite(value) & ok))
        if bad.size:
            fail(field, bad[0], relation)
    bad = np.flatnonzero(flat["kmin"] > flat["kmax"])
    if bad.size:
        fail("kmin", bad[0], f"<= kmax ({float(flat['kmax'][bad[0]])!r})")
    bad = np.flatnonzero(flat["m6"] <= flat["HEb"])
    if bad.size:
        fail("m6", bad[0], f"> HEb ({float(flat['HEb'][bad[0]])!r}) for basal secretion")


class T2dState(NamedTuple):
    """The 15 states (units in the names; gut masses in mg, others per kg).

    Gut ``qsto1_mg``, ``qsto2_mg``, ``qgut_mg``; glucose ``gp_mg_per_kg``,
    ``gt_mg_per_kg``, ``gs_mg_per_kg`` (subcutaneous); insulin ``ip_pmol_per_kg``,
    ``il_pmol_per_kg``, remote action ``x_pmol_per_l``, delayed signal ``i1_pmol_per_l``,
    ``id_pmol_per_l``; beta cell ``y_pmol_per_kg_per_min`` (Y, secretion provision) and
    ``ipo_pmol_per_kg`` (portal insulin Ipo; secretion S = gamma*Ipo); exogenous
    subcutaneous insulin ``isc1_pmol_per_kg``, ``isc2_pmol_per_kg``.
    """

    qsto1_mg: jax.Array
    qsto2_mg: jax.Array
    qgut_mg: jax.Array
    gp_mg_per_kg: jax.Array
    gt_mg_per_kg: jax.Array
    gs_mg_per_kg: jax.Array
    ip_pmol_per_kg: jax.Array
    il_pmol_per_kg: jax.Array
    x_pmol_per_l: jax.Array
    i1_pmol_per_l: jax.Array
    id_pmol_per_l: jax.Array
    y_pmol_per_kg_per_min: jax.Array
    ipo_pmol_per_kg: jax.Array
    isc1_pmol_per_kg: jax.Array
    isc2_pmol_per_kg: jax.Array


class T2dInputs(NamedTuple):
    """Carbs eaten (mg/min) and exogenous subcutaneous insulin (pmol/kg/min)."""

    carbs_mg_per_min: jax.Array
    insulin_pmol_per_kg_per_min: jax.Array


def inputs_from_doses(
    carbs_g_per_min: jax.Array,
    insulin_u_per_min: jax.Array,
    params: T2dParams,
    extra: jax.Array | None = None,
) -> T2dInputs:
    """Grams/min and U/min to mg/min and pmol/kg/min (1 U = 6000 pmol, as UVA/Padova)."""
    del extra
    return T2dInputs(MG_PER_G * carbs_g_per_min, insulin_u_per_min * (PMOL_PER_UNIT / params.BW))


def _basal_secretion(params: T2dParams):
    """Sb = (m6 - HEb)/m5, pmol/kg/min (DM2007: HE = -m5*S + m6 at basal)."""
    return (params.m6 - params.HEb) / params.m5


def _basal_insulin(params: T2dParams):
    """Ipb, Ilb (pmol/kg), Ipob (pmol/kg) and m3b (1/min) at basal secretion Sb."""
    sb = _basal_secretion(params)
    m3 = params.HEb * params.m1 / (1.0 - params.HEb)
    # dIp = 0: Il = (m2+m4)*Ip/m1; dIl = 0: Sb = (m1+m3)*Il - m2*Ip.
    ip = sb / ((params.m1 + m3) * (params.m2 + params.m4) / params.m1 - params.m2)
    il = (params.m2 + params.m4) * ip / params.m1
    return ip, il, sb / params.gamma, m3


def vector_field(
    t: jax.Array,
    state: T2dState,
    inputs: T2dInputs,
    params: T2dParams,
    meal_memory: MealMemory,
) -> T2dState:
    """Time derivative of the 15 states, per minute (equations in the module docstring)."""
    del t
    p, x = params, state
    kgut = uva_padova.gastric_emptying_rate(x.qsto1_mg + x.qsto2_mg, meal_memory.dbar_mg, p)
    rate_of_appearance = p.f * p.kabs * x.qgut_mg / p.BW
    gp, gt = x.gp_mg_per_kg, x.gt_mg_per_kg
    egp = jnp.maximum(p.kp1 - p.kp2 * gp - p.kp3 * x.id_pmol_per_l - p.kp4 * x.ipo_pmol_per_kg, 0.0)
    renal = p.ke1 * jnp.maximum(gp - p.ke2, 0.0)
    uid = (p.Vm0 + p.Vmx * x.x_pmol_per_l) * gt / (p.Km0 + gt)
    d_gp = egp + rate_of_appearance - p.Fsnc - renal - p.k1 * gp + p.k2 * gt
    glucose = gp / p.Vg
    basal = _basal_secretion(p)
    secretion = p.gamma * x.ipo_pmol_per_kg
    provision = x.y_pmol_per_kg_per_min + p.K * jnp.maximum(d_gp / p.Vg, 0.0) + basal
    target_y = jnp.maximum(p.beta * (glucose - p.Gb), -basal)
    extraction = jnp.maximum(p.m6 - p.m5 * secretion, 0.0)
    m3 = extraction * p.m1 / (1.0 - extraction)
    plasma_insulin = x.ip_pmol_per_kg / p.Vi
    d_ip = (
        p.m1 * x.il_pmol_per_kg + p.ka1 * x.isc1_pmol_per_kg + p.ka2 * x.isc2_pmol_per_kg
        - (p.m2 + p.m4) * x.ip_pmol_per_kg
    )  # fmt: skip
    return T2dState(
        qsto1_mg=inputs.carbs_mg_per_min - p.kmax * x.qsto1_mg,
        qsto2_mg=p.kmax * x.qsto1_mg - kgut * x.qsto2_mg,
        qgut_mg=kgut * x.qsto2_mg - p.kabs * x.qgut_mg,
        gp_mg_per_kg=d_gp,
        gt_mg_per_kg=-uid + p.k1 * gp - p.k2 * gt,
        gs_mg_per_kg=p.ksc * (gp - x.gs_mg_per_kg),
        ip_pmol_per_kg=d_ip,
        il_pmol_per_kg=p.m2 * x.ip_pmol_per_kg - (p.m1 + m3) * x.il_pmol_per_kg + secretion,
        x_pmol_per_l=p.p2u * (plasma_insulin - p.Ib - x.x_pmol_per_l),
        i1_pmol_per_l=p.ki * (plasma_insulin - x.i1_pmol_per_l),
        id_pmol_per_l=p.ki * (x.i1_pmol_per_l - x.id_pmol_per_l),
        y_pmol_per_kg_per_min=p.alpha * (target_y - x.y_pmol_per_kg_per_min),
        ipo_pmol_per_kg=provision - secretion,
        isc1_pmol_per_kg=inputs.insulin_pmol_per_kg_per_min - (p.ka1 + p.kd) * x.isc1_pmol_per_kg,
        isc2_pmol_per_kg=p.kd * x.isc1_pmol_per_kg - p.ka2 * x.isc2_pmol_per_kg,
    )


def steady_state(params: T2dParams) -> T2dState:
    """The basal state at G = Gb without exogenous insulin (exact for untreated parameters).

    Insulin states from Sb; Gtb solves Vm0*Gt/(Km0 + Gt) = k1*Gpb - k2*Gt (positive root),
    which does not involve kp1 or ke2, so for parameters changed by :func:`apply_medication`
    it is the *pre-treatment* basal state, from which the treatment's effect unfolds.
    """
    p = params
    ip, il, ipo, _ = _basal_insulin(p)
    gp = p.Gb * p.Vg
    bq = p.Vm0 + p.k2 * p.Km0 - p.k1 * gp
    cq = p.k1 * gp * p.Km0
    gt = 2.0 * cq / (bq + jnp.sqrt(bq * bq + 4.0 * p.k2 * cq))
    zero = jnp.zeros_like(gp)
    return T2dState(
        qsto1_mg=zero, qsto2_mg=zero, qgut_mg=zero,
        gp_mg_per_kg=gp, gt_mg_per_kg=gt, gs_mg_per_kg=gp,
        ip_pmol_per_kg=ip, il_pmol_per_kg=il, x_pmol_per_l=zero,
        i1_pmol_per_l=p.Ib + zero, id_pmol_per_l=p.Ib + zero,
        y_pmol_per_kg_per_min=zero, ipo_pmol_per_kg=ipo,
        isc1_pmol_per_kg=zero, isc2_pmol_per_kg=zero,
    )  # fmt: skip


def insulin_secretion_pmol_per_kg_per_min(state: T2dState, params: T2dParams) -> jax.Array:
    """Pancreatic insulin secretion S = gamma*Ipo, pmol/kg/min (DM2007)."""
    return params.gamma * state.ipo_pmol_per_kg


def subcutaneous_glucose_mg_dl(state: T2dState, params: T2dParams) -> jax.Array:
    """Sensor-site glucose Gs/Vg, mg/dL."""
    return state.gs_mg_per_kg / params.Vg


def plasma_glucose_mg_dl(state: T2dState, params: T2dParams) -> jax.Array:
    """Plasma glucose G = Gp/Vg, mg/dL."""
    return state.gp_mg_per_kg / params.Vg


def _no_basal_insulin(params: T2dParams) -> jax.Array:
    return jnp.zeros_like(params.BW)


T2D = Model(
    name="dalla_man_2007_t2d",
    vector_field=vector_field,
    inputs_from_doses=inputs_from_doses,
    initial_memory=uva_padova.initial_meal_memory,
    update_memory=uva_padova.remember_meal,
    glucose_mg_dl=subcutaneous_glucose_mg_dl,
    plasma_glucose_mg_dl=plasma_glucose_mg_dl,
    steady_state=steady_state,
    basal_insulin_u_per_min=_no_basal_insulin,
)
"""DM2007 type 2 with secretion; exogenous insulin optional (basal exogenous insulin 0)."""

T2D_MEAN = {
    "BW": 78.0, "Vg": 1.49, "k1": 0.042, "k2": 0.071, "Vi": 0.04, "m1": 0.379,
    "m2": 0.673, "m4": 0.269, "m5": 0.0526, "m6": 0.8118, "HEb": 0.6, "kmax": 0.0465,
    "kmin": 0.0076, "kabs": 0.023, "b": 0.68, "d": 0.09, "f": 0.9, "kp1": 3.09,
    "kp2": 0.0007, "kp3": 0.005, "kp4": 0.0786, "ki": 0.0066, "Fsnc": 1.0, "Vmx": 0.034,
    "Km0": 466.21, "p2u": 0.084, "K": 0.99, "alpha": 0.013, "beta": 0.05, "gamma": 0.5,
    "ke1": 0.0007, "ke2": 269.0, "Gb": 164.18,
    "ka1": 0.0018, "ka2": 0.0182, "kd": 0.0164, "ksc": 0.0954,
}  # fmt: skip
"""``t2d#mean``: DM2007 Table 1, type 2 column (Vg ... ke2). Checked (no value changed):
DM2007's Table 1 itself could not be read here (only the paper's first page was available),
but every value Vg ... ke2 above matches the type-2 column as transcribed by two independent
implementations: ``evabowe/Insulinpumpe`` ``system_parameters.py`` ("diab_val") and the
Julia ``Dalla_Man`` module (``DM_params``, second entry), which also gives Vm0 = 4.65 and
m2 = 0.673 / m4 = 0.269 as derivable from (9). Gb = 164.18 mg/dL, the T2D group's basal
glucose: corroborated by that Julia module (``pGb => [91.76, 164.18]``, with Ib = 54.81
pmol/L and EGPb = 2.01 mg/kg/min for type 2), i.e. by a secondary source, not by DM2007's
text; with Table 1's kp1..kp4 it gives EGPb = 1.99 mg/kg/min (vs 2.01), and the derived
Vm0 = 4.50 against the table's 4.65. ka1, ka2, kd: the mean subcutaneous insulin kinetics
of Dalla Man et al., "GIM, simulation software of meal glucose-insulin model", J Diabetes
Sci Technol 1(3):323-330, 2007 (same values, 0.0018/0.0182/0.0164, in LoopInsighT1's
defaults, cited there to that paper). ksc: mean of the simglucose adults. BW = 78 kg is a
nominal choice (not in Table 1)."""

T2D_PATIENTS = {
    "t2d#mean": T2D_MEAN,
    "t2d#low-secretion": {**T2D_MEAN, "K": 0.5 * 0.99, "beta": 0.5 * 0.05},
    "t2d#insulin-resistant": {**T2D_MEAN, "Vmx": 0.5 * 0.034, "kp3": 0.5 * 0.005},
}  # fmt: skip
"""Named type-2 patients: the DM2007 mean and two illustrative variants (beta-cell
responsiveness K and beta halved; insulin action on utilisation and on the liver halved)."""


def load_t2d_patients(names: Sequence[str] = ("t2d#mean",)) -> T2dParams:
    """Validated, batched (``[len(names)]``) parameters of the named type-2 patients
    (:data:`T2D_PATIENTS`); an unknown name raises ``KeyError`` listing the known ones."""
    unknown = [name for name in names if name not in T2D_PATIENTS]
    if unknown:
        raise KeyError(f"unknown type-2 patients {unknown}; known: {', '.join(T2D_PATIENTS)}")
    rows = [T2D_PATIENTS[name] for name in names]
    given = [field for field in T2dParams._fields if field not in ("Vm0", "Ib")]
    return T2dParams.from_mapping(
        {field: [row[field] for row in rows] for field in given}, names=list(names)
    )


class MedicationEffect(NamedTuple):
    """One medication's parameter change, its size and the sources for it."""

    description: str
    sources: str


METFORMIN_EGP_REDUCTION = 0.24
"""Fraction by which metformin lowers basal endogenous glucose production (approximate).

Source: Hundal RS, et al., "Mechanism by which metformin reduces glucose production in type 2
diabetes", Diabetes 49(12):2063-2069, 2000: 3 months of metformin in 7 type-2 patients cut
the rate of glucose production by 24% (0.70 -> 0.53 mmol/m^2/min) and fasting glucose by 30%;
gluconeogenesis fell by 33-36%. Maps to kp1 (DM2007 (10), (12)): kp1 is lowered by 0.24 *
EGPb, so EGP at the pre-treatment basal state falls by 24%."""
SGLT2_RENAL_THRESHOLD_MG_DL = 80.0
"""Renal glucose threshold under an SGLT2 inhibitor, mg/dL of plasma glucose (approximate).

Source as cited (magnitude not re-read here): Sha S, et al., Diabetes Obes Metab
13(7):669-678, 2011 (canagliflozin lowers the renal threshold for glucose, RTG, from ~240 to
roughly 70-90 mg/dL in type 2 diabetes). Direction and order of magnitude corroborated by the
preclinical Liang Y, et al., PLoS One 7(2):e30555, 2012 (canagliflozin 1 mg/kg lowered RTG
from 415 to 94 mg/dL in ZDF rats, keeping a threshold relationship). Maps to ke2 (DM2007
(27), mg/kg): ke2 = 80 mg/dL * Vg (= 119 mg/kg for Vg = 1.49, vs Table 1's 269 mg/kg, i.e.
181 mg/dL)."""
GLP1_SECRETION_GAIN = 1.5
"""Factor on beta-cell responsiveness (K and beta) under a GLP-1 receptor agonist
(approximate, deliberately at the low end of the measured range).

Sources: Kjems LL, et al., Diabetes 52(2):380-386, 2003 (GLP-1 infusion raised the slope of
insulin secretion rate vs glucose, i.e. beta-cell responsiveness, in type 2 diabetes in
proportion to dose, up to 6-fold at 2.0 pmol/kg/min; at 0.5 pmol/kg/min it reached the slope
of untreated controls); Degn KB, et al., Diabetes 53(5):1187-1194, 2004 (1 week of
liraglutide 6 ug/kg: first-phase insulin response markedly increased, disposition index
almost doubled). Maps to DM2007's secretion parameters (Spo, Y; numbers not verified): K
(dynamic, rate-of-change term, ~first phase) and beta (static, glucose-proportional term,
~second phase) both multiplied by 1.5; the secretion stays glucose-dependent because both
act only through G - h and dG/dt > 0."""
GLP1_GASTRIC_EMPTYING_FACTOR = 0.5
"""Factor on the gastric emptying rates kmax and kmin under a GLP-1 receptor agonist
(approximate).

Source: Linnebjerg H, et al., "Effect of exenatide on gastric emptying and relationship to
postprandial glycemia in type 2 diabetes", Regul Pept 151(1-3):123-129, 2008 (scintigraphy,
17 type-2 patients, 5 days BID): solid-phase half-emptying time T50 60 min on placebo, 111
min on exenatide 5 ug (x1.85), 169 min on 10 ug (x2.8); liquid T50 34 -> 87 -> 114 min.
Supporting: Blase E, et al., J Clin Pharmacol 45(5):570-577, 2005 (exenatide 10 ug cut
acetaminophen Cmax by 37-56%). Note that Degn et al. 2004 saw no effect of liraglutide
6 ug/kg on emptying, and Kapitza C, et al., Adv Ther 28(8):650-660, 2011 saw acetaminophen
Cmax x0.69 with liraglutide 1.8 mg: the size depends on agent and dose. Maps to kmax and kmin
(DM2007 (13), kempt): T50 scales roughly as 1/kempt, so x0.5 corresponds to T50 about x2,
between the 5 and 10 ug exenatide results (60/111 = 0.54, 60/169 = 0.36)."""

MEDICATION_EFFECTS = {
    "metformin": MedicationEffect(
        "kp1 lowered by 24% of the basal EGP (EGPb), so basal production falls ~24%",
        "Hundal RS et al., Diabetes 49:2063-2069, 2000 (EGP -24%, fasting glucose -30% after "
        "3 months of metformin in type 2 diabetes); approximate",
    ),
    "sglt2": MedicationEffect(
        "renal threshold ke2 lowered to 80 mg/dL * Vg",
        "Sha S et al., Diabetes Obes Metab 13:669-678, 2011 (canagliflozin lowers the renal "
        "threshold for glucose from ~240 to roughly 70-90 mg/dL; as cited, not re-read); "
        "Liang Y et al., PLoS One 7:e30555, 2012 (rats: 415 -> 94 mg/dL); approximate. With "
        "DM2007's small ke1 the model excretes far less glucose (grams per day) than treated "
        "patients (tens of grams), so its effect is a lower bound",
    ),
    "glp1": MedicationEffect(
        "beta-cell responsiveness K and beta x1.5; gastric emptying kmax (and kmin) x0.5",
        "Kjems LL et al., Diabetes 52:380-386, 2003 (GLP-1 raised beta-cell responsiveness "
        "dose-dependently, up to x6, in type 2 diabetes); Degn KB et al., Diabetes "
        "53:1187-1194, 2004 (liraglutide: first-phase insulin response markedly increased); "
        "Linnebjerg H et al., Regul Pept 151:123-129, 2008 (exenatide 5/10 ug: solid gastric "
        "half-emptying time x1.85/x2.8); approximate",
    ),
}
"""Medication -> (parameter change, sources). All effect sizes are approximate."""


def apply_medication(
    params: T2dParams, *, metformin: bool = False, sglt2: bool = False, glp1: bool = False
) -> T2dParams:
    """Parameters of the same patient under the given medications (:data:`MEDICATION_EFFECTS`).

    Derived basal quantities (Vm0, Ib, h = Gb) are those of the untreated patient: simulate
    from :func:`steady_state` (the pre-treatment basal state) to see the treatment act.
    """
    p = params
    if metformin:
        _, _, ipo, _ = _basal_insulin(p)
        gp = p.Gb * p.Vg
        egp_basal = p.kp1 - p.kp2 * gp - p.kp3 * p.Ib - p.kp4 * ipo
        p = p._replace(kp1=p.kp1 - METFORMIN_EGP_REDUCTION * egp_basal)
    if sglt2:
        p = p._replace(ke2=SGLT2_RENAL_THRESHOLD_MG_DL * p.Vg)
    if glp1:
        p = p._replace(
            K=GLP1_SECRETION_GAIN * p.K,
            beta=GLP1_SECRETION_GAIN * p.beta,
            kmax=GLP1_GASTRIC_EMPTYING_FACTOR * p.kmax,
            kmin=GLP1_GASTRIC_EMPTYING_FACTOR * p.kmin,
        )
    return p
