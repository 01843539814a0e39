"""Synthetic rosbag2 recordings shaped for a model's manifest (tests, benchmarks, examples).

A 3-joint arm swings sinusoidally; the camera sees a disc whose position and colour follow the
joint angles on a fixed background; the audio is a tone whose pitch follows the first joint's
speed. Every message is written at its header stamp (audio chunks, which have no header, at
their end time). ``static=True`` holds every sensor constant (a 400 Hz tone, whose period
divides every audio chunk and window, so any window of it is identical): the fusion output
then depends only on which sensors are present, not on tick timing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from rosbags.typesys.store import Typestore

from ..codecs import pcm_to_msg
from ..errors import SensorySyncError
from ..manifest import ModalitySpec
from ..model_file import read_manifest
from .bagio import base_typestore
from .dropout import NS_PER_S
from .errors import one_line

__all__ = ["SyntheticRobot", "main", "write_synthetic_bag"]

DEFAULT_START_NS = 1_700_000_000 * NS_PER_S
STATIC_TONE_HZ = 400.0
_PLUGINS = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}


@dataclass(frozen=True)
class SyntheticRobot:
    """The synthetic scene; all signals are functions of bag time ``t_s``."""

    static: bool = False
    seed: int = 0

    def joint_positions(self, t_s: float, n: int) -> np.ndarray:
        if self.static:
            return np.linspace(0.3, -0.2, n)
        k = np.arange(n)
        return 0.8 * np.sin(2 * np.pi * (0.2 + 0.07 * k) * t_s + 0.9 * k + self.seed)

    def joint_velocities(self, t_s: float, n: int) -> np.ndarray:
        if self.static:
            return np.zeros(n)
        k = np.arange(n)
        w = 2 * np.pi * (0.2 + 0.07 * k)
        return 0.8 * w * np.cos(w * t_s + 0.9 * k + self.seed)

    def frame(self, t_s: float, height: int, width: int) -> np.ndarray:
        """RGB uint8 (H, W, 3)."""
        q = self.joint_positions(t_s, 3)
        img = np.zeros((height, width, 3), np.uint8)
        img[:, :] = (40, 60, 90)
        img[height * 3 // 4 :, :] = (90, 80, 60)
        cx = int(width / 2 + 0.35 * width * np.sin(q[0]))
        cy = int(height / 2 - 0.3 * height * np.sin(q[1]))
        colour = tuple(int(c) for c in (200, 120 + 100 * np.tanh(q[2]), 50))
        cv2.circle(img, (cx, cy), max(2, width // 8), colour, -1)
        return img

    def tone_hz(self, t_s: float) -> float:
        if self.static:
            return STATIC_TONE_HZ
        return 300.0 + 150.0 * abs(float(self.joint_velocities(t_s, 3)[0]))


def _time(store: Typestore, stamp_ns: int) -> Any:
    return store.types["builtin_interfaces/msg/Time"](
        sec=stamp_ns // NS_PER_S, nanosec=stamp_ns % NS_PER_S
    )


def _header(store: Typestore, stamp_ns: int, frame_id: str) -> Any:
    return store.types["std_msgs/msg/Header"](stamp=_time(store, stamp_ns), frame_id=frame_id)


def _image(store: Typestore, robot: SyntheticRobot, spec: ModalitySpec, t_ns: int, t_s: float):
    channels, height, width = spec.shape
    rgb = robot.frame(t_s, height, width)
    encoding = "rgb8"
    if channels == 1:
        rgb, encoding = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), "mono8"
    return store.types["sensor_msgs/msg/Image"](
        header=_header(store, t_ns, "camera"),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=width * (1 if channels == 1 else 3),
        data=np.ascontiguousarray(rgb).reshape(-1),
    )


def _joints(store: Typestore, robot: SyntheticRobot, spec: ModalitySpec, t_ns: int, t_s: float):
    names = list(spec.preprocess["joint_names"])
    q = robot.joint_positions(t_s, len(names))
    return store.types["sensor_msgs/msg/JointState"](
        header=_header(store, t_ns, "base_link"),
        name=names,
        position=q.astype(np.float64),
        velocity=robot.joint_velocities(t_s, len(names)).astype(np.float64),
        effort=(0.5 * q).astype(np.float64),
    )


class _Tone:
    """Phase-continuous tone chunks as PCM in [-1, 1]."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.phase = 0.0

    def chunk(self, robot: SyntheticRobot, n: int, t_s: float) -> np.ndarray:
        hz = robot.tone_hz(t_s)
        steps = self.phase + 2 * np.pi * hz / self.sample_rate * np.arange(1, n + 1)
        self.phase = float(steps[-1]) % (2 * np.pi)
        if robot.static:
            steps = 2 * np.pi * hz / self.sample_rate * np.arange(n)
        return (0.5 * np.sin(steps)).astype(np.float32)


def _events(
    specs: Sequence[ModalitySpec], duration_s: float, start_ns: int
) -> Iterator[tuple[int, ModalitySpec]]:
    """(stamp, modality) of every message in time order."""
    streams = []
    for i, spec in enumerate(specs):
        period_ns = round(NS_PER_S / spec.ros.rate_hz)
        count = int(duration_s * NS_PER_S // period_ns)
        streams.append([(start_ns + k * period_ns, i) for k in range(1, count + 1)])
    for stamp_ns, i in sorted(s for stream in streams for s in stream):
        yield stamp_ns, specs[i]


def write_synthetic_bag(
    path: str | Path,
    specs: Sequence[ModalitySpec],
    duration_s: float,
    *,
    storage: str = "sqlite3",
    robot: SyntheticRobot | None = None,
    gaps: Sequence[tuple[str, float, float]] = (),
    start_ns: int = DEFAULT_START_NS,
    audio_msgtype: str = "std_msgs/msg/Float32MultiArray",
    audio_variant: str = "ros_drivers",
) -> Path:
    """Write a bag with one topic per modality (the manifest's default topics and rates).

    ``gaps``: ``(modality, start_s, end_s)`` intervals with no messages (real sensor outages).
    Audio modalities are written as chunks of ``sample_rate / rate_hz`` samples in
    ``audio_msgtype`` (any type the audio codec reads; audio_common_msgs types from the shipped
    ``audio_variant``), image and vector modalities as Image (rgb8 / mono8) and JointState.
    """
    path = Path(path)
    robot = robot or SyntheticRobot()
    store = base_typestore(audio_variant)
    builders = {"image": _image, "vector": _joints}
    tones = {s.name: _Tone(int(s.preprocess["sample_rate"])) for s in specs if s.kind == "audio"}
    msgtypes = {
        "image": "sensor_msgs/msg/Image",
        "vector": "sensor_msgs/msg/JointState",
        "audio": audio_msgtype,
    }
    with Writer(path, version=9, storage_plugin=_PLUGINS[storage]) as writer:
        conns = {
            s.name: writer.add_connection(
                f"/{s.ros.topic.lstrip('/')}", msgtypes[s.kind], typestore=store
            )
            for s in specs
        }
        for stamp_ns, spec in _events(specs, duration_s, start_ns):
            t_s = (stamp_ns - start_ns) / NS_PER_S
            if any(g[0] == spec.name and g[1] <= t_s < g[2] for g in gaps):
                continue
            if spec.kind == "audio":
                n = round(int(spec.preprocess["sample_rate"]) / spec.ros.rate_hz)
                pcm = tones[spec.name].chunk(robot, n, t_s)
                header = _header(store, stamp_ns, "microphone")
                msg = pcm_to_msg(
                    pcm, header, store.types[audio_msgtype], tones[spec.name].sample_rate
                )
            else:
                msg = builders[spec.kind](store, robot, spec, stamp_ns, t_s)
            writer.write(conns[spec.name], stamp_ns, store.serialize_cdr(msg, msgtypes[spec.kind]))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sensorysync_ros.bagtools.synth OUT --model MODEL``: write a sample bag."""
    parser = argparse.ArgumentParser(
        prog="python -m sensorysync_ros.bagtools.synth",
        description="Write a synthetic rosbag2 shaped for a model (camera, audio, joints).",
    )
    parser.add_argument("out", type=Path, help="bag directory to create (must not exist)")
    parser.add_argument("--model", type=Path, required=True, help="exported .onnx model")
    parser.add_argument("--duration-s", type=float, default=30.0, help="length in seconds")
    parser.add_argument("--storage", choices=sorted(_PLUGINS), default="mcap")
    parser.add_argument("--seed", type=int, default=0, help="phase of the arm's motion")
    args = parser.parse_args(argv)
    try:
        specs = read_manifest(args.model).modalities
        write_synthetic_bag(
            args.out,
            specs,
            args.duration_s,
            storage=args.storage,
            robot=SyntheticRobot(seed=args.seed),
        )
    except (SensorySyncError, OSError, WriterError) as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 1
    print(f"wrote {args.duration_s:g} s synthetic {args.storage} bag {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
