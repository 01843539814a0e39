"""sensorysync-sim: the recorder writes a readable mcap bag; the live node publishes over DDS."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

SIM = [str(Path(sys.executable).with_name("sensorysync-sim"))]


def _sim(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
    return subprocess.run(
        [*SIM, *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_recorder_writes_mcap_with_three_topics_at_their_rates(tmp_path: Path):
    bag = tmp_path / "bag"
    start_ns = 1_700_000_000_000_000_000
    result = _sim("--record", str(bag), "--duration", "2", "--seed", "4",
                  "--start-ns", str(start_ns), "--camera-size", "32", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout
    assert list(bag.glob("*.mcap")), "the bag is not mcap"
    stamps: dict[str, list[tuple[int, int]]] = {}
    with AnyReader([bag]) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        assert types == {
            "/camera/image_raw": "sensor_msgs/msg/Image",
            "/joint_states": "sensor_msgs/msg/JointState",
            "/audio": "std_msgs/msg/Float32MultiArray",
        }
        for conn, t_ns, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            header = getattr(msg, "header", None)
            stamp_ns = t_ns if header is None else (
                header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
            )
            stamps.setdefault(conn.topic, []).append((t_ns, stamp_ns))
            if conn.topic == "/camera/image_raw":
                assert (msg.height, msg.width, msg.encoding, msg.step) == (32, 32, "rgb8", 96)
            elif conn.topic == "/joint_states":
                assert list(msg.name) == ["shoulder", "elbow", "wrist"]
                assert len(msg.position) == len(msg.velocity) == len(msg.effort) == 3
            else:
                assert msg.data.shape == (320,) and np.abs(msg.data).max() <= 1.0
    expected = {"/camera/image_raw": (60, 1 / 30), "/joint_states": (200, 0.01),
                "/audio": (100, 0.02)}
    for topic, (count, period_s) in expected.items():
        t_ns = np.array([t for t, _ in stamps[topic]])
        assert len(t_ns) == count, topic
        assert np.array_equal(t_ns, [s for _, s in stamps[topic]]), "bag time != header stamp"
        assert t_ns[0] > start_ns and t_ns[-1] <= start_ns + 2_000_000_000
        assert np.allclose(np.diff(t_ns) * 1e-9, period_s, atol=0.001), topic


def test_record_refuses_an_existing_path(tmp_path: Path):
    result = _sim("--record", str(tmp_path), "--duration", "1")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: bag")
    assert "already exists" in result.stderr


def test_no_opengl_backend_names_what_was_tried_and_the_fix(tmp_path: Path):
    env = {**os.environ, "MUJOCO_GL": "bogus"}
    result = _sim("--record", str(tmp_path / "bag"), "--duration", "1", env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no MuJoCo OpenGL backend")
    assert "MUJOCO_GL=bogus" in lines[0] and "libosmesa6" in lines[0]
    assert not (tmp_path / "bag").exists()


def test_live_node_publishes_three_topics_and_drops_on_schedule():
    rclpy = pytest.importorskip("rclpy")
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import Float32MultiArray

    rclpy.init()
    node = rclpy.create_node("sim_listener")
    got: dict[str, list[int]] = {"camera": [], "joints": [], "audio": []}

    def stamp(msg) -> int:
        return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec

    node.create_subscription(Image, "camera/image_raw",
                             lambda m: got["camera"].append(stamp(m)), qos_profile_sensor_data)
    node.create_subscription(JointState, "joint_states",
                             lambda m: got["joints"].append(stamp(m)), qos_profile_sensor_data)
    node.create_subscription(Float32MultiArray, "audio",
                             lambda m: got["audio"].append(time.time_ns()),
                             qos_profile_sensor_data)
    proc = subprocess.Popen([*SIM, "--duration", "6", "--drop", "camera:3-4"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        for _ in range(10):
            rclpy.spin_once(node, timeout_sec=0.05)
        output = proc.communicate(timeout=30)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
        node.destroy_node()
        rclpy.shutdown()
    assert proc.returncode == 0, output
    # discovery takes a moment and a loaded machine skips frames: count loosely (150 frames,
    # 600 joint states, 300 audio chunks were due); rates from the stamps
    joints = np.diff(np.array(got["joints"])) * 1e-9
    camera = np.diff(np.array(got["camera"])) * 1e-9
    assert len(got["joints"]) > 300 and np.median(joints) == pytest.approx(0.01, abs=0.002)
    assert len(got["audio"]) > 150
    assert len(got["camera"]) > 40 and np.median(camera) == pytest.approx(1 / 30, abs=0.005)
    gap = int(np.argmax(camera))
    assert camera[gap] == pytest.approx(1.0, abs=0.1), "the camera gap of camera:3-4"
    during = np.array(got["joints"])
    during = during[(during > got["camera"][gap]) & (during < got["camera"][gap + 1])]
    assert len(during) > 80, "joints keep flowing while the camera is dropped"


def test_record_without_duration_is_an_error(tmp_path: Path):
    result = _sim("--record", str(tmp_path / "bag"))
    assert result.returncode == 1
    assert result.stderr.strip() == "error: --record needs --duration S (simulated seconds)"
