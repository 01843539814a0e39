"""ONNX Runtime engine vs torch eager on the same model, side by side in one process.

For the paper's Fashion-MNIST model (training/configs/fashion_mnist.yaml) and a robot-sized
3-modality model (3x64x64 camera, 1 s of 16 kHz audio as 1x32x61 log-mel features, 14-d
joints: 7 joints x position/velocity), both seeded and untrained (timing does not depend on
the weights): batch-1 latency (p50, p99 over >= 1000 calls) and batch-32 throughput. Blocks of
calls alternate between the two backends so load drift on a shared machine hits both alike.
Both use the same number of intra-op threads.

    .venv/bin/python benchmarks/bench_engine.py [--calls 1000] [--threads 1 2] \
        [--out docs/results/engine_benchmark.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from sensorysync_training.config import Config, load_config
from sensorysync_training.export import all_masks, build_manifest, export_model, random_inputs
from sensorysync_training.registry import build_model
from tqdm import tqdm

from sensorysync_ros.engine import CPU_PROVIDER, Engine

REPO = Path(__file__).resolve().parents[1]
ROUNDS = 10  # alternating blocks per measurement
JOINTS = [f"joint_{i}" for i in range(1, 8)]
AUDIO = {"sample_rate": 16000, "window_samples": 16000, "n_fft": 512, "hop_length": 256,
         "n_mels": 32, "loc": 0.0, "scale": 1.0}
AUDIO_FRAMES = 1 + (AUDIO["window_samples"] - AUDIO["n_fft"]) // AUDIO["hop_length"]  # 61


def robot_config() -> Config:
    """A robot-sized model: conv camera net, MLP audio and joint nets."""
    def modality(name, kind, shape, likelihood, preprocess, ros, network, latent_dim):
        topic, msg_type, rate_hz = ros
        return {"name": name, "kind": kind, "shape": shape, "likelihood": likelihood,
                "preprocess": preprocess, "network": network, "latent_dim": latent_dim,
                "ros": {"topic": topic, "msg_type": msg_type, "rate_hz": rate_hz}}

    n = 2 * len(JOINTS)
    return Config.from_dict({
        "data": {"kind": "npz"},
        "modalities": [
            modality("camera", "image", [3, 64, 64], "gaussian", {"encoding": "rgb8"},
                     ("camera/image_raw", "sensor_msgs/msg/Image", 30.0),
                     {"arch": "conv", "channels": [32, 64, 128, 128], "hidden": [256]}, 32),
            modality("audio", "audio", [1, AUDIO["n_mels"], AUDIO_FRAMES], "gaussian",
                     dict(AUDIO), ("audio", "std_msgs/msg/Float32MultiArray", 50.0),
                     {"arch": "mlp", "hidden": [512, 256]}, 16),
            modality("joints", "vector", [n], "gaussian",
                     {"joint_names": JOINTS, "fields": ["position", "velocity"],
                      "loc": [0.0] * n, "scale": [1.0] * n},
                     ("joint_states", "sensor_msgs/msg/JointState", 100.0),
                     {"arch": "mlp", "hidden": [128, 128]}, 8),
        ],
        "model": {"type": "sensorysync", "core_hidden": [128, 128], "core_latent_dim": 16},
        "train": {"epochs": 1, "batch_size": 64, "lr": 1e-3},
    }, source="benchmark robot model")


@dataclass
class Timings:
    """Per-call times in microseconds: wall clock and the calling thread's CPU time."""

    wall_us: np.ndarray
    cpu_us: np.ndarray


def time_calls(fn: Callable[[], object], calls: int) -> Timings:
    wall = np.empty(calls)
    cpu = np.empty(calls)
    for i in range(calls):
        start_cpu = time.thread_time_ns()
        start = time.perf_counter_ns()
        fn()
        wall[i] = (time.perf_counter_ns() - start) / 1e3
        cpu[i] = (time.thread_time_ns() - start_cpu) / 1e3
    return Timings(wall, cpu)


Backends = dict[str, Callable[[], object]]


def compare(backends: Backends, calls: int, desc: str) -> dict[str, Timings]:
    """Per-call times of each backend, in ROUNDS alternating blocks (after a warm-up)."""
    for fn in backends.values():
        time_calls(fn, 20)
    block = max(1, calls // ROUNDS)
    times: dict[str, list[Timings]] = {name: [] for name in backends}
    for _ in tqdm(range(ROUNDS), desc=desc, leave=False):
        for name, fn in backends.items():
            times[name].append(time_calls(fn, block))
    return {
        name: Timings(np.concatenate([t.wall_us for t in ts]),
                      np.concatenate([t.cpu_us for t in ts]))
        for name, ts in times.items()
    }


def backends_for(
    model: torch.nn.Module, engine: Engine, batch: int, rng: np.random.Generator
) -> Backends:
    inputs = random_inputs(engine.manifest, batch, rng)
    mask = all_masks(len(engine.manifest.names))[rng.integers(0, 2 ** len(inputs) - 1, batch)]
    names = engine.manifest.names

    def ort_call() -> object:
        return engine.run(inputs, mask)

    def torch_call() -> object:
        with torch.inference_mode():
            outs = model.export_forward(*(torch.from_numpy(inputs[n]) for n in names),
                                        torch.from_numpy(mask))
        return [o.numpy() for o in outs]

    return {"onnxruntime": ort_call, "torch eager": torch_call}


def export_for_bench(name: str, config: Config, workdir: Path) -> tuple[torch.nn.Module, Path]:
    """A seeded, untrained model of ``config`` and its exported ONNX file."""
    torch.manual_seed(0)
    model = build_model(config).eval()
    manifest = build_manifest(config, {"name": name})
    return model, export_model(model, manifest, workdir / f"{name}.onnx", card=False).onnx_path


def bench_model(
    name: str, model: torch.nn.Module, path: Path, calls: int, threads: int
) -> list[str]:
    """Table rows (ORT, torch, ratio) for one model at one thread count."""
    n_params = sum(p.numel() for p in model.parameters())
    engine = Engine(path, providers=(CPU_PROVIDER,), threads=threads)
    rng = np.random.default_rng(0)
    lat = compare(backends_for(model, engine, 1, rng), calls, f"{name} batch 1")
    thr_calls = max(ROUNDS, calls // 10)
    thr = compare(backends_for(model, engine, 32, rng), thr_calls, f"{name} batch 32")
    o = _stats(lat["onnxruntime"], thr["onnxruntime"], threads)
    t = _stats(lat["torch eager"], thr["torch eager"], threads)
    # ratio: how many times better ORT is (latency: torch / ORT; throughput: ORT / torch)
    ratio = {k: (o[k] / t[k] if "samples" in k else t[k] / o[k]) for k in o if k != "p99/p50"}
    label = f"{name} ({n_params / 1e6:.2f} M params)"
    return [
        f"| {label} | onnxruntime | " + " | ".join(_fmt(v) for v in o.values()) + " |",
        f"| {label} | torch eager | " + " | ".join(_fmt(v) for v in t.values()) + " |",
        f"| {name} | **ORT gain** | "
        + " | ".join(f"**{ratio[k]:.2f}x**" if k in ratio else "" for k in o)
        + " |",
    ]


def _stats(lat: Timings, thr: Timings, threads: int) -> dict[str, float]:
    """Table columns for one backend. CPU columns only at 1 thread, where the calling thread
    does all the work, so its CPU time is the cost of a call whatever else loads the machine."""
    wall_ms, cpu_ms = lat.wall_us / 1e3, lat.cpu_us / 1e3
    out = {"p50 ms": float(np.percentile(wall_ms, 50)), "p99 ms": float(np.percentile(wall_ms, 99))}
    out["p99/p50"] = out["p99 ms"] / out["p50 ms"]
    if threads == 1:
        out["CPU p50 ms"] = float(np.percentile(cpu_ms, 50))
        out["CPU p99 ms"] = float(np.percentile(cpu_ms, 99))
    out["b32 samples/s"] = 32e6 / float(np.mean(thr.wall_us))
    if threads == 1:
        out["b32 samples/CPU-s"] = 32e6 / float(np.mean(thr.cpu_us))
    return out


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3f}"


def _header(threads: int) -> list[str]:
    dummy = Timings(np.ones(1), np.ones(1))
    cols = list(_stats(dummy, dummy, threads))
    return ["| model | backend | " + " | ".join(cols) + " |", "|" + " --- |" * (len(cols) + 2)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="batch-1 calls per backend")
    parser.add_argument("--threads", type=int, nargs="+", default=[os.cpu_count() or 1],
                        help="intra-op threads for both backends; one table per value "
                             "(default: all cores)")
    parser.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    models = {
        "fashion_mnist": load_config(REPO / "training" / "configs" / "fashion_mnist.yaml"),
        "robot": robot_config(),
    }
    lines = [
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, onnxruntime "
        f"{ort.__version__} ({CPU_PROVIDER}), torch {torch.__version__}; {args.calls} batch-1 "
        f"calls and {max(ROUNDS, args.calls // 10)} batch-32 calls per backend in {ROUNDS} "
        "alternating blocks, random masks; both backends with the same intra-op threads. "
        f"Load average at start: {os.getloadavg()[0]:.1f} (shared machine: wall-clock p99 "
        "includes preemption by other processes; the CPU columns do not).",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        exported = {name: export_for_bench(name, c, Path(tmp)) for name, c in models.items()}
        for threads in args.threads:
            torch.set_num_threads(threads)
            lines += [
                "",
                f"### {threads} intra-op thread{'s' if threads > 1 else ''}",
                "",
                *_header(threads),
            ]
            for name, (model, path) in exported.items():
                lines += bench_model(name, model, path, args.calls, threads)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"# ONNX Runtime engine vs torch eager\n\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
