"""The codec interface shared by every modality kind."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import numpy as np

from ..errors import CodecError
from ..manifest import ModalitySpec
from ._ros import resolve_msg_class

__all__ = ["BaseCodec", "Codec"]


class Codec(Protocol):
    """Converts the ROS messages of one modality to its model tensor and back."""

    spec: ModalitySpec

    def decode(self, msg: Any) -> np.ndarray | None:
        """Model tensor of one sample (float32, ``spec.shape``); None when not ready yet.

        Raises CodecError naming what is wrong when ``msg`` is malformed.
        """

    def encode(self, tensor: np.ndarray, header: Any, *, msg_cls: type | None = None) -> Any:
        """A message of ``msg_cls`` (default: the rclpy class of ``spec.ros.msg_type``)."""

    def reset(self) -> None:
        """Forget any state carried between messages (e.g. the audio ring buffer)."""


class BaseCodec:
    """Common plumbing: the spec, the default output class, tensor shape checks."""

    kind: ClassVar[str]

    def __init__(self, spec: ModalitySpec) -> None:
        if spec.kind != self.kind:
            raise CodecError(f"modality {spec.name!r} has kind {spec.kind!r}, not {self.kind!r}")
        self.spec = spec
        self._default_msg_cls: type | None = None

    def reset(self) -> None:
        """Stateless by default."""

    def output_class(self, msg_cls: type | None) -> type:
        """``msg_cls`` or, when None, the rclpy class of the manifest's ``ros.msg_type``."""
        if msg_cls is not None:
            return msg_cls
        if self._default_msg_cls is None:
            self._default_msg_cls = resolve_msg_class(self.spec.ros.msg_type)
        return self._default_msg_cls

    def sample(self, tensor: np.ndarray) -> np.ndarray:
        """``tensor`` as one float32 sample of ``spec.shape`` (a leading batch of 1 is dropped)."""
        array = np.asarray(tensor, dtype=np.float32)
        if array.size != self.spec.size:
            raise CodecError(
                f"modality {self.spec.name!r}: tensor of shape {array.shape} does not hold one "
                f"sample of shape {self.spec.shape}"
            )
        return array.reshape(self.spec.shape)
