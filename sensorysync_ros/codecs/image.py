"""sensor_msgs/Image and CompressedImage <-> image tensors ``(C, H, W)`` float32 in [0, 1].

Channels are RGB (C=3) or mono (C=1). Raw images honour ``step`` (row padding) and
``is_bigendian`` (mono16); the pixels are resized to the manifest's H x W with OpenCV
(INTER_AREA when shrinking, INTER_LINEAR otherwise) before scaling to [0, 1].
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ..errors import CodecError, ManifestError
from ..manifest import ModalitySpec
from ._ros import as_uint8, message_type_name, sequence_value
from .base import BaseCodec

__all__ = [
    "ENCODINGS",
    "ImageCodec",
    "image_to_tensor",
    "pixels_from_image",
    "pixels_to_tensor",
    "tensor_to_image",
    "tensor_to_pixels",
]

# encoding -> (channels in the message, bytes per channel, indices of R, G, B (or mono) in them)
ENCODINGS: dict[str, tuple[int, int, tuple[int, ...]]] = {
    "rgb8": (3, 1, (0, 1, 2)),
    "bgr8": (3, 1, (2, 1, 0)),
    "rgba8": (4, 1, (0, 1, 2)),
    "bgra8": (4, 1, (2, 1, 0)),
    "mono8": (1, 1, (0,)),
    "mono16": (1, 2, (0,)),
}
OUTPUT_ENCODINGS = ("rgb8", "bgr8", "mono8")
COMPRESSED_FORMATS = ("png", "jpeg")
_BGR = (2, 1, 0)


def pixels_from_image(msg: Any) -> tuple[np.ndarray, tuple[int, ...]]:
    """``(H, W, C)`` uint8/uint16 pixels of a sensor_msgs/Image in the message's channel order,
    and the indices of R, G, B (or the mono channel) among them.

    A strided view of the message data (no copy), except for big-endian mono16.
    """
    encoding = str(msg.encoding)
    if encoding not in ENCODINGS:
        raise CodecError(
            f"unknown image encoding {encoding!r}; supported: {sorted(ENCODINGS)} "
            "(convert with cv_bridge or image_proc first)"
        )
    channels, depth, order = ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise CodecError(f"image of width {width} x height {height} pixels is empty")
    row_bytes = width * channels * depth
    if step < row_bytes:
        raise CodecError(
            f"image step {step} bytes < width {width} x {channels * depth} bytes per pixel "
            f"({encoding}) = {row_bytes}; the publisher set a wrong step"
        )
    data = as_uint8(msg.data)
    if data.size < step * height:
        raise CodecError(
            f"image data has {data.size} bytes, shorter than step {step} x height {height} "
            f"= {step * height}"
        )
    dtype = np.dtype(np.uint8) if depth == 1 else np.dtype(">u2" if msg.is_bigendian else "<u2")
    pixels = np.ndarray(
        (height, width, channels),
        dtype=dtype,
        buffer=data,
        strides=(step, channels * depth, depth),
    )
    if dtype.byteorder == ">":
        pixels = pixels.astype(np.uint16)  # to native order: cv2 and numpy maths need it
    return pixels, order


def pixels_from_compressed(msg: Any, channels: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """``(H, W, C)`` pixels of a sensor_msgs/CompressedImage (jpeg or png) as OpenCV decodes
    them (BGR or mono), and the indices of R, G, B (or mono) among them."""
    fmt = str(msg.format)
    if "compresseddepth" in fmt.lower():
        raise CodecError(f"CompressedImage format {fmt!r} (depth) is not a camera image")
    data = as_uint8(msg.data)
    if data.size == 0:
        raise CodecError(f"CompressedImage (format {fmt!r}) has no data")
    colour = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
    decoded = cv2.imdecode(data, cv2.IMREAD_ANYDEPTH | colour)
    if decoded is None:
        raise CodecError(
            f"CompressedImage (format {fmt!r}, {data.size} bytes) is not a jpeg/png OpenCV "
            "can decode"
        )
    return (decoded[..., None], (0,)) if decoded.ndim == 2 else (decoded, _BGR)


def pixels_to_tensor(
    pixels: np.ndarray, shape: tuple[int, ...], order: tuple[int, ...] | None = None
) -> np.ndarray:
    """``(H, W, C)`` uint8/uint16 pixels -> float32 ``shape`` = (C, H, W) in [0, 1].

    ``order``: indices of R, G, B (or the mono channel) in the pixels' last axis; default RGB
    (C >= 3) or mono. Resizes first (on the raw view: no full-size copy), then picks channels.
    """
    channels, height, width = shape
    if pixels.dtype not in (np.uint8, np.uint16) or pixels.ndim != 3:
        raise CodecError(
            f"pixels must be (H, W, C) uint8/uint16, got {pixels.dtype} {pixels.shape}"
        )
    order = order if order is not None else ((0, 1, 2) if pixels.shape[2] >= 3 else (0,))
    if pixels.shape[:2] != (height, width):
        shrink = pixels.shape[0] >= height and pixels.shape[1] >= width
        interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        if pixels.strides[0] % pixels.itemsize or not pixels.flags.aligned:
            pixels = np.ascontiguousarray(pixels)  # OpenCV needs rows on element boundaries
        resized = cv2.resize(pixels, (width, height), interpolation=interp)
        pixels = resized.reshape(height, width, -1)
    if channels == 1 and len(order) == 3:
        rgb = pixels[..., list(order)]  # a small contiguous copy for OpenCV
        pixels, order = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], (0,)
    out = np.empty(shape, dtype=np.float32)
    for k in range(channels):  # mono is replicated into R, G, B
        out[k] = pixels[..., order[k % len(order)]]
    out /= np.float32(np.iinfo(pixels.dtype).max)
    return out


def image_to_tensor(msg: Any, shape: tuple[int, ...]) -> np.ndarray:
    """sensor_msgs/Image or CompressedImage (duck-typed) -> float32 (C, H, W) in [0, 1]."""
    if hasattr(msg, "encoding"):
        pixels, order = pixels_from_image(msg)
    elif hasattr(msg, "format"):
        pixels, order = pixels_from_compressed(msg, shape[0])
    else:
        raise CodecError(f"{message_type_name(msg)} is neither an Image nor a CompressedImage")
    return pixels_to_tensor(pixels, shape, order)


def tensor_to_pixels(tensor: np.ndarray) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> (H, W, C) uint8 (values outside [0, 1] and NaN clipped)."""
    clipped = np.clip(np.nan_to_num(tensor, nan=0.0), 0.0, 1.0)
    return np.ascontiguousarray((clipped * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0))


def tensor_to_image(
    tensor: np.ndarray,
    header: Any,
    msg_cls: type,
    *,
    encoding: str = "rgb8",
    compressed_format: str = "png",
) -> Any:
    """(C, H, W) tensor -> ``msg_cls`` (Image in ``encoding``, or CompressedImage)."""
    pixels = tensor_to_pixels(tensor)  # RGB or mono
    type_name = message_type_name(msg_cls)
    if type_name == "sensor_msgs/msg/CompressedImage":
        bgr = pixels[..., ::-1] if pixels.shape[2] == 3 else pixels
        ok, buffer = cv2.imencode(f".{compressed_format}", np.ascontiguousarray(bgr))
        if not ok:
            raise CodecError(f"OpenCV cannot encode a {bgr.shape} image as {compressed_format!r}")
        data = sequence_value(msg_cls, buffer.reshape(-1))
        return msg_cls(header=header, format=compressed_format, data=data)
    if type_name != "sensor_msgs/msg/Image":
        raise CodecError(f"cannot publish an image as {type_name!r}; use Image or CompressedImage")
    if encoding == "bgr8":
        pixels = np.ascontiguousarray(pixels[..., ::-1])
    height, width, channels = pixels.shape
    return msg_cls(
        header=header,
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=width * channels,
        data=sequence_value(msg_cls, pixels.reshape(-1)),
    )


class ImageCodec(BaseCodec):
    """Camera images. Override ``compressed_format`` ("png" or "jpeg") of CompressedImage output."""

    kind = "image"

    def __init__(self, spec: ModalitySpec, *, compressed_format: str = "png") -> None:
        super().__init__(spec)
        if len(spec.shape) != 3 or spec.shape[0] not in (1, 3):
            raise ManifestError(
                f"image modality {spec.name!r}: shape {spec.shape} must be (C, H, W) with C 1 or 3"
            )
        self.encoding = str(spec.preprocess["encoding"])
        if self.encoding not in OUTPUT_ENCODINGS or (self.encoding == "mono8") != (
            spec.shape[0] == 1
        ):
            raise ManifestError(
                f"image modality {spec.name!r}: encoding {self.encoding!r} does not fit "
                f"{spec.shape[0]} channels; use 'mono8' for C=1, 'rgb8' or 'bgr8' for C=3"
            )
        if compressed_format not in COMPRESSED_FORMATS:
            raise CodecError(
                f"compressed_format {compressed_format!r} is not one of {COMPRESSED_FORMATS}"
            )
        self.compressed_format = compressed_format

    def decode(self, msg: Any) -> np.ndarray:
        return image_to_tensor(msg, self.spec.shape)

    def encode(self, tensor: np.ndarray, header: Any, *, msg_cls: type | None = None) -> Any:
        return tensor_to_image(
            self.sample(tensor),
            header,
            self.output_class(msg_cls),
            encoding=self.encoding,
            compressed_format=self.compressed_format,
        )
