"""Modality networks: encoder x_i -> h_i -> q(z_i^m | x_i) and decoder z_i^m -> p(x_i | z_i^m).

``decode`` returns one tensor of likelihood parameters shaped like ``x``: logits for Bernoulli
and categorical, the pre-activation location for Gaussian and Laplace (the scale is a learned
per-element parameter of the net, independent of z). Image locations go through a sigmoid so
reconstructions stay in [0, 1]; vector and audio locations are unconstrained.

Everything here traces into ONNX with a dynamic batch: reshapes use -1 for the batch axis.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Laplace, Normal

from .config import ModalityConfig, NetworkConfig

__all__ = ["Encoding", "ModalityNet", "activation"]

# Learned log-scales of continuous likelihoods are kept in this range (scale 2.5e-3 .. 20).
LOG_SCALE_MIN = -6.0
LOG_SCALE_MAX = 3.0


class Encoding(NamedTuple):
    """Output of a modality encoder: h_i (last hidden layer) and q(z_i^m | x_i) parameters."""

    h: Tensor  # (B, hidden[-1])
    loc: Tensor  # (B, latent_dim)
    logvar: Tensor  # (B, latent_dim)


def activation(name: str) -> nn.Module:
    """The activation module named in a NetworkConfig."""
    if name == "swish":
        return nn.SiLU()
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(0.2)
    if name == "tanh":
        return nn.Tanh()
    raise ValueError(f"unknown activation {name!r}; use swish, relu, leaky_relu or tanh")


def _dense(sizes: list[int], net: NetworkConfig) -> list[nn.Module]:
    """Linear + [BatchNorm] + activation for each consecutive pair in ``sizes``."""
    layers: list[nn.Module] = []
    for n_in, n_out in itertools.pairwise(sizes):
        layers.append(nn.Linear(n_in, n_out))
        if net.batch_norm:
            layers.append(nn.BatchNorm1d(n_out))
        layers.append(activation(net.activation))
    return layers


def _conv_block(c_in: int, c_out: int, net: NetworkConfig, *, transpose: bool) -> list[nn.Module]:
    conv_cls = nn.ConvTranspose2d if transpose else nn.Conv2d
    layers: list[nn.Module] = [conv_cls(c_in, c_out, kernel_size=4, stride=2, padding=1)]
    if net.batch_norm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(activation(net.activation))
    return layers


class ModalityNet(nn.Module):
    """Encoder and decoder of one modality, with its likelihood."""

    def __init__(self, config: ModalityConfig) -> None:
        super().__init__()
        self.config = config
        self.shape = tuple(config.shape)
        self.likelihood = config.likelihood
        net = config.network
        self.hidden_dim = net.hidden[-1]
        self.latent_dim = config.latent_dim
        hidden = list(net.hidden)
        if net.arch == "conv":
            channels = [self.shape[0], *net.channels]
            side = 2 ** len(net.channels)
            self._feature_shape = (channels[-1], self.shape[1] // side, self.shape[2] // side)
            n_features = math.prod(self._feature_shape)
            enc: list[nn.Module] = []
            for c_in, c_out in itertools.pairwise(channels):
                enc += _conv_block(c_in, c_out, net, transpose=False)
            enc.append(nn.Flatten())
            dec_convs: list[nn.Module] = []
            rev = channels[::-1]
            for c_in, c_out in itertools.pairwise(rev[:-1]):
                dec_convs += _conv_block(c_in, c_out, net, transpose=True)
            dec_convs.append(nn.ConvTranspose2d(rev[-2], rev[-1], 4, stride=2, padding=1))
            dec_dense = _dense([self.latent_dim, *hidden[::-1], n_features], net)
        else:
            self._feature_shape = self.shape
            n_features = math.prod(self.shape)
            enc = [nn.Flatten()]
            dec_convs = []
            # the output layer has no activation: it gives likelihood parameters
            dec_dense = [*_dense([self.latent_dim, *hidden[::-1]], net),
                         nn.Linear(hidden[0], n_features)]
        self.encoder = nn.Sequential(*enc, *_dense([n_features, *hidden], net))
        self.loc_head = nn.Linear(self.hidden_dim, self.latent_dim)
        self.logvar_head = nn.Linear(self.hidden_dim, self.latent_dim)
        self.decoder_dense = nn.Sequential(*dec_dense)
        self.decoder_convs = nn.Sequential(*dec_convs)
        if self.likelihood in ("gaussian", "laplace"):
            self.log_scale = nn.Parameter(torch.zeros(self.shape))

    def encode(self, x: Tensor) -> Encoding:
        """h_i and the parameters (loc, logvar) of q(z_i^m | x_i)."""
        h = self.encoder(x)
        return Encoding(h, self.loc_head(h), self.logvar_head(h))

    def decode(self, z: Tensor) -> Tensor:
        """Likelihood parameters of p(x_i | z_i^m), shaped (B, *shape)."""
        out = self.decoder_dense(z).reshape(-1, *self._feature_shape)
        return self.decoder_convs(out)

    def scale(self) -> Tensor:
        """Learned per-element scale of a Gaussian or Laplace likelihood."""
        return self.log_scale.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX).exp()

    def log_likelihood(self, x: Tensor, params: Tensor) -> Tensor:
        """log p(x | params) summed over the event dimensions, shape (B,)."""
        if self.likelihood == "bernoulli":
            ll = -F.binary_cross_entropy_with_logits(params, x, reduction="none")
        elif self.likelihood == "categorical":
            ll = x * F.log_softmax(params, dim=-1)
        else:
            family = Normal if self.likelihood == "gaussian" else Laplace
            ll = family(self.mean(params), self.scale(), validate_args=False).log_prob(x)
        return ll.flatten(1).sum(1)

    def mean(self, params: Tensor) -> Tensor:
        """The reconstruction in tensor space: probabilities, softmax, or the location."""
        if self.likelihood == "bernoulli":
            return torch.sigmoid(params)
        if self.likelihood == "categorical":
            return torch.softmax(params, dim=-1)
        if self.config.kind == "image":
            return torch.sigmoid(params)
        return params
