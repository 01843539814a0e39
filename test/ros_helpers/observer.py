"""An in-process rclpy observer for node tests: records what the node publishes, with times.

Runs its own context and executor thread so a test can drive other processes meanwhile::

    with Observer(["core", "camera"], diagnostics=True) as obs:
        obs.wait_for(lambda: obs.diagnostics, timeout_s=30)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float32MultiArray

from sensorysync_ros.node import CORE_TOPIC, reconstruction_topic

RECONSTRUCTION_TYPES = {"camera": Image, "joints": JointState, "audio": Float32MultiArray}


def stamp_ns(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


@dataclass
class Received:
    """Messages of one topic: (receive time ns, message) in arrival order."""

    items: list[tuple[int, Any]] = field(default_factory=list)

    def stamps_ns(self) -> list[int]:
        return [stamp_ns(msg) for _, msg in self.items]


class Observer:
    """Subscribes to the node's outputs (core, reconstructions of ``modalities``, diagnostics)."""

    def __init__(
        self, modalities: Iterable[str], *, diagnostics: bool = True, namespace: str = ""
    ) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("observer", namespace=namespace, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.lock = threading.Lock()
        self.core = Received()
        self.recon: dict[str, Received] = {}
        self.diagnostics = Received()
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(Image, CORE_TOPIC, self._keep(self.core), reliable)
        for name in modalities:
            self.recon[name] = Received()
            self.node.create_subscription(
                RECONSTRUCTION_TYPES[name],
                reconstruction_topic(name),
                self._keep(self.recon[name]),
                reliable,
            )
        if diagnostics:
            self.node.create_subscription(
                DiagnosticArray, "/diagnostics", self._keep(self.diagnostics), reliable
            )
        self._thread = threading.Thread(target=self._spin, daemon=True)

    def _keep(self, store: Received) -> Callable[[Any], None]:
        def callback(msg: Any) -> None:
            with self.lock:
                store.items.append((time.time_ns(), msg))

        return callback

    def _spin(self) -> None:
        try:
            while self.context.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except ExternalShutdownException:
            pass

    def __enter__(self) -> Observer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5)
        self.node.destroy_node()

    def wait_for(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if condition():
                    return True
            time.sleep(0.02)
        return False

    def last_statuses(self) -> dict[str, DiagnosticStatus]:
        """The latest diagnostics array, by the part after ': ' in the status name."""
        with self.lock:
            if not self.diagnostics.items:
                return {}
            msg = self.diagnostics.items[-1][1]
        return {status.name.split(": ", 1)[-1]: status for status in msg.status}


def values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}
