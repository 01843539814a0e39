"""Class labels <-> one-hot vectors (manifest kind ``categorical``).

In: std_msgs/Float32MultiArray (one-hot or class scores: the arg-max class is taken) or a
scalar class index (std_msgs/Int32, UInt8, ...). Out: Float32MultiArray of class
probabilities, or the arg-max index when publishing to a scalar type.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import CodecError, ManifestError
from ..manifest import ModalitySpec
from ._ros import field_names, message_type_name, multiarray_layout, sequence_value
from .base import BaseCodec

__all__ = ["CategoricalCodec", "label_to_tensor", "tensor_to_label"]


def label_to_tensor(msg: Any, n_classes: int) -> np.ndarray:
    """Class index or score vector message -> float32 one-hot ``(n_classes,)``."""
    data = np.asarray(msg.data)
    if data.ndim == 0:
        index = int(data)
        if not 0 <= index < n_classes:
            raise CodecError(f"class index {index} is outside [0, {n_classes})")
    else:
        scores = data.astype(np.float64).reshape(-1)
        if scores.size != n_classes:
            raise CodecError(f"class scores have {scores.size} entries, the model has {n_classes}")
        if not np.isfinite(scores).all():
            raise CodecError(f"class scores contain NaN or inf: {scores.tolist()}")
        index = int(np.argmax(scores))
    one_hot = np.zeros(n_classes, dtype=np.float32)
    one_hot[index] = 1.0
    return one_hot


def tensor_to_label(probs: np.ndarray, msg_cls: type) -> Any:
    """Class probabilities -> Float32MultiArray (renormalised), or the arg-max as a scalar."""
    p = np.clip(np.nan_to_num(np.asarray(probs, dtype=np.float32).reshape(-1)), 0.0, None)
    total = float(p.sum())
    p = p / total if total > 0 else np.full_like(p, 1.0 / p.size)
    if "layout" in field_names(msg_cls):
        if message_type_name(msg_cls) != "std_msgs/msg/Float32MultiArray":
            raise CodecError(
                f"cannot publish class probabilities as {message_type_name(msg_cls)!r}; "
                "use std_msgs/msg/Float32MultiArray"
            )
        layout = multiarray_layout(msg_cls, "classes", p.size)
        return msg_cls(layout=layout, data=sequence_value(msg_cls, p))
    return msg_cls(data=int(np.argmax(p)))


class CategoricalCodec(BaseCodec):
    """Labels (manifest kind ``categorical``)."""

    kind = "categorical"

    def __init__(self, spec: ModalitySpec) -> None:
        super().__init__(spec)
        classes = spec.preprocess["classes"]
        if spec.shape != (len(classes),):
            raise ManifestError(
                f"categorical modality {spec.name!r}: shape {spec.shape} != "
                f"({len(classes)},) classes"
            )

    def decode(self, msg: Any) -> np.ndarray:
        return label_to_tensor(msg, self.spec.shape[0])

    def encode(self, tensor: np.ndarray, header: Any, *, msg_cls: type | None = None) -> Any:
        return tensor_to_label(self.sample(tensor), self.output_class(msg_cls))
