"""sensor_msgs/JointState <-> joint vectors, matched to the manifest's joints by name.

Layout (manifest ``vector`` kind): field-major, i.e. all positions of ``joint_names`` in order,
then all velocities, ...; normalised ``(raw - loc) / scale``. Joints the model does not know are
ignored; a missing joint, a missing field array or a non-finite value make the sample invalid.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import CodecError, ManifestError
from ..manifest import ModalitySpec
from ._ros import message_type_name, sequence_value
from .base import BaseCodec

__all__ = ["JOINT_FIELDS", "JointCodec", "joint_state_to_tensor", "tensor_to_joint_state"]

JOINT_FIELDS = ("position", "velocity", "effort")


def joint_state_to_tensor(
    msg: Any, preprocess: dict[str, Any], *, normalise: bool = True
) -> np.ndarray:
    """JointState (duck-typed) -> float32 ``(len(fields) * J,)``, field-major, normalised."""
    joint_names: list[str] = list(preprocess["joint_names"])
    fields: list[str] = list(preprocess["fields"])
    names = list(msg.name)
    index_of = {name: i for i, name in enumerate(names)}
    missing = [j for j in joint_names if j not in index_of]
    if missing:
        raise CodecError(f"JointState lacks joint {missing[0]!r} the model needs (has {names})")
    index = np.fromiter((index_of[j] for j in joint_names), dtype=np.intp, count=len(joint_names))
    out = np.empty(len(fields) * len(joint_names), dtype=np.float64)
    for f, field in enumerate(fields):
        values = np.asarray(getattr(msg, field), dtype=np.float64)
        if values.shape != (len(names),):
            raise CodecError(
                f"JointState.{field} has {values.size} values for {len(names)} names; the model "
                f"needs {field} of joint {joint_names[0]!r}"
            )
        chunk = values[index]
        bad = np.flatnonzero(~np.isfinite(chunk))
        if bad.size:
            joint = joint_names[bad[0]]
            raise CodecError(f"JointState {field} of joint {joint!r} is {chunk[bad[0]]}")
        out[f * len(joint_names) : (f + 1) * len(joint_names)] = chunk
    if normalise:
        out -= np.asarray(preprocess["loc"], dtype=np.float64)
        out /= np.asarray(preprocess["scale"], dtype=np.float64)
    return out.astype(np.float32)


def tensor_to_joint_state(
    tensor: np.ndarray, header: Any, msg_cls: type, preprocess: dict[str, Any]
) -> Any:
    """Normalised field-major vector -> JointState with the manifest's joints, de-normalised."""
    type_name = message_type_name(msg_cls)
    if type_name != "sensor_msgs/msg/JointState":
        raise CodecError(f"cannot publish joints as {type_name!r}; use sensor_msgs/msg/JointState")
    joint_names = list(preprocess["joint_names"])
    fields = list(preprocess["fields"])
    raw = np.asarray(tensor, dtype=np.float64).reshape(-1) * np.asarray(
        preprocess["scale"], dtype=np.float64
    ) + np.asarray(preprocess["loc"], dtype=np.float64)
    per_field = raw.reshape(len(fields), len(joint_names))
    values = {field: np.empty(0, dtype=np.float64) for field in JOINT_FIELDS}
    values.update({field: per_field[f].copy() for f, field in enumerate(fields)})
    arrays = {field: sequence_value(msg_cls, v) for field, v in values.items()}
    return msg_cls(header=header, name=joint_names, **arrays)


class JointCodec(BaseCodec):
    """Joint states (manifest kind ``vector``)."""

    kind = "vector"

    def __init__(self, spec: ModalitySpec) -> None:
        super().__init__(spec)
        pre = spec.preprocess
        where = f"vector modality {spec.name!r}"
        unknown = [f for f in pre["fields"] if f not in JOINT_FIELDS]
        if unknown or not pre["fields"] or len(set(pre["fields"])) != len(pre["fields"]):
            raise ManifestError(
                f"{where}: fields {pre['fields']} must be distinct names from {JOINT_FIELDS}"
            )
        if not pre["joint_names"] or len(set(pre["joint_names"])) != len(pre["joint_names"]):
            raise ManifestError(f"{where}: joint_names {pre['joint_names']} must be distinct")
        size = len(pre["fields"]) * len(pre["joint_names"])
        if spec.shape != (size,):
            raise ManifestError(f"{where}: shape {spec.shape} != ({size},) = fields x joints")
        for key in ("loc", "scale"):
            if len(pre[key]) != size:
                raise ManifestError(f"{where}: {key} has {len(pre[key])} values, needs {size}")
        if not all(float(s) > 0 for s in pre["scale"]):
            raise ManifestError(f"{where}: every scale must be > 0, got {pre['scale']}")

    def decode(self, msg: Any) -> np.ndarray:
        return joint_state_to_tensor(msg, self.spec.preprocess)

    def encode(self, tensor: np.ndarray, header: Any, *, msg_cls: type | None = None) -> Any:
        return tensor_to_joint_state(
            self.sample(tensor), header, self.output_class(msg_cls), self.spec.preprocess
        )
