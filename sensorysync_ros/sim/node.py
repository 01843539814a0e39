"""The simulated robot as a ROS 2 node: camera, joint states and audio in real time.

Publishes ``camera/image_raw`` (sensor_msgs/Image rgb8, 30 Hz), ``joint_states``
(sensor_msgs/JointState, 100 Hz) and ``audio`` (std_msgs/Float32MultiArray, 320-sample PCM
chunks at 16 kHz, 50 per second), stamped with the node clock at the instant each was measured.
A 100 Hz timer advances the physics to the current time. Sensors can be dropped (not
published; a dropped camera is not rendered either) on command: by the ROS parameters
``drop_camera`` / ``drop_joints`` / ``drop_audio`` at run time, or by a schedule given at start
(``--drop camera:10-15``: seconds after the start, or after ``--drop-origin-ns``). With a truth
prefix (``--truth-prefix truth``) every message is also published, dropped or not, under
``<prefix>/<topic>``: the ground truth that the demo scores reconstructions against.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from ..bagtools.dropout import DropoutSchedule, parse_drop_spec
from .msgs import TOPICS, event_message, rclpy_classes
from .robot import RobotConfig, SimRobot

__all__ = ["SimNode", "run_node"]

MODALITIES = tuple(TOPICS)
_TICK_S = 0.01
_MAX_LAG_NS = 100_000_000  # further behind than this: catch up without rendering
_RENDER_WINDOW_NS = 40_000_000  # ... except for the last frame period or so


class SimNode(Node):
    """Real-time publisher of the simulated robot's sensors, stamped with the node clock."""

    def __init__(
        self,
        robot: SimRobot,
        *,
        schedule_specs: Sequence[str] = (),
        schedule_origin_ns: int | None = None,
        duration_s: float | None = None,
        truth_prefix: str = "",
    ) -> None:
        super().__init__("sensorysync_sim")
        self._robot = robot
        self._classes = rclpy_classes()
        for name in MODALITIES:
            self.declare_parameter(f"drop_{name}", False)
        # Reliable, keep-last: matches both reliable and sensor-data (best-effort) subscribers.
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._pubs = {
            name: self.create_publisher(self._classes(msgtype), topic.lstrip("/"), qos)
            for name, (topic, msgtype) in TOPICS.items()
        }
        self._truth_pubs = {
            name: self.create_publisher(
                self._classes(msgtype), f"{truth_prefix.strip('/')}{topic}", qos
            )
            for name, (topic, msgtype) in TOPICS.items()
            if truth_prefix
        }
        start_ns = self.get_clock().now().nanoseconds
        robot.start_at(start_ns)
        intervals = [parse_drop_spec(spec, MODALITIES) for spec in schedule_specs]
        origin_ns = start_ns if schedule_origin_ns is None else schedule_origin_ns
        self._schedule = DropoutSchedule(intervals, origin_ns)
        self._end_ns = None if duration_s is None else start_ns + round(duration_s * 1e9)
        self.published = dict.fromkeys(MODALITIES, 0)
        self.done = False
        self._timer = self.create_timer(_TICK_S, self._tick)

    def dropped(self, modality: str, stamp_ns: int) -> bool:
        """Whether ``modality`` is withheld at ``stamp_ns`` (parameter or schedule)."""
        return bool(self.get_parameter(f"drop_{modality}").value) or self._schedule.dropped(
            modality, stamp_ns
        )

    def _advance(self, until_ns: int, *, render: bool) -> None:
        robot = self._robot
        render_camera = render and (bool(self._truth_pubs) or not self.dropped("camera", until_ns))
        for event in robot.advance(until_ns, render_camera=render_camera):
            name, msg = event_message(self._classes, robot.joint_names, event)
            if self._truth_pubs:
                self._truth_pubs[name].publish(msg)
            if not self.dropped(name, event.stamp_ns):
                self._pubs[name].publish(msg)
                self.published[name] += 1

    def _tick(self) -> None:
        now_ns = self.get_clock().now().nanoseconds
        if self._end_ns is not None and now_ns >= self._end_ns:
            now_ns = self._end_ns
            self.done = True
        if now_ns - self._robot.now_ns > _MAX_LAG_NS:
            self._advance(now_ns - _RENDER_WINDOW_NS, render=False)
        self._advance(now_ns, render=True)
        if self.done:
            self._timer.cancel()


def run_node(ros_argv: Sequence[str], args: argparse.Namespace) -> int:
    """Run the live node until ``args.duration`` seconds have passed, or Ctrl-C."""
    rclpy.init(args=["sensorysync-sim", *ros_argv])
    node: SimNode | None = None
    try:
        config = RobotConfig(
            seed=args.seed, camera_width=args.camera_size, camera_height=args.camera_size
        )
        with SimRobot(config) as robot:
            node = SimNode(
                robot,
                schedule_specs=args.drop,
                schedule_origin_ns=args.drop_origin_ns,
                duration_s=args.duration,
                truth_prefix=args.truth_prefix,
            )
            node.get_logger().info(
                f"publishing {', '.join(t for t, _ in TOPICS.values())} "
                f"(camera {args.camera_size}x{args.camera_size}, seed {args.seed})"
            )
            while rclpy.ok() and not node.done:
                rclpy.spin_once(node, timeout_sec=0.1)
            node.get_logger().info(f"published {node.published}")
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
