"""SensorySync vs JMVAE-kl vs MVAE, side by side in one process: training step time and
importance-sampled evaluation throughput (data points x importance samples per second).

    .venv/bin/python benchmarks/bench_likelihood.py [--steps 20] [--num-samples 500] [--points 8]

Models are the paper's Fashion-MNIST architectures (training/configs/fashion_mnist*.yaml),
freshly initialised; timings are interleaved round-robin so load from other processes hits all
three alike. Prints medians and ratios to SensorySync (absolute numbers depend on the machine).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from sensorysync_training.config import load_config
from sensorysync_training.likelihood import estimate_log_likelihoods, sampler_for
from sensorysync_training.registry import build_model

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"
MODELS = {
    "SensorySync": "fashion_mnist.yaml",
    "JMVAE-kl": "fashion_mnist_jmvae.yaml",
    "MVAE": "fashion_mnist_mvae.yaml",
}
IMAGE, LABEL = 0, 1
# One pass per proposal, as the Table 2 script runs them.
PASSES = [
    (frozenset({IMAGE}), [frozenset({IMAGE}), frozenset({IMAGE, LABEL})]),
    (frozenset({LABEL}), [frozenset({IMAGE, LABEL}), frozenset({LABEL})]),
    (frozenset({IMAGE, LABEL}), [frozenset({IMAGE, LABEL})]),
]


def _fake_batch(n: int, gen: torch.Generator) -> list[torch.Tensor]:
    image = torch.rand(n, 1, 28, 28, generator=gen)
    label = torch.nn.functional.one_hot(torch.randint(0, 10, (n,), generator=gen), 10).float()
    return [image, label]


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="training steps timed per model")
    parser.add_argument("--batch-size", type=int, default=64, help="training batch (paper: 64)")
    parser.add_argument("--num-samples", type=int, default=500, help="importance samples K")
    parser.add_argument("--points", type=int, default=8, help="data points per evaluation")
    parser.add_argument("--rounds", type=int, default=3, help="evaluation rounds per model")
    args = parser.parse_args()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    models = {name: build_model(load_config(CONFIGS / cfg)) for name, cfg in MODELS.items()}
    optims = {name: torch.optim.Adam(m.parameters(), lr=1e-3) for name, m in models.items()}
    train_batch = _fake_batch(args.batch_size, gen)
    eval_batch = _fake_batch(args.points, gen)

    def step(name: str) -> None:
        model, optim = models[name], optims[name]
        loss = model(train_batch, 1.0)["loss"]
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()

    def evaluate(name: str) -> None:
        sampler = sampler_for(models[name])
        for infer_from, targets in PASSES:
            estimate_log_likelihoods(
                sampler, eval_batch, infer_from, targets, num_samples=args.num_samples
            )

    step_s: dict[str, list[float]] = {n: [] for n in models}
    eval_s: dict[str, list[float]] = {n: [] for n in models}
    for name, model in models.items():  # warm-up
        model.train()
        step(name)
    for _ in range(args.steps):
        for name in models:
            step_s[name].append(_timed(lambda name=name: step(name)))
    for model in models.values():
        model.eval()
    for _ in range(args.rounds):
        for name in models:
            eval_s[name].append(_timed(lambda name=name: evaluate(name)))

    work = args.points * args.num_samples * len(PASSES)
    ref_step = statistics.median(step_s["SensorySync"])
    ref_eval = statistics.median(eval_s["SensorySync"])
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; training batch "
        f"{args.batch_size}; evaluation: {args.points} points x K={args.num_samples} x "
        f"{len(PASSES)} proposal passes (S = image, label, both)"
    )
    print(
        f"{'model':12s} {'step ms':>9s} {'time ratio':>11s} {'samples/s':>10s} "
        f"{'eval pts*K/s':>13s} {'rate ratio':>11s}"
    )
    for name in models:
        s, e = statistics.median(step_s[name]), statistics.median(eval_s[name])
        print(
            f"{name:12s} {1e3 * s:9.1f} {s / ref_step:11.2f} {args.batch_size / s:10.0f} "
            f"{work / e:13.0f} {ref_eval / e:11.2f}"
        )


if __name__ == "__main__":
    main()
