"""ELBO pieces: diagonal Gaussians, their closed-form KLs, and the linear KL warm-up (eq. 13)."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Independent, Normal, kl_divergence

__all__ = ["diag_gaussian", "gaussian_kl", "standard_normal_kl", "warmup_factor"]


def diag_gaussian(loc: Tensor, logvar: Tensor) -> Independent:
    """N(loc, diag(exp(logvar))) over the last dimension.

    Arguments are not validated: a NaN must flow into the loss, where the trainer reports the
    step and the term, instead of failing deep inside torch.distributions.
    """
    scale = torch.exp(0.5 * logvar)
    return Independent(Normal(loc, scale, validate_args=False), 1, validate_args=False)


def gaussian_kl(loc_q: Tensor, logvar_q: Tensor, loc_p: Tensor, logvar_p: Tensor) -> Tensor:
    """KL(N(loc_q, e^logvar_q) || N(loc_p, e^logvar_p)) summed over the last dim, shape (B,)."""
    return kl_divergence(diag_gaussian(loc_q, logvar_q), diag_gaussian(loc_p, logvar_p))


def standard_normal_kl(loc: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(loc, e^logvar) || N(0, I)), shape (B,)."""
    return gaussian_kl(loc, logvar, torch.zeros_like(loc), torch.zeros_like(logvar))


def warmup_factor(progress_epochs: float, warmup_epochs: float) -> float:
    """Linear warm-up: min(1, progress / U); 1 when U <= 0 (no warm-up)."""
    if warmup_epochs <= 0 or math.isinf(progress_epochs):
        return 1.0
    return min(1.0, max(0.0, progress_epochs) / warmup_epochs)
