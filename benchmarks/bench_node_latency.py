"""End-to-end node latency beside its floor, measured side by side in one run.

This process publishes camera images (30 Hz, header.frame_id = sequence number), joint states
(100 Hz) and audio chunks (50/s) shaped for the model. Two other processes subscribe to the
same camera stream at the same time:

- the node (``sensorysync_node``, ``trigger_modality:=camera``, ``fusion_timer:=false``,
  ``publish_present_reconstructions:=true``): every image triggers one fusion tick, whose camera
  reconstruction carries the image's frame_id back -> **end-to-end** latency;
- an echo process (test/ros_helpers/echo.py) that republishes the image untouched, with the
  node's QoS -> the **DDS floor** (two hops through a Python rclpy process, no node work).

The **bare engine call** (all sensors present, as in the node) is timed in this process after
the streams stop. Node overhead = p50 end-to-end - p50 floor - p50 engine.

    .venv/bin/python benchmarks/bench_node_latency.py --model models/default.onnx \
        [--ticks 1000] [--rate-hz 30] [--out docs/results/node_benchmark.md]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float32MultiArray
from tqdm import tqdm

from sensorysync_ros.engine import CPU_PROVIDER, Engine
from sensorysync_ros.node import reconstruction_topic

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from ros_bench_cli import run_benchmark  # noqa: E402

sys.path.insert(0, str(REPO / "test"))
from ros_helpers.sensor_publisher import RATES_HZ, Streams  # noqa: E402

ECHO_TOPIC = "bench/echo/image_raw"
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


def percentiles_ms(values_ns: list[int]) -> tuple[float, float, float]:
    """(p50, p99, max) in ms."""
    a = np.asarray(values_ns, dtype=np.float64) / 1e6
    return float(np.percentile(a, 50)), float(np.percentile(a, 99)), float(a.max())


class Bench:
    """Publishes the sensors and records when each camera frame comes back on each path."""

    def __init__(self, model: Path) -> None:
        self.streams = Streams(Engine(model, providers=[CPU_PROVIDER], warmup=False).manifest)
        self.node = rclpy.create_node("bench_node_latency")
        topics = {
            "camera": (Image, "camera/image_raw"),
            "joints": (JointState, "joint_states"),
            "audio": (Float32MultiArray, "audio"),
        }
        self.pubs = {
            name: self.node.create_publisher(cls, topic, qos_profile_sensor_data)
            for name, (cls, topic) in topics.items()
        }
        self.sent_ns: dict[str, int] = {}
        self.back_ns: dict[str, dict[str, int]] = {"node": {}, "floor": {}}
        self.lock = threading.Lock()
        self.node.create_subscription(
            Image, reconstruction_topic("camera"), lambda m: self._back("node", m), RELIABLE
        )
        self.node.create_subscription(Image, ECHO_TOPIC, lambda m: self._back("floor", m), RELIABLE)

    def _back(self, path: str, msg: Image) -> None:
        now = time.perf_counter_ns()
        with self.lock:
            self.back_ns[path].setdefault(msg.header.frame_id, now)

    def wait_for_subscribers(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.pubs["camera"].get_subscription_count() < 2:  # node + echo
            if time.monotonic() > deadline:
                raise RuntimeError("node or echo process never subscribed to camera/image_raw")
            time.sleep(0.05)

    def stream(self, ticks: int, rate_hz: float) -> None:
        """Publish ``ticks`` camera frames at ``rate_hz`` plus joints and audio at their rates."""
        rates = {**RATES_HZ, "camera": rate_hz}
        start = time.monotonic()
        next_at = dict.fromkeys(rates, start)
        sent = 0
        with tqdm(total=ticks, desc="camera frames", unit="frame") as bar:
            while sent < ticks:
                now = time.monotonic()
                for name, rate in rates.items():
                    if now < next_at[name]:
                        continue
                    next_at[name] += 1.0 / rate
                    msg = self.streams.good(name, time.time_ns())
                    if name == "camera":
                        msg.header.frame_id = str(sent)
                        self.sent_ns[str(sent)] = time.perf_counter_ns()
                        sent += 1
                        bar.update()
                    self.pubs[name].publish(msg)
                time.sleep(max(0.0, min(next_at.values()) - time.monotonic()))
        time.sleep(0.5)  # let the last frames come back

    def latencies_ns(self, path: str) -> tuple[list[int], list[int]]:
        """Per-frame latencies on ``path`` and the sequence numbers that never came back."""
        with self.lock:
            back = dict(self.back_ns[path])
        got = [back[k] - t for k, t in self.sent_ns.items() if k in back]
        lost = [int(k) for k in self.sent_ns if k not in back]
        return got, lost


def engine_ms(model: Path, calls: int, threads: int | None) -> tuple[float, float, float]:
    engine = Engine(model, providers=[CPU_PROVIDER], threads=threads)
    m = engine.manifest
    inputs = {s.name: np.random.rand(1, *s.shape).astype(np.float32) for s in m.modalities}
    mask = np.ones((1, len(m.names)), np.float32)
    times = []
    for _ in range(calls):
        t = time.perf_counter_ns()
        engine.run(inputs, mask)
        times.append(time.perf_counter_ns() - t)
    return percentiles_ms(times)


def spin_quietly(executor: SingleThreadedExecutor) -> None:
    with contextlib.suppress(ExternalShutdownException):
        executor.spin()


def spawn(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def run(args: argparse.Namespace) -> str:
    model = Path(args.model).resolve()
    node_cmd = [
        sys.executable, "-m", "sensorysync_ros.node", "--ros-args",
        "-p", f"model_path:={model}", "-p", "providers:=[CPUExecutionProvider]",
        "-p", "trigger_modality:=camera", "-p", "fusion_timer:=false",
        "-p", "publish_present_reconstructions:=true",
    ]
    if args.threads:
        node_cmd += ["-p", f"intra_op_threads:={args.threads}"]
    echo_cmd = [sys.executable, str(REPO / "test/ros_helpers/echo.py"), "--out", ECHO_TOPIC]
    processes = [spawn(node_cmd), spawn(echo_cmd)]
    rclpy.init()
    bench = Bench(model)
    executor = SingleThreadedExecutor()
    executor.add_node(bench.node)
    spinner = threading.Thread(target=spin_quietly, args=(executor,), daemon=True)
    spinner.start()
    try:
        bench.wait_for_subscribers(60)
        time.sleep(1.0)  # node activated, audio window filled by the first chunks
        bench.stream(args.ticks, args.rate_hz)
    finally:
        for process in processes:
            stop(process)
        rclpy.try_shutdown()
    spinner.join(timeout=5)
    node, node_lost = bench.latencies_ns("node")
    floor, floor_lost = bench.latencies_ns("floor")
    print(f"frames lost: node {node_lost[:50]}, floor {floor_lost[:50]}", file=sys.stderr)
    if len(node) < 0.5 * args.ticks or len(floor) < 0.5 * args.ticks:
        raise RuntimeError(f"too few frames back: node {len(node)}, floor {len(floor)}")
    e2e, dds, eng = percentiles_ms(node), percentiles_ms(floor), engine_ms(
        model, args.ticks, args.threads or None
    )
    overhead = e2e[0] - dds[0] - eng[0]
    rows = [
        ("end-to-end (camera -> node -> reconstruction)", e2e, f"{len(node_lost)} lost"),
        ("DDS floor (camera -> echo process -> back)", dds, f"{len(floor_lost)} lost"),
        ("bare engine call (all sensors present)", eng, "in-process"),
    ]
    lines = [
        f"model `{model.name}`, {args.ticks} camera frames at {args.rate_hz:g} Hz "
        f"(+ joints 100 Hz, audio 50 chunks/s), CPU provider, {os.cpu_count()} CPUs, "
        f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f} at the end",
        "",
        "| path | p50 ms | p99 ms | max ms | notes |",
        "| --- | --- | --- | --- | --- |",
        *(f"| {name} | {p[0]:.3f} | {p[1]:.3f} | {p[2]:.3f} | {note} |" for name, p, note in rows),
        "",
        f"node overhead = p50 e2e - p50 floor - p50 engine = {overhead:.3f} ms (goal <= 1 ms): "
        f"{'met' if overhead <= 1.0 else 'NOT met'}",
        f"p99 / p50 end-to-end = {e2e[1] / e2e[0]:.2f} (goal <= 3): "
        f"{'met' if e2e[1] <= 3 * e2e[0] else 'NOT met'}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "models" / "default.onnx"))
    parser.add_argument("--ticks", type=int, default=1000, help="camera frames (>= 1000)")
    parser.add_argument("--rate-hz", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads; 0 = default")
    parser.add_argument("--out", help="append the table to this markdown file")
    parser.add_argument("--domain-id", type=int, default=142,
                        help="ROS_DOMAIN_ID of this run (keeps other ROS traffic out)")
    return run_benchmark(parser.parse_args(argv), run)


if __name__ == "__main__":
    sys.exit(main())
