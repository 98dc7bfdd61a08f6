"""Full-posterior inference for an unnormalised density exp(-loss(z)) over real vectors z.

The twin's identification (:mod:`glucotwin.twin.fit`) minimises a negative log posterior
``loss(z)`` over standardised unconstrained coordinates z; the Laplace approximation
(:mod:`glucotwin.twin.posterior`) replaces the posterior by a Gaussian at that MAP. This module
samples the posterior itself, against nothing but the callable: ``loss`` maps a 1-D array of
size d to a scalar, is traceable and differentiable with :mod:`jax`, and returns ``+inf`` for
invalid z (a simulation that overflows, a parameter outside its support).

- :func:`sample_nuts`: the No-U-Turn sampler (Hoffman & Gelman 2014, JMLR 15:1593, with the
  multinomial trajectory sampling and windowed step-size/mass-matrix adaptation of Stan;
  Betancourt 2017, arXiv:1701.02434), :class:`numpyro.infer.NUTS` on ``potential_fn=loss``.
  Started at the MAP with the Laplace covariance as initial (dense) inverse mass matrix, the
  sampler is already well conditioned, so a short warm-up suffices. An energy of ``+inf``
  ends a trajectory as a divergence and such a point is never selected, so no draw lands
  where ``loss`` is infinite.
- :func:`fit_svi`: automatic-differentiation variational inference (Kucukelbir et al. 2017,
  JMLR 18:1, the full-rank Gaussian family) maximising the evidence lower bound
  ELBO(q) = E_q[-loss(z)] + H[q] with :class:`numpyro.infer.SVI` and Adam; draws from the
  fitted Gaussian that fall where ``loss`` is infinite are rejected (the returned draws follow
  the Gaussian truncated to the valid region).

Both return a :class:`SamplerResult` with draws in z (mapping them to parameters is the
caller's), diagnostics and the wall time. With the same ``seed`` on the same machine the draws
are bit-identical (every random number comes from :func:`jax.random.key` ``(seed)``).

numpyro is used rather than hand-written samplers: its NUTS, adaptation and diagnostics (split
R-hat, effective sample size; Gelman et al., *Bayesian Data Analysis*, 3rd ed., section 11.4-11.5)
are widely used and tested.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin
from numpyro.infer import MCMC, NUTS, SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoMultivariateNormal
from numpyro.infer.initialization import init_to_value

Loss = Callable[[jax.Array], jax.Array]
"""A negative log density (up to a constant) of a 1-D real array z; ``+inf`` where invalid."""

MAX_REJECTION_ROUNDS = 50
"""Batches of ``num_draws`` guide draws :func:`fit_svi` may take to find enough valid ones."""


class SamplerResult(NamedTuple):
    """Posterior draws of z and how they were obtained.

    ``draws``: array [n, d] of z (for NUTS, chain after chain: ``num_samples`` rows per chain).
    ``diagnostics``: method-specific figures, documented in :func:`sample_nuts` and
    :func:`fit_svi`. ``seconds``: wall time, compilation included. ``method``: ``"nuts"`` or
    ``"svi"``.
    """

    draws: np.ndarray
    diagnostics: dict[str, Any]
    seconds: float
    method: str


def _check_start(loss: Loss, z_init: jax.Array) -> None:
    values = jax.vmap(loss)(jnp.atleast_2d(z_init))
    if not bool(jnp.all(jnp.isfinite(values))):
        raise ValueError(f"loss is not finite at z_init (values {np.asarray(values)})")


def _check_covariance(matrix: np.ndarray, size: int, name: str) -> None:
    if matrix.ndim == 1:
        if matrix.shape != (size,) or not np.all(matrix > 0):
            raise ValueError(f"{name} as a diagonal must be {size} positive numbers")
        return
    if matrix.shape != (size, size) or not np.allclose(matrix, matrix.T):
        raise ValueError(f"{name} must be a symmetric {size}x{size} matrix, got {matrix.shape}")
    try:
        np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError as error:
        raise ValueError(f"{name} is not positive definite") from error


def sample_nuts(
    loss: Loss,
    z_init,
    *,
    seed: int,
    num_warmup: int = 500,
    num_samples: int = 1000,
    num_chains: int = 1,
    inverse_mass=None,
    adapt_mass_matrix: bool = True,
    dense_mass: bool | None = None,
    max_tree_depth: int = 10,
    target_accept_prob: float = 0.8,
    chain_method: str = "sequential",
) -> SamplerResult:
    """Draw from exp(-``loss``(z)) with NUTS (numpyro; see the module docstring).

    ``z_init``: the start, shape [d] (every chain starts there, e.g. the MAP) or
    [num_chains, d] (over-dispersed starts make R-hat meaningful). ``inverse_mass``: initial
    inverse mass matrix, [d, d] (dense, e.g. the Laplace covariance H^-1) or [d] (diagonal);
    None is the identity. ``dense_mass`` defaults to whether ``inverse_mass`` is 2-D;
    ``adapt_mass_matrix`` lets warm-up re-estimate it (Welford windows as in Stan).
    ``chain_method``: ``"sequential"`` or ``"vectorized"`` (numpyro's; ``"parallel"`` needs
    one XLA device per chain).

    Diagnostics: ``divergences`` (post-warm-up count), ``accept_prob`` (mean),
    ``num_steps`` (post-warm-up leapfrog steps = gradient evaluations), ``r_hat`` and ``ess``
    (split R-hat and effective sample size per coordinate, arrays [d]), the adapted
    ``step_size`` ([num_chains]) and ``inverse_mass_matrix`` ([num_chains, d, d] if dense,
    else [num_chains, d]), ``num_chains``, ``num_warmup``, ``num_samples``,
    ``max_tree_depth``.
    """
    began = time.perf_counter()
    z_init = jnp.asarray(z_init, dtype=float)
    size = z_init.shape[-1]
    if z_init.ndim not in (1, 2) or (z_init.ndim == 2 and z_init.shape[0] != num_chains):
        raise ValueError(f"z_init must be [d] or [num_chains={num_chains}, d], got {z_init.shape}")
    if num_warmup < 0 or num_samples < 2 or num_chains < 1:
        raise ValueError("need num_warmup >= 0, num_samples >= 2 and num_chains >= 1")
    _check_start(loss, z_init)
    if inverse_mass is not None:
        inverse_mass = np.asarray(inverse_mass, dtype=float)
        _check_covariance(inverse_mass, size, "inverse_mass")
        if dense_mass is None:
            dense_mass = inverse_mass.ndim == 2
        if dense_mass and inverse_mass.ndim == 1:
            inverse_mass = np.diag(inverse_mass)
        if not dense_mass and inverse_mass.ndim == 2:
            raise ValueError("a dense inverse_mass needs dense_mass=True")
        inverse_mass = jnp.asarray(inverse_mass)
    dense_mass = bool(dense_mass)
    kernel = NUTS(
        potential_fn=loss,
        inverse_mass_matrix=inverse_mass,
        adapt_mass_matrix=adapt_mass_matrix,
        dense_mass=dense_mass,
        max_tree_depth=max_tree_depth,
        target_accept_prob=target_accept_prob,
    )
    mcmc = MCMC(
        kernel,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method=chain_method,
        progress_bar=False,
    )
    if z_init.ndim == 1 and num_chains > 1:
        z_init = jnp.broadcast_to(z_init, (num_chains, size))
    mcmc.run(
        jax.random.key(seed),
        init_params=z_init,
        extra_fields=("num_steps", "diverging", "accept_prob"),
    )
    by_chain = np.asarray(mcmc.get_samples(group_by_chain=True))
    fields = mcmc.get_extra_fields(group_by_chain=True)
    adapted = mcmc.last_state.adapt_state
    diagnostics = {
        "divergences": int(np.sum(fields["diverging"])),
        "accept_prob": float(np.mean(fields["accept_prob"])),
        "num_steps": int(np.sum(fields["num_steps"])),
        "r_hat": np.asarray(split_gelman_rubin(by_chain)),
        "ess": np.asarray(effective_sample_size(by_chain)),
        "step_size": np.asarray(adapted.step_size).reshape(num_chains),
        "inverse_mass_matrix": np.asarray(adapted.inverse_mass_matrix).reshape(
            num_chains, *((size, size) if dense_mass else (size,))
        ),
        "num_chains": num_chains,
        "num_warmup": num_warmup,
        "num_samples": num_samples,
        "max_tree_depth": max_tree_depth,
    }
    draws = by_chain.reshape(num_chains * num_samples, size)
    return SamplerResult(draws, diagnostics, time.perf_counter() - began, "nuts")


def fit_svi(
    loss: Loss,
    z_init,
    *,
    seed: int,
    num_steps: int = 2000,
    learning_rate: float = 1e-2,
    num_draws: int = 1000,
    num_particles: int = 1,
    init_covariance=None,
    init_scale: float = 0.1,
) -> SamplerResult:
    """Fit a full-rank Gaussian q(z) = N(m, L L^T) to exp(-``loss``(z)) by maximising the
    ELBO (ADVI; see the module docstring), then draw ``num_draws`` valid z from it.

    The mean starts at ``z_init`` ([d], e.g. the MAP), the Cholesky factor at that of
    ``init_covariance`` ([d, d], e.g. the Laplace covariance) or else at ``init_scale`` times
    the identity. Adam with a learning rate cosine-decayed from ``learning_rate`` to a
    twentieth of it over ``num_steps`` (the decay quiets the stochastic-gradient noise of the
    final fit); ``num_particles`` Monte-Carlo draws per ELBO gradient. A step whose ELBO or
    update is not finite (a draw where ``loss`` is infinite) is skipped. A Gaussian cannot
    respect a hard wall: where the posterior has real mass next to a region of infinite
    ``loss`` the skipped steps bias q towards that region (a high ``invalid_fraction`` says
    so); use :func:`sample_nuts` there. Walls far in the tails, like the twin's overflowing
    simulations, do no harm.

    Diagnostics: ``elbo_loss`` (the negative ELBO, mean of the last tenth of the steps, up to
    the density's unknown normalising constant), ``losses`` (per step, array [num_steps]),
    ``skipped_steps``, ``mean`` and ``covariance`` of the fitted Gaussian, ``invalid_fraction``
    (share of its draws where ``loss`` is infinite, rejected), and ``importance_ess_fraction``,
    (sum w)^2 / (n sum w^2) for w = exp(-loss) / q over the returned draws: near 1 when q
    matches the target, small when it does not.
    """
    began = time.perf_counter()
    z_init = jnp.asarray(z_init, dtype=float)
    if z_init.ndim != 1:
        raise ValueError(f"z_init must be 1-D, got shape {z_init.shape}")
    if num_steps < 1 or num_draws < 1 or num_particles < 1 or not learning_rate > 0:
        raise ValueError("need num_steps, num_draws, num_particles >= 1 and learning_rate > 0")
    _check_start(loss, z_init)
    size = z_init.shape[0]

    def model():
        z = numpyro.sample("z", dist.ImproperUniform(dist.constraints.real_vector, (), (size,)))
        numpyro.factor("posterior", -loss(z))

    guide = AutoMultivariateNormal(
        model, init_loc_fn=init_to_value(values={"z": z_init}), init_scale=init_scale
    )
    schedule = optax.cosine_decay_schedule(learning_rate, num_steps, alpha=0.05)
    svi = SVI(model, guide, optax.adam(schedule), Trace_ELBO(num_particles=num_particles))
    init_params = None
    if init_covariance is not None:
        init_covariance = np.asarray(init_covariance, dtype=float)
        if init_covariance.ndim != 2:
            raise ValueError("init_covariance must be a [d, d] matrix")
        _check_covariance(init_covariance, size, "init_covariance")
        init_params = {"auto_scale_tril": jnp.asarray(np.linalg.cholesky(init_covariance))}
    key_fit, key_draw = jax.random.split(jax.random.key(seed))
    fitted = svi.run(
        key_fit, num_steps, progress_bar=False, stable_update=True, init_params=init_params
    )
    losses = np.asarray(fitted.losses)
    gaussian = guide.get_posterior(fitted.params)

    @jax.jit
    def draw(key):
        z = gaussian.sample(key, (num_draws,))
        return z, jax.vmap(loss)(z), gaussian.log_prob(z)

    kept, log_weights, invalid = [], [], 0
    for round_ in range(MAX_REJECTION_ROUNDS):
        z, values, log_q = (np.asarray(a) for a in draw(jax.random.fold_in(key_draw, round_)))
        valid = np.isfinite(values)
        invalid += int(np.sum(~valid))
        kept.append(z[valid])
        log_weights.append(-values[valid] - log_q[valid])
        if sum(len(k) for k in kept) >= num_draws:
            break
    else:
        raise RuntimeError(
            f"fewer than {num_draws} of {MAX_REJECTION_ROUNDS * num_draws} draws of the fitted "
            "Gaussian have a finite loss: the fit failed"
        )
    draws = np.concatenate(kept)[:num_draws]
    log_w = np.concatenate(log_weights)[:num_draws]
    weights = np.exp(log_w - log_w.max())
    finite = losses[np.isfinite(losses)]
    tail = finite[-max(1, len(finite) // 10) :]
    diagnostics = {
        "elbo_loss": float(np.mean(tail)),
        "losses": losses,
        "skipped_steps": int(np.sum(~np.isfinite(losses))),
        "mean": np.asarray(gaussian.mean),
        "covariance": np.asarray(gaussian.covariance_matrix),
        "invalid_fraction": invalid / (invalid + sum(len(k) for k in kept)),
        "importance_ess_fraction": float(weights.sum() ** 2 / (num_draws * np.sum(weights**2))),
    }
    return SamplerResult(draws, diagnostics, time.perf_counter() - began, "svi")
