"""Modality representation dropout (paper eq. 10-12, docs/ARCHITECTURE.md "Dropout convention").

Masks are *keep* masks (1 = h_i kept). Modality i is kept with probability 1 - w_i,
independently; rows with no modality kept are redrawn until every row keeps at least one, so
each row follows the product of Bernoullis conditioned on "at least one kept":
P(kept_i) = (1 - w_i) / (1 - prod_j w_j).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["apply_keep_mask", "sample_keep_mask"]


def sample_keep_mask(
    keep_probs: Tensor, batch: int, *, generator: torch.Generator | None = None
) -> Tensor:
    """Draw a (batch, N) float keep mask; no row is all zeros.

    ``keep_probs`` holds 1 - w_i per modality; at least one must be > 0.
    """
    if not bool((keep_probs > 0).any()):
        raise ValueError(
            f"keep probabilities {keep_probs.tolist()} are all 0: no mask keeps a modality; "
            "lower a drop_prob below 1"
        )
    probs = keep_probs.expand(batch, -1)
    mask = torch.bernoulli(probs, generator=generator)
    empty = mask.sum(1) == 0
    while bool(empty.any()):
        mask[empty] = torch.bernoulli(probs[empty], generator=generator)
        empty = mask.sum(1) == 0
    return mask


def apply_keep_mask(h: Tensor, keep: Tensor) -> Tensor:
    """h_i where keep is 1, zeros where it is 0 (eq. 10-11); ``keep`` is (B,) or (B, 1).

    Written with ``torch.where`` so a NaN in a dropped modality cannot leak into the core.
    """
    keep = keep.reshape(-1, 1)
    return torch.where(keep > 0.5, h, torch.zeros_like(h))
