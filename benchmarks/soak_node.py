"""Soak the node: all three sensors for minutes, a dropout every 30 s; memory, ticks, drops.

Starts the node (``sensorysync_node``, fusion timer at ``--rate-hz``) and the sensor publisher
(test/ros_helpers/sensor_publisher.py: camera 30 Hz, joints 100 Hz, audio 50 chunks/s). Every
``--dropout-every-s`` one sensor falls silent for ``--dropout-s`` (camera, audio, joints, then
all three, in turn). Meanwhile this process samples the node's resident memory (VmRSS) and
records its /diagnostics. Reports:

- RSS growth from the end of warm-up (first dropout cycle) to the end (goal <= 5 %);
- ticks missed: fusion timer ticks expected from the elapsed node time minus ticks counted;
- messages dropped: good messages published minus messages the node received, per sensor;
- whether the node survived (exit code 0 on SIGINT).

    nice -n 10 .venv/bin/python benchmarks/soak_node.py --model models/default.onnx \
        [--duration-s 300] [--out docs/results/node_benchmark.md]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from ros_bench_cli import run_benchmark  # noqa: E402

sys.path.insert(0, str(REPO / "test"))
from ros_helpers.observer import Observer, stamp_ns, values  # noqa: E402

PUBLISHER = REPO / "test" / "ros_helpers" / "sensor_publisher.py"
DROPOUTS = ("nocamera", "noaudio", "nojoints", "none")
SAMPLE_EVERY_S = 5.0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def phases(duration_s: float, every_s: float, dropout_s: float) -> str:
    items, t, i = [], 0.0, 0
    while t + every_s <= duration_s:
        items += [f"all:{every_s - dropout_s:g}", f"{DROPOUTS[i % len(DROPOUTS)]}:{dropout_s:g}"]
        t, i = t + every_s, i + 1
    return ",".join(items)


def fusion_values(msg: object) -> dict[str, str]:
    for status in msg.status:  # type: ignore[attr-defined]
        if status.name.endswith(": fusion"):
            return values(status)
    raise RuntimeError("diagnostics without a fusion status")


def run(args: argparse.Namespace) -> str:
    model = Path(args.model).resolve()
    workdir = Path(tempfile.mkdtemp(prefix="soak_node_"))
    node_cmd = [
        sys.executable, "-m", "sensorysync_ros.node", "--ros-args",
        "-p", f"model_path:={model}", "-p", "providers:=[CPUExecutionProvider]",
        "-p", f"fusion_rate_hz:={args.rate_hz}",
    ]
    node = subprocess.Popen(node_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    schedule = phases(args.duration_s, args.dropout_every_s, args.dropout_s)
    rss: list[tuple[float, int]] = []
    with Observer([]) as obs:
        if not obs.wait_for(lambda: obs.diagnostics.items, 60):
            node.kill()
            raise RuntimeError(f"node never came up: {node.communicate()[1][-2000:]}")
        publisher = subprocess.Popen(
            [sys.executable, str(PUBLISHER), "--model", str(model), "--phases", schedule,
             "--log", str(workdir / "published.json")],
            stderr=subprocess.PIPE, text=True,
        )
        start = time.monotonic()
        with tqdm(total=int(args.duration_s), desc="soak", unit="s") as bar:
            while publisher.poll() is None:
                rss.append((time.monotonic() - start, rss_kib(node.pid)))
                time.sleep(SAMPLE_EVERY_S)
                bar.update(min(int(SAMPLE_EVERY_S), bar.total - bar.n))
        if publisher.returncode != 0:
            raise RuntimeError(f"publisher failed: {publisher.stderr.read()[-2000:]}")
        rss.append((time.monotonic() - start, rss_kib(node.pid)))
        time.sleep(2.0)  # one more diagnostics report after the last message
        diags = [msg for _, msg in obs.diagnostics.items]
    node.send_signal(signal.SIGINT)
    exit_code = node.wait(timeout=20)

    log = json.loads((workdir / "published.json").read_text())
    first_ns, last_ns = log["phases"][0]["start_ns"], log["phases"][-1]["end_ns"]
    window = [m for m in diags if first_ns <= stamp_ns(m) <= last_ns]
    ticks0, ticks1 = (int(fusion_values(m)["ticks"]) for m in (window[0], window[-1]))
    elapsed_s = (stamp_ns(window[-1]) - stamp_ns(window[0])) / 1e9
    expected = elapsed_s * args.rate_hz
    counted = ticks1 - ticks0
    received = {}
    for status in diags[-1].status:
        name = status.name.split(": ", 1)[-1]
        if name != "fusion":
            received[name] = int(values(status)["received"])
    published = {name: 0 for name in received}
    for name, _, kind in log["published"]:
        published[name] += kind == "good"
    baseline = next(kib for t, kib in rss if t >= args.dropout_every_s)
    growth = 100.0 * (rss[-1][1] - baseline) / baseline
    lines = [
        f"soak: model `{model.name}`, {args.duration_s:g} s, fusion {args.rate_hz:g} Hz, dropout "
        f"of {args.dropout_s:g} s every {args.dropout_every_s:g} s ({', '.join(DROPOUTS)} in "
        f"turn), {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| node exit code on SIGINT (0 = no crash) | {exit_code} |",
        f"| RSS at start / after warm-up ({args.dropout_every_s:g} s) / end / max, MiB | "
        f"{rss[0][1] / 1024:.1f} / {baseline / 1024:.1f} / {rss[-1][1] / 1024:.1f} / "
        f"{max(k for _, k in rss) / 1024:.1f} |",
        f"| RSS growth after warm-up (goal <= 5 %) | {growth:+.2f} % |",
        f"| fusion ticks expected / counted / missed | {expected:.0f} / {counted} / "
        f"{max(0.0, expected - counted):.0f} ({max(0.0, 100 * (1 - counted / expected)):.2f} %) |",
        *(
            f"| {name}: published / received / dropped | {published[name]} / {received[name]} / "
            f"{published[name] - received[name]} "
            f"({100 * (published[name] - received[name]) / max(1, published[name]):.2f} %) |"
            for name in received
        ),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "models" / "default.onnx"))
    parser.add_argument("--duration-s", type=float, default=300.0)
    parser.add_argument("--dropout-every-s", type=float, default=30.0)
    parser.add_argument("--dropout-s", type=float, default=5.0)
    parser.add_argument("--rate-hz", type=float, default=30.0)
    parser.add_argument("--out", help="append the table to this markdown file")
    parser.add_argument("--domain-id", type=int, default=143,
                        help="ROS_DOMAIN_ID of this run (keeps other ROS traffic out)")
    return run_benchmark(parser.parse_args(argv), run)


if __name__ == "__main__":
    sys.exit(main())
