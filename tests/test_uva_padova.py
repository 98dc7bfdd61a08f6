"""UVA/Padova (simglucose 0.2.11) in JAX: reference trajectories, vmap, grad, sanity, validation.

Reference data: ../shared/data/reference/simglucose (tests skip with a reason where absent).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from glucotwin.data.sim_inputs import read_inputs_csv
from glucotwin.physiology import (
    MealMemory,
    UvaPadovaParams,
    UvaPadovaState,
    basal_insulin_u_per_min,
    initial_meal_memory,
    load_virtual_patients,
    remember_meal,
    steady_state,
)
from glucotwin.simulate import simulate

DAY = 1440
ACCEPTANCE_MG_DL = 0.25  # issue 4's bar; the default scheme measures 4.1e-3 (float64)
DEFAULT_SCHEME_MG_DL = 0.01  # guards the meal-minute refinement: plain RK4 at 1 min gives 0.21


@pytest.fixture(scope="module")
def cohort():
    return load_virtual_patients()


@pytest.fixture(scope="module")
def reference(shared_data: Path, cohort):
    """Inputs, expected glucose [30, 1440, 2] and states [30, 1440, 13] of scenario S1."""
    folder = shared_data / "reference" / "simglucose"
    if not folder.is_dir():
        pytest.skip(f"simglucose reference trajectories not found at {folder}")
    inputs = [read_inputs_csv(folder / f"S1_inputs_{name}.csv") for name in cohort.names]
    expected = np.stack(
        [
            pd.read_csv(folder / f"S1_expected_{name}.csv")[
                ["glucose_mg_dl", "plasma_glucose_mg_dl"]
            ].to_numpy()
            for name in cohort.names
        ]
    )
    states = []
    for name in cohort.names:
        with gzip.open(folder / f"S1_states_{name}.csv.gz", "rt") as handle:
            frame = pd.read_csv(handle)
        assert [c.lower() for c in frame.columns[1:]] == list(UvaPadovaState._fields)
        states.append(frame.to_numpy()[:, 1:])
    return {
        "carbs": np.stack([carbs for carbs, _ in inputs]),
        "insulin": np.stack([insulin for _, insulin in inputs]),
        "glucose": expected,
        "states": np.stack(states),
    }


@pytest.fixture(scope="module")
def reference_run(cohort, reference):
    """All 30 patients in one batched float64 run from the parameter file's x0."""
    return simulate(
        cohort.params, reference["carbs"], reference["insulin"], cohort.x0, record="states"
    )


def glucose_columns(run) -> np.ndarray:
    return np.stack([np.asarray(run.glucose_mg_dl), np.asarray(run.plasma_glucose_mg_dl)], -1)


def test_all_30_patients_match_simglucose_reference(cohort, reference, reference_run):
    error = np.abs(glucose_columns(reference_run) - reference["glucose"])
    worst = error.max(axis=(1, 2))
    detail = f"worst {cohort.names[worst.argmax()]}: {worst.max():.2e} mg/dL"
    assert worst.max() <= ACCEPTANCE_MG_DL, detail
    assert worst.max() <= DEFAULT_SCHEME_MG_DL, detail
    # Both columns separately (subcutaneous Gs/Vg and plasma Gp/Vg).
    assert error[..., 0].max() <= DEFAULT_SCHEME_MG_DL
    assert error[..., 1].max() <= DEFAULT_SCHEME_MG_DL


def test_all_13_states_match_reference_relative_to_their_range(reference, reference_run):
    """Each state within 2e-3 of its largest magnitude over the day (per patient).

    The loosest are the liver and plasma insulin (1.3e-3, 1.7e-4): one patient has
    m1 + m30 = 1.12/min, a fast mode that 1-min RK4 steps follow less closely after a bolus;
    glucose states are within 2e-5.
    """
    for index, field in enumerate(UvaPadovaState._fields):
        ours = np.asarray(getattr(reference_run.states, field))
        theirs = reference["states"][:, :, index]
        scale = np.abs(theirs).max(axis=1, keepdims=True)
        relative = np.abs(ours - theirs) / scale
        assert relative.max() <= 2e-3, f"{field}: {relative.max():.2e}"


def test_float32_matches_reference_too(cohort, reference):
    run = simulate(
        cohort.params, reference["carbs"], reference["insulin"], cohort.x0, dtype=jnp.float32
    )
    assert run.glucose_mg_dl.dtype == jnp.float32
    assert np.abs(glucose_columns(run) - reference["glucose"]).max() <= DEFAULT_SCHEME_MG_DL


def test_dbar_remembers_stomach_content_adult_009(cohort, reference, reference_run):
    """The 22:00 snack of adult#009 is eaten with 29 g of dinner still in the stomach.

    simglucose's Dbar = stomach content at the episode start + the snack; a Dbar of the snack
    alone (15 g) moves glucose by up to 60 mg/dL in the next two hours (measured), so this
    window fails unless the memory rule is right.
    """
    patient = cohort.names.index("adult#009")
    states = reference_run.states
    stomach = float(states.qsto1_mg[patient, 1320] + states.qsto2_mg[patient, 1320])
    assert stomach > 20_000  # mg: the rule matters here
    window = slice(1321, DAY)
    error = np.abs(
        glucose_columns(reference_run)[patient, window] - reference["glucose"][patient, window]
    )
    assert error.max() <= DEFAULT_SCHEME_MG_DL


def test_meal_memory_episode_rule():
    """Consecutive eating minutes are one episode; Dbar is held after it, reset by the next."""
    memory = MealMemory(jnp.array(0.0), jnp.array(0.0), jnp.array(0.0))
    basal = jax.tree.map(lambda leaf: leaf[0], steady_state(load_virtual_patients().params))
    dbars = []
    for minute, carbs_g in enumerate([0.0, 5.0, 5.0, 0.0, 0.0, 3.0]):
        stomach = 1000.0 * minute  # Qsto1 + Qsto2 at the start of this minute, mg
        state = basal._replace(qsto1_mg=jnp.array(stomach), qsto2_mg=jnp.array(0.0))
        memory = remember_meal(memory, state, jnp.array(carbs_g))
        dbars.append(float(memory.dbar_mg))
    # minute 1 starts an episode with 1000 mg in the stomach; minute 2 continues it;
    # minutes 3-4 hold Dbar; minute 5 starts a new episode with 5000 mg in the stomach.
    assert dbars == [0.0, 6000.0, 11000.0, 11000.0, 11000.0, 8000.0]


def test_vmap_batch_equals_loop_of_single_patients_and_chunking_is_invisible(cohort):
    names = ["adolescent#003", "adult#009", "child#008", "adult#001", "child#004"]
    group = load_virtual_patients(names)
    minutes = 360
    carbs = np.zeros((len(names), minutes))
    carbs[:, 30] = 60.0
    carbs[1, 31] = 10.0  # a two-minute episode for one patient
    insulin = np.tile(np.asarray(basal_insulin_u_per_min(group.params))[:, None], (1, minutes))
    insulin[:, 30] += 60.0 / np.asarray(group.therapy.carb_ratio_g_per_u)
    batched = simulate(group.params, carbs, insulin, group.x0)
    for i in range(len(names)):
        one = jax.tree.map(lambda leaf, i=i: leaf[i], (group.params, group.x0))
        single = simulate(one[0], carbs[i], insulin[i], one[1])
        assert single.glucose_mg_dl.shape == (minutes,)
        np.testing.assert_allclose(single.glucose_mg_dl, batched.glucose_mg_dl[i], rtol=1e-12)
        np.testing.assert_allclose(
            single.plasma_glucose_mg_dl, batched.plasma_glucose_mg_dl[i], rtol=1e-12
        )
    # Chunks of 2 on two threads (the last chunk padded), streaming only the summary.
    chunked = simulate(
        group.params, carbs, insulin, group.x0, chunk_size=2, workers=2, record="none"
    )
    assert chunked.glucose_mg_dl is None
    for a, b in zip(
        jax.tree.leaves((chunked.summary, chunked.final_state)),
        jax.tree.leaves((batched.summary, batched.final_state)),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_summary_streamed_in_the_scan_matches_the_trajectory(reference_run):
    glucose = np.asarray(reference_run.glucose_mg_dl)
    summary = reference_run.summary
    np.testing.assert_allclose(summary.mean_mg_dl, glucose.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(summary.sd_mg_dl, glucose.std(axis=1), rtol=1e-8)
    np.testing.assert_array_equal(summary.min_mg_dl, glucose.min(axis=1))
    np.testing.assert_array_equal(summary.max_mg_dl, glucose.max(axis=1))
    np.testing.assert_array_equal(summary.below_54, (glucose < 54).sum(axis=1))
    np.testing.assert_array_equal(summary.below_70, (glucose < 70).sum(axis=1))
    np.testing.assert_array_equal(summary.in_70_180, ((glucose >= 70) & (glucose <= 180)).sum(1))
    np.testing.assert_array_equal(summary.above_180, (glucose > 180).sum(axis=1))
    np.testing.assert_array_equal(summary.above_250, (glucose > 250).sum(axis=1))
    assert summary.below_54.sum() > 0 and summary.above_250.sum() > 0  # ranges exercised


def test_continuing_from_final_state_equals_one_run(cohort, reference, reference_run):
    """Restart at a minute boundary with the final state and meal memory: same trajectory."""
    first = simulate(
        cohort.params, reference["carbs"][:, :1320], reference["insulin"][:, :1320], cohort.x0
    )
    second = simulate(
        cohort.params,
        reference["carbs"][:, 1320:],
        reference["insulin"][:, 1320:],
        first.final_state,
        meal_memory=first.final_meal_memory,
    )
    np.testing.assert_allclose(
        second.glucose_mg_dl, reference_run.glucose_mg_dl[:, 1320:], rtol=1e-12
    )


def test_grad_matches_central_finite_differences():
    """d/dp of mean squared glucose over 6 h (meal + bolus at 00:30), float64.

    Checks reverse mode through scan, cond and the RK4 loop; x0 is the
    steady state of the perturbed parameters, so the gradient also flows through it.
    """
    base = load_virtual_patients(["adult#001"])
    params = jax.tree.map(lambda leaf: leaf[0], base.params)
    minutes = 360
    carbs = np.zeros(minutes)
    carbs[30] = 60.0
    insulin = np.full(minutes, float(basal_insulin_u_per_min(params)))
    insulin[30] += 6.0
    names = ("kp3", "Vmx", "kabs")

    def loss(values):
        p = params._replace(**dict(zip(names, values, strict=True)))
        glucose = simulate(p, carbs, insulin).glucose_mg_dl
        return jnp.mean(glucose**2)

    point = tuple(jnp.asarray(getattr(params, name)) for name in names)
    gradient = jax.grad(loss)(point)
    for i, name in enumerate(names):
        step = 1e-4 * float(point[i])
        up = list(point)
        down = list(point)
        up[i] = point[i] + step
        down[i] = point[i] - step
        finite = (float(loss(tuple(up))) - float(loss(tuple(down)))) / (2 * step)
        assert float(gradient[i]) == pytest.approx(finite, rel=1e-6), name
        assert abs(finite) > 1.0  # the loss depends on this parameter


def test_basal_steady_state_holds_for_24_hours(cohort):
    np.testing.assert_allclose(
        np.stack(jax.tree.leaves(steady_state(cohort.params))),
        np.stack(jax.tree.leaves(cohort.x0)),
        rtol=1e-9,
        atol=1e-9,
    )
    basal = np.asarray(basal_insulin_u_per_min(cohort.params))
    run = simulate(
        cohort.params, np.zeros((len(cohort), DAY)), np.tile(basal[:, None], (1, DAY)), cohort.x0
    )
    drift = np.abs(np.asarray(run.glucose_mg_dl) - np.asarray(run.glucose_mg_dl)[:, :1])
    assert drift.max() < 1e-6  # mg/dL (issue 4 asks < 0.5)


def test_meal_raises_glucose_and_extra_bolus_lowers_it(cohort):
    basal = np.asarray(basal_insulin_u_per_min(cohort.params))
    carbs = np.zeros((len(cohort), DAY))
    carbs[:, 60] = 50.0
    insulin = np.tile(basal[:, None], (1, DAY))
    meal = simulate(cohort.params, carbs, insulin, cohort.x0).glucose_mg_dl
    bolus = insulin.copy()
    bolus[:, 60] += 50.0 / np.asarray(cohort.therapy.carb_ratio_g_per_u)
    treated = simulate(cohort.params, carbs, bolus, cohort.x0).glucose_mg_dl
    baseline = np.asarray(meal[:, 0])
    assert np.all(np.max(meal, axis=1) > baseline + 20)  # every patient rises > 20 mg/dL
    np.testing.assert_array_equal(meal[:, :61], treated[:, :61])  # nothing acts before minute 61
    assert np.all(treated[:, 62:] < meal[:, 62:])  # insulin lowers glucose at every later minute
    assert np.all(np.max(treated, axis=1) < np.max(meal, axis=1))


def test_params_validation_rejects_a_negative_volume(cohort):
    row = {field: np.asarray(getattr(cohort.params, field)) for field in UvaPadovaParams._fields}
    row["Vg"] = row["Vg"].copy()
    row["Vg"][3] = -1.0
    with pytest.raises(ValueError, match=r"'adolescent#004'.*Vg \(dL/kg\) must be > 0, got -1\.0"):
        UvaPadovaParams.from_mapping(row, names=cohort.names)


def test_params_validation_rejects_parameters_without_a_steady_state(cohort):
    row = {field: float(getattr(cohort.params, field)[0]) for field in UvaPadovaParams._fields}
    row["kp1"] = 0.5 * row["Fsnc"]  # the liver cannot even cover insulin-independent uptake
    with pytest.raises(ValueError, match="no basal steady state"):
        UvaPadovaParams.from_mapping(row, names="adolescent#001")


def test_read_inputs_csv_fills_missing_minutes_and_reports_bad_rows(tmp_path):
    sparse = tmp_path / "sparse.csv"
    sparse.write_text("minute,carbs_g,insulin_u\n2,50,1.5\n5,0,0.25\n")
    carbs, insulin = read_inputs_csv(sparse, minutes=8)
    np.testing.assert_array_equal(carbs, [0, 0, 50, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(insulin, [0, 0, 1.5, 0, 0, 0.25, 0, 0])
    bad = tmp_path / "bad.csv"
    bad.write_text("minute,carbs_g,insulin_u\n0,1,0\n1,-2,0\n")
    with pytest.raises(ValueError, match=r"bad\.csv:3: field 'carbs_g': must be finite and >= 0"):
        read_inputs_csv(bad)


def test_initial_meal_memory_uses_the_stomach_of_x0(cohort):
    memory = initial_meal_memory(cohort.x0._replace(qsto1_mg=jnp.full(30, 7.0)))
    np.testing.assert_array_equal(memory.dbar_mg, np.full(30, 7.0))
