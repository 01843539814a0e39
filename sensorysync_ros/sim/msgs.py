"""Sensor messages of the simulated robot: one builder per message kind.

The builders take ``classes``, a lookup from a ROS type name ("sensor_msgs/msg/Image") to its
message class, so the same function builds rosbags typestore messages for the recorder and
rclpy messages for the live node (both accept keyword arguments and numpy arrays).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..codecs import resolve_msg_class
from .robot import AudioChunk, CameraFrame, JointFrame, SensorEvent

__all__ = [
    "AUDIO_TYPE",
    "CAMERA_TYPE",
    "JOINTS_TYPE",
    "TOPICS",
    "MessageClasses",
    "audio_msg",
    "event_message",
    "image_msg",
    "joint_state_msg",
    "rclpy_classes",
    "rosbags_classes",
]

MessageClasses = Callable[[str], Any]

CAMERA_TYPE = "sensor_msgs/msg/Image"
JOINTS_TYPE = "sensor_msgs/msg/JointState"
AUDIO_TYPE = "std_msgs/msg/Float32MultiArray"
# modality -> (default topic, message type); the same names as the model manifest's defaults.
TOPICS = {
    "camera": ("/camera/image_raw", CAMERA_TYPE),
    "joints": ("/joint_states", JOINTS_TYPE),
    "audio": ("/audio", AUDIO_TYPE),
}
CAMERA_FRAME_ID = "sim_camera"


def rosbags_classes(typestore: Any) -> MessageClasses:
    """Class lookup in a rosbags typestore (``get_typestore(Stores.ROS2_KILTED)``)."""
    return lambda name: typestore.types[name]


def rclpy_classes() -> MessageClasses:
    """Class lookup among the rclpy message packages (imported on first use)."""
    return resolve_msg_class


def _header(classes: MessageClasses, stamp_ns: int, frame_id: str) -> Any:
    stamp = classes("builtin_interfaces/msg/Time")(
        sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000
    )
    return classes("std_msgs/msg/Header")(stamp=stamp, frame_id=frame_id)


def image_msg(classes: MessageClasses, rgb: np.ndarray, stamp_ns: int) -> Any:
    """sensor_msgs/Image rgb8 from an (H, W, 3) uint8 array."""
    height, width, _ = rgb.shape
    return classes(CAMERA_TYPE)(
        header=_header(classes, stamp_ns, CAMERA_FRAME_ID),
        height=height,
        width=width,
        encoding="rgb8",
        is_bigendian=0,
        step=3 * width,
        data=np.ascontiguousarray(rgb, dtype=np.uint8).reshape(-1),
    )


def joint_state_msg(
    classes: MessageClasses,
    names: Sequence[str],
    position: np.ndarray,
    velocity: np.ndarray,
    effort: np.ndarray,
    stamp_ns: int,
) -> Any:
    """sensor_msgs/JointState with position (rad), velocity (rad/s) and effort (N m)."""
    return classes(JOINTS_TYPE)(
        header=_header(classes, stamp_ns, ""),
        name=list(names),
        position=np.asarray(position, dtype=np.float64),
        velocity=np.asarray(velocity, dtype=np.float64),
        effort=np.asarray(effort, dtype=np.float64),
    )


def audio_msg(classes: MessageClasses, pcm: np.ndarray) -> Any:
    """std_msgs/Float32MultiArray holding one mono PCM chunk (one dimension, "samples")."""
    dim = classes("std_msgs/msg/MultiArrayDimension")(
        label="samples", size=int(pcm.size), stride=int(pcm.size)
    )
    layout = classes("std_msgs/msg/MultiArrayLayout")(dim=[dim], data_offset=0)
    return classes(AUDIO_TYPE)(layout=layout, data=np.asarray(pcm, dtype=np.float32))


def event_message(
    classes: MessageClasses, joint_names: Sequence[str], event: SensorEvent
) -> tuple[str, Any]:
    """The modality name ("camera", "joints", "audio") and message of one sensor event."""
    if isinstance(event, CameraFrame):
        return "camera", image_msg(classes, event.rgb, event.stamp_ns)
    if isinstance(event, JointFrame):
        s = event.sample
        return "joints", joint_state_msg(
            classes, joint_names, s.position, s.velocity, s.effort, event.stamp_ns
        )
    if isinstance(event, AudioChunk):
        return "audio", audio_msg(classes, event.pcm)
    raise TypeError(f"not a sensor event: {type(event).__name__}")
