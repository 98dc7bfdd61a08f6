"""NUTS and SVI on exp(-loss(z)) (:mod:`glucotwin.twin.sampling`): analytic targets, a support
boundary where the loss is +inf, reproducibility, and (slow) the real twin posterior."""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glucotwin.twin.sampling import SamplerResult, fit_svi, sample_nuts

REPLAYBG_DAY = Path(__file__).resolve().parents[2] / "shared/data/replaybg_example/data_day_1.csv"
MEAN = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
COV = np.array(
    [
        [1.0, 0.9, 0.0, 0.3, 0.0],
        [0.9, 1.0, 0.0, 0.2, 0.0],
        [0.0, 0.0, 0.25, 0.0, -0.2],
        [0.3, 0.2, 0.0, 2.0, 0.0],
        [0.0, 0.0, -0.2, 0.0, 0.5],
    ]
)
"""A 5-D Gaussian target with strong correlations (0.9 and -0.57) and SDs from 0.5 to 1.4."""
PRECISION = np.linalg.inv(COV)
CHOL = np.linalg.cholesky(COV)


def gaussian_loss(z):
    r = z - MEAN
    return 0.5 * r @ PRECISION @ r


def truncated_loss(z, wall=0.0):
    """A standard normal in 2-D cut to z_0 >= ``wall``, written like the twin's loss: the
    value is NaN outside (with NaN gradients) and mapped to +inf."""
    value = 0.5 * jnp.sum(z**2) + 0.0 * jnp.sqrt(z[0] - wall)
    return jnp.where(jnp.isfinite(value), value, jnp.inf)


def assert_gaussian_moments(draws, ess):
    """Whitened draws w = L^-1 (z - mean) are N(0, I): their mean and covariance must be within
    5 Monte-Carlo standard errors (1/sqrt(ESS) and sqrt(2/ESS)) of 0 and I."""
    white = np.linalg.solve(CHOL, (draws - MEAN).T).T
    n_eff = float(np.min(ess))
    assert np.max(np.abs(white.mean(axis=0))) < 5.0 / np.sqrt(n_eff)
    assert np.max(np.abs(np.cov(white.T) - np.eye(len(MEAN)))) < 5.0 * np.sqrt(2.0 / n_eff)


def test_nuts_recovers_a_correlated_gaussian_with_a_dense_mass_and_two_chains():
    starts = MEAN + np.array([[1.0, -1.0, 0.5, 2.0, -0.5], [-1.0, 1.0, -0.5, -2.0, 0.5]])
    result = sample_nuts(gaussian_loss, starts, seed=0, num_warmup=200, num_samples=1000,
                         num_chains=2, inverse_mass=COV)  # fmt: skip
    d = result.diagnostics
    assert isinstance(result, SamplerResult) and result.method == "nuts"
    assert result.draws.shape == (2000, 5)
    assert d["r_hat"].shape == (5,) and np.all(d["r_hat"] < 1.02)
    assert d["divergences"] == 0 and 0.6 < d["accept_prob"] <= 1.0
    assert d["num_steps"] >= 2000 and np.all(d["ess"] > 500)
    assert d["step_size"].shape == (2,) and d["inverse_mass_matrix"].shape == (2, 5, 5)
    assert_gaussian_moments(result.draws, d["ess"])


def test_nuts_adapts_from_the_identity_mass():
    result = sample_nuts(gaussian_loss, MEAN, seed=3, num_warmup=500, num_samples=1000,
                         dense_mass=True)  # fmt: skip
    assert result.diagnostics["divergences"] == 0
    assert result.diagnostics["inverse_mass_matrix"].shape == (1, 5, 5)
    assert_gaussian_moments(result.draws, result.diagnostics["ess"])


def test_svi_recovers_a_correlated_gaussian():
    result = fit_svi(gaussian_loss, np.zeros(5), seed=0, num_steps=3000, learning_rate=0.02,
                     num_draws=4000)  # fmt: skip
    d = result.diagnostics
    assert result.method == "svi" and result.draws.shape == (4000, 5)
    # The family holds the target: the fit is exact up to stochastic-optimisation noise.
    np.testing.assert_allclose(d["mean"], MEAN, atol=0.05)
    np.testing.assert_allclose(d["covariance"], COV, atol=0.08)
    assert d["skipped_steps"] == 0 and d["invalid_fraction"] == 0.0
    assert d["importance_ess_fraction"] > 0.9
    # Negative ELBO = KL(q || p) - log Z with log Z = log((2 pi)^(5/2) |COV|^(1/2)).
    log_z = 0.5 * (5 * np.log(2 * np.pi) + np.linalg.slogdet(COV)[1])
    assert abs(d["elbo_loss"] + log_z) < 0.05
    assert_gaussian_moments(result.draws, np.full(5, 4000.0))


def test_nuts_never_returns_draws_where_the_loss_is_infinite():
    result = sample_nuts(truncated_loss, np.array([1.0, 0.0]), seed=1, num_warmup=300,
                         num_samples=2000)  # fmt: skip
    z0 = result.draws[:, 0]
    assert np.all(z0 >= 0.0)
    ess = result.diagnostics["ess"][0]
    # Half-normal: mean sqrt(2/pi), variance 1 - 2/pi.
    assert abs(z0.mean() - np.sqrt(2 / np.pi)) < 5 * np.sqrt((1 - 2 / np.pi) / ess)
    assert abs(result.draws[:, 1].std() - 1.0) < 0.1


def test_svi_rejects_draws_where_the_loss_is_infinite():
    # A wall in the tail (z_0 >= -2.5, 0.6 % of the mass outside), as where the twin's
    # simulation overflows: the fitted Gaussian is about N(0, I) and its draws past the wall
    # are dropped. (A wall with much mass beside it is out of a Gaussian guide's reach.)
    result = fit_svi(lambda z: truncated_loss(z, wall=-2.5), np.zeros(2), seed=0,
                     num_steps=1000, learning_rate=0.02, num_draws=2000)  # fmt: skip
    d = result.diagnostics
    assert result.draws.shape == (2000, 2) and np.all(result.draws[:, 0] >= -2.5)
    np.testing.assert_allclose(d["mean"], 0.0, atol=0.1)
    np.testing.assert_allclose(d["covariance"], np.eye(2), atol=0.15)
    assert 0.0 < d["invalid_fraction"] < 0.03


def test_nuts_same_seed_same_draws_other_seed_other_draws():
    kw = dict(num_warmup=50, num_samples=100)
    a, b, c = (sample_nuts(gaussian_loss, MEAN, seed=s, **kw) for s in (7, 7, 8))
    assert np.array_equal(a.draws, b.draws) and not np.allclose(a.draws, c.draws)


def test_svi_same_seed_same_draws_other_seed_other_draws():
    kw = dict(num_steps=200, num_draws=100)
    a, b, c = (fit_svi(gaussian_loss, MEAN, seed=s, **kw) for s in (7, 7, 8))
    assert np.array_equal(a.draws, b.draws) and not np.allclose(a.draws, c.draws)
    assert np.array_equal(a.diagnostics["losses"], b.diagnostics["losses"])


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="not finite"):
        sample_nuts(truncated_loss, np.array([-1.0, 0.0]), seed=0)
    with pytest.raises(ValueError, match="not finite"):
        fit_svi(truncated_loss, np.array([-1.0, 0.0]), seed=0)
    with pytest.raises(ValueError, match="positive definite"):
        sample_nuts(gaussian_loss, MEAN, seed=0, inverse_mass=-COV)
    with pytest.raises(ValueError, match="num_chains"):
        sample_nuts(gaussian_loss, np.zeros((3, 5)), seed=0, num_chains=2)
    with pytest.raises(ValueError, match="symmetric"):
        fit_svi(gaussian_loss, MEAN, seed=0, init_covariance=np.eye(4))


@pytest.mark.slow
@pytest.mark.skipif(not REPLAYBG_DAY.exists(), reason=f"shared data absent: {REPLAYBG_DAY}")
def test_nuts_and_svi_on_the_replaybg_example_day():
    """NUTS (300 warm-up, 500 draws, 1 chain, dense mass from the inverse Hessian at the MAP)
    and SVI (2000 steps) on the real twin posterior; prints wall times and ESS per second."""
    from glucotwin.data.formats import read_file
    from glucotwin.twin import TwinFitter

    fitter = TwinFitter(seed=0).fit(read_file(REPLAYBG_DAY))
    loss, z_map = fitter.objective_.loss, jnp.asarray(fitter.z_)
    began = time.perf_counter()
    hessian = np.asarray(jax.jit(jax.hessian(loss))(z_map))
    eigenvalues, vectors = np.linalg.eigh(0.5 * (hessian + hessian.T))
    laplace = (vectors / np.maximum(eigenvalues, 1e-2)) @ vectors.T
    hessian_s = time.perf_counter() - began

    nuts = sample_nuts(loss, z_map, seed=0, num_warmup=300, num_samples=500,
                       inverse_mass=laplace)  # fmt: skip
    d = nuts.diagnostics
    assert np.all(np.isfinite(nuts.draws)) and np.all(np.isfinite(jax.vmap(loss)(nuts.draws)))
    assert np.max(d["r_hat"]) < 1.05
    # Measured: 60 of 500 transitions divergent (step size 0.06 under the Laplace mass):
    # the twin's posterior is far from Gaussian in places. Fail only beyond a fifth.
    assert d["divergences"] <= 0.2 * d["num_samples"]
    svi = fit_svi(loss, z_map, seed=0, num_steps=2000, learning_rate=0.01, num_draws=500,
                  init_covariance=laplace)  # fmt: skip
    assert np.all(np.isfinite(svi.diagnostics["covariance"]))
    sd = {"laplace": np.sqrt(np.diag(laplace)), "nuts": nuts.draws.std(axis=0),
          "svi": np.sqrt(np.diag(svi.diagnostics["covariance"]))}  # fmt: skip
    print(f"\nReplayBG day 1, d = {z_map.size}: Hessian {hessian_s:.1f} s;"
          f" NUTS {nuts.seconds:.1f} s, {d['num_steps']} gradients, {d['divergences']} divergent,"
          f" accept {d['accept_prob']:.2f}, max R-hat {np.max(d['r_hat']):.3f},"
          f" ESS min/median {np.min(d['ess']):.0f}/{np.median(d['ess']):.0f},"
          f" min ESS/s {np.min(d['ess']) / nuts.seconds:.1f};"
          f" SVI {svi.seconds:.1f} s, ELBO loss {svi.diagnostics['elbo_loss']:.2f},"
          f" importance ESS {svi.diagnostics['importance_ess_fraction']:.2f}")  # fmt: skip
    for name, values in sd.items():
        print(f"  posterior SD of z ({name}): {np.array2string(values, precision=2)}")
