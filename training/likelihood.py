"""Importance-sampled log-likelihood estimators (the paper's evaluation protocol, Table 2).

Every estimate has the form ``log p(x_T) ~ LME_k log w_k`` (LME = log-mean-exp over K samples)
with ``w_k = p(x_T, z_k) / prop(z_k | x_S)``: ``T`` is the set of modalities whose likelihood is
estimated, ``S`` the set the proposal is inferred from. The proposal of each model family:

Hierarchical (SensorySync, :class:`HierarchicalSampler`)
    ``z^c ~ q(z^c | h_S)`` (core posterior with the h of modalities outside S zeroed, i.e. the
    keep mask of S); for ``i in T``: ``z_i^m ~ q(z_i^m | x_i)`` if ``i in S``, else
    ``z_i^m ~ p(z_i^m | z^c)``. Weight::

        log w = log p(z^c) - log q(z^c | h_S)
                + sum_{i in T}        log p(x_i | z_i^m)
                + sum_{i in T and S}  log p(z_i^m | z^c) - log q(z_i^m | x_i)

    (for ``i`` in T but not in S the conditional prior is the proposal, so it cancels).

Flat (JMVAE-kl, MVAE, :class:`FlatSampler`)
    ``z ~ q(z | x_S)`` (JMVAE: its unimodal or joint encoder; MVAE: the product of experts of S
    and the prior expert). Weight:
    ``log w = log p(z) + sum_{i in T} log p(x_i | z) - log q(z | x_S)``.

Several targets ``T`` that share one proposal ``S`` are estimated from the same samples (their
decodes are shared); ``log p(x_1 | x_2)`` is then ``log p(x_1, x_2) - log p(x_2)``, both from
the label proposal. Samples are drawn from fixed standard-normal noise per data point (seeded by
``seed`` and the point's dataset index, drawn whole for all K), so an estimate does not depend on
how points and samples are batched. Log-weights are computed in the model's dtype and
log-sum-exp accumulated over sample chunks in float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn
from tqdm import tqdm

from .sensorysync import SensorySync

__all__ = [
    "DEFAULT_MAX_BATCH_SAMPLES",
    "DEFAULT_NUM_SAMPLES",
    "FlatDensities",
    "FlatSampler",
    "HierarchicalDensities",
    "HierarchicalSampler",
    "ImportanceSampler",
    "LikelihoodError",
    "SensorySyncDensities",
    "estimate_log_likelihoods",
    "gaussian_log_density",
    "sampler_for",
]

DEFAULT_NUM_SAMPLES = 5000
# Data points x importance samples per forward pass: bounds the decoder activations in memory
# (a 1x28x28 conv decoder keeps about 60 kB per sample: 1024 samples ~ 60 MB). On a CPU 1024 ran
# faster than 4096 (cache); on a GPU raise it (--max-batch-samples) for throughput.
DEFAULT_MAX_BATCH_SAMPLES = 1024
_LOG_2PI = math.log(2.0 * math.pi)


class LikelihoodError(ValueError):
    """An estimator was asked for something it cannot compute (bad modality sets, sizes)."""


def gaussian_log_density(z: Tensor, loc: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; loc, diag(exp(logvar))) summed over the last dimension."""
    return -0.5 * (_LOG_2PI + logvar + (z - loc).pow(2) * torch.exp(-logvar)).sum(-1)


def _log_density_of_noise(logvar: Tensor, eps: Tensor) -> Tensor:
    """log N(z; loc, exp(logvar)) at z = loc + exp(logvar / 2) * eps (exact, no subtraction)."""
    return -0.5 * (_LOG_2PI + logvar + eps.pow(2)).sum(-1)


def _standard_normal_log_density(z: Tensor) -> Tensor:
    return -0.5 * (_LOG_2PI + z.pow(2)).sum(-1)


class HierarchicalDensities(Protocol):
    """The densities of a SensorySync-structured model (core latent z^c, one z_i^m per modality).

    Latent tensors are ``(M, D)``; data tensors ``(M, *shape)``; densities return ``(M,)``.
    """

    @property
    def core_latent_dim(self) -> int: ...

    @property
    def modality_latent_dims(self) -> tuple[int, ...]: ...

    def modality_posterior(self, index: int, x: Tensor) -> tuple[Tensor, Tensor]:
        """(loc, logvar) of q(z_i^m | x_i)."""
        ...

    def core_posterior(self, xs: Sequence[Tensor], keep: Tensor) -> tuple[Tensor, Tensor]:
        """(loc, logvar) of q(z^c | h) with h_i zeroed where ``keep[:, i] == 0``."""
        ...

    def conditional_prior(self, index: int, z_core: Tensor) -> tuple[Tensor, Tensor]:
        """(loc, logvar) of p(z_i^m | z^c)."""
        ...

    def log_likelihood(self, index: int, x: Tensor, z: Tensor) -> Tensor:
        """log p(x_i | z_i^m), summed over the event dimensions."""
        ...


@runtime_checkable
class FlatDensities(Protocol):
    """The densities of a single-latent multimodal VAE with prior N(0, I) (JMVAE, MVAE)."""

    @property
    def latent_dim(self) -> int: ...

    @property
    def num_modalities(self) -> int: ...

    def posterior(self, xs: Sequence[Tensor], keep: Tensor) -> tuple[Tensor, Tensor]:
        """(loc, logvar) of q(z | x_S), S = the modalities with ``keep[:, i] == 1``."""
        ...

    def log_likelihood(self, index: int, x: Tensor, z: Tensor) -> Tensor:
        """log p(x_i | z), summed over the event dimensions."""
        ...


class ImportanceSampler(Protocol):
    """Turns standard-normal noise into proposal samples and returns their log-weights."""

    @property
    def num_modalities(self) -> int: ...

    @property
    def noise_dim(self) -> int: ...

    def log_weights(
        self,
        xs: Sequence[Tensor],
        infer_from: frozenset[int],
        targets: Sequence[frozenset[int]],
        eps: Tensor,
    ) -> Tensor:
        """log w of shape ``(len(targets), K, B)`` for data ``xs`` (B points), noise (K, B, D)."""
        ...


class SensorySyncDensities:
    """:class:`HierarchicalDensities` of a trained :class:`SensorySync` model."""

    def __init__(self, model: SensorySync) -> None:
        self.model = model

    @property
    def core_latent_dim(self) -> int:
        return self.model.config.model.core_latent_dim

    @property
    def modality_latent_dims(self) -> tuple[int, ...]:
        return tuple(net.latent_dim for net in self.model.nets)

    def modality_posterior(self, index: int, x: Tensor) -> tuple[Tensor, Tensor]:
        enc = self.model.nets[index].encode(x)
        return enc.loc, enc.logvar

    def core_posterior(self, xs: Sequence[Tensor], keep: Tensor) -> tuple[Tensor, Tensor]:
        return self.model.core_posterior([e.h for e in self.model.encode(xs)], keep)

    def conditional_prior(self, index: int, z_core: Tensor) -> tuple[Tensor, Tensor]:
        return self.model.core_decoders[index](z_core)

    def log_likelihood(self, index: int, x: Tensor, z: Tensor) -> Tensor:
        net = self.model.nets[index]
        return net.log_likelihood(x, net.decode(z))


def _keep_mask(infer_from: frozenset[int], num_modalities: int, batch: int, like: Tensor) -> Tensor:
    keep = torch.zeros(batch, num_modalities, dtype=like.dtype, device=like.device)
    keep[:, sorted(infer_from)] = 1.0
    return keep


def _repeat_points(x: Tensor, num_samples: int) -> Tensor:
    """(B, *shape) -> (K * B, *shape), sample-major, matching ``z.reshape(K * B, D)``."""
    repeated = x.unsqueeze(0).expand(num_samples, *x.shape)
    return repeated.reshape(num_samples * x.shape[0], *x.shape[1:])


def _reparameterise(loc: Tensor, logvar: Tensor, eps: Tensor) -> Tensor:
    return loc + torch.exp(0.5 * logvar) * eps


class HierarchicalSampler:
    """Importance sampler of a SensorySync-structured model (see the module docstring)."""

    def __init__(self, densities: HierarchicalDensities) -> None:
        self.densities = densities

    @property
    def num_modalities(self) -> int:
        return len(self.densities.modality_latent_dims)

    @property
    def noise_dim(self) -> int:
        return self.densities.core_latent_dim + sum(self.densities.modality_latent_dims)

    def log_weights(
        self,
        xs: Sequence[Tensor],
        infer_from: frozenset[int],
        targets: Sequence[frozenset[int]],
        eps: Tensor,
    ) -> Tensor:
        d = self.densities
        num_samples, batch, _ = eps.shape
        dc = d.core_latent_dim
        keep = _keep_mask(infer_from, self.num_modalities, batch, xs[0])
        loc_c, logvar_c = d.core_posterior(xs, keep)  # (B, Dc)
        eps_c = eps[..., :dc]
        z_c = _reparameterise(loc_c, logvar_c, eps_c)  # (K, B, Dc)
        log_w_core = _standard_normal_log_density(z_c) - _log_density_of_noise(logvar_c, eps_c)
        z_c_flat = z_c.reshape(num_samples * batch, dc)

        offsets = [dc]
        for dm in d.modality_latent_dims:
            offsets.append(offsets[-1] + dm)
        terms: dict[int, Tensor] = {}
        for i in sorted(frozenset().union(*targets)):
            eps_i = eps[..., offsets[i] : offsets[i + 1]]
            prior_loc, prior_logvar = d.conditional_prior(i, z_c_flat)
            if i in infer_from:
                loc, logvar = d.modality_posterior(i, xs[i])  # (B, Dm)
                z = _reparameterise(loc, logvar, eps_i).reshape(num_samples * batch, -1)
                prior_term = gaussian_log_density(z, prior_loc, prior_logvar)
                proposal_term = _log_density_of_noise(logvar, eps_i).reshape(-1)
                correction = prior_term - proposal_term
            else:  # proposal = conditional prior: the two densities cancel
                z = _reparameterise(prior_loc, prior_logvar, eps_i.reshape(num_samples * batch, -1))
                correction = torch.zeros(num_samples * batch, dtype=z.dtype, device=z.device)
            log_px = d.log_likelihood(i, _repeat_points(xs[i], num_samples), z)
            terms[i] = (log_px + correction).reshape(num_samples, batch)
        return torch.stack([log_w_core + sum(terms[i] for i in sorted(t)) for t in targets])


class FlatSampler:
    """Importance sampler of a single-latent model with prior N(0, I) (JMVAE-kl, MVAE)."""

    def __init__(self, densities: FlatDensities) -> None:
        self.densities = densities

    @property
    def num_modalities(self) -> int:
        return self.densities.num_modalities

    @property
    def noise_dim(self) -> int:
        return self.densities.latent_dim

    def log_weights(
        self,
        xs: Sequence[Tensor],
        infer_from: frozenset[int],
        targets: Sequence[frozenset[int]],
        eps: Tensor,
    ) -> Tensor:
        d = self.densities
        num_samples, batch, dim = eps.shape
        keep = _keep_mask(infer_from, self.num_modalities, batch, xs[0])
        loc, logvar = d.posterior(xs, keep)
        z = _reparameterise(loc, logvar, eps)  # (K, B, D)
        log_w_latent = _standard_normal_log_density(z) - _log_density_of_noise(logvar, eps)
        z_flat = z.reshape(num_samples * batch, dim)
        log_px = {
            i: d.log_likelihood(i, _repeat_points(xs[i], num_samples), z_flat).reshape(
                num_samples, batch
            )
            for i in sorted(frozenset().union(*targets))
        }
        return torch.stack([log_w_latent + sum(log_px[i] for i in sorted(t)) for t in targets])


def sampler_for(model: nn.Module) -> ImportanceSampler:
    """The importance sampler of a SensorySync model or of a single-latent baseline."""
    if isinstance(model, SensorySync):
        return HierarchicalSampler(SensorySyncDensities(model))
    if isinstance(model, FlatDensities):
        return FlatSampler(model)
    raise LikelihoodError(
        f"no importance sampler for {type(model).__name__}: expected SensorySync or a model "
        "with posterior(xs, keep) and log_likelihood(index, x, z) (JMVAE, MVAE)"
    )


def _check_sets(
    infer_from: frozenset[int], targets: Sequence[frozenset[int]], num_modalities: int
) -> None:
    valid = set(range(num_modalities))
    if not infer_from or not infer_from <= valid:
        raise LikelihoodError(
            f"infer_from {sorted(infer_from)} must be a non-empty subset of modalities "
            f"{sorted(valid)}"
        )
    if not targets or any(not t or not t <= valid for t in targets):
        raise LikelihoodError(
            f"targets {[sorted(t) for t in targets]} must be non-empty subsets of modalities "
            f"{sorted(valid)}"
        )


def _point_noise(seed: int, index: int, num_samples: int, dim: int) -> Tensor:
    """Standard-normal noise (K, D) of one data point, independent of batching."""
    # torch's CPU generator keeps 32 bits of its seed: mix seed and index into 32 bits.
    generator = torch.Generator().manual_seed((seed * 0x9E3779B1 + index) % 2**32)
    return torch.randn(num_samples, dim, generator=generator)


@torch.no_grad()
def estimate_log_likelihoods(
    sampler: ImportanceSampler,
    xs: Sequence[Tensor],
    infer_from: frozenset[int],
    targets: Sequence[frozenset[int]],
    *,
    num_samples: int = DEFAULT_NUM_SAMPLES,
    seed: int = 0,
    indices: Tensor | None = None,
    max_batch_samples: int = DEFAULT_MAX_BATCH_SAMPLES,
    progress: str | None = None,
) -> Tensor:
    """Per-point estimates ``log p(x_T)`` for each target set T, shape ``(len(targets), B)``.

    ``xs``: one tensor per modality, ``(B, *shape)``, on the sampler's device (the noise is
    drawn on the CPU and moved there). ``indices``: dataset index of each point (seeds its noise;
    default ``arange(B)``). ``max_batch_samples`` bounds points x samples per forward pass.
    ``progress``: a tqdm description, or None for no bar. Returns float64 on the CPU.
    """
    _check_sets(infer_from, targets, sampler.num_modalities)
    if len(xs) != sampler.num_modalities:
        raise LikelihoodError(
            f"got {len(xs)} data tensors for a model of {sampler.num_modalities} modalities"
        )
    if num_samples < 1 or max_batch_samples < 1:
        raise LikelihoodError(
            f"num_samples ({num_samples}) and max_batch_samples ({max_batch_samples}) must be >= 1"
        )
    num_points = xs[0].shape[0]
    if indices is None:
        indices = torch.arange(num_points)
    if indices.shape != (num_points,):
        raise LikelihoodError(f"indices shape {tuple(indices.shape)} != ({num_points},)")
    sample_chunks = math.ceil(num_samples / max_batch_samples)
    sample_chunk = math.ceil(num_samples / sample_chunks)
    point_chunk = max(1, max_batch_samples // sample_chunk)
    device = xs[0].device
    out = torch.empty(len(targets), num_points, dtype=torch.float64)
    bar = tqdm(total=num_points, desc=progress, unit="pt", disable=progress is None, leave=False)
    for start in range(0, num_points, point_chunk):
        stop = min(start + point_chunk, num_points)
        batch_xs = [x[start:stop] for x in xs]
        noise = torch.stack(
            [
                _point_noise(seed, int(i), num_samples, sampler.noise_dim)
                for i in indices[start:stop]
            ],
            dim=1,
        ).to(device)  # (K, b, D)
        total = torch.full((len(targets), stop - start), -math.inf, dtype=torch.float64)
        for k0 in range(0, num_samples, sample_chunk):
            log_w = sampler.log_weights(
                batch_xs, infer_from, targets, noise[k0 : k0 + sample_chunk]
            ).to(device="cpu", dtype=torch.float64)
            total = torch.logaddexp(total, torch.logsumexp(log_w, dim=1))
        if not torch.isfinite(total).all():
            bad = indices[start:stop][~torch.isfinite(total).all(0)].tolist()
            raise LikelihoodError(
                f"non-finite log-weights for data points {bad} (infer_from {sorted(infer_from)}): "
                "check the model for NaN parameters or inputs outside its support"
            )
        out[:, start:stop] = total - math.log(num_samples)
        bar.update(stop - start)
    bar.close()
    return out
