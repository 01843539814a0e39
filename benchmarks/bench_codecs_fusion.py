"""Codec and fusion-core costs beside the bare engine call, side by side in one process.

On the robot-sized model of bench_engine.py (3x64x64 camera, 1 s of 16 kHz audio as 1x32x61
log-mel, 7 joints x position/velocity; seeded, untrained): ``FusionCore.tick`` against the bare
``Engine.run`` it wraps (same inputs, same mask), a tick over a precomputed engine result (the
fusion core's own overhead, free of inference noise), and each codec's decode / encode per
message, as a ratio to the engine call measured in the same run. Blocks of calls alternate so
load drift hits all alike.

    .venv/bin/python benchmarks/bench_codecs_fusion.py [--calls 1000] [--threads 2] \
        [--out docs/results/codecs_fusion_benchmark.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sensor_msgs.msg import Image, JointState
from sensorysync_training.export import build_manifest, export_model
from sensorysync_training.registry import build_model
from std_msgs.msg import Float32MultiArray, Header

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import JOINTS, compare, robot_config

from sensorysync_ros.codecs import make_codec
from sensorysync_ros.engine import CPU_PROVIDER, Engine, EngineResult
from sensorysync_ros.fusion import FusionCore

NOW_NS = 10**12


class ReplayEngine:
    """Returns one precomputed result: isolates the fusion core's own cost from inference."""

    def __init__(self, engine: Engine, inputs: dict[str, np.ndarray], mask: np.ndarray) -> None:
        self.manifest = engine.manifest
        self._result = engine.run(inputs, mask)

    def run(self, inputs: object, mask: object) -> EngineResult:
        return self._result


def _image(height: int, width: int, encoding: str, rng: np.random.Generator) -> Image:
    pixels = rng.integers(0, 256, height * width * 3, dtype=np.uint8)
    return Image(height=height, width=width, encoding=encoding, step=width * 3, data=pixels)


def workloads(engine: Engine) -> dict[str, Callable[[], object]]:
    """Name -> one call: the engine, the fusion tick, and each codec operation."""
    rng = np.random.default_rng(0)
    manifest = engine.manifest
    codecs = {m.name: make_codec(m) for m in manifest.modalities}
    audio_pre = manifest.modality("audio").preprocess
    chunk = Float32MultiArray(data=rng.uniform(-0.5, 0.5, 320).astype(np.float32))
    for _ in range(int(audio_pre["window_samples"]) // 320 + 1):
        codecs["audio"].decode(chunk)  # fill the ring once
    joints = JointState(
        name=[*JOINTS[::-1], "gripper"],
        position=rng.uniform(-1, 1, 8),
        velocity=rng.uniform(-1, 1, 8),
        effort=np.zeros(8),
    )
    small, big = _image(64, 64, "rgb8", rng), _image(480, 640, "bgr8", rng)
    samples = {
        "camera": codecs["camera"].decode(small),
        "audio": codecs["audio"].decode(chunk),
        "joints": codecs["joints"].decode(joints),
    }
    inputs = {name: sample[None] for name, sample in samples.items()}
    mask = np.ones((1, len(manifest.names)), np.float32)
    core, bare_core = FusionCore(engine), FusionCore(ReplayEngine(engine, inputs, mask))
    for name, sample in samples.items():
        core.push(NOW_NS, name, sample)
        bare_core.push(NOW_NS, name, sample)
    header = Header()
    return {
        "engine.run (all present)": lambda: engine.run(inputs, mask),
        "FusionCore.tick (all present)": lambda: core.tick(NOW_NS),
        "FusionCore.tick without inference (core alone)": lambda: bare_core.tick(NOW_NS),
        "FusionCore.push (camera sample)": lambda: bare_core.push(
            NOW_NS, "camera", samples["camera"]
        ),
        "decode Image 64x64 rgb8": lambda: codecs["camera"].decode(small),
        "decode Image 640x480 bgr8 (resize)": lambda: codecs["camera"].decode(big),
        "decode JointState (8 joints, 7 used)": lambda: codecs["joints"].decode(joints),
        "decode audio chunk (320 samples, 1 s window)": lambda: codecs["audio"].decode(chunk),
        "encode Image 3x64x64": lambda: codecs["camera"].encode(samples["camera"], header),
        "encode JointState": lambda: codecs["joints"].encode(samples["joints"], header),
        "encode audio (Griffin-Lim, 4 iterations)": lambda: codecs["audio"].encode(
            samples["audio"], header
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls per workload (>= 100)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    args = parser.parse_args(argv)
    if args.calls < 100 or args.threads < 1:
        print("error: --calls must be >= 100 and --threads >= 1", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    config = robot_config()
    model = build_model(config).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = export_model(
            model, build_manifest(config, {"name": "robot"}), Path(tmp) / "robot.onnx", card=False
        ).onnx_path
        engine = Engine(path, providers=(CPU_PROVIDER,), threads=args.threads)
        times = compare(workloads(engine), args.calls, "codecs + fusion")
    engine_p50 = float(np.percentile(times["engine.run (all present)"], 50))
    tick_p50 = float(np.percentile(times["FusionCore.tick (all present)"], 50))
    alone_p50 = float(np.percentile(times["FusionCore.tick without inference (core alone)"], 50))
    lines = [
        f"Robot-sized model, CPU provider, {args.threads} threads, {args.calls} calls each, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at the end (absolute times scale with load; ratios hold).",
        "",
        "| workload | p50 µs | p99 µs | p50 / engine p50 |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, t in times.items():
        p50, p99 = float(np.percentile(t, 50)), float(np.percentile(t, 99))
        lines.append(f"| {name} | {p50:.1f} | {p99:.1f} | {p50 / engine_p50:.3f} |")
    lines += [
        "",
        f"Fusion core overhead: {alone_p50:.1f} µs per tick measured alone (tick over a "
        f"precomputed engine result); tick p50 - engine p50 = {tick_p50 - engine_p50:.1f} µs "
        f"({tick_p50 / engine_p50:.3f}x the bare engine call, within load noise).",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"# Codecs and fusion core: cost per call\n\n{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
