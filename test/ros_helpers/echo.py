"""Echo process: republishes every Image of one topic on another, untouched (a DDS floor).

    python test/ros_helpers/echo.py --in camera/image_raw --out echo/image_raw

The input uses sensor-data QoS and the output reliable depth 5, exactly like the node, so
``publish -> echo -> receive`` is the node's round trip minus everything the node does.
"""

from __future__ import annotations

import argparse
import sys

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in", dest="topic_in", default="camera/image_raw")
    parser.add_argument("--out", dest="topic_out", default="echo/image_raw")
    args = parser.parse_args(argv)
    rclpy.init()
    node = rclpy.create_node("echo")
    out = node.create_publisher(
        Image, args.topic_out, QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    )
    sensor_qos = QoSProfile(
        depth=1,  # as the node's camera input: newest sample only
        reliability=qos_profile_sensor_data.reliability,
        durability=qos_profile_sensor_data.durability,
    )
    node.create_subscription(Image, args.topic_in, out.publish, sensor_qos)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
