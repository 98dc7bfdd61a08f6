"""CGM sensor and insulin pump models: noise statistics, seeding, vmap, limits, conservation.

Statistical tolerances are about five standard errors of the estimate at the sample sizes
used, so the tests are deterministic (fixed keys) and fail on a wrong model, not by chance.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glucotwin.physiology.pump import (
    PumpParams,
    deliver_insulin,
    occlusion_schedule,
)
from glucotwin.physiology.sensor import (
    SensorParams,
    cgm_readings,
    johnson_su_mg_dl,
    latent_noise,
)

DAY = 1440
BRETON = SensorParams.breton_2008(-math.inf, math.inf)


def _noise(key, sensors: int, minutes: int, params: SensorParams, interval_min: int):
    """Readings minus a constant 100 mg/dL truth, [sensors, readings]."""
    glucose = jnp.full((sensors, minutes), 100.0)
    readings = cgm_readings(key, glucose, params, interval_min=interval_min)
    return np.asarray(readings.glucose_mg_dl) - 100.0


def _latent(noise: np.ndarray, p: SensorParams) -> np.ndarray:
    """Invert the Johnson SU transform: gamma + delta*asinh((noise - xi)/lambda)."""
    scaled = (noise - p.johnson_xi_mg_dl) / p.johnson_lambda_mg_dl
    return p.johnson_gamma + p.johnson_delta * np.arcsinh(scaled)


def _autocorrelation(x: np.ndarray, lag: int) -> float:
    """Lag autocorrelation pooled over rows (the process mean is 0)."""
    return float(np.sum(x[:, lag:] * x[:, :-lag]) / np.sum(x * x) * x.shape[1] / (x.shape[1] - lag))


def _johnson_moments(p: SensorParams, latent_sd: float) -> tuple[float, float]:
    """Mean and SD of xi + lambda*sinh((s*z - gamma)/delta), z ~ N(0, 1) (Johnson 1949)."""
    gamma, delta = p.johnson_gamma / latent_sd, p.johnson_delta / latent_sd
    w = math.exp(1.0 / delta**2)
    mean = p.johnson_xi_mg_dl - p.johnson_lambda_mg_dl * math.sqrt(w) * math.sinh(gamma / delta)
    variance = 0.5 * p.johnson_lambda_mg_dl**2 * (w - 1.0) * (w * math.cosh(2 * gamma / delta) + 1)
    return mean, math.sqrt(variance)


# --- sensor: noise -----------------------------------------------------------------------


def test_breton_parameters_transcribed():
    p = SensorParams.dexcom_g6()
    assert (p.johnson_xi_mg_dl, p.johnson_lambda_mg_dl) == (-5.47, 15.9574)
    assert (p.johnson_gamma, p.johnson_delta) == (-0.5444, 1.6898)
    assert p.ar1**15 == pytest.approx(0.7, rel=1e-12)
    assert p.latent_sd**2 == pytest.approx(0.49 / 0.51, rel=1e-12)
    assert (p.low_limit_mg_dl, p.high_limit_mg_dl) == (40.0, 400.0)
    navigator = SensorParams.simglucose("Navigator")
    assert (navigator.low_limit_mg_dl, navigator.high_limit_mg_dl) == (32.0, 600.0)


def test_johnson_transform_matches_scipy():
    stats = pytest.importorskip("scipy.stats", reason="scipy is the reference Johnson SU law")
    p = BRETON
    law = stats.johnsonsu(
        p.johnson_gamma, p.johnson_delta, loc=p.johnson_xi_mg_dl, scale=p.johnson_lambda_mg_dl
    )
    q = np.array([0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999])
    exact = johnson_su_mg_dl(jnp.asarray(stats.norm.ppf(q)), p)
    np.testing.assert_allclose(exact, law.ppf(q), rtol=1e-12, atol=1e-12)

    n = 400_000
    sample = np.asarray(johnson_su_mg_dl(jax.random.normal(jax.random.key(3), (n,)), p))
    q = q[1:-1]
    standard_error = np.sqrt(q * (1 - q) / n) / law.pdf(law.ppf(q))
    np.testing.assert_array_less(np.abs(np.quantile(sample, q) - law.ppf(q)), 5 * standard_error)


def test_noise_mean_and_sd_match_breton():
    noise = _noise(jax.random.key(0), 200, 10 * DAY, BRETON, interval_min=1)[:, ::15]
    mean, sd = _johnson_moments(BRETON, BRETON.latent_sd)
    assert mean == pytest.approx(0.7187, abs=1e-4) and sd == pytest.approx(11.728, abs=1e-3)
    assert abs(noise.mean() - mean) < 0.3  # standard error 0.06 mg/dL
    assert noise.std() == pytest.approx(sd, rel=0.03)


def test_noise_autocorrelation_is_breton_ar1():
    noise = _noise(jax.random.key(1), 200, 10 * DAY, BRETON, interval_min=1)
    latent = _latent(noise, BRETON)
    assert latent.std() == pytest.approx(0.7 / math.sqrt(0.51), rel=0.02)
    assert _autocorrelation(latent, 1) == pytest.approx(0.7 ** (1 / 15), abs=0.002)
    assert _autocorrelation(latent[:, ::15], 1) == pytest.approx(0.7, abs=0.015)
    assert _autocorrelation(latent[:, ::15], 2) == pytest.approx(0.49, abs=0.02)


def test_ar2_latent_autocorrelation_and_variance():
    p = BRETON._replace(ar1=1.2, ar2=-0.35, latent_sd=2.0).validate()
    z = jax.random.normal(jax.random.key(2), (200, 5000))
    latent = np.asarray(jax.vmap(lambda row: latent_noise(row, p))(z))
    rho1 = 1.2 / 1.35
    assert latent.std() == pytest.approx(2.0, rel=0.02)
    assert latent[:, 0].std() == pytest.approx(2.0, rel=0.15)  # stationary from the start
    assert _autocorrelation(latent, 1) == pytest.approx(rho1, abs=0.005)
    assert _autocorrelation(latent, 2) == pytest.approx(1.2 * rho1 - 0.35, abs=0.01)


def test_calibration_gain_and_offset_drift():
    ideal = SensorParams.ideal()
    p = ideal._replace(gain_sd=0.05, gain_drift_sd_per_sqrt_day=0.1, offset_sd_mg_dl=5.0)
    error = _noise(jax.random.key(4), 600, 4 * DAY + 1, p.validate(), interval_min=DAY)
    expected_sd = [math.sqrt(25.0 + 25.0 + 100.0 * days) for days in range(5)]
    np.testing.assert_allclose(error.std(axis=0), expected_sd, rtol=0.12)
    assert abs(error.mean()) < 3.0
    walk = ideal._replace(offset_drift_sd_mg_dl_per_sqrt_day=3.0).validate()
    error = _noise(jax.random.key(5), 600, 4 * DAY + 1, walk, interval_min=DAY)
    np.testing.assert_allclose(error.std(axis=0)[1:], 3.0 * np.sqrt([1, 2, 3, 4]), rtol=0.12)
    assert np.all(error[:, 0] == 0.0)


# --- sensor: sampling, dropouts, limits, seeding --------------------------------------------


def _full_sensor() -> SensorParams:
    return SensorParams.dexcom_g6()._replace(
        gain_sd=0.03, gain_drift_sd_per_sqrt_day=0.02, offset_sd_mg_dl=3.0,
        offset_drift_sd_mg_dl_per_sqrt_day=2.0, dropout_fraction=0.05, dropout_mean_minutes=20.0,
    ).validate()  # fmt: skip


def _glucose(patients: int, minutes: int = DAY) -> jax.Array:
    t = jnp.arange(minutes) / minutes
    return 140.0 + 80.0 * jnp.sin(2 * jnp.pi * (t + jnp.arange(patients)[:, None] / patients))


@pytest.mark.parametrize(
    ("minutes", "interval_min"), [(DAY, 1), (DAY, 3), (DAY, 5), (DAY, 15), (DAY + 1, 5)]
)
def test_sampling_interval_sets_reading_count(minutes, interval_min):
    glucose = jnp.arange(minutes, dtype=jnp.float64)
    ideal = cgm_readings(
        jax.random.key(0), glucose, SensorParams.ideal(), interval_min=interval_min
    )
    count = math.ceil(minutes / interval_min)
    assert ideal.glucose_mg_dl.shape == ideal.censored.shape == (count,)
    np.testing.assert_array_equal(ideal.time_min, np.arange(count) * interval_min)
    np.testing.assert_array_equal(ideal.glucose_mg_dl, ideal.time_min)
    # A coarser interval reads the same sensor (same key) at fewer minutes.
    sparse = cgm_readings(jax.random.key(1), glucose, _full_sensor(), interval_min=interval_min)
    dense = cgm_readings(jax.random.key(1), glucose, _full_sensor(), interval_min=1)
    np.testing.assert_array_equal(sparse.glucose_mg_dl, dense.glucose_mg_dl[::interval_min])


def test_dropout_rate_and_gap_length():
    p = SensorParams.ideal()._replace(dropout_fraction=0.1, dropout_mean_minutes=30.0).validate()
    missing = np.isnan(_noise(jax.random.key(6), 200, 10 * DAY, p, interval_min=1))
    assert missing.mean() == pytest.approx(0.1, abs=0.01)
    assert missing[:, 0].mean() == pytest.approx(0.1, abs=0.07)  # stationary start
    starts = np.sum(missing[:, 1:] & ~missing[:, :-1]) + np.sum(missing[:, 0])
    assert missing.sum() / starts == pytest.approx(30.0, rel=0.07)


def test_low_high_censoring_is_exact():
    truth = np.concatenate([np.linspace(20.0, 500.0, DAY - 2), [40.0, 400.0]])
    p = SensorParams.ideal()._replace(low_limit_mg_dl=40.0, high_limit_mg_dl=400.0).validate()
    readings = cgm_readings(jax.random.key(0), truth, p, interval_min=1)
    np.testing.assert_array_equal(readings.glucose_mg_dl, np.clip(truth, 40.0, 400.0))
    np.testing.assert_array_equal(readings.censored, (truth > 400).astype(int) - (truth < 40))
    assert readings.censored.dtype == jnp.int8

    noisy = cgm_readings(jax.random.key(1), jnp.full((4, DAY), 60.0), SensorParams.dexcom_g6())
    value, flag = np.asarray(noisy.glucose_mg_dl), np.asarray(noisy.censored)
    assert np.all((flag == -1) == (value == 40.0)) and (flag == -1).any()
    assert np.all((value >= 40.0) & (value <= 400.0))
    high = cgm_readings(jax.random.key(1), jnp.full((DAY,), 600.0), SensorParams.dexcom_g6())
    assert np.all(high.censored == 1) and np.all(high.glucose_mg_dl == 400.0)


def test_sensor_same_key_same_readings_different_keys_differ():
    p, glucose = _full_sensor(), _glucose(4)
    a = cgm_readings(jax.random.key(7), glucose, p)
    b = cgm_readings(jax.random.key(7), glucose, p)
    c = cgm_readings(jax.random.key(8), glucose, p)
    np.testing.assert_array_equal(a.glucose_mg_dl, b.glucose_mg_dl)
    np.testing.assert_array_equal(a.censored, b.censored)
    both = ~np.isnan(a.glucose_mg_dl) & ~np.isnan(c.glucose_mg_dl)
    assert np.mean(a.glucose_mg_dl[both] != c.glucose_mg_dl[both]) > 0.99


def test_sensor_vmap_equals_loop_and_batch_uses_split_keys():
    p, glucose = _full_sensor(), _glucose(4)
    keys = jax.random.split(jax.random.key(9), 4)
    run = jax.jit(lambda k, g: cgm_readings(k, g, p))
    batched = jax.vmap(run)(keys, glucose)
    for i in range(4):
        one = run(keys[i], glucose[i])
        np.testing.assert_allclose(batched.glucose_mg_dl[i], one.glucose_mg_dl, rtol=1e-13)
        np.testing.assert_array_equal(batched.censored[i], one.censored)
    direct = cgm_readings(jax.random.key(9), glucose, p)
    np.testing.assert_allclose(direct.glucose_mg_dl, batched.glucose_mg_dl, rtol=1e-13)


def test_sensor_batched_params_and_float32():
    limits = jnp.array([100.0, 150.0])
    p = SensorParams.ideal()._replace(low_limit_mg_dl=limits).validate()
    readings = cgm_readings(jax.random.key(0), _glucose(2), p)
    np.testing.assert_array_equal(readings.glucose_mg_dl.min(axis=1), limits)
    single = cgm_readings(jax.random.key(0), _glucose(2), p, dtype=jnp.float32)
    assert single.glucose_mg_dl.dtype == jnp.float32
    np.testing.assert_allclose(single.glucose_mg_dl, readings.glucose_mg_dl, rtol=1e-6)
    noisy = cgm_readings(jax.random.key(0), _glucose(2), _full_sensor(), dtype=jnp.float32)
    assert noisy.glucose_mg_dl.dtype == jnp.float32
    error = np.asarray(noisy.glucose_mg_dl) - np.asarray(_glucose(2))[:, ::5]
    assert 0 < np.isnan(error).mean() < 0.2 and 3 < np.nanstd(error) < 30


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ar1": 0.9, "ar2": 0.2}, "ar1 \\+ ar2"),
        ({"johnson_delta": 0.0}, "johnson_delta"),
        ({"low_limit_mg_dl": 400.0, "high_limit_mg_dl": 40.0}, "low_limit"),
        ({"dropout_fraction": 1.0}, "dropout_fraction"),
        ({"dropout_fraction": 0.9, "dropout_mean_minutes": 2.0}, "dropout_mean_minutes\\*"),
        ({"gain_sd": jnp.array([0.1, -0.1])}, "sensor index 1: gain_sd"),
        ({"johnson_xi_mg_dl": math.nan}, "johnson_xi_mg_dl must be finite"),
    ],
)
def test_sensor_validation(change, message):
    with pytest.raises(ValueError, match=message):
        SensorParams.dexcom_g6()._replace(**change).validate()


def test_sensor_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown simglucose sensor"):
        SensorParams.simglucose("Libre")
    with pytest.raises(ValueError, match="interval_min"):
        cgm_readings(jax.random.key(0), jnp.ones(10), SensorParams.ideal(), interval_min=0)


# --- pump --------------------------------------------------------------------------------

FINE_PULSES_LOW_LIMITS = PumpParams.ideal()._replace(
    basal_pulse_u=0.025, bolus_pulse_u=0.025, max_basal_u_per_h=2.0, max_bolus_u=10.0,
    bolus_speed_u_per_min=1.5,
).validate()  # fmt: skip
PUMPS = [PumpParams.omnipod(), FINE_PULSES_LOW_LIMITS, PumpParams.simglucose("Cozmo")]


@st.composite
def schedules(draw):
    """A day of requests: hourly basal rates; boluses and extended boluses in the first 18 h,
    so that even the slowest pump has drained its bolus queue by the end of the day."""
    hourly = draw(st.lists(st.floats(0.0, 4.0), min_size=24, max_size=24))
    basal = np.repeat(np.asarray(hourly), 60)
    bolus = np.zeros(DAY)
    extended = np.zeros(DAY)
    durations = np.ones(DAY, np.int32)
    minute = st.integers(0, 18 * 60)
    for at, amount in draw(st.lists(st.tuples(minute, st.floats(0.0, 40.0)), max_size=6)):
        bolus[at] += amount
    for at, amount, length in draw(
        st.lists(st.tuples(minute, st.floats(0.0, 8.0), st.integers(1, 120)), max_size=2)
    ):
        extended[at], durations[at] = amount, length
    return basal, bolus, extended, durations


@settings(max_examples=40, deadline=None)
@given(schedules(), st.sampled_from(PUMPS))
def test_pump_delivers_what_it_accepts_within_one_pulse(schedule, params):
    basal, bolus, extended, durations = schedule
    out = deliver_insulin(
        basal, bolus, params, extended_bolus_u=extended, extended_minutes=durations
    )
    accepted = (
        basal.sum() / 60 - float(out.basal_capped_u.sum())
        + bolus.sum() + extended.sum() - float(out.bolus_capped_u.sum())
    )  # fmt: skip
    shortfall = accepted - float(out.insulin_u_per_min.sum())
    assert -1e-9 < shortfall < params.basal_pulse_u + params.bolus_pulse_u
    assert shortfall == pytest.approx(float(out.pending_u[-1]), abs=1e-9)
    basal_only = deliver_insulin(basal, np.zeros(DAY), params)
    basal_shortfall = basal.sum() / 60 - float(basal_only.basal_capped_u.sum())
    basal_shortfall -= float(basal_only.insulin_u_per_min.sum())
    assert -1e-9 < basal_shortfall < params.basal_pulse_u
    pulses = [params.basal_pulse_u, params.bolus_pulse_u]
    if min(pulses) == max(pulses):
        units = np.asarray(out.insulin_u_per_min) / pulses[0]
        np.testing.assert_allclose(units, np.round(units), atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(schedules(), st.floats(0.0, 30.0), st.sampled_from(PUMPS))
def test_pump_limits_never_exceeded(schedule, extra_basal_u_per_h, params):
    basal, bolus, extended, durations = schedule
    basal = basal * 10 + extra_basal_u_per_h
    out = deliver_insulin(
        basal, bolus, params, extended_bolus_u=extended, extended_minutes=durations
    )
    accepted_bolus = bolus + extended - np.asarray(out.bolus_capped_u)
    assert np.all(accepted_bolus <= params.max_bolus_u + 1e-9)
    assert np.all(np.asarray(out.bolus_capped_u) >= 0)
    cap = params.max_basal_u_per_h / 60 + params.basal_pulse_u + params.bolus_speed_u_per_min
    if math.isfinite(cap):
        assert np.all(np.asarray(out.insulin_u_per_min) <= cap + 1e-9)
    basal_only = deliver_insulin(basal, np.zeros(DAY), params)
    minutes = np.arange(1, DAY + 1)
    np.testing.assert_array_less(
        np.cumsum(basal_only.insulin_u_per_min), params.max_basal_u_per_h / 60 * minutes + 1e-8
    )
    np.testing.assert_allclose(
        basal_only.basal_capped_u, np.maximum(basal - params.max_basal_u_per_h, 0) / 60
    )


def test_pump_basal_pulses_carry_residue():
    out = deliver_insulin(np.full(DAY, 0.83), np.zeros(DAY), PumpParams.omnipod())
    delivered = np.asarray(out.insulin_u_per_min)
    np.testing.assert_allclose(delivered / 0.05, np.round(delivered / 0.05), atol=1e-9)
    assert np.count_nonzero(delivered) == 398  # floor(0.83*24/0.05) pulses of one each
    assert delivered.sum() == pytest.approx(19.9, abs=1e-9)
    assert float(out.pending_u[-1]) == pytest.approx(0.02, abs=1e-9)
    gaps = np.diff(np.flatnonzero(delivered))
    assert set(gaps.tolist()) <= {3, 4}  # 0.05 U every 60*0.05/0.83 = 3.6 min


def test_bolus_speed_spreads_delivery():
    bolus = np.zeros(60)
    bolus[10] = 10.0
    slow = deliver_insulin(np.zeros(60), bolus, PumpParams.omnipod())
    expected = np.zeros(60)
    expected[10:16] = 1.5
    expected[16] = 1.0
    np.testing.assert_allclose(slow.insulin_u_per_min, expected, atol=1e-12)
    instant = deliver_insulin(np.zeros(60), bolus, PumpParams.simglucose("Insulet"))
    np.testing.assert_allclose(instant.insulin_u_per_min, 10.0 * (np.arange(60) == 10))


def test_extended_and_dual_bolus():
    immediate, extended, durations = np.zeros(200), np.zeros(200), np.ones(200, np.int32)
    immediate[10], extended[10], durations[10] = 1.0, 3.0, 90

    def dual(params: PumpParams):
        zero_basal = np.zeros(200)
        return deliver_insulin(
            zero_basal, immediate, params, extended_bolus_u=extended, extended_minutes=durations
        )

    expected = np.where((np.arange(200) >= 10) & (np.arange(200) < 100), 3.0 / 90, 0.0)
    expected[10] += 1.0
    np.testing.assert_allclose(dual(PumpParams.ideal()).insulin_u_per_min, expected, atol=1e-12)
    pod = dual(PumpParams.omnipod()).insulin_u_per_min
    np.testing.assert_array_less(np.abs(np.cumsum(pod) - np.cumsum(expected)), 0.05 + 1e-9)
    assert float(pod.sum()) == pytest.approx(4.0, abs=1e-9)
    capped = dual(PumpParams.omnipod()._replace(max_bolus_u=3.0))
    assert float(capped.bolus_capped_u[10]) == pytest.approx(1.0)
    assert float(capped.insulin_u_per_min.sum()) == pytest.approx(3.0, abs=1e-9)


@pytest.mark.parametrize("release", [0.0, 0.5, 1.0])
def test_occlusion_delivers_nothing_then_releases_or_loses(release):
    basal = np.full(DAY, 1.2)
    bolus = np.zeros(DAY)
    bolus[[300, 620]] = [4.0, 6.0]
    occluded = (np.arange(DAY) >= 600) & (np.arange(DAY) < 720)
    params = PumpParams.omnipod()._replace(occlusion_release_fraction=release).validate()
    clear = deliver_insulin(basal, bolus, params)
    out = deliver_insulin(basal, bolus, params, occluded=occluded)
    delivered = np.asarray(out.insulin_u_per_min)
    assert np.all(delivered[occluded] == 0.0)
    np.testing.assert_allclose(out.withheld_u, np.where(occluded, clear.insulin_u_per_min, 0.0))
    held = float(out.withheld_u.sum())
    assert held == pytest.approx(1.2 * 2 + 6.0, abs=0.05)
    assert delivered[720] == pytest.approx(release * held + clear.insulin_u_per_min[720])
    assert float(out.lost_u.sum()) == pytest.approx((1 - release) * held)
    np.testing.assert_allclose(delivered[721:], clear.insulin_u_per_min[721:])
    lost = np.cumsum(out.lost_u)
    np.testing.assert_allclose(
        np.cumsum(delivered) + out.pending_u + lost,
        np.cumsum(clear.insulin_u_per_min) + clear.pending_u,
        atol=1e-9,
    )


def test_occlusion_schedule_is_seeded_with_nominal_rate_and_length():
    params = PumpParams.omnipod()._replace(occlusion_rate_per_day=2.0, occlusion_mean_minutes=60.0)
    params = jax.tree.map(lambda a: jnp.full((100,), a), params.validate())
    blocked = np.asarray(occlusion_schedule(jax.random.key(0), 30 * DAY, params))
    again = np.asarray(occlusion_schedule(jax.random.key(0), 30 * DAY, params))
    other = np.asarray(occlusion_schedule(jax.random.key(1), 30 * DAY, params))
    np.testing.assert_array_equal(blocked, again)
    assert not np.array_equal(blocked, other)
    assert not blocked[:, 0].any()
    starts = np.sum(blocked[:, 1:] & ~blocked[:, :-1])
    clear_days = np.sum(~blocked) / DAY
    assert starts / clear_days == pytest.approx(2.0, rel=0.1)
    assert blocked.sum() / starts == pytest.approx(60.0, rel=0.1)


def test_pump_vmap_equals_loop_and_float32():
    rng = np.random.default_rng(0)
    basal = rng.uniform(0, 3, (4, DAY))
    bolus = np.where(rng.uniform(size=(4, DAY)) < 0.003, rng.uniform(0, 12, (4, DAY)), 0.0)
    params = PumpParams.omnipod()
    batched = jax.vmap(lambda b, s: deliver_insulin(b, s, params))(basal, bolus)
    direct = deliver_insulin(basal, bolus, params)
    for i in range(4):
        one = deliver_insulin(basal[i], bolus[i], params)
        for got, want, also in zip(batched, one, direct, strict=True):
            np.testing.assert_allclose(got[i], want, rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(also[i], want, rtol=1e-13, atol=1e-15)
    single = deliver_insulin(basal, bolus, params, dtype=jnp.float32)
    assert single.insulin_u_per_min.dtype == jnp.float32
    np.testing.assert_allclose(
        np.cumsum(single.insulin_u_per_min, axis=1),
        np.cumsum(direct.insulin_u_per_min, axis=1),
        atol=0.1,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"basal_pulse_u": -0.05}, "basal_pulse_u"),
        ({"bolus_speed_u_per_min": 0.01}, "one pulse per minute"),
        ({"occlusion_release_fraction": 1.5}, "occlusion_release_fraction"),
        ({"occlusion_mean_minutes": 0.5}, "occlusion_mean_minutes"),
        ({"max_bolus_u": math.nan}, "max_bolus_u is NaN"),
    ],
)
def test_pump_validation(change, message):
    with pytest.raises(ValueError, match=message):
        PumpParams.omnipod()._replace(**change).validate()


def test_pump_rejects_unknown_preset():
    with pytest.raises(ValueError, match="unknown simglucose pump"):
        PumpParams.simglucose("Tandem")
