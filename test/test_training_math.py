"""The SensorySync math against closed forms, seeded Monte Carlo and slow references."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from sensorysync_training.config import load_config
from sensorysync_training.dropout import apply_keep_mask, sample_keep_mask
from sensorysync_training.elbo import gaussian_kl, standard_normal_kl, warmup_factor
from sensorysync_training.modalities import ModalityNet
from sensorysync_training.registry import build_model
from sensorysync_training.sensorysync import SensorySync

TINY = Path(__file__).resolve().parents[1] / "training" / "configs" / "tiny.yaml"


def _reference_kl(mq: float, vq: float, mp: float, vp: float) -> float:
    """KL(N(mq, vq) || N(mp, vp)) for one dimension, from the textbook formula."""
    return 0.5 * (math.log(vp / vq) + (vq + (mq - mp) ** 2) / vp - 1.0)


def test_gaussian_kl_matches_closed_form_and_sums_dimensions():
    loc_q = torch.tensor([[0.3, -1.0], [2.0, 0.0]], dtype=torch.float64)
    logvar_q = torch.tensor([[0.1, -0.5], [0.0, 1.2]], dtype=torch.float64)
    loc_p = torch.tensor([[-0.2, 0.4], [1.0, 0.5]], dtype=torch.float64)
    logvar_p = torch.tensor([[0.7, 0.0], [-0.3, 0.2]], dtype=torch.float64)
    got = gaussian_kl(loc_q, logvar_q, loc_p, logvar_p)
    expected = [
        sum(
            _reference_kl(float(loc_q[b, d]), math.exp(logvar_q[b, d]),
                          float(loc_p[b, d]), math.exp(logvar_p[b, d]))
            for d in range(2)
        )
        for b in range(2)
    ]
    assert got.shape == (2,)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(
        standard_normal_kl(loc_q, logvar_q).numpy(),
        [sum(_reference_kl(float(loc_q[b, d]), math.exp(logvar_q[b, d]), 0.0, 1.0)
             for d in range(2)) for b in range(2)],
        rtol=1e-12,
    )


def test_gaussian_kl_matches_seeded_monte_carlo():
    gen = torch.Generator().manual_seed(0)
    loc_q, logvar_q = torch.tensor([[0.5, -0.3, 1.0]]), torch.tensor([[-0.2, 0.3, 0.0]])
    loc_p, logvar_p = torch.tensor([[0.0, 0.2, 0.5]]), torch.tensor([[0.1, -0.4, 0.6]])
    n = 200_000
    z = loc_q + torch.exp(0.5 * logvar_q) * torch.randn(n, 3, generator=gen)

    def log_density(z: torch.Tensor, loc: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return (-0.5 * (math.log(2 * math.pi) + logvar + (z - loc) ** 2 / logvar.exp())).sum(1)

    samples = log_density(z, loc_q, logvar_q) - log_density(z, loc_p, logvar_p)
    stderr = float(samples.std()) / math.sqrt(n)
    assert abs(float(samples.mean()) - float(gaussian_kl(loc_q, logvar_q, loc_p, logvar_p)[0])) \
        < 4 * stderr


def _net(name: str):
    config = load_config(TINY)
    return ModalityNet(next(m for m in config.modalities if m.name == name))


def test_bernoulli_log_likelihood_is_the_normalised_bernoulli_log_pmf():
    net = _net("image")
    gen = torch.Generator().manual_seed(1)
    x = torch.bernoulli(torch.full((3, 1, 28, 28), 0.3), generator=gen)
    logits = torch.randn(3, 1, 28, 28, generator=gen, dtype=torch.float64)
    p = torch.sigmoid(logits)
    reference = (x * torch.log(p) + (1 - x) * torch.log(1 - p)).flatten(1).sum(1)
    np.testing.assert_allclose(net.log_likelihood(x.double(), logits).numpy(),
                               reference.numpy(), rtol=1e-10)
    # normalised: the probabilities of both outcomes of one pixel sum to 1
    one = net.log_likelihood(torch.ones(1, 1, 28, 28), torch.zeros(1, 1, 28, 28))
    assert float(one) == pytest.approx(784 * math.log(0.5))
    assert torch.allclose(net.mean(logits), p)


def test_categorical_log_likelihood_picks_the_log_softmax_of_the_class():
    net = _net("label")
    logits = torch.tensor([[2.0, 0.0, -1.0, 0, 0, 0, 0, 0, 0, 0.5]])
    x = torch.nn.functional.one_hot(torch.tensor([2]), 10).float()
    expected = -1.0 - math.log(float(torch.exp(logits).sum()))
    assert float(net.log_likelihood(x, logits)[0]) == pytest.approx(expected, rel=1e-6)
    assert float(net.mean(logits).sum()) == pytest.approx(1.0)


@pytest.mark.parametrize("likelihood", ["gaussian", "laplace"])
def test_continuous_log_likelihood_uses_the_learned_scale(likelihood: str):
    config = load_config(TINY)
    vector = config.modalities[1].__class__(
        name="joints", kind="vector", shape=(3,), likelihood=likelihood, preprocess={},
        ros={"topic": "j", "msg_type": "sensor_msgs/msg/JointState", "rate_hz": 10.0},
        network=config.modalities[1].network, latent_dim=2,
    )
    net = ModalityNet(vector).double()
    with torch.no_grad():
        net.log_scale.copy_(torch.tensor([0.0, -1.0, 0.5]))
    x = torch.tensor([[0.2, -0.4, 1.5]], dtype=torch.float64)
    loc = torch.tensor([[0.0, 0.1, 1.0]], dtype=torch.float64)
    scale = torch.exp(torch.tensor([0.0, -1.0, 0.5], dtype=torch.float64))
    if likelihood == "gaussian":
        ref = -0.5 * math.log(2 * math.pi) - torch.log(scale) - 0.5 * ((x - loc) / scale) ** 2
    else:
        ref = -math.log(2) - torch.log(scale) - (x - loc).abs() / scale
    got = float(net.log_likelihood(x, loc).detach()[0])
    assert got == pytest.approx(float(ref.sum()), rel=1e-10)
    assert torch.equal(net.mean(loc), loc)  # vector locations are unconstrained


def test_dropout_keep_rates_match_the_conditional_probability_and_never_empty():
    torch.manual_seed(0)
    keep_probs = torch.tensor([0.5, 0.2, 0.7])  # w = 0.5, 0.8, 0.3
    n = 100_000
    mask = sample_keep_mask(keep_probs, n)
    assert mask.shape == (n, 3)
    assert bool((mask.sum(1) >= 1).all())
    expected = keep_probs / (1 - 0.5 * 0.8 * 0.3)  # P(kept_i | >= 1 kept) = (1-w_i)/(1-prod w)
    sigma = torch.sqrt(expected * (1 - expected) / n)
    assert bool(((mask.mean(0) - expected).abs() < 4 * sigma).all()), (mask.mean(0), expected)
    # without the conditioning the rates would be the raw keep probabilities: distinguishable
    assert bool(((mask.mean(0) - keep_probs).abs() > 4 * sigma).all())


def test_dropout_rejects_probabilities_that_never_keep_anything():
    with pytest.raises(ValueError, match="all 0"):
        sample_keep_mask(torch.zeros(2), 4)


def test_apply_keep_mask_zeroes_dropped_rows_even_if_they_hold_nan():
    h = torch.tensor([[1.0, 2.0], [float("nan"), 3.0]])
    out = apply_keep_mask(h, torch.tensor([1.0, 0.0]))
    assert torch.equal(out, torch.tensor([[1.0, 2.0], [0.0, 0.0]]))


@pytest.mark.parametrize(
    ("progress", "warmup", "expected"),
    [(0.0, 100, 0.0), (25.0, 100, 0.25), (99.5, 100, 0.995), (100.0, 100, 1.0),
     (350.0, 200, 1.0), (3.0, 0, 1.0), (math.inf, 200, 1.0)],
)
def test_warmup_factor_is_linear_then_one(progress: float, warmup: float, expected: float):
    assert warmup_factor(progress, warmup) == pytest.approx(expected)


def _tiny_model() -> SensorySync:
    torch.manual_seed(0)
    model = build_model(load_config(TINY))
    assert isinstance(model, SensorySync)
    return model.double()


def _batch(n: int = 6) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    image = torch.rand(n, 1, 28, 28, generator=gen, dtype=torch.float64)
    label = torch.nn.functional.one_hot(torch.arange(n) % 10, 10).double()
    return [image, label]


@torch.no_grad()
def test_forward_matches_a_slow_reference_of_eq_13_with_warmups():
    model = _tiny_model()
    xs, keep = _batch(), torch.tensor([[1.0, 0.0], [0.0, 1.0], [1, 1], [1, 0], [0, 1], [1, 1]])
    progress = 1.0  # tiny.yaml: U_m = 2, U_c = 4 -> weights 0.5 and 0.25
    torch.manual_seed(7)
    terms = model(xs, progress, keep=keep)
    torch.manual_seed(7)  # same noise, drawn in the same order: z^c first, then each z_i^m
    encs = model.encode(xs)
    hd = torch.cat([encs[i].h * keep[:, i : i + 1] for i in range(2)], dim=1)
    c_loc, c_logvar = model.core_encoder(hd)
    z_c = c_loc + torch.exp(0.5 * c_logvar) * torch.randn_like(c_loc)
    kl_c = standard_normal_kl(c_loc, c_logvar)
    elbo, objective = -kl_c, -0.25 * kl_c
    for i, (net, x) in enumerate(zip(model.nets, xs)):
        z = encs[i].loc + torch.exp(0.5 * encs[i].logvar) * torch.randn_like(encs[i].loc)
        recon = net.log_likelihood(x, net.decode(z))
        p_loc, p_logvar = model.core_decoders[i](z_c)
        kl_m = gaussian_kl(encs[i].loc, encs[i].logvar, p_loc, p_logvar)
        elbo = elbo + recon - kl_m
        objective = objective + recon - 0.5 * kl_m
        assert float(terms[f"kl_m/{model.names[i]}"]) == pytest.approx(float(kl_m.mean()))
    assert float(terms["elbo"]) == pytest.approx(float(elbo.mean()), rel=1e-10)
    assert float(terms["loss"]) == pytest.approx(-float(objective.mean()), rel=1e-10)
    assert float(terms["warmup_m"]) == 0.5 and float(terms["warmup_c"]) == 0.25


def test_export_forward_uses_posterior_where_present_and_core_prior_where_masked():
    model = _tiny_model().eval()
    xs = _batch(4)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    core_mean, core_logvar, rec_image, rec_label = model.export_forward(*xs, mask)
    encs = model.encode(xs)
    c_loc, c_logvar = model.core_posterior([e.h for e in encs], mask)
    assert torch.equal(core_mean, c_loc) and torch.equal(core_logvar, c_logvar)
    priors = model.core_priors(c_loc)
    label_net = model.nets[1]
    expected_label = torch.where(mask[:, 1:2] > 0.5, encs[1].loc, priors[1][0])
    assert torch.allclose(rec_label, label_net.mean(label_net.decode(expected_label)))
    # a masked modality's input has no influence: change it completely
    xs_changed = [xs[0], torch.roll(xs[1], 3, dims=1)]
    out_changed = model.export_forward(*xs_changed, mask)
    rows = mask[:, 1] == 0
    for a, b in zip(out_changed, (core_mean, core_logvar, rec_image, rec_label)):
        assert torch.equal(a[rows], b[rows])
        assert not torch.equal(a[~rows], b[~rows])
