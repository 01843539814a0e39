"""sensorysync-replay over real DDS, and the live node fed by it against the offline evaluator.

Every process inherits the test's own ROS_DOMAIN_ID (conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float32MultiArray

from sensorysync_ros.bagtools.bagio import BagReader
from sensorysync_ros.bagtools.dropout import NS_PER_S
from sensorysync_ros.bagtools.evaluate import main as eval_main
from sensorysync_ros.bagtools.synth import DEFAULT_START_NS, SyntheticRobot, write_synthetic_bag
from sensorysync_ros.core_msg import decode_core
from sensorysync_ros.model_file import read_manifest

BIN = Path(sys.executable).parent
RELIABLE = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)


def stamp_ns(msg: Any) -> int:
    return int(msg.header.stamp.sec) * NS_PER_S + int(msg.header.stamp.nanosec)


class Listener:
    """Records (wall receive time ns, message) per topic in its own context and thread."""

    def __init__(self, topics: dict[str, tuple[type, QoSProfile]]) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("bag_test_listener", context=self.context)
        self.received: dict[str, list[tuple[int, Any]]] = {t: [] for t in topics}
        self.lock = threading.Lock()
        for topic, (cls, qos) in topics.items():
            self.node.create_subscription(cls, topic, self._keep(topic), qos)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _keep(self, topic: str) -> Callable[[Any], None]:
        def callback(msg: Any) -> None:
            with self.lock:
                self.received[topic].append((time.monotonic_ns(), msg))

        return callback

    def _spin(self) -> None:
        with contextlib.suppress(ExternalShutdownException, rclpy.executors.ShutdownException):
            self.executor.spin()

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self.thread.join(timeout=5)


def run_replay(bag: Path, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "sensorysync-replay"), str(bag), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=os.environ.copy(),
    )


@pytest.mark.timeout(120)
def test_replay_publishes_with_recorded_spacing_clock_and_drops(tiny_robot_model, tmp_path):
    specs = read_manifest(tiny_robot_model).modalities
    bag = write_synthetic_bag(tmp_path / "bag", specs, 3.0, storage="mcap")
    listener = Listener(
        {
            "/camera/image_raw": (Image, qos_profile_sensor_data),
            "/joint_states": (JointState, qos_profile_sensor_data),
            "/audio": (Float32MultiArray, qos_profile_sensor_data),
            "/clock": (Clock, RELIABLE),
        }
    )
    try:
        result = run_replay(
            bag,
            "--model",
            str(tiny_robot_model),
            "--drop",
            "camera:1-2",
            "--clock",
            "--wait-subscribers-s",
            "20",
            "--delay-s",
            "0.3",
        )
        assert result.returncode == 0, result.stderr
        assert "replayed" in result.stdout
        listener.wait_for(lambda: False, 0.3)
        with listener.lock:
            got = {k: list(v) for k, v in listener.received.items()}
    finally:
        listener.close()
    camera = got["/camera/image_raw"]
    stamps_s = np.array([(stamp_ns(m) - DEFAULT_START_NS) / NS_PER_S for _, m in camera])
    # 90 frames recorded, 30 withheld; best-effort transport may lose some on a busy machine
    assert 48 <= len(camera) <= 60
    assert not ((stamps_s >= 1.0) & (stamps_s < 2.0)).any()
    # recorded spacing: receive-time gaps follow the stamp gaps
    wall_s = np.array([t for t, _ in camera]) / NS_PER_S
    before = stamps_s < 1.0
    spacing = np.diff(wall_s[before]) / np.diff(stamps_s[before])
    assert np.median(spacing) == pytest.approx(1.0, abs=0.15)
    span = (wall_s[-1] - wall_s[0]) / (stamps_s[-1] - stamps_s[0])
    assert span == pytest.approx(1.0, abs=0.1)
    joints = got["/joint_states"]
    assert len(joints) >= 240  # 300 recorded
    clock_ns = np.array([c.clock.sec * NS_PER_S + c.clock.nanosec for _, c in got["/clock"]])
    assert len(clock_ns) >= 200 and np.all(np.diff(clock_ns) >= 0)
    assert clock_ns[0] >= DEFAULT_START_NS and clock_ns[-1] <= DEFAULT_START_NS + 3 * NS_PER_S


def test_replay_bad_input(tmp_path, tiny_robot_model):
    result = run_replay(tmp_path / "none", "--delay-s", "0")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: bag {str(tmp_path / 'none')!r} does not exist; pass a rosbag2 directory"
    ]
    specs = read_manifest(tiny_robot_model).modalities
    bag = write_synthetic_bag(tmp_path / "bag", specs, 0.5)
    result = run_replay(bag, "--model", str(tiny_robot_model), "--drop", "lidar:1-2")
    assert result.returncode == 1 and "unknown modality 'lidar'" in result.stderr


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.mark.timeout(180)
def test_live_node_fed_by_replay_publishes_what_the_evaluator_computes(tiny_robot_model, tmp_path):
    """Node (use_sim_time) <- sensorysync-replay --clock, against sensorysync-eval --write-bag.

    The node's timer and the evaluator tick at different phases, so the bag holds every sensor
    constant (SyntheticRobot(static=True)): then the reconstruction during the camera dropout
    depends only on which sensors are present, and must be the same number in both.
    """
    manifest = read_manifest(tiny_robot_model)
    bag = write_synthetic_bag(
        tmp_path / "static", manifest.modalities, 6.0, robot=SyntheticRobot(static=True)
    )
    drop = ["--drop", "camera:2.5-5.5"]
    out = tmp_path / "eval"
    assert (
        eval_main(
            [
                str(bag),
                "--model",
                str(tiny_robot_model),
                *drop,
                "--write-bag",
                "--out",
                str(out),
                "--providers",
                "CPUExecutionProvider",
            ]
        )
        == 0
    )
    offline = {}
    dc, n = manifest.core_latent_dim, len(manifest.names)
    offline_core = {}
    with BagReader(out / "static_sensorysync") as reader:
        for conn, recv_ns, raw in reader.raw_messages():
            if conn.topic == "/sensorysync/camera/reconstruction":
                msg = reader.deserialize(raw, conn, recv_ns)
                offline[stamp_ns(msg)] = np.asarray(msg.data, np.uint8).reshape(32, 32, 3)
            elif conn.topic == "/sensorysync/core":
                core = decode_core(reader.deserialize(raw, conn, recv_ns), dc, n)
                offline_core[core.stamp_ns] = core

    def in_window(t_ns: int) -> bool:
        return 2.8 <= (t_ns - DEFAULT_START_NS) / NS_PER_S <= 5.4

    offline_frames = [f for t, f in offline.items() if in_window(t)]
    assert len(offline_frames) > 60
    reference = offline_frames[0].astype(int)
    assert all(np.abs(f.astype(int) - reference).max() <= 1 for f in offline_frames)
    reference_core = next(c for t, c in offline_core.items() if in_window(t) and not c.present[0])

    listener = Listener(
        {
            "/sensorysync/camera/reconstruction": (Image, RELIABLE),
            "/sensorysync/core": (Image, RELIABLE),
        }
    )
    log = (tmp_path / "node.log").open("w")
    node = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sensorysync_ros.node",
            "--ros-args",
            "-p",
            f"model_path:={tiny_robot_model}",
            "-p",
            "use_sim_time:=true",
            "-p",
            "providers:=[CPUExecutionProvider]",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
    )
    try:
        assert listener.wait_for(
            lambda: listener.node.count_publishers("/sensorysync/core") > 0, 60
        ), (tmp_path / "node.log").read_text()
        result = run_replay(
            bag, "--model", str(tiny_robot_model), *drop, "--clock", "--wait-subscribers-s", "20"
        )
        assert result.returncode == 0, result.stderr
        listener.wait_for(lambda: False, 0.5)
    finally:
        _stop(node)
        with listener.lock:
            live = list(listener.received["/sensorysync/camera/reconstruction"])
            live_core = list(listener.received["/sensorysync/core"])
        listener.close()
    live_frames = [
        np.asarray(m.data, np.uint8).reshape(32, 32, 3) for _, m in live if in_window(stamp_ns(m))
    ]
    assert len(live_frames) > 30, (tmp_path / "node.log").read_text()[-2000:]
    for frame in live_frames:
        assert np.abs(frame.astype(int) - reference).max() <= 1
    live_dropout_cores = [decode_core(m, dc, n) for _, m in live_core if in_window(stamp_ns(m))]
    live_dropout_cores = [c for c in live_dropout_cores if not c.present[0]]
    assert len(live_dropout_cores) > 30
    for core in live_dropout_cores:
        assert list(core.present) == list(reference_core.present)
        assert np.allclose(core.mean, reference_core.mean, atol=1e-5)
        assert np.allclose(core.variance, reference_core.variance, rtol=1e-4)
