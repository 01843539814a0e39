"""Training step time: SensorySync vs a single-latent joint VAE on the same modality networks.

Both models get the same batch, the same modality encoders/decoders (architecture from the
config) and Adam; the joint VAE concatenates every h_i into one Gaussian latent (size
``model.baseline_latent_dim``) decoded by every modality decoder. Steps alternate between the
two models so machine load hits both alike; the script prints the median step time, samples/s
and the ratio.

    .venv/bin/python benchmarks/bench_train_step.py [--config CFG] [--steps 60] [--batch 64]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from sensorysync_training.config import Config, load_config
from sensorysync_training.elbo import standard_normal_kl
from sensorysync_training.modalities import ModalityNet
from sensorysync_training.registry import build_model
from sensorysync_training.sensorysync import reparameterize
from torch import Tensor, nn

CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "fashion_mnist.yaml"


class JointVAE(nn.Module):
    """Plain VAE: all h_i -> one latent z -> every modality decoder (no dropout, no core)."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        latent = config.model.baseline_latent_dim
        self.nets = nn.ModuleList(
            ModalityNet(dataclasses.replace(m, latent_dim=latent)) for m in config.modalities
        )
        h_total = sum(net.hidden_dim for net in self.nets)
        self.loc = nn.Linear(h_total, latent)
        self.logvar = nn.Linear(h_total, latent)

    def forward(self, xs: Sequence[Tensor], progress_epochs: float) -> dict[str, Tensor]:
        h = torch.cat([net.encode(x).h for net, x in zip(self.nets, xs)], dim=1)
        loc, logvar = self.loc(h), self.logvar(h)
        z = reparameterize(loc, logvar)
        elbo = -standard_normal_kl(loc, logvar)
        for net, x in zip(self.nets, xs):
            elbo = elbo + net.log_likelihood(x, net.decode(z))
        return {"loss": -elbo.mean(), "elbo": elbo.mean()}


def _batch(config: Config, batch: int) -> list[Tensor]:
    xs = []
    for m in config.modalities:
        if m.likelihood == "categorical":
            xs.append(torch.eye(m.shape[0])[torch.randint(0, m.shape[0], (batch,))])
        elif m.likelihood == "bernoulli":
            xs.append(torch.rand(batch, *m.shape))
        else:
            xs.append(torch.randn(batch, *m.shape))
    return xs


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default=str(CONFIG))
    p.add_argument("--steps", type=int, default=60, help="timed steps per model")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps per model")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = load_config(args.config)
    models = {"sensorysync": build_model(config).train(), "joint_vae": JointVAE(config).train()}
    optims = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in models.items()}
    xs = _batch(config, args.batch)
    times: dict[str, list[float]] = {k: [] for k in models}
    for step in range(args.warmup + args.steps):
        for name, model in models.items():
            start = time.perf_counter()
            loss = model(xs, 0.5)["loss"]
            optims[name].zero_grad(set_to_none=True)
            loss.backward()
            optims[name].step()
            if step >= args.warmup:
                times[name].append(time.perf_counter() - start)
    median_s = {k: statistics.median(v) for k, v in times.items()}
    print(f"config {args.config}, batch {args.batch}, {args.steps} steps each, "
          f"{args.threads} thread(s), torch {torch.__version__}")
    for name, sec in median_s.items():
        n_params = sum(p.numel() for p in models[name].parameters())
        print(f"  {name:12s} {sec * 1e3:8.2f} ms/step  {args.batch / sec:9.0f} samples/s  "
              f"{n_params:,} parameters")
    print(f"  ratio sensorysync / joint_vae step time: "
          f"{median_s['sensorysync'] / median_s['joint_vae']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
