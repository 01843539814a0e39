"""Offline evaluation speed: bag seconds evaluated per wall-clock second (goal >= 50x).

Generates a 5-minute synthetic bag shaped for the model (camera, audio, joints at their
manifest rates), evaluates it with three dropouts, and prints the speed-up over real time beside
the bare engine's throughput measured in the same run (batch 1 as the node calls it, and the
evaluator's batch), all in one unit: bag seconds per wall second at the fusion rate. The
evaluator runs ONNX Runtime with 1 intra-op thread (sensorysync-eval's default); the bare engine
is measured with 1 thread and with ONNX Runtime's default (one per core).

    .venv/bin/python benchmarks/bench_eval_speed.py [--model models/default.onnx]
        [--duration-s 300] [--storage mcap] [--rate-hz 30]

Without --model it uses models/default.onnx when present, else the tiny test model.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sensorysync_ros.bagtools.dropout import parse_drop_spec
from sensorysync_ros.bagtools.evaluation import BATCH_TICKS, evaluate_bag
from sensorysync_ros.bagtools.synth import write_synthetic_bag
from sensorysync_ros.engine import Engine

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "models" / "default.onnx"
CPU = ["CPUExecutionProvider"]


def tiny_model(directory: Path) -> Path:
    sys.path.insert(0, str(REPO / "test"))
    from model_factory import export_tiny_robot_model  # torch only here

    return export_tiny_robot_model(directory / "tiny_robot.onnx")


def engine_samples_per_s(engine: Engine, batch: int, seconds: float = 3.0) -> float:
    """Samples per wall second of engine.run at ``batch``, all modalities present."""
    specs = engine.manifest.modalities
    rng = np.random.default_rng(0)
    inputs = {s.name: rng.random((batch, *s.shape), dtype=np.float32) for s in specs}
    mask = np.ones((batch, len(specs)), np.float32)
    engine.run(inputs, mask)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        engine.run(inputs, mask)
        calls += 1
    return calls * batch / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="exported model (default: see module doc)")
    parser.add_argument("--duration-s", type=float, default=300.0, help="bag length")
    parser.add_argument("--storage", choices=("sqlite3", "mcap"), default="mcap")
    parser.add_argument("--rate-hz", type=float, default=30.0, help="fusion rate")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
        tmp_path = Path(tmp)
        model = args.model or (DEFAULT_MODEL if DEFAULT_MODEL.exists() else tiny_model(tmp_path))
        engine = Engine(model, providers=CPU, threads=1)
        names = engine.manifest.names
        start = time.perf_counter()
        bag = write_synthetic_bag(
            tmp_path / "bag", engine.manifest.modalities, args.duration_s, storage=args.storage
        )
        write_s = time.perf_counter() - start
        d = args.duration_s
        drops = [f"{names[0]}:{0.2 * d:g}-{0.3 * d:g}", f"{names[-1]}:{0.5 * d:g}-{0.55 * d:g}"]
        if len(names) > 2:
            drops.append(f"{names[1]}:{0.7 * d:g}-{0.72 * d:g}")
        intervals = [parse_drop_spec(s, names) for s in drops]
        result = evaluate_bag(
            bag, engine, intervals_for=lambda _: intervals, rate_hz=args.rate_hz, progress=True
        )
        s = result.summary
        rows += [
            ("evaluate_bag, 1 engine thread (open to summary)", s["speedup_vs_real_time"], ""),
            ("  the same per CPU second (all threads)", d / s["cpu_s"], f"{s['cpu_s']:.1f} s CPU"),
        ]
        for threads in (1, None):
            bare = Engine(model, providers=CPU, threads=threads)
            label = "1 thread" if threads else "default threads"
            for batch in (1, BATCH_TICKS):
                rate = engine_samples_per_s(bare, batch)
                rows.append(
                    (f"bare engine, batch {batch}, {label}", rate / args.rate_hz, f"{rate:.0f}/s")
                )
    load = os.getloadavg()[0]
    print(
        f"model {model} ({engine.provider}); {d:g} s {args.storage} bag ({write_s:.1f} s to write)"
    )
    print(f"drops {' '.join(drops)}; {s['ticks']} ticks at {args.rate_hz:g} Hz")
    print(f"machine: {os.cpu_count()} CPUs, 1-minute load average {load:.1f} at the end")
    print("| measured in this run | bag s per s | engine samples |")
    print("| --- | --- | --- |")
    for label, ratio, extra in rows:
        print(f"| {label} | {ratio:.1f}x | {extra} |")
    print(f"goal >= 50x real time: {'met' if s['speedup_vs_real_time'] >= 50 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
