"""Layout of ``sensorysync/core``: the fused core latent in a standard ``sensor_msgs/msg/Image``.

One tick of the fusion core becomes one single-row ``32FC1`` image (little-endian float32)::

    header.stamp    = the tick time (node clock); every reconstruction of that tick carries the
                      same header.stamp, so consumers pair them by exact stamp (e.g. a
                      message_filters ExactTime synchronizer)
    header.frame_id = "sensorysync_core"
    height = 1, width = 2 * Dc + N, encoding = "32FC1", step = 4 * width
    data   = [ mean (Dc) | variance (Dc) | present (N, 1.0 = present, 0.0 = reconstructed) ]

Dc is the manifest's ``core_latent_dim`` and N its modality count, in manifest order (the node's
/diagnostics also print the layout). An Image carries a header (so the pairing needs no custom
interface package) and shows up as-is in rviz / rqt_image_view. Decoding is duck-typed, so a
``rosbags`` Image decodes the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .codecs import sequence_value
from .errors import CodecError

__all__ = [
    "CORE_ENCODING",
    "CORE_FRAME_ID",
    "CoreSample",
    "core_layout",
    "decode_core",
    "encode_core",
]

CORE_ENCODING = "32FC1"
CORE_FRAME_ID = "sensorysync_core"


@dataclass(frozen=True)
class CoreSample:
    """One decoded ``sensorysync/core`` message."""

    stamp_ns: int
    mean: np.ndarray  # (Dc,) float32
    variance: np.ndarray  # (Dc,) float32
    present: np.ndarray  # (N,) bool, manifest order


def core_layout(core_dim: int, names: tuple[str, ...]) -> str:
    """Human-readable layout string, e.g. for diagnostics and docs."""
    n = len(names)
    return (
        f"{CORE_ENCODING} 1x{2 * core_dim + n}: mean[0:{core_dim}] "
        f"variance[{core_dim}:{2 * core_dim}] present[{2 * core_dim}:{2 * core_dim + n}]="
        f"{','.join(names)}"
    )


def encode_core(
    image_cls: type,
    header: Any,
    mean: np.ndarray,
    variance: np.ndarray,
    present: np.ndarray,
) -> Any:
    """Build the core message (an ``image_cls`` instance) from one tick's fusion output.

    Args:
        image_cls: the Image class (rclpy's ``sensor_msgs.msg.Image`` or a rosbags one).
        header: the header to carry (stamp = tick time).
        mean, variance: (Dc,) core posterior mean and variance.
        present: (N,) presence mask in manifest order.
    """
    row = np.concatenate(
        [
            np.asarray(mean, np.float32).reshape(-1),
            np.asarray(variance, np.float32).reshape(-1),
            np.asarray(present, np.float32).reshape(-1),
        ]
    ).astype("<f4")
    return image_cls(
        header=header,
        height=1,
        width=row.size,
        encoding=CORE_ENCODING,
        is_bigendian=0,
        step=4 * row.size,
        data=sequence_value(image_cls, row.view(np.uint8)),
    )


def decode_core(msg: Any, core_dim: int, n_modalities: int) -> CoreSample:
    """Split a ``sensorysync/core`` message back into mean, variance and presence.

    Raises:
        CodecError: the message is not a core message for this latent size and modality count.
    """
    width = 2 * core_dim + n_modalities
    if msg.encoding != CORE_ENCODING or msg.height != 1 or msg.width != width:
        raise CodecError(
            f"core message is {msg.encoding!r} {msg.height}x{msg.width}; expected "
            f"{CORE_ENCODING!r} 1x{width} for Dc={core_dim}, N={n_modalities}"
        )
    dtype = ">f4" if msg.is_bigendian else "<f4"
    row = np.frombuffer(bytes(msg.data), dtype=dtype)
    if row.size != width:
        raise CodecError(f"core message holds {row.size} floats, expected {width}")
    row = row.astype(np.float32)
    stamp_ns = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
    return CoreSample(
        stamp_ns=stamp_ns,
        mean=row[:core_dim],
        variance=row[core_dim : 2 * core_dim],
        present=row[2 * core_dim :] > 0.5,
    )
