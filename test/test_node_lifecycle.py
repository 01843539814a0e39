"""The lifecycle node in this process: transitions, configure failures, sim time, QoS events.

Real rclpy and DDS (the node and a helper node in one context on this test's ROS_DOMAIN_ID), a
real ONNX Runtime session on the tiny exported model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn as Ret
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float32MultiArray

from sensorysync_ros.core_msg import decode_core
from sensorysync_ros.node import CORE_TOPIC, SensorySyncNode, reconstruction_topic

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture
def context() -> Iterator[Context]:
    ctx = Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def make_node(context: Context, model: Path, **params: Any) -> SensorySyncNode:
    values = {"model_path": str(model), "autostart": False, **params}
    overrides = [Parameter(name, value=value) for name, value in values.items()]
    return SensorySyncNode(context=context, parameter_overrides=overrides)


def spin_until(executor: SingleThreadedExecutor, condition: Callable[[], bool], timeout_s: float
               ) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        executor.spin_once(timeout_sec=0.01)
    return condition()


def topics(entities: Any) -> set[str]:
    return {entity.topic_name for entity in entities}


def test_transitions_create_and_release_subscriptions_and_publishers(context, tiny_robot_model):
    node = make_node(context, tiny_robot_model)
    inputs = {"/camera/image_raw", "/audio", "/joint_states"}
    outputs = {"/sensorysync/core", "/diagnostics", "/sensorysync/camera/reconstruction"}
    try:
        assert node.trigger_configure() == Ret.SUCCESS, node.failure_reason
        assert node.engine is not None and node.engine.provider.endswith("ExecutionProvider")
        assert outputs <= topics(node.publishers) and not inputs & topics(node.subscriptions)
        assert node.trigger_activate() == Ret.SUCCESS
        assert inputs <= topics(node.subscriptions)
        assert node.trigger_deactivate() == Ret.SUCCESS
        assert not inputs & topics(node.subscriptions)
        assert node.trigger_cleanup() == Ret.SUCCESS
        assert node.engine is None and not outputs & topics(node.publishers)
        assert node.trigger_configure() == Ret.SUCCESS  # configurable again after cleanup
        assert node.trigger_activate() == Ret.SUCCESS
        assert node.trigger_shutdown() == Ret.SUCCESS
        assert not inputs & topics(node.subscriptions)
    finally:
        node.destroy_node()


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"modalities.camera.timeout_s": -1.0}, "timeout_s must be >= 0"),
        ({"fusion_rate_hz": 0.0}, "'fusion_rate_hz' must be a finite number > 0"),
        ({"modalities.lidar.topic": "/scan"}, "modality 'lidar', which the model does not have"),
        ({"modalities.camera.qos": "fast"}, "choose one of"),
        ({"providers": ["NoSuchExecutionProvider"]}, "unknown execution provider"),
        ({"model_path": "/nonexistent/model.onnx"}, "/nonexistent/model.onnx"),
    ],
)
def test_configure_fails_with_the_reason(context, tiny_robot_model, params, needle):
    node = make_node(context, tiny_robot_model, **params)
    try:
        assert node.trigger_configure() == Ret.FAILURE
        assert needle in node.failure_reason and "\n" not in node.failure_reason
        assert node.engine is None
        assert not {"/sensorysync/core", "/camera/image_raw"} & topics(node.publishers)
    finally:
        node.destroy_node()


def test_configure_fails_on_a_corrupt_model(context, tiny_robot_model, tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(tiny_robot_model.read_bytes()[: 4 * 1024])
    node = make_node(context, corrupt)
    try:
        assert node.trigger_configure() == Ret.FAILURE
        assert "corrupt.onnx" in node.failure_reason
    finally:
        node.destroy_node()


def test_require_gpu_refuses_the_cpu(context, tiny_robot_model):
    node = make_node(context, tiny_robot_model, require_gpu=True)
    try:
        result = node.trigger_configure()
        if result == Ret.SUCCESS:  # a machine where a GPU provider really loads
            assert node.engine.provider != "CPUExecutionProvider"
        else:
            assert "require_gpu is true" in node.failure_reason
            assert "CPUExecutionProvider" in node.failure_reason
    finally:
        node.destroy_node()


class SensorFeed:
    """A helper node in the same context: publishes sensors and /clock, records outputs."""

    def __init__(self, context: Context, *, camera_qos: QoSProfile = qos_profile_sensor_data
                 ) -> None:
        self.node = rclpy.create_node("feed", context=context)
        self.clock = self.node.create_publisher(Clock, "/clock", 10)
        self.camera = self.node.create_publisher(Image, "camera/image_raw", camera_qos)
        self.joints = self.node.create_publisher(JointState, "joint_states", 10)
        self.audio = self.node.create_publisher(Float32MultiArray, "audio", 50)
        self.core: list[Any] = []
        self.camera_recon: list[Any] = []
        self.diagnostics: list[Any] = []
        self.node.create_subscription(Image, CORE_TOPIC, self.core.append, RELIABLE)
        self.node.create_subscription(
            Image, reconstruction_topic("camera"), self.camera_recon.append, RELIABLE
        )
        self.node.create_subscription(
            DiagnosticArray, "/diagnostics", self.diagnostics.append, RELIABLE
        )

    def set_time(self, seconds: float) -> None:
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = int(seconds), round((seconds % 1) * 1e9)
        self.clock.publish(msg)

    def publish_joints(self) -> None:
        names = ["shoulder", "elbow", "wrist"]
        self.joints.publish(JointState(name=names, position=[0.1] * 3, velocity=[0.0] * 3,
                                       effort=[0.0] * 3))

    def publish_sensors(self, executor: SingleThreadedExecutor, audio_chunks: int) -> None:
        """One camera image and joint state, then audio chunks paced so none is overwritten."""
        self.camera.publish(Image(height=32, width=32, encoding="rgb8", step=96,
                                  data=bytes(range(256)) * 12))
        self.publish_joints()
        t = np.arange(320) / 16000.0
        for _ in range(audio_chunks):
            self.audio.publish(Float32MultiArray(data=np.sin(880 * math.pi * t).astype(np.float32)))
            spin_until(executor, lambda: False, 0.03)


def test_staleness_follows_sim_time(context, tiny_robot_model):
    node = make_node(
        context, tiny_robot_model, use_sim_time=True,
        **{f"modalities.{m}.timeout_s": 5.0 for m in ("camera", "audio", "joints")},
    )
    feed = SensorFeed(context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(feed.node)
    try:
        assert node.trigger_configure() == Ret.SUCCESS, node.failure_reason
        assert node.trigger_activate() == Ret.SUCCESS

        def at(seconds: float) -> Callable[[], bool]:
            def reached() -> bool:
                feed.set_time(seconds)
                return node.get_clock().now().nanoseconds == int(seconds * 1e9)

            return reached

        assert spin_until(executor, at(100.0), 10)
        assert spin_until(executor, lambda: node.count_publishers("/audio") > 0, 10)
        feed.publish_sensors(executor, audio_chunks=14)  # 14 x 320 samples fill 4000 samples
        spin_until(executor, lambda: False, 0.2)
        assert spin_until(executor, at(100.5), 10)

        def cores_at(stamp_ns: int) -> list[Any]:
            cores = [decode_core(msg, 4, 3) for msg in feed.core]
            return [core for core in cores if core.stamp_ns == stamp_ns]

        assert spin_until(executor, lambda: cores_at(100_500_000_000), 10), "no core at 100.5 s"
        assert cores_at(100_500_000_000)[0].present.all()
        assert not feed.camera_recon
        # 10 s of sim time later (about a second of wall time) the camera is stale.
        wall_start = time.monotonic()
        assert spin_until(executor, at(110.0), 10)
        feed.publish_joints()  # keep one sensor present, or nothing is fused at all
        spin_until(executor, lambda: False, 0.1)
        assert spin_until(executor, at(110.5), 10)
        assert spin_until(executor, lambda: feed.camera_recon, 10)
        assert time.monotonic() - wall_start < 5.0  # wall time alone could not make it stale
        stamp = feed.camera_recon[0].header.stamp
        assert (stamp.sec, stamp.nanosec) == (110, 500_000_000)
        assert cores_at(110_500_000_000)[0].present.tolist() == [False, False, True]
    finally:
        executor.shutdown()
        node.destroy_node()
        feed.node.destroy_node()


def test_incompatible_qos_is_counted_in_diagnostics(context, tiny_robot_model):
    node = make_node(context, tiny_robot_model, diagnostics_period_s=0.1,
                     **{"modalities.camera.qos": "reliable"})
    feed = SensorFeed(context, camera_qos=qos_profile_sensor_data)  # best effort: incompatible
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(feed.node)

    def camera_incompatible() -> bool:
        for msg in feed.diagnostics[-1:]:
            for status in msg.status:
                if status.name.endswith(": camera"):
                    return {kv.key: kv.value for kv in status.values}["qos_incompatible"] != "0"
        return False

    try:
        assert node.trigger_configure() == Ret.SUCCESS, node.failure_reason
        assert node.trigger_activate() == Ret.SUCCESS
        assert spin_until(executor, camera_incompatible, 15)
    finally:
        executor.shutdown()
        node.destroy_node()
        feed.node.destroy_node()
