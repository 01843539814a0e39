"""Record the simulated robot straight into a rosbag2 (mcap) file, faster than real time.

Each message is written with its measurement stamp as the bag's receive time; camera and
joint messages also carry it in ``header.stamp`` (audio chunks have no header: the bag time is
the stamp of the chunk's last sample).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from tqdm import tqdm

from .errors import SimError
from .msgs import TOPICS, event_message, rosbags_classes
from .robot import RobotConfig, SimRobot

__all__ = ["RecordSummary", "record_bag"]

_BLOCK_NS = 100_000_000  # advance the simulation 100 ms at a time


@dataclass(frozen=True)
class RecordSummary:
    path: Path
    duration_s: float
    messages: dict[str, int]  # topic -> count
    wall_s: float


def record_bag(
    path: Path, duration_s: float, config: RobotConfig, *, progress: bool = True
) -> RecordSummary:
    """Simulate ``duration_s`` seconds and write camera, joint and audio topics to ``path``."""
    path = Path(path)
    if path.exists():
        raise SimError(f"bag {str(path)!r} already exists; choose a new path or delete it")
    if duration_s <= 0:
        raise SimError(f"duration must be > 0 s, got {duration_s}")
    ts = get_typestore(Stores.ROS2_KILTED)
    classes = rosbags_classes(ts)
    counts = {topic: 0 for topic, _ in TOPICS.values()}
    end_ns = config.start_ns + round(duration_s * 1e9)
    t0 = time.perf_counter()
    with SimRobot(config) as robot, Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {
            name: w.add_connection(topic, msgtype, typestore=ts)
            for name, (topic, msgtype) in TOPICS.items()
        }
        blocks = -(-(end_ns - config.start_ns) // _BLOCK_NS)
        with tqdm(
            total=blocks, unit="sim s", unit_scale=_BLOCK_NS * 1e-9, disable=not progress,
            desc="record",
        ) as bar:
            while robot.now_ns < end_ns:
                for ev in robot.advance(min(robot.now_ns + _BLOCK_NS, end_ns)):
                    name, msg = event_message(classes, robot.joint_names, ev)
                    topic, msgtype = TOPICS[name]
                    w.write(conns[name], ev.stamp_ns, ts.serialize_cdr(msg, msgtype))
                    counts[topic] += 1
                bar.update(1)
    return RecordSummary(path, duration_s, counts, time.perf_counter() - t0)
