"""Codecs: ROS messages <-> model tensors, one codec per manifest modality kind.

The node, the bag evaluator and the training-data extractor all call these same functions, so
what the model was trained on is exactly what it sees on the robot. Decoding is duck-typed:
rclpy messages and ``rosbags`` messages both work. Nothing here imports rclpy or torch at
import time.

    codec = make_codec(manifest.modality("camera"))
    tensor = codec.decode(msg)                       # float32, spec.shape; None = not ready
    out = codec.encode(recon, msg.header, msg_cls=type(msg))
"""

from __future__ import annotations

import inspect
from importlib import resources
from typing import Any

from ..errors import CodecError
from ..manifest import ModalitySpec
from ._ros import message_type_name, resolve_msg_class, sequence_value
from .audio import AudioCodec, PcmChunk, PcmRing, pcm_from_msg, pcm_to_msg
from .audio_features import (
    LOG_FLOOR,
    audio_feature_shape,
    griffin_lim,
    logmel,
    mel_filterbank,
    mel_to_power,
    overlap_add,
    power_spectrogram,
)
from .base import BaseCodec, Codec
from .categorical import CategoricalCodec, label_to_tensor, tensor_to_label
from .image import (
    ENCODINGS,
    ImageCodec,
    image_to_tensor,
    pixels_from_image,
    pixels_to_tensor,
    tensor_to_image,
    tensor_to_pixels,
)
from .joints import JOINT_FIELDS, JointCodec, joint_state_to_tensor, tensor_to_joint_state
from .resample import StreamResampler

__all__ = [
    "AUDIO_COMMON_VARIANTS",
    "ENCODINGS",
    "JOINT_FIELDS",
    "LOG_FLOOR",
    "AudioCodec",
    "BaseCodec",
    "CategoricalCodec",
    "Codec",
    "ImageCodec",
    "JointCodec",
    "PcmChunk",
    "PcmRing",
    "StreamResampler",
    "audio_common_msg_definitions",
    "audio_feature_shape",
    "griffin_lim",
    "image_to_tensor",
    "joint_state_to_tensor",
    "label_to_tensor",
    "logmel",
    "make_codec",
    "mel_filterbank",
    "mel_to_power",
    "message_type_name",
    "overlap_add",
    "pcm_from_msg",
    "pcm_to_msg",
    "pixels_from_image",
    "pixels_to_tensor",
    "power_spectrogram",
    "register_audio_common_types",
    "resolve_msg_class",
    "sequence_value",
    "tensor_to_image",
    "tensor_to_joint_state",
    "tensor_to_label",
    "tensor_to_pixels",
]

CODECS: dict[str, type[BaseCodec]] = {
    "image": ImageCodec,
    "vector": JointCodec,
    "audio": AudioCodec,
    "categorical": CategoricalCodec,
}

# Two incompatible packages are both called audio_common_msgs; we ship both definitions.
AUDIO_COMMON_VARIANTS: dict[str, tuple[str, ...]] = {
    "ros_drivers": ("AudioData", "AudioDataStamped", "AudioInfo"),
    "mgonzs13": ("AudioData", "AudioInfo", "Audio", "AudioStamped"),
}


def make_codec(spec: ModalitySpec, **overrides: Any) -> BaseCodec:
    """The codec of ``spec.kind``; ``overrides`` are that codec's keyword options
    (image: compressed_format; audio: sample_rate_hz, channels, griffin_lim_iterations)."""
    if spec.kind not in CODECS:
        raise CodecError(f"modality {spec.name!r}: no codec for kind {spec.kind!r}")
    codec_cls = CODECS[spec.kind]
    options = [p for p in inspect.signature(codec_cls).parameters if p != "spec"]
    unknown = sorted(set(overrides) - set(options))
    if unknown:
        raise CodecError(
            f"modality {spec.name!r} ({spec.kind}): unknown codec override(s) {unknown}; "
            f"this kind takes {options}"
        )
    return codec_cls(spec, **overrides)


def audio_common_msg_definitions(variant: str) -> dict[str, str]:
    """``{"audio_common_msgs/msg/Name": .msg text}`` of one audio_common_msgs ``variant``."""
    if variant not in AUDIO_COMMON_VARIANTS:
        raise CodecError(
            f"audio_common_msgs variant {variant!r} is not one of {sorted(AUDIO_COMMON_VARIANTS)}"
        )
    folder = resources.files("sensorysync_ros") / "msg"
    return {
        f"audio_common_msgs/msg/{name}": (folder / f"{variant}_{name}.msg").read_text()
        for name in AUDIO_COMMON_VARIANTS[variant]
    }


def register_audio_common_types(typestore: Any, variant: str) -> None:
    """Register one audio_common_msgs ``variant`` in a rosbags typestore (one per typestore)."""
    from rosbags.typesys import get_types_from_msg  # rosbags only where bags are read

    types: dict[str, Any] = {}
    for name, text in audio_common_msg_definitions(variant).items():
        types.update(get_types_from_msg(text, name))
    typestore.register(types)
