"""The model family through one engine: Hovorka, Dalla Man 2007 type 2, UVA/Padova + exercise.

Every model runs through ``glucotwin.simulate.simulate(..., model=...)`` in float64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glucotwin.physiology import (
    DEFAULT_EXERCISE,
    HOVORKA,
    T2D,
    UVA_PADOVA,
    UVA_PADOVA_EXERCISE,
    HovorkaParams,
    T2dParams,
    apply_medication,
    basal_insulin_u_per_min,
    insulin_secretion_pmol_per_kg_per_min,
    load_hovorka_patients,
    load_t2d_patients,
    load_virtual_patients,
    with_exercise,
)
from glucotwin.physiology.hovorka import HOVORKA_MEAN, MMOL_PER_G_GLUCOSE
from glucotwin.physiology.t2d import T2D_MEAN
from glucotwin.simulate import simulate

DAY = 1440
MEAL_MINUTE = 60


def uva_patients():
    return load_virtual_patients(["adult#001", "adolescent#003", "child#004"]).params


def cases():
    """(id, model, batched params, basal insulin U/min [B]) for every model."""
    uva = uva_patients()
    hovorka = load_hovorka_patients(["hovorka#mean", "hovorka#resistant", "hovorka#sensitive"])
    t2d = load_t2d_patients(["t2d#mean", "t2d#low-secretion", "t2d#insulin-resistant"])
    exercise = with_exercise(uva)
    return [
        ("uva_padova", UVA_PADOVA, uva),
        ("hovorka", HOVORKA, hovorka),
        ("t2d", T2D, t2d),
        ("exercise", UVA_PADOVA_EXERCISE, exercise),
    ]


CASES = {name: (model, params) for name, model, params in cases()}


def basal_insulin(model, params, minutes: int = DAY) -> np.ndarray:
    return np.tile(np.asarray(model.basal_insulin_u_per_min(params))[:, None], (1, minutes))


@pytest.mark.parametrize("name", list(CASES))
def test_steady_state_holds_24_hours_without_meals(name):
    model, params = CASES[name]
    run = simulate(params, np.zeros(DAY), basal_insulin(model, params), model=model)
    glucose = np.asarray(run.glucose_mg_dl)
    assert np.abs(glucose - glucose[:, :1]).max() < 0.5  # mg/dL
    plasma = np.asarray(run.plasma_glucose_mg_dl)
    assert np.abs(plasma - plasma[:, :1]).max() < 0.5
    for start, end in zip(
        jax.tree.leaves(model.steady_state(params)), jax.tree.leaves(run.final_state), strict=True
    ):
        np.testing.assert_allclose(end, start, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", list(CASES))
def test_a_meal_raises_glucose(name):
    model, params = CASES[name]
    carbs = np.zeros(DAY)
    carbs[MEAL_MINUTE] = 50.0
    glucose = np.asarray(
        simulate(params, carbs, basal_insulin(model, params), model=model).glucose_mg_dl
    )
    assert np.all(glucose.max(axis=1) > glucose[:, 0] + 20)


@pytest.mark.parametrize("name", ["uva_padova", "hovorka", "exercise", "t2d"])
def test_an_insulin_bolus_lowers_glucose(name):
    model, params = CASES[name]
    carbs = np.zeros(DAY)
    carbs[MEAL_MINUTE] = 50.0
    insulin = basal_insulin(model, params)
    meal = np.asarray(simulate(params, carbs, insulin, model=model).glucose_mg_dl)
    insulin[:, MEAL_MINUTE] += 5.0
    treated = np.asarray(simulate(params, carbs, insulin, model=model).glucose_mg_dl)
    np.testing.assert_array_equal(treated[:, : MEAL_MINUTE + 1], meal[:, : MEAL_MINUTE + 1])
    if name == "t2d":
        # Secretion backs off under exogenous insulin (feedback), so only the excursion falls.
        window = slice(MEAL_MINUTE, MEAL_MINUTE + 360)
        assert np.all(treated[:, window].max(axis=1) < meal[:, window].max(axis=1) - 5)
        assert np.all(treated[:, window].mean(axis=1) < meal[:, window].mean(axis=1))
    else:  # type 1: lower at every minute once insulin has reached plasma
        assert np.all(treated[:, MEAL_MINUTE + 5 :] < meal[:, MEAL_MINUTE + 5 :])


def test_exercise_at_rest_is_exactly_uva_padova():
    params = uva_patients()
    carbs = np.zeros(360)
    carbs[30] = 60.0
    insulin = basal_insulin(UVA_PADOVA, params, 360)
    insulin[:, 30] += 4.0
    plain = simulate(params, carbs, insulin)
    rest = simulate(
        with_exercise(params), carbs, insulin, model=UVA_PADOVA_EXERCISE,
        extra_inputs=np.full(360, 60.0),
    )  # fmt: skip
    # Equal up to XLA's operation order (the exercise terms are exact zeros at rest).
    np.testing.assert_allclose(rest.glucose_mg_dl, plain.glucose_mg_dl, rtol=1e-13)
    np.testing.assert_allclose(rest.plasma_glucose_mg_dl, plain.plasma_glucose_mg_dl, rtol=1e-13)


def test_45_minutes_at_120_bpm_lower_glucose():
    """DM2009 scenario shape: exercise after lunch; glucose falls below the same day at rest.

    adult#001 (DM2009 model C parameters): 10 mg/dL lower at the end of exercise, 44 mg/dL
    two hours later, 55 mg/dL at most (about five hours after).
    """
    params = with_exercise(uva_patients())
    carbs = np.zeros(DAY)
    carbs[[420, 720, 1080]] = [50.0, 70.0, 80.0]
    insulin = basal_insulin(UVA_PADOVA_EXERCISE, params)
    insulin[:, [420, 720, 1080]] += 3.0
    heart_rate = np.full(DAY, 60.0)
    heart_rate[900:945] = 120.0
    rest = simulate(params, carbs, insulin, model=UVA_PADOVA_EXERCISE)
    active = simulate(params, carbs, insulin, model=UVA_PADOVA_EXERCISE, extra_inputs=heart_rate)
    np.testing.assert_array_equal(active.glucose_mg_dl[:, :901], rest.glucose_mg_dl[:, :901])
    drop = np.asarray(rest.glucose_mg_dl - active.glucose_mg_dl)[:, 901:]
    assert np.all(drop >= 0)
    assert np.all(drop.max(axis=1) > 10)  # mg/dL
    assert np.all(active.summary.mean_mg_dl < rest.summary.mean_mg_dl)
    adult = np.asarray(rest.glucose_mg_dl - active.glucose_mg_dl)[0]
    np.testing.assert_allclose(adult[[945, 945 + 120]], [9.95, 43.8], atol=0.1)  # mg/dL


def test_exercise_effect_decays_with_t_ex_and_is_gone_after_the_reset():
    """Model C keeps insulin action raised for about a day: Z decays as exp(-t/T_ex),
    T_ex = 600 min, so 24 h after exercise glucose is still lower (adult#001: 12 mg/dL);
    once Z < 0.05 (about 30 h) W is reset and the day-3 glucose equals the rest day's."""
    params = with_exercise(uva_patients())
    days = 3
    carbs = np.zeros(days * DAY)
    insulin = basal_insulin(UVA_PADOVA_EXERCISE, params, days * DAY)
    for day in range(days):
        meals = day * DAY + np.array([420, 720, 1080])
        carbs[meals] = [50.0, 70.0, 80.0]
        insulin[:, meals] += 3.0
    heart_rate = np.full(days * DAY, 60.0)
    heart_rate[900:945] = 120.0
    rest = simulate(params, carbs, insulin, model=UVA_PADOVA_EXERCISE)
    active = simulate(
        params, carbs, insulin, model=UVA_PADOVA_EXERCISE, extra_inputs=heart_rate,
        record="states",
    )  # fmt: skip
    drop = np.asarray(rest.glucose_mg_dl - active.glucose_mg_dl)
    day_later = 945 + DAY
    assert np.all(drop[:, day_later] < drop.max(axis=1) / 3)
    assert np.all(np.abs(drop[:, 945 + 2 * DAY :]) < 0.1)  # mg/dL
    z = np.asarray(active.states.z)
    np.testing.assert_allclose(z[:, day_later] / z[:, 960], np.exp(-(DAY - 15) / 600), rtol=1e-3)
    w = np.asarray(active.states.w_bpm_min)
    np.testing.assert_allclose(w[:, 945], 45 * 60, rtol=0.01)  # bpm*min
    assert np.all(w[:, -1] < 1e-6)


def test_post_exercise_insulin_sensitivity_is_raised():
    """After exercise the same insulin removes more glucose (DM2009 eq. 12: Vmx*(1 +
    alpha*Z*W) and Km0*(1 - gamma*Z*W*(X + Ib))).

    Mechanism, every patient: at the same glucose and insulin state, -d(dGt/dt)/dX is
    larger with the Z, W that 45 min at 120 bpm leave. Outcome, adult#001: a meal bolus 2 h
    after exercise lowers glucose more, at every minute, than the same bolus at rest. (The
    outcome is not universal: in very insulin-sensitive patients exercise alone lowers
    glucose so far that the Michaelis-Menten uptake Gt/(Km + Gt) shrinks the bolus's effect.)
    """
    params = with_exercise(uva_patients())
    heart_rate = np.full(DAY, 60.0)
    heart_rate[600:645] = 120.0
    insulin = basal_insulin(UVA_PADOVA_EXERCISE, params)
    exercised = simulate(
        params, np.zeros(765), insulin[:, :765], model=UVA_PADOVA_EXERCISE,
        extra_inputs=heart_rate[:765], record="none",
    ).final_state  # fmt: skip
    rest_state = UVA_PADOVA_EXERCISE.steady_state(params)
    inputs = UVA_PADOVA_EXERCISE.inputs_from_doses(0.0, insulin[:, 0], params, None)
    memory = UVA_PADOVA_EXERCISE.initial_memory(rest_state)

    def sensitivity(z, w):
        def d_gt(x_pmol_per_l):
            patient = rest_state.patient._replace(x_pmol_per_l=x_pmol_per_l)
            state = rest_state._replace(patient=patient, z=z, w_bpm_min=w)
            derivative = UVA_PADOVA_EXERCISE.vector_field(0.0, state, inputs, params, memory)
            return derivative.patient.gt_mg_per_kg.sum()

        return -jax.grad(d_gt)(rest_state.patient.x_pmol_per_l)  # (mg/kg/min)/(pmol/L)

    at_rest = sensitivity(rest_state.z, rest_state.w_bpm_min)
    after = sensitivity(exercised.z, exercised.w_bpm_min)
    gt, patient = rest_state.patient.gt_mg_per_kg, params.patient
    np.testing.assert_allclose(at_rest, patient.Vmx * gt / (patient.Km0 + gt), rtol=1e-12)
    assert np.all(after > 1.5 * at_rest)

    adult = jax.tree.map(lambda v: v[:1], params)
    carbs = np.zeros(DAY)
    carbs[765] = 60.0
    basal = basal_insulin(UVA_PADOVA_EXERCISE, adult)
    bolus = basal.copy()
    bolus[:, 765] += 2.0

    def glucose(insulin_u_per_min, hr):
        run = simulate(adult, carbs, insulin_u_per_min, model=UVA_PADOVA_EXERCISE,
                       extra_inputs=hr)  # fmt: skip
        return np.asarray(run.glucose_mg_dl)[0, 770 : 765 + 360]

    lowered_at_rest = glucose(basal, None) - glucose(bolus, None)
    lowered_after_exercise = glucose(basal, heart_rate) - glucose(bolus, heart_rate)
    assert np.all(lowered_after_exercise > lowered_at_rest)
    assert lowered_after_exercise.mean() > lowered_at_rest.mean() + 2  # mg/dL


def test_t2d_secretes_insulin_after_a_meal_and_returns_to_basal_without_insulin():
    params = load_t2d_patients(["t2d#mean"])
    carbs = np.zeros(DAY)
    carbs[MEAL_MINUTE] = 75.0
    run = simulate(params, carbs, np.zeros(DAY), model=T2D, record="states")
    secretion = np.asarray(insulin_secretion_pmol_per_kg_per_min(run.states, params))[0]
    glucose = np.asarray(run.plasma_glucose_mg_dl)[0]
    basal_secretion = secretion[0]
    assert basal_secretion > 0
    assert secretion[MEAL_MINUTE : MEAL_MINUTE + 180].max() > 2.0 * basal_secretion
    basal_glucose = float(params.Gb[0])
    excursion = glucose.max() - basal_glucose
    assert excursion > 40
    # Without exogenous insulin glucose falls back: below half the excursion 5 h after the
    # meal (it then undershoots basal by ~30 mg/dL at 8-9 h: the slow Y and Id dynamics of
    # DM2007's type-2 parameters) and is within 5 mg/dL of basal at the end of the day.
    assert glucose[MEAL_MINUTE + 300] < basal_glucose + 0.5 * excursion
    assert abs(glucose[-1] - basal_glucose) < 5.0
    assert abs(secretion[-1] - basal_secretion) < 0.05 * basal_secretion


@pytest.mark.parametrize("drug", ["metformin", "sglt2", "glp1"])
def test_medications_lower_mean_glucose(drug):
    params = load_t2d_patients(["t2d#mean", "t2d#insulin-resistant"])
    carbs = np.zeros(DAY)
    carbs[[420, 720, 1080]] = [50.0, 70.0, 80.0]
    none = simulate(params, carbs, np.zeros(DAY), model=T2D)
    treated = apply_medication(params, **{drug: True})
    run = simulate(treated, carbs, np.zeros(DAY), model=T2D, x0=T2D.steady_state(params))
    assert np.all(run.summary.mean_mg_dl < none.summary.mean_mg_dl - 1.0), drug


@pytest.mark.parametrize("name", list(CASES))
def test_vmap_batch_equals_loop_of_single_patients(name):
    model, params = CASES[name]
    minutes = 300
    carbs = np.zeros((3, minutes))
    carbs[:, 20] = [40.0, 60.0, 80.0]
    carbs[1, 21] = 10.0
    insulin = basal_insulin(model, params, minutes)
    insulin[:, 20] += [2.0, 3.0, 4.0]
    extra = None
    if model.extra_input is not None:
        extra = np.full((3, minutes), 60.0)
        extra[:, 100:150] = [[100.0], [120.0], [140.0]]
    batched = simulate(params, carbs, insulin, model=model, extra_inputs=extra, record="states")
    for i in range(3):
        one = jax.tree.map(lambda leaf, i=i: leaf[i], params)
        single = simulate(
            one, carbs[i], insulin[i], model=model, record="states",
            extra_inputs=None if extra is None else extra[i],
        )  # fmt: skip
        assert single.glucose_mg_dl.shape == (minutes,)
        for a, b in zip(
            jax.tree.leaves(single.states), jax.tree.leaves(batched.states), strict=True
        ):
            np.testing.assert_allclose(a, b[i], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(CASES))
def test_chunked_threads_equal_one_call(name):
    model, params = CASES[name]
    carbs = np.zeros(240)
    carbs[10] = 50.0
    insulin = basal_insulin(model, params, 240)
    whole = simulate(params, carbs, insulin, model=model)
    chunked = simulate(params, carbs, insulin, model=model, chunk_size=2, workers=2)
    np.testing.assert_allclose(chunked.glucose_mg_dl, whole.glucose_mg_dl, rtol=1e-12)


def test_hovorka_grad_matches_central_finite_differences():
    """d/dp of mean squared glucose over 6 h (meal + bolus at 00:30), x0 from the new params."""
    params = jax.tree.map(lambda leaf: leaf[0], load_hovorka_patients())
    minutes = 360
    carbs = np.zeros(minutes)
    carbs[30] = 60.0
    names = ("SIT", "EGP0", "tmaxG")

    def loss(values):
        p = params._replace(**dict(zip(names, values, strict=True)))
        insulin = jnp.full(minutes, HOVORKA.basal_insulin_u_per_min(p)).at[30].add(5.0)
        return jnp.mean(simulate(p, carbs, insulin, model=HOVORKA).glucose_mg_dl ** 2)

    point = tuple(jnp.asarray(getattr(params, name)) for name in names)
    gradient = jax.grad(loss)(point)
    for i, name in enumerate(names):
        step = 1e-4 * float(point[i])
        up, down = list(point), list(point)
        up[i], down[i] = point[i] + step, point[i] - step
        finite = (float(loss(tuple(up))) - float(loss(tuple(down)))) / (2 * step)
        assert float(gradient[i]) == pytest.approx(finite, rel=1e-6), name
        assert abs(finite * float(point[i])) > 1.0  # the loss depends on this parameter


def test_hovorka_gut_absorption_matches_the_paper_closed_form():
    """H2004's gut model: after D mmol, UG(t) = AG*D*t*exp(-t/tmaxG)/tmaxG^2, peaking at
    t = tmaxG = 40 min. Eating over one minute (not an impulse) shifts it by ~0.5 min."""
    params = load_hovorka_patients()
    grams = 50.0
    carbs = np.zeros(400)
    carbs[0] = grams
    run = simulate(params, carbs, basal_insulin(HOVORKA, params, 400), model=HOVORKA,
                   record="states")  # fmt: skip
    ug = np.asarray(run.states.d2_mmol_per_kg)[0] / HOVORKA_MEAN["tmaxG"]
    t = np.arange(400) - 0.5
    dose = grams * MMOL_PER_G_GLUCOSE / HOVORKA_MEAN["BW"]
    tmax = HOVORKA_MEAN["tmaxG"]
    expected = HOVORKA_MEAN["AG"] * dose * t * np.exp(-t / tmax) / tmax**2
    assert abs(int(ug.argmax()) - 40) <= 1
    np.testing.assert_allclose(ug[5:], expected[5:], rtol=2e-3, atol=1e-7)


def test_hovorka_mean_patient_meal_with_bolus_is_plausible():
    """Qualitative check, a plausibility band of ours (no figure of H2004 could be
    re-digitised offline): from a fasting 6 mmol/L, 50 g with a 2.5 U bolus (1 U/20 g; the
    mean patient needs only ~9 U/day of basal) peaks at 8-14 mmol/L 40-120 min after the
    meal, like the postprandial peaks of type-1 subjects on closed loop in H2004, and its
    nadir stays above 3.5 mmol/L."""
    params = load_hovorka_patients()
    carbs = np.zeros(DAY)
    carbs[MEAL_MINUTE] = 50.0
    insulin = basal_insulin(HOVORKA, params)
    insulin[:, MEAL_MINUTE] += 2.5
    glucose = np.asarray(simulate(params, carbs, insulin, model=HOVORKA).plasma_glucose_mg_dl)[0]
    mmol = glucose / 18.0156
    peak = int(mmol.argmax()) - MEAL_MINUTE
    assert 8.0 < mmol.max() < 14.0 and 40 <= peak <= 120, (mmol.max(), peak)
    assert mmol[MEAL_MINUTE:].min() > 3.5


def test_hovorka_validation_rejects_impossible_values():
    row = dict(HOVORKA_MEAN)
    with pytest.raises(ValueError, match=r"'p1'.*VG \(L/kg\) must be finite and > 0, got -0\.16"):
        HovorkaParams.from_mapping({**row, "VG": -0.16}, names="p1")
    with pytest.raises(ValueError, match=r"AG \(dimensionless\) must be in \(0, 1\]"):
        HovorkaParams.from_mapping({**row, "AG": 1.2})
    with pytest.raises(ValueError, match="no basal insulin holds Gb"):
        HovorkaParams.from_mapping({**row, "F01": 0.02})  # more uptake than the liver makes
    with pytest.raises(KeyError, match="hovorka#mean"):
        load_hovorka_patients(["hovorka#nobody"])


def test_t2d_validation_rejects_impossible_values():
    row = {k: v for k, v in T2D_MEAN.items()}
    with pytest.raises(ValueError, match=r"HEb \(dimensionless\) must be in \(0, 1\), got 1\.5"):
        T2dParams.from_mapping({**row, "HEb": 1.5})
    with pytest.raises(ValueError, match=r"m6 .* must be > HEb"):
        T2dParams.from_mapping({**row, "m6": 0.5})
    with pytest.raises(ValueError, match="no basal state at Gb"):
        T2dParams.from_mapping({**row, "kp1": 1.0})
    with pytest.raises(ValueError, match=r"kmin .* must be <= kmax"):
        T2dParams.from_mapping({**row, "kmin": 0.1})


def test_exercise_validation_and_engine_input_checks():
    with pytest.raises(ValueError, match=r"tau_hr_min \(min\) must be > 0, got -5\.0"):
        with_exercise(uva_patients(), DEFAULT_EXERCISE._replace(tau_hr_min=-5.0))
    params = uva_patients()
    insulin = basal_insulin(UVA_PADOVA, params, 10)
    with pytest.raises(ValueError, match="takes no extra_inputs"):
        simulate(params, np.zeros(10), insulin, extra_inputs=np.zeros(10))
    with pytest.raises(ValueError, match="extra_inputs"):
        simulate(with_exercise(params), np.zeros(10), insulin, model=UVA_PADOVA_EXERCISE,
                 extra_inputs=np.zeros(9))  # fmt: skip
    with pytest.raises(TypeError, match="Model"):
        simulate(params, np.zeros(10), insulin, model="hovorka")


def test_default_model_is_uva_padova():
    params = uva_patients()
    carbs = np.zeros(120)
    carbs[5] = 30.0
    insulin = np.tile(np.asarray(basal_insulin_u_per_min(params))[:, None], (1, 120))
    np.testing.assert_array_equal(
        simulate(params, carbs, insulin).glucose_mg_dl,
        simulate(params, carbs, insulin, model=UVA_PADOVA).glucose_mg_dl,
    )
