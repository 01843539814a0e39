"""SensorySync: the N-modality hierarchical VAE with modality representation dropout.

Generative model: z^c ~ N(0, I); z_i^m ~ p(z_i^m | z^c) (core decoders, diagonal Gaussians);
x_i ~ p(x_i | z_i^m) (modality decoders). Inference: q(z_i^m | x_i) from each modality encoder,
q(z^c | h^d) from the core encoder fed the concatenated, dropout-masked h_i (eq. 10-12).
``forward`` returns the terms of the ELBO of eq. 13 for one training step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .config import Config
from .dropout import apply_keep_mask, sample_keep_mask
from .elbo import gaussian_kl, standard_normal_kl, warmup_factor
from .modalities import Encoding, ModalityNet, activation
from .registry import register_model

__all__ = ["GaussianMLP", "SensorySync", "reparameterize"]


def reparameterize(loc: Tensor, logvar: Tensor) -> Tensor:
    """One sample loc + exp(logvar / 2) * eps, differentiable in loc and logvar."""
    return loc + torch.exp(0.5 * logvar) * torch.randn_like(loc)


class GaussianMLP(nn.Module):
    """MLP with loc and logvar heads: the core encoder and the core decoders."""

    def __init__(self, n_in: int, hidden: Sequence[int], n_out: int, act: str) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for a, b in zip([n_in, *hidden[:-1]], hidden):
            layers += [nn.Linear(a, b), activation(act)]
        self.trunk = nn.Sequential(*layers)
        self.loc = nn.Linear(hidden[-1], n_out)
        self.logvar = nn.Linear(hidden[-1], n_out)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        t = self.trunk(x)
        return self.loc(t), self.logvar(t)


@register_model("sensorysync")
class SensorySync(nn.Module):
    """The SensorySync model for the modalities of a Config, in config order."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.names = config.names
        self.nets = nn.ModuleList(ModalityNet(m) for m in config.modalities)
        core = config.model
        act = core.core_activation
        h_total = sum(net.hidden_dim for net in self.nets)
        self.core_encoder = GaussianMLP(h_total, core.core_hidden, core.core_latent_dim, act)
        self.core_decoders = nn.ModuleList(
            GaussianMLP(core.core_latent_dim, core.core_hidden[::-1], m.latent_dim, act)
            for m in config.modalities
        )
        self.register_buffer(
            "keep_probs", torch.tensor([1.0 - m.drop_prob for m in config.modalities])
        )

    # --- building blocks (public: the likelihood estimators use them) ---

    def encode(self, xs: Sequence[Tensor]) -> list[Encoding]:
        """(h_i, loc, logvar of q(z_i^m | x_i)) for every modality."""
        return [net.encode(x) for net, x in zip(self.nets, xs)]

    def core_posterior(self, hs: Sequence[Tensor], keep: Tensor) -> tuple[Tensor, Tensor]:
        """(loc, logvar) of q(z^c | h^d) with h^d = keep (.) h; ``keep`` is (B, N)."""
        hd = [apply_keep_mask(h, keep[:, i]) for i, h in enumerate(hs)]
        return self.core_encoder(torch.cat(hd, dim=1))

    def core_priors(self, z_core: Tensor) -> list[tuple[Tensor, Tensor]]:
        """(loc, logvar) of p(z_i^m | z^c) for every modality."""
        return [dec(z_core) for dec in self.core_decoders]

    def sample_keep_mask(self, batch: int) -> Tensor:
        """A dropout keep mask (batch, N), never with a row of zeros."""
        return sample_keep_mask(self.keep_probs, batch)

    # --- training ---

    def forward(
        self, xs: Sequence[Tensor], progress_epochs: float, keep: Tensor | None = None
    ) -> dict[str, Tensor]:
        """ELBO terms (batch means) and the loss for one step.

        ``progress_epochs`` drives the KL warm-ups (``inf`` = full weights). Without ``keep``, a
        dropout mask is sampled in training mode and every modality is kept in eval mode.
        Keys: ``loss`` (minimised), ``elbo`` (unweighted eq. 13 bound), ``recon/<name>``,
        ``kl_m/<name>``, ``kl_c``, ``warmup_m``, ``warmup_c``.
        """
        batch = xs[0].shape[0]
        if keep is None:
            keep = self.sample_keep_mask(batch) if self.training else xs[0].new_ones(
                batch, len(self.nets)
            )
        encodings = self.encode(xs)
        core_loc, core_logvar = self.core_posterior([e.h for e in encodings], keep)
        z_core = reparameterize(core_loc, core_logvar)
        priors = self.core_priors(z_core)
        w_m = warmup_factor(progress_epochs, self.config.model.warmup_modality_epochs)
        w_c = warmup_factor(progress_epochs, self.config.model.warmup_core_epochs)
        terms: dict[str, Tensor] = {}
        kl_c = standard_normal_kl(core_loc, core_logvar)
        elbo = -kl_c
        objective = -self.config.model.beta_c * w_c * kl_c
        terms["kl_c"] = kl_c.mean()
        for net, m, x, enc, (p_loc, p_logvar) in zip(
            self.nets, self.config.modalities, xs, encodings, priors
        ):
            z = reparameterize(enc.loc, enc.logvar)
            recon = net.log_likelihood(x, net.decode(z))
            kl_m = gaussian_kl(enc.loc, enc.logvar, p_loc, p_logvar)
            elbo = elbo + recon - kl_m
            objective = objective + m.lambda_ * recon - m.beta_m * w_m * kl_m
            terms[f"recon/{m.name}"] = recon.mean()
            terms[f"kl_m/{m.name}"] = kl_m.mean()
        terms["elbo"] = elbo.mean()
        terms["loss"] = -objective.mean()
        terms["warmup_m"] = core_loc.new_tensor(w_m)
        terms["warmup_c"] = core_loc.new_tensor(w_c)
        return terms

    # --- deployment ---

    def export_forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        """Deterministic fusion for the ONNX graph: ``export_forward(*xs, mask)``.

        Returns ``(core_mean, core_logvar, *recons)``. z_i^m is the mean of q(z_i^m | x_i)
        where ``mask[:, i]`` is 1 and the mean of p(z_i^m | z^c = core_mean) where it is 0;
        the mask zeroes h_i in the core encoder exactly as the dropout does.
        """
        *xs, mask = inputs
        encodings = self.encode(xs)
        core_loc, core_logvar = self.core_posterior([e.h for e in encodings], mask)
        recons = []
        for i, (net, enc, (p_loc, _)) in enumerate(
            zip(self.nets, encodings, self.core_priors(core_loc))
        ):
            z = torch.where(mask[:, i : i + 1] > 0.5, enc.loc, p_loc)
            recons.append(net.mean(net.decode(z)))
        return (core_loc, core_logvar, *recons)
