"""Baselines of the paper's comparison tables: JMVAE-kl and MVAE on SensorySync's modality nets.

Both have one latent z (``model.baseline_latent_dim``, 26 in the paper) with prior N(0, I) and
decode every modality from it with the same :class:`ModalityNet` decoders SensorySync uses; each
modality net's encoder heads give a unimodal Gaussian q(z | x_i) of that size. One linear
warm-up over ``model.warmup_baseline_epochs`` (U_b) scales the prior KL terms.

JMVAE-kl (Suzuki et al. 2016), ``model.type: jmvae``
    Joint encoder q(z | x_1..x_N): a Gaussian MLP (widths ``model.core_hidden``, like the
    SensorySync core encoder) on the concatenated h_i of the modality encoders. Objective:
    ``sum_i lambda_i E_q[log p(x_i | z)] - w_b KL(q(z | x_1..N) || p(z))
    - alpha sum_i KL(q(z | x_1..N) || q(z | x_i))`` with alpha = ``model.jmvae_alpha``.

MVAE (Wu & Goodman 2018), ``model.type: mvae``
    q(z | x_S) = product of the Gaussian experts q(z | x_i), i in S, and the prior expert
    N(0, I). Subsampled objective: the sum of the ELBOs of the full set, of every single
    modality and (N > 2) of :data:`MVAE_RANDOM_SUBSETS` random subsets of 2..N-1 modalities;
    the ELBO of S reconstructs only the modalities in S.

Both implement :class:`sensorysync_training.likelihood.FlatDensities` (``posterior``,
``log_likelihood``) for the importance-sampled estimators, and the training contract of
``sensorysync-train``: ``forward(xs, progress_epochs) -> terms`` with ``loss`` and ``elbo``
(the unweighted joint bound) plus every term for logging.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .config import Config
from .elbo import gaussian_kl, standard_normal_kl, warmup_factor
from .modalities import ModalityNet
from .registry import register_model
from .sensorysync import GaussianMLP, reparameterize

__all__ = ["JMVAE", "MVAE", "MVAE_RANDOM_SUBSETS", "mvae_subsets", "product_of_experts"]

# Random subsets of 2..N-1 modalities added to MVAE's objective each step when N > 2 (the MVAE
# paper's k); with two modalities the objective is joint + each unimodal ELBO.
MVAE_RANDOM_SUBSETS = 1


def product_of_experts(locs: Tensor, logvars: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
    """Product of the prior expert N(0, I) and the Gaussian experts where ``keep`` is 1.

    ``locs``, ``logvars``: (B, N, D); ``keep``: (B, N). Returns (loc, logvar), each (B, D):
    precision = 1 + sum_i keep_i / var_i, loc = (sum_i keep_i loc_i / var_i) / precision.
    """
    precisions = torch.exp(-logvars) * keep.unsqueeze(-1)
    total = 1.0 + precisions.sum(dim=1)
    loc = (precisions * locs).sum(dim=1) / total
    return loc, -torch.log(total)


def mvae_subsets(
    num_modalities: int,
    num_random: int = MVAE_RANDOM_SUBSETS,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Keep masks (rows) of MVAE's subsampled ELBO terms: all, each single one, random others.

    The random subsets (only when ``num_modalities > 2``) are uniform over subsets of
    2..N-1 modalities.
    """
    rows = [torch.ones(num_modalities), *torch.eye(num_modalities)]
    if num_modalities > 2:
        for _ in range(num_random):
            while True:
                row = torch.bernoulli(torch.full((num_modalities,), 0.5), generator=generator)
                if 2 <= int(row.sum()) < num_modalities:
                    break
            rows.append(row)
    return torch.stack(rows)


class _SingleLatentVAE(nn.Module):
    """Modality nets with one shared latent of ``model.baseline_latent_dim``; prior N(0, I)."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.names = config.names
        self._latent_dim = config.model.baseline_latent_dim
        self.nets = nn.ModuleList(
            ModalityNet(dataclasses.replace(m, latent_dim=self._latent_dim))
            for m in config.modalities
        )

    @property
    def latent_dim(self) -> int:
        return self._latent_dim

    @property
    def num_modalities(self) -> int:
        return len(self.nets)

    def log_likelihood(self, index: int, x: Tensor, z: Tensor) -> Tensor:
        """log p(x_i | z), shape (B,)."""
        net = self.nets[index]
        return net.log_likelihood(x, net.decode(z))

    def _warmup(self, progress_epochs: float) -> float:
        return warmup_factor(progress_epochs, self.config.model.warmup_baseline_epochs)

    def _reconstruct(
        self, xs: Sequence[Tensor], z: Tensor, keep: Tensor | None, terms: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor]:
        """(weighted, unweighted) sum of log p(x_i | z) over the modalities kept (all if None).

        ``keep`` (N,) selects modalities for the whole batch. Adds ``recon/<name>`` to
        ``terms`` when every modality is reconstructed.
        """
        weighted = unweighted = xs[0].new_zeros(xs[0].shape[0])
        for i, (m, x) in enumerate(zip(self.config.modalities, xs)):
            if keep is not None and not bool(keep[i]):
                continue
            recon = self.log_likelihood(i, x, z)
            weighted = weighted + m.lambda_ * recon
            unweighted = unweighted + recon
            if keep is None:
                terms[f"recon/{m.name}"] = recon.mean()
        return weighted, unweighted


@register_model("jmvae")
class JMVAE(_SingleLatentVAE):
    """JMVAE-kl: joint encoder, unimodal encoders pulled towards it by alpha-weighted KLs."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        h_total = sum(net.hidden_dim for net in self.nets)
        model = config.model
        self.joint_encoder = GaussianMLP(
            h_total, model.core_hidden, self.latent_dim, model.core_activation
        )

    def posterior(self, xs: Sequence[Tensor], keep: Tensor) -> tuple[Tensor, Tensor]:
        """q(z | x_S): the joint encoder when S is every modality, else the unimodal one.

        JMVAE has encoders for one modality or all of them; other subsets raise ValueError.
        """
        pattern = keep[0]
        if not bool((keep == pattern).all()):
            raise ValueError("JMVAE.posterior needs the same keep mask on every row")
        kept = [i for i in range(self.num_modalities) if bool(pattern[i])]
        if len(kept) == self.num_modalities:
            return self._joint([net.encode(x).h for net, x in zip(self.nets, xs)])
        if len(kept) == 1:
            enc = self.nets[kept[0]].encode(xs[kept[0]])
            return enc.loc, enc.logvar
        names = [self.names[i] for i in kept]
        raise ValueError(
            f"JMVAE has no encoder for the modality subset {names}: it infers z from one "
            f"modality or from all of {list(self.names)}"
        )

    def _joint(self, hs: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        return self.joint_encoder(torch.cat(list(hs), dim=1))

    def forward(self, xs: Sequence[Tensor], progress_epochs: float) -> dict[str, Tensor]:
        """JMVAE-kl terms (batch means). ``loss`` is minimised; ``elbo`` is the joint bound."""
        encodings = [net.encode(x) for net, x in zip(self.nets, xs)]
        loc, logvar = self._joint([e.h for e in encodings])
        terms: dict[str, Tensor] = {}
        weighted, recon = self._reconstruct(xs, reparameterize(loc, logvar), None, terms)
        kl = standard_normal_kl(loc, logvar)
        w_b = self._warmup(progress_epochs)
        alpha = self.config.model.jmvae_alpha
        objective = weighted - w_b * kl
        for name, enc in zip(self.names, encodings):
            kl_uni = gaussian_kl(loc, logvar, enc.loc, enc.logvar)
            objective = objective - alpha * kl_uni
            terms[f"kl_unimodal/{name}"] = kl_uni.mean()
        terms["kl"] = kl.mean()
        terms["elbo"] = (recon - kl).mean()
        terms["loss"] = -objective.mean()
        terms["warmup_b"] = torch.tensor(w_b)
        return terms


@register_model("mvae")
class MVAE(_SingleLatentVAE):
    """MVAE: product-of-experts posterior with a prior expert, subsampled ELBO terms."""

    def posterior(self, xs: Sequence[Tensor], keep: Tensor) -> tuple[Tensor, Tensor]:
        """q(z | x_S): product of the prior expert and the experts with ``keep[:, i] == 1``."""
        locs, logvars = self._experts(xs)
        return product_of_experts(locs, logvars, keep)

    def _experts(self, xs: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        encodings = [net.encode(x) for net, x in zip(self.nets, xs)]
        locs = torch.stack([e.loc for e in encodings], dim=1)
        logvars = torch.stack([e.logvar for e in encodings], dim=1)
        return locs, logvars

    def forward(self, xs: Sequence[Tensor], progress_epochs: float) -> dict[str, Tensor]:
        """Sum of the subset ELBOs (batch means). ``elbo`` is the all-modality bound."""
        locs, logvars = self._experts(xs)
        batch = xs[0].shape[0]
        w_b = self._warmup(progress_epochs)
        terms: dict[str, Tensor] = {}
        objective = xs[0].new_zeros(batch)
        for row, subset in enumerate(mvae_subsets(self.num_modalities)):
            keep = subset.to(xs[0]).expand(batch, -1)
            loc, logvar = product_of_experts(locs, logvars, keep)
            everything = row == 0
            weighted, recon = self._reconstruct(
                xs, reparameterize(loc, logvar), None if everything else subset, terms
            )
            kl = standard_normal_kl(loc, logvar)
            objective = objective + weighted - w_b * kl
            label = "+".join(n for n, k in zip(self.names, subset) if bool(k))
            terms[f"elbo_subset/{label}"] = (recon - kl).mean()
            if everything:
                terms["kl"] = kl.mean()
                terms["elbo"] = (recon - kl).mean()
        terms["loss"] = -objective.mean()
        terms["warmup_b"] = torch.tensor(w_b)
        return terms
