"""Importance-sampled estimators against analytic marginal likelihoods of linear-Gaussian models.

The test models have the structure of the real ones (a SensorySync-like hierarchy z^c -> z_i^m ->
x_i, and a single-latent JMVAE/MVAE-like model z -> x_i) with linear-Gaussian conditionals, so
every marginal log p(x_T) is a Gaussian density in closed form. Their "encoders" are the exact
diagonal posteriors, shifted and widened on purpose so that the importance weights vary and
the estimators' error must shrink with K.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
import yaml
from sensorysync_training.config import Config, load_config
from sensorysync_training.data import load_splits
from sensorysync_training.likelihood import (
    FlatSampler,
    HierarchicalSampler,
    LikelihoodError,
    estimate_log_likelihoods,
    gaussian_log_density,
    sampler_for,
)
from sensorysync_training.likelihood_table import main as likelihood_main
from sensorysync_training.registry import build_model
from sensorysync_training.train import main as train_main
from torch import Tensor

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DTYPE = torch.float64
WIDEN = 1.3  # proposal variance = WIDEN * exact posterior variance
SHIFT = 0.15  # proposal mean = exact mean + SHIFT * exact std


def _rand(gen: torch.Generator, *shape: int, scale: float = 1.0) -> Tensor:
    return scale * torch.randn(*shape, generator=gen, dtype=DTYPE)


def _gaussian_condition(
    mean: Tensor, cov: Tensor, query: list[int], given: list[int], values: Tensor
) -> tuple[Tensor, Tensor]:
    """Mean (B, |query|) and diagonal variance (|query|,) of v[query] given v[given] = values."""
    s_qg = cov[query][:, given]
    s_gg = cov[given][:, given]
    gain = torch.linalg.solve(s_gg, s_qg.T).T
    loc = mean[query] + (values - mean[given]) @ gain.T
    var = torch.diagonal(cov[query][:, query] - gain @ s_qg.T)
    return loc, var


def _proposal(loc: Tensor, var: Tensor) -> tuple[Tensor, Tensor]:
    return loc + SHIFT * var.sqrt(), torch.log(WIDEN * var).expand_as(loc)


class LinearGaussianModel:
    """v = mean + M @ noise over the stacked latents and observations; slices name each block."""

    def __init__(self, mean: Tensor, mix: Tensor, blocks: dict[str, slice]) -> None:
        self.mean, self.cov, self.blocks = mean, mix @ mix.T, blocks
        self.x_names = sorted(k for k in blocks if k.startswith("x"))

    def idx(self, *names: str) -> list[int]:
        return [j for n in names for j in range(self.blocks[n].start, self.blocks[n].stop)]

    def sample_x(self, num_points: int, gen: torch.Generator) -> list[Tensor]:
        chol = torch.linalg.cholesky(self.cov + 1e-12 * torch.eye(len(self.mean), dtype=DTYPE))
        v = self.mean + _rand(gen, num_points, len(self.mean)) @ chol.T
        return [v[:, self.blocks[n]] for n in self.x_names]

    def true_log_marginal(self, xs: Sequence[Tensor], target: frozenset[int]) -> Tensor:
        names = [self.x_names[i] for i in sorted(target)]
        ix = self.idx(*names)
        x = torch.cat([xs[i] for i in sorted(target)], dim=1)
        dist = torch.distributions.MultivariateNormal(self.mean[ix], self.cov[ix][:, ix])
        return dist.log_prob(x)

    def posterior(self, latent: str, xs: Sequence[Tensor], given: list[int]):
        x = torch.cat([xs[i] for i in given], dim=1)
        names = [self.x_names[i] for i in given]
        return _proposal(
            *_gaussian_condition(self.mean, self.cov, self.idx(latent), self.idx(*names), x)
        )


class Hierarchy:
    """z^c ~ N(0, I); z_i^m = A_i z^c + a_i + s_i n_i; x_i = C_i z_i^m + c_i + r_i m_i."""

    def __init__(self, seed: int, dc: int = 2, dms: tuple[int, ...] = (2, 2), dxs=(3, 2)) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.core_latent_dim, self.modality_latent_dims = dc, dms
        n_latent = dc + sum(dms)
        n_total = n_latent + sum(dxs)
        mean = torch.zeros(n_total, dtype=DTYPE)
        mix = torch.zeros(n_total, n_total, dtype=DTYPE)
        blocks = {"zc": slice(0, dc)}
        mix[:dc, :dc] = torch.eye(dc, dtype=DTYPE)
        self.A, self.a, self.s, self.C, self.c, self.r = [], [], [], [], [], []
        z0, x0 = dc, n_latent
        for i, (dm, dx) in enumerate(zip(dms, dxs)):
            zs, xs_ = slice(z0, z0 + dm), slice(x0, x0 + dx)
            blocks[f"z{i}"], blocks[f"x{i}"] = zs, xs_
            A, a, s = (
                _rand(gen, dm, dc, scale=0.6),
                _rand(gen, dm),
                0.6 + 0.3 * torch.rand(dm, generator=gen, dtype=DTYPE),
            )
            C, c, r = (
                _rand(gen, dx, dm, scale=0.6),
                _rand(gen, dx),
                0.6 + 0.3 * torch.rand(dx, generator=gen, dtype=DTYPE),
            )
            mean[zs], mean[xs_] = a, C @ a + c
            mix[zs, :dc] = A
            mix[zs, zs] = torch.diag(s)
            mix[xs_, :dc] = C @ A
            mix[xs_, zs] = C @ torch.diag(s)
            mix[xs_, xs_] = torch.diag(r)
            for lst, val in zip(
                (self.A, self.a, self.s, self.C, self.c, self.r), (A, a, s, C, c, r)
            ):
                lst.append(val)
            z0, x0 = z0 + dm, x0 + dx
        self.lg = LinearGaussianModel(mean, mix, blocks)

    # HierarchicalDensities
    def modality_posterior(self, index: int, x: Tensor) -> tuple[Tensor, Tensor]:
        xs = [x if j == index else torch.empty(0) for j in range(len(self.modality_latent_dims))]
        return self.lg.posterior(f"z{index}", xs, [index])

    def core_posterior(self, xs: Sequence[Tensor], keep: Tensor) -> tuple[Tensor, Tensor]:
        given = [i for i in range(keep.shape[1]) if bool(keep[0, i])]
        assert (keep == keep[0]).all(), "test model needs one keep mask per call"
        return self.lg.posterior("zc", xs, given)

    def conditional_prior(self, index: int, z_core: Tensor) -> tuple[Tensor, Tensor]:
        loc = z_core @ self.A[index].T + self.a[index]
        return loc, torch.log(self.s[index] ** 2).expand_as(loc)

    def log_likelihood(self, index: int, x: Tensor, z: Tensor) -> Tensor:
        loc = z @ self.C[index].T + self.c[index]
        return gaussian_log_density(x, loc, torch.log(self.r[index] ** 2).expand_as(loc))


class Flat:
    """z ~ N(0, I); x_i = C_i z + c_i + r_i m_i (the single-latent baselines' structure)."""

    def __init__(self, seed: int, dz: int = 3, dxs=(3, 2)) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.latent_dim, self.num_modalities = dz, len(dxs)
        n_total = dz + sum(dxs)
        mean = torch.zeros(n_total, dtype=DTYPE)
        mix = torch.zeros(n_total, n_total, dtype=DTYPE)
        mix[:dz, :dz] = torch.eye(dz, dtype=DTYPE)
        blocks = {"z": slice(0, dz)}
        self.C, self.c, self.r = [], [], []
        x0 = dz
        for i, dx in enumerate(dxs):
            xs_ = slice(x0, x0 + dx)
            blocks[f"x{i}"] = xs_
            C, c = _rand(gen, dx, dz, scale=0.6), _rand(gen, dx)
            r = 0.6 + 0.3 * torch.rand(dx, generator=gen, dtype=DTYPE)
            mean[xs_] = c
            mix[xs_, :dz] = C
            mix[xs_, xs_] = torch.diag(r)
            self.C.append(C), self.c.append(c), self.r.append(r)
            x0 += dx
        self.lg = LinearGaussianModel(mean, mix, blocks)

    # FlatDensities
    def posterior(self, xs: Sequence[Tensor], keep: Tensor) -> tuple[Tensor, Tensor]:
        given = [i for i in range(keep.shape[1]) if bool(keep[0, i])]
        return self.lg.posterior("z", xs, given)

    def log_likelihood(self, index: int, x: Tensor, z: Tensor) -> Tensor:
        loc = z @ self.C[index].T + self.c[index]
        return gaussian_log_density(x, loc, torch.log(self.r[index] ** 2).expand_as(loc))


IMAGE, LABEL = 0, 1
# (proposal S, targets T): the passes the Table 2 script runs.
PASSES = [
    (frozenset({IMAGE}), [frozenset({IMAGE}), frozenset({IMAGE, LABEL})]),
    (frozenset({LABEL}), [frozenset({IMAGE, LABEL}), frozenset({LABEL})]),
    (frozenset({IMAGE, LABEL}), [frozenset({IMAGE, LABEL})]),
]


def _make(kind: str, seed: int):
    model = Hierarchy(seed) if kind == "hierarchical" else Flat(seed)
    sampler = HierarchicalSampler(model) if kind == "hierarchical" else FlatSampler(model)
    return model, sampler


@pytest.mark.parametrize("kind", ["hierarchical", "flat"])
def test_estimates_match_analytic_marginals_and_improve_with_k(kind: str) -> None:
    """Table 2 reports the mean over data points: within 0.05 nats at K=5000 (each point 0.1)."""
    model, sampler = _make(kind, seed=3)
    xs = model.lg.sample_x(12, torch.Generator().manual_seed(11))
    for infer_from, targets in PASSES:
        truth = torch.stack([model.lg.true_log_marginal(xs, t) for t in targets])
        errors = {}
        for k in (10, 5000):
            est = estimate_log_likelihoods(sampler, xs, infer_from, targets, num_samples=k, seed=5)
            errors[k] = est - truth
        where = f"{kind} S={sorted(infer_from)}"
        mean_error = errors[5000].mean(dim=1).abs().max()
        assert mean_error < 0.05, f"{where}: mean error {mean_error:.4f} nats at K=5000"
        point_error = errors[5000].abs().max()
        assert point_error < 0.1, f"{where}: per-point error {point_error:.4f} nats at K=5000"
        small_k, large_k = errors[10].abs().mean(), errors[5000].abs().mean()
        assert large_k < 0.5 * small_k, f"{where}: |error| K=10 {small_k:.4f}, K=5000 {large_k:.4f}"


def test_estimate_is_biased_low_at_small_k() -> None:
    """Jensen: E[LME] <= log p(x); averaged over many points the K=2 estimate sits below truth."""
    model, sampler = _make("hierarchical", seed=4)
    xs = model.lg.sample_x(400, torch.Generator().manual_seed(2))
    target = [frozenset({IMAGE, LABEL})]
    est = estimate_log_likelihoods(sampler, xs, frozenset({LABEL}), target, num_samples=2)
    truth = model.lg.true_log_marginal(xs, target[0])
    assert (est[0] - truth).mean() < 0.0


@pytest.mark.parametrize("kind", ["hierarchical", "flat"])
def test_estimates_do_not_depend_on_batching(kind: str) -> None:
    model, sampler = _make(kind, seed=5)
    xs = model.lg.sample_x(7, torch.Generator().manual_seed(1))
    infer_from, targets = PASSES[0]
    args = dict(num_samples=300, seed=9)
    whole = estimate_log_likelihoods(
        sampler, xs, infer_from, targets, max_batch_samples=10_000, **args
    )
    pieces = estimate_log_likelihoods(
        sampler, xs, infer_from, targets, max_batch_samples=70, **args
    )
    torch.testing.assert_close(whole, pieces, rtol=0, atol=1e-9)
    other_seed = estimate_log_likelihoods(
        sampler, xs, infer_from, targets, num_samples=300, seed=10
    )
    assert (whole - other_seed).abs().max() > 1e-6
    # A point's noise follows its dataset index, not its position in the batch.
    sub = estimate_log_likelihoods(
        sampler, [x[3:] for x in xs], infer_from, targets, indices=torch.arange(3, 7), **args
    )
    torch.testing.assert_close(sub, whole[:, 3:], rtol=0, atol=1e-9)


def test_bad_modality_sets_are_named() -> None:
    model, sampler = _make("flat", seed=0)
    xs = model.lg.sample_x(2, torch.Generator().manual_seed(0))
    with pytest.raises(LikelihoodError, match=r"infer_from \[\] must be a non-empty subset"):
        estimate_log_likelihoods(sampler, xs, frozenset(), [frozenset({IMAGE})])
    with pytest.raises(LikelihoodError, match=r"targets \[\[2\]\]"):
        estimate_log_likelihoods(sampler, xs, frozenset({IMAGE}), [frozenset({2})])


def test_log_mean_exp_is_accumulated_in_float64() -> None:
    """log-weights near -1e4 with 1e-3 spreads: a float32 accumulation would lose the spread."""

    class Offset:
        num_modalities, noise_dim = 2, 1

        def log_weights(self, xs, infer_from, targets, eps):
            return (-1.0e4 + 1e-3 * eps[..., 0].to(torch.float32)).unsqueeze(0)

    xs = [torch.zeros(1, 1), torch.zeros(1, 1)]
    est = estimate_log_likelihoods(
        Offset(),
        xs,
        frozenset({IMAGE}),
        [frozenset({IMAGE})],
        num_samples=4000,
        max_batch_samples=100,
    )
    noise = torch.randn(4000, 1, generator=torch.Generator().manual_seed(0))  # seed 0, index 0
    w = (-1.0e4 + 1e-3 * noise[:, 0].to(torch.float32)).double()
    expected = torch.logsumexp(w, 0) - math.log(4000)
    assert abs(float(est[0, 0]) - float(expected)) < 1e-9


# --- the real models (tiny configs): the estimators' densities agree with the training ELBO ---

TINY = Path(__file__).resolve().parents[1] / "training" / "configs" / "tiny.yaml"
MODEL_TYPES = ("sensorysync", "jmvae", "mvae")


def _tiny_config(model_type: str) -> Config:
    config = load_config(TINY)
    return config.replace(model=dataclasses.replace(config.model, type=model_type))


def _perturbed_model(model_type: str) -> torch.nn.Module:
    """A tiny model whose Gaussians are far from N(0, I) (shifted locs, logvars in [-2, 0.5]),
    so that an error in any density of the weight shows up."""
    torch.manual_seed(0)
    model = build_model(_tiny_config(model_type))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") and "logvar" in name:
                param.add_(torch.rand_like(param) * 2.5 - 2.0)
            elif name.endswith("bias") and "loc" in name:
                param.add_(torch.randn_like(param))
    return model.eval()


@pytest.fixture(scope="module")
def val_points() -> list[Tensor]:
    return load_splits(_tiny_config("sensorysync")).val.batch(torch.arange(96))


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_single_sample_estimate_is_the_models_elbo(model_type: str, val_points) -> None:
    """E[log w] with K=1 and the proposal from every modality is the ELBO the model trains on."""
    model = _perturbed_model(model_type)
    sampler = sampler_for(model)
    both = frozenset({IMAGE, LABEL})
    draws = torch.cat(
        [
            estimate_log_likelihoods(sampler, val_points, both, [both], num_samples=1, seed=s)
            for s in range(16)
        ]
    )  # (seeds, points)
    with torch.no_grad():
        elbos = []
        for r in range(24):
            torch.manual_seed(r)
            elbos.append(float(model(val_points, math.inf)["elbo"]))
    elbo = torch.tensor(elbos, dtype=DTYPE)
    se_draws = math.sqrt(float(draws.var(dim=0).mean()) / draws.numel())
    se_elbo = float(elbo.std()) / math.sqrt(len(elbos))
    diff = float(draws.mean()) - float(elbo.mean())
    assert abs(diff) < 5 * math.hypot(se_draws, se_elbo) + 1e-3, (diff, se_draws, se_elbo)


def test_real_model_estimates_do_not_depend_on_batching(val_points) -> None:
    torch.manual_seed(0)
    sampler = sampler_for(build_model(_tiny_config("sensorysync")).eval())
    xs = [x[:5] for x in val_points]
    infer_from, targets = PASSES[1]
    whole = estimate_log_likelihoods(sampler, xs, infer_from, targets, num_samples=200)
    pieces = estimate_log_likelihoods(
        sampler, xs, infer_from, targets, num_samples=200, max_batch_samples=64
    )
    torch.testing.assert_close(whole, pieces, rtol=0, atol=1e-3)


def test_likelihood_table_cli_writes_table_2(tmp_path: Path, capsys) -> None:
    checkpoints = []
    for model_type in MODEL_TYPES:
        cfg = tmp_path / f"{model_type}.yaml"
        cfg.write_text(yaml.safe_dump(_tiny_config(model_type).to_dict()))
        run = tmp_path / model_type
        argv = ["--config", str(cfg), "--out", str(run), "--epochs", "1", "--max-steps", "2"]
        assert train_main([*argv, "--quiet"]) == 0
        checkpoints.append(str(run / "checkpoint.pt"))
    out = tmp_path / "table"
    common = ["--num-points", "3", "--num-samples", "16", "--label-points", "2"]
    argv = [*checkpoints, *common, "--label-samples", "32", "--out", str(out)]
    assert likelihood_main(argv) == 0
    report = json.loads(out.with_name("table.json").read_text())
    assert [m["type"] for m in report["models"]] == list(MODEL_TYPES)
    assert all(m["epochs"] == 1 and m["train_seed"] == 0 for m in report["models"])
    keys = [r["key"] for r in report["rows"]]
    assert len(keys) == 7 and keys[-1] == "log_p_x1_given_x2_from_L@K32"
    for m in report["models"]:
        for key in keys:
            est = m["estimates"][key]
            assert math.isfinite(est["mean"]) and est["num_points"] in (2, 3), (key, est)
    x1x2_from_l = m["estimates"]["log_p_x1_x2_from_L"]["mean"]
    assert x1x2_from_l < 0
    table = out.with_name("table.md").read_text()
    assert "| metric | input | N | K | sensorysync | jmvae | mvae |" in table
    assert "| log p(x1 \\| x2) | L | 2 | 32 |" in table
    label_only = tmp_path / "label"
    argv = [*checkpoints, "--label-only", "--label-points", "2", "--label-samples", "8"]
    assert likelihood_main([*argv, "--out", str(label_only)]) == 0
    rows = json.loads(label_only.with_name("label.json").read_text())["rows"]
    assert [r["key"] for r in rows] == [
        "log_p_x1_x2_from_L@K8",
        "log_p_x1_given_x2_from_L@K8",
    ]
    capsys.readouterr()
    assert likelihood_main([*checkpoints, "--names", "one", "--out", str(out)]) == 1
    assert capsys.readouterr().err.startswith("error: --names gives 1 names for 3 checkpoints")
    missing = str(tmp_path / "nope.pt")
    assert likelihood_main([missing, "--out", str(out)]) == 1
    assert missing in capsys.readouterr().err
