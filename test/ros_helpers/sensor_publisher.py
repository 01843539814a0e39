"""Publisher process for node tests and benchmarks: streams the model's sensors in timed phases.

    python test/ros_helpers/sensor_publisher.py --model M.onnx --log out.json \
        --phases all:1.5,nocamera:1.0,all:1.0,malformed:1.0,none:1.0

Streams camera (sensor_msgs/Image, rgb8, 30 Hz), joints (sensor_msgs/JointState, 100 Hz) and
audio (std_msgs/Float32MultiArray PCM, 50 chunks/s), shaped from the model's manifest, with
sensor-data QoS. Phases: ``all``, ``none``, ``no<modality>[+<modality>...]`` (those silent),
``only<modality>``, ``malformed`` (all, plus one malformed message every 50 ms, cycling through
the kinds in MALFORMED). Every message's header.stamp / publish time is the system clock in ns.
Waits until every topic has a subscriber (up to ``--wait-s``) before the first phase; writes
the phases and every published message ``(modality, stamp_ns, kind)`` to ``--log`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float32MultiArray, Header

from sensorysync_ros.manifest import Manifest
from sensorysync_ros.model_file import read_manifest

RATES_HZ = {"camera": 30.0, "joints": 100.0, "audio": 50.0}
MALFORMED_PERIOD_S = 0.05
MALFORMED = (
    ("camera", "unknown_encoding"),
    ("joints", "nan_position"),
    ("audio", "empty_chunk"),
    ("camera", "short_data"),
    ("joints", "unknown_joint_names"),
)


def _header(stamp_ns: int, frame_id: str) -> Header:
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return header


class Streams:
    """Builds good and malformed messages of each modality for one manifest."""

    def __init__(self, manifest: Manifest) -> None:
        camera = manifest.modality("camera")
        _, self.height, self.width = camera.shape
        joints = manifest.modality("joints").preprocess
        self.joint_names = list(joints["joint_names"])
        audio = manifest.modality("audio").preprocess
        self.chunk = int(audio["sample_rate"]) // int(RATES_HZ["audio"])
        self.audio_rate = int(audio["sample_rate"])
        self.count = {name: 0 for name in RATES_HZ}
        yy, xx = np.mgrid[0 : self.height, 0 : self.width]
        self._base = np.stack([xx * 255 // self.width, yy * 255 // self.height, xx * 0], -1)

    def good(self, modality: str, stamp_ns: int) -> Any:
        n = self.count[modality]
        self.count[modality] += 1
        header = _header(stamp_ns, f"{modality}_frame")
        if modality == "camera":
            pixels = ((self._base + 4 * n) % 256).astype(np.uint8)
            return Image(
                header=header, height=self.height, width=self.width, encoding="rgb8",
                is_bigendian=0, step=3 * self.width, data=pixels.tobytes(),
            )
        if modality == "joints":
            t = stamp_ns / 1e9
            q = [math.sin(t + i) for i in range(len(self.joint_names))]
            dq = [math.cos(t + i) for i in range(len(self.joint_names))]
            return JointState(
                header=header, name=self.joint_names, position=q, velocity=dq,
                effort=[0.1] * len(self.joint_names),
            )
        t = (np.arange(self.chunk) + n * self.chunk) / self.audio_rate
        return Float32MultiArray(data=(0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32))

    def malformed(self, kind: str, stamp_ns: int) -> Any:
        header = _header(stamp_ns, "malformed")
        size = 3 * self.width * self.height
        if kind == "unknown_encoding":
            return Image(header=header, height=self.height, width=self.width, encoding="weird8",
                         step=3 * self.width, data=bytes(size))
        if kind == "short_data":
            return Image(header=header, height=self.height, width=self.width, encoding="rgb8",
                         step=3 * self.width, data=bytes(size // 2))
        if kind == "nan_position":
            j = len(self.joint_names)
            return JointState(header=header, name=self.joint_names, position=[math.nan] * j,
                              velocity=[0.0] * j, effort=[0.0] * j)
        if kind == "unknown_joint_names":
            names = [*self.joint_names[:-1], "tentacle"]
            return JointState(header=header, name=names, position=[0.0] * len(names),
                              velocity=[0.0] * len(names), effort=[0.0] * len(names))
        if kind == "empty_chunk":
            return Float32MultiArray(data=[])
        raise ValueError(f"unknown malformed kind {kind!r}")


def active_modalities(phase: str) -> set[str]:
    names = set(RATES_HZ)
    if phase in ("all", "malformed"):
        return names
    if phase == "none":
        return set()
    for prefix, keep in (("no", False), ("only", True)):
        if phase.startswith(prefix):
            listed = set(phase[len(prefix) :].split("+"))
            if not listed <= names:
                raise ValueError(f"phase {phase!r} names unknown modalities {listed - names}")
            return listed if keep else names - listed
    raise ValueError(f"unknown phase {phase!r}; use all, none, malformed, no<m>, only<m>")


def parse_phases(text: str) -> list[tuple[str, float]]:
    phases = []
    for item in text.split(","):
        name, _, seconds = item.partition(":")
        active_modalities(name)
        phases.append((name, float(seconds)))
    return phases


def run(args: argparse.Namespace) -> int:
    streams = Streams(read_manifest(args.model))
    topics = {"camera": args.camera_topic, "joints": args.joints_topic, "audio": args.audio_topic}
    classes = {"camera": Image, "joints": JointState, "audio": Float32MultiArray}
    rclpy.init()
    node = rclpy.create_node("sensor_publisher")
    pubs = {
        m: node.create_publisher(classes[m], topics[m], qos_profile_sensor_data) for m in RATES_HZ
    }
    deadline = time.monotonic() + args.wait_s
    while any(p.get_subscription_count() == 0 for p in pubs.values()):
        if time.monotonic() > deadline:
            print("error: no subscriber on some sensor topic", file=sys.stderr)
            return 1
        time.sleep(0.02)
    log: dict[str, Any] = {"phases": [], "published": []}
    publish: Callable[[str, Any, int, str], None]

    def publish(modality: str, msg: Any, stamp_ns: int, kind: str) -> None:
        pubs[modality].publish(msg)
        log["published"].append((modality, stamp_ns, kind))

    for phase, seconds in parse_phases(args.phases):
        active = active_modalities(phase)
        start = time.monotonic()
        next_at = {m: start for m in RATES_HZ}
        next_bad, bad_index = start + MALFORMED_PERIOD_S / 2, 0
        log["phases"].append({"name": phase, "start_ns": time.time_ns()})
        while (now := time.monotonic()) < start + seconds:
            for m in RATES_HZ:
                if now >= next_at[m]:
                    next_at[m] += 1.0 / RATES_HZ[m]
                    if m in active:
                        stamp_ns = time.time_ns()
                        publish(m, streams.good(m, stamp_ns), stamp_ns, "good")
            if phase == "malformed" and now >= next_bad:
                next_bad += MALFORMED_PERIOD_S
                m, kind = MALFORMED[bad_index % len(MALFORMED)]
                bad_index += 1
                stamp_ns = time.time_ns()
                publish(m, streams.malformed(kind, stamp_ns), stamp_ns, kind)
            wake = min([*next_at.values(), next_bad if phase == "malformed" else math.inf])
            time.sleep(max(0.0, min(wake, start + seconds) - time.monotonic()))
        log["phases"][-1]["end_ns"] = time.time_ns()
    Path(args.log).write_text(json.dumps(log))
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model .onnx (its manifest shapes data)")
    parser.add_argument("--phases", default="all:2", help="name:seconds,... (see module doc)")
    parser.add_argument("--log", required=True, help="JSON file written at the end")
    parser.add_argument("--wait-s", type=float, default=20.0, help="max wait for subscribers")
    parser.add_argument("--camera-topic", default="camera/image_raw")
    parser.add_argument("--joints-topic", default="joint_states")
    parser.add_argument("--audio-topic", default="audio")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
