"""Record live ROS 2 topics into rosbag2 (mcap) files, as the bytes arrived on the wire.

Used by ``sensorysync-demo``: each topic goes to one of several bags (e.g. the simulator's
ground truth to one, the node's outputs to another). Subscriptions are best effort (they match
reliable and best-effort publishers alike) with deep queues; the bag time of a message is its
arrival time on the node clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from .closing import Closing
from .codecs import resolve_msg_class

__all__ = ["TopicRecorder"]

_QOS = QoSProfile(
    depth=200, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT
)


class TopicRecorder(Closing):
    """Subscribes ``node`` to topics and writes them, raw, into one bag per group.

    ``groups``: bag path -> {topic: message type}. Bags are opened now and closed by
    :meth:`close` (or ``with``).
    """

    def __init__(self, node: Node, groups: Mapping[Path, Mapping[str, str]]) -> None:
        self._node = node
        typestore = get_typestore(Stores.ROS2_KILTED)
        self._writers: list[Writer] = []
        self.counts: dict[str, int] = {}
        for path, topics in groups.items():
            writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
            writer.open()
            self._writers.append(writer)
            for topic, msgtype in topics.items():
                conn = writer.add_connection(topic, msgtype, typestore=typestore)
                self.counts[topic] = 0
                node.create_subscription(
                    resolve_msg_class(msgtype),
                    topic,
                    lambda raw, w=writer, c=conn: self._write(w, c, raw),
                    _QOS,
                    raw=True,
                )

    def _write(self, writer: Writer, conn: object, raw: bytes) -> None:
        writer.write(conn, self._node.get_clock().now().nanoseconds, raw)
        self.counts[conn.topic] += 1

    def close(self) -> None:
        while self._writers:
            self._writers.pop().close()
