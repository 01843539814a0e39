"""Duck-typed helpers shared by the codecs: message type names, field access, class lookup.

Works for rclpy message classes and for ``rosbags`` typestore classes (dataclasses built with
keyword arguments). Nothing here imports rclpy at module import time.
"""

from __future__ import annotations

import array
import dataclasses
import importlib
import sys
from typing import Any

import numpy as np

from ..errors import CodecError

__all__ = [
    "as_uint8",
    "field_class",
    "field_names",
    "message_type_name",
    "multiarray_layout",
    "resolve_msg_class",
    "sequence_value",
]


def message_type_name(obj: Any) -> str:
    """``"pkg/msg/Name"`` of a message instance or class (rclpy or rosbags)."""
    cls = obj if isinstance(obj, type) else type(obj)
    msgtype = getattr(cls, "__msgtype__", None)
    if isinstance(msgtype, str):
        return msgtype
    package = cls.__module__.split(".", 1)[0]
    return f"{package}/msg/{cls.__name__}"


def resolve_msg_class(msg_type: str) -> type:
    """Import the rclpy class of ``"pkg/msg/Name"`` (lazily: only the node needs rclpy)."""
    parts = msg_type.split("/")
    if len(parts) != 3 or parts[1] != "msg":
        raise CodecError(f"message type {msg_type!r} is not of the form 'pkg/msg/Name'")
    package, _, name = parts
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError) as err:
        raise CodecError(
            f"cannot import message class {msg_type!r} ({err}); install its interface package "
            "or pass msg_cls= explicitly"
        ) from err


def field_class(msg_cls: type, field: str) -> type:
    """Class of the nested message ``field`` of ``msg_cls`` (e.g. Float32MultiArray.layout)."""
    if dataclasses.is_dataclass(msg_cls):  # rosbags: the field type names a class of its module
        for f in dataclasses.fields(msg_cls):
            if f.name == field:
                module = sys.modules[msg_cls.__module__]
                nested = getattr(module, _element_type(str(f.type), "list["), None)
                if isinstance(nested, type):
                    return nested
        raise CodecError(f"{message_type_name(msg_cls)} has no nested message field {field!r}")
    types = msg_cls.get_fields_and_field_types()  # rclpy: {"layout": "std_msgs/MultiArrayLayout"}
    type_name = _element_type(types.get(field, ""), "sequence<")
    if "/" not in type_name:
        raise CodecError(f"{message_type_name(msg_cls)} has no nested message field {field!r}")
    package, name = type_name.split("/")
    return resolve_msg_class(f"{package}/msg/{name}")


def _element_type(type_name: str, sequence_prefix: str) -> str:
    """``"list[X]"`` / ``"sequence<X>"`` -> ``"X"``; other names unchanged."""
    if type_name.startswith(sequence_prefix):
        return type_name[len(sequence_prefix) : -1].split(",")[0]
    return type_name


def multiarray_layout(msg_cls: type, label: str, size: int) -> Any:
    """A one-dimensional MultiArrayLayout for ``msg_cls`` (any std_msgs *MultiArray class)."""
    layout_cls = field_class(msg_cls, "layout")
    dim_cls = field_class(layout_cls, "dim")
    return layout_cls(dim=[dim_cls(label=label, size=size, stride=size)], data_offset=0)


def as_uint8(data: Any) -> np.ndarray:
    """A uint8 view (no copy where possible) of a ``uint8[]`` field: bytes, array.array, ndarray."""
    if isinstance(data, np.ndarray):
        flat = data.reshape(-1)
        return flat.view(np.uint8) if flat.dtype.itemsize == 1 else flat.astype(np.uint8)
    if isinstance(data, (bytes, bytearray, memoryview)) or hasattr(data, "typecode"):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8)


def field_names(msg_cls: type) -> tuple[str, ...]:
    """Field names of a message class (rclpy or rosbags)."""
    if dataclasses.is_dataclass(msg_cls):
        return tuple(f.name for f in dataclasses.fields(msg_cls) if f.name != "__msgtype__")
    return tuple(msg_cls.get_fields_and_field_types())


_TYPECODES = {"u1": "B", "i1": "b", "i2": "h", "i4": "i", "f4": "f", "f8": "d"}


def sequence_value(msg_cls: type, values: np.ndarray) -> Any:
    """``values`` as the fast value of a primitive-array field of ``msg_cls``: the ndarray for
    rosbags, an ``array.array`` for rclpy (whose setters iterate over anything else)."""
    if dataclasses.is_dataclass(msg_cls):
        return values
    native = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("="))
    return array.array(_TYPECODES[native.dtype.str[1:]], native.tobytes())
