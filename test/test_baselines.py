"""JMVAE-kl and MVAE: product of experts, MVAE's subsampled terms, the JMVAE-kl objective, and
short training runs on real Fashion-MNIST."""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path

import pytest
import torch
from sensorysync_training.baselines import JMVAE, MVAE, mvae_subsets, product_of_experts
from sensorysync_training.config import Config, ModalityConfig, NetworkConfig, load_config
from sensorysync_training.data import load_splits
from sensorysync_training.registry import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = Path(__file__).resolve().parents[1] / "training" / "configs" / "tiny.yaml"


def tiny_config(model_type: str, **model_overrides: object) -> Config:
    config = load_config(TINY)
    return config.replace(
        model=dataclasses.replace(config.model, type=model_type, **model_overrides)
    )


def with_vector_modality(config: Config) -> Config:
    joints = ModalityConfig(
        name="joints",
        kind="vector",
        shape=(3,),
        likelihood="gaussian",
        preprocess={},
        ros={"topic": "joint_states", "msg_type": "sensor_msgs/msg/JointState", "rate_hz": 100.0},
        network=NetworkConfig(arch="mlp", hidden=(8,)),
        latent_dim=4,
    )
    return config.replace(modalities=(*config.modalities, joints))


def fake_batch(config: Config, n: int, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    xs = []
    for m in config.modalities:
        if m.kind == "image":
            xs.append(torch.rand(n, *m.shape, generator=gen))
        elif m.kind == "categorical":
            classes = torch.randint(0, m.shape[0], (n,), generator=gen)
            xs.append(torch.nn.functional.one_hot(classes, m.shape[0]).float())
        else:
            xs.append(torch.randn(n, *m.shape, generator=gen))
    return xs


def test_product_of_experts_matches_numerical_product_of_densities() -> None:
    """1-D experts: normalise prior x experts on a fine grid, compare mean and variance."""
    locs = torch.tensor([[[1.5], [-0.7], [3.0]]], dtype=torch.float64)
    logvars = torch.log(torch.tensor([[[0.5], [2.0], [0.1]]], dtype=torch.float64))
    grid = torch.linspace(-12, 12, 200_001, dtype=torch.float64)
    for keep_row in ([1, 1, 1], [1, 0, 1], [0, 1, 0], [0, 0, 0]):
        keep = torch.tensor([keep_row], dtype=torch.float64)
        log_density = -0.5 * grid**2  # the prior expert N(0, 1)
        for i, k in enumerate(keep_row):
            if k:
                var = math.exp(float(logvars[0, i, 0]))
                log_density = log_density - 0.5 * (grid - float(locs[0, i, 0])) ** 2 / var
        weights = torch.softmax(log_density, dim=0)
        mean = float((weights * grid).sum())
        variance = float((weights * (grid - mean) ** 2).sum())
        loc, logvar = product_of_experts(locs, logvars, keep)
        assert float(loc[0, 0]) == pytest.approx(mean, abs=1e-6), keep_row
        assert math.exp(float(logvar[0, 0])) == pytest.approx(variance, rel=1e-5), keep_row


def test_mvae_subsets_are_joint_unimodal_then_random() -> None:
    assert mvae_subsets(2).tolist() == [[1, 1], [1, 0], [0, 1]]
    gen = torch.Generator().manual_seed(0)
    rows = mvae_subsets(4, num_random=3000, generator=gen)
    assert rows[:5].tolist() == [[1, 1, 1, 1], *torch.eye(4).tolist()]
    random_rows = rows[5:]
    sizes = random_rows.sum(1)
    assert bool(((sizes >= 2) & (sizes <= 3)).all())
    # uniform over the 10 subsets of 2 or 3 of 4 modalities: each within 5 sigma of 300
    counts = {tuple(int(v) for v in r): 0 for r in random_rows}
    for r in random_rows:
        counts[tuple(int(v) for v in r)] += 1
    expected = [s for s in itertools.product((0, 1), repeat=4) if 2 <= sum(s) <= 3]
    assert sorted(counts) == sorted(expected)
    sigma = math.sqrt(3000 * 0.1 * 0.9)
    assert all(abs(c - 300) < 5 * sigma for c in counts.values()), counts


def test_mvae_objective_is_the_sum_of_subset_elbos_each_reconstructing_its_subset() -> None:
    config = tiny_config("mvae")
    model = build_model(config)
    assert isinstance(model, MVAE)
    xs = fake_batch(config, 16)
    torch.manual_seed(0)
    terms = model(xs, math.inf)
    subset_keys = sorted(k for k in terms if k.startswith("elbo_subset/"))
    assert subset_keys == ["elbo_subset/image", "elbo_subset/image+label", "elbo_subset/label"]
    total = sum(terms[k] for k in subset_keys)
    torch.testing.assert_close(terms["loss"], -total)
    torch.testing.assert_close(terms["elbo"], terms["elbo_subset/image+label"])
    # The image-only ELBO neither sees nor reconstructs the label: changing it changes nothing.
    other_label = [xs[0], torch.roll(xs[1], 1, dims=1)]
    torch.manual_seed(0)
    changed = model(other_label, math.inf)
    torch.testing.assert_close(changed["elbo_subset/image"], terms["elbo_subset/image"])
    assert not torch.allclose(changed["elbo_subset/label"], terms["elbo_subset/label"])


def test_mvae_with_three_modalities_adds_a_random_pair() -> None:
    config = with_vector_modality(tiny_config("mvae"))
    model = build_model(config)
    terms = model(fake_batch(config, 8), 1.0)
    subsets = [k.split("/", 1)[1] for k in terms if k.startswith("elbo_subset/")]
    assert len(subsets) == 5
    assert {"image+label+joints", "image", "label", "joints"} < set(subsets)
    assert sum(s.count("+") == 1 for s in subsets) == 1


def test_jmvae_objective_and_warmup() -> None:
    alpha = 0.25
    config = tiny_config("jmvae", jmvae_alpha=alpha)
    model = build_model(config)
    assert isinstance(model, JMVAE)
    xs = fake_batch(config, 16)
    u_b = config.model.warmup_baseline_epochs
    for progress, w_b in ((math.inf, 1.0), (0.0, 0.0), (u_b / 2, 0.5)):
        torch.manual_seed(0)
        t = model(xs, progress)
        recon = t["recon/image"] + t["recon/label"]
        kl_uni = t["kl_unimodal/image"] + t["kl_unimodal/label"]
        assert float(t["warmup_b"]) == pytest.approx(w_b)
        torch.testing.assert_close(t["elbo"], recon - t["kl"])
        torch.testing.assert_close(t["loss"], -(recon - w_b * t["kl"] - alpha * kl_uni))
        assert float(kl_uni.detach()) > 0


def test_jmvae_posterior_has_unimodal_and_joint_encoders_only() -> None:
    config = with_vector_modality(tiny_config("jmvae"))
    model = build_model(config).eval()
    xs = fake_batch(config, 4)
    joint = model.posterior(xs, torch.ones(4, 3))
    assert joint[0].shape == (4, config.model.baseline_latent_dim)
    uni = model.posterior(xs, torch.tensor([[0.0, 1.0, 0.0]]).expand(4, 3))
    torch.testing.assert_close(uni[0], model.nets[1].encode(xs[1]).loc)
    with pytest.raises(
        ValueError, match=r"no encoder for the modality subset \['image', 'joints'\]"
    ):
        model.posterior(xs, torch.tensor([[1.0, 0.0, 1.0]]).expand(4, 3))


@pytest.mark.parametrize("model_type", ["jmvae", "mvae"])
def test_baseline_losses_are_finite_and_decrease_on_fashion_mnist(model_type: str) -> None:
    config = tiny_config(model_type)
    xs = load_splits(config).train.batch(torch.arange(64))
    torch.manual_seed(0)
    model = build_model(config)
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(40):
        terms = model(xs, step / 40)
        assert all(bool(torch.isfinite(v)) for v in terms.values()), terms
        optim.zero_grad()
        terms["loss"].backward()
        optim.step()
        losses.append(float(terms["loss"].detach()))
    assert sum(losses[-5:]) < 0.9 * sum(losses[:5]), losses
