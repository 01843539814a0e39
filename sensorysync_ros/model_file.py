"""Read an exported model file's manifest without ONNX Runtime or the ``onnx`` package.

An ONNX file is a serialized ``ModelProto`` (protobuf). Walking its top-level fields is enough
to tell a truncated file from one that is not ONNX at all, and to read ``metadata_props``
(where the manifest lives) before paying for an inference session. Every problem is a
one-line :class:`ModelLoadError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ManifestError, ModelLoadError
from .manifest import METADATA_KEY, Manifest

__all__ = ["read_manifest", "read_metadata"]

# ModelProto field numbers (onnx/onnx.proto) and protobuf wire types.
_IR_VERSION = 1
_GRAPH = 7
_METADATA_PROPS = 14
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
# Wire type of every ModelProto field; a file using any other pairing is not ONNX.
_MODEL_FIELDS = {1: _VARINT, 2: _LEN, 3: _LEN, 4: _LEN, 5: _VARINT, 6: _LEN, 7: _LEN, 8: _LEN,
                 14: _LEN, 20: _LEN, 25: _LEN, 26: _LEN}


class _Truncated(Exception):
    """The buffer ends inside a field."""


class _Malformed(Exception):
    """The bytes are not a valid protobuf message of the expected type."""


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise _Truncated("the file ends inside a varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise _Malformed("varint longer than 10 bytes")


def _fields(buf: memoryview) -> list[tuple[int, int, int | memoryview]]:
    """Top-level (field number, wire type, value) triples of one protobuf message."""
    out: list[tuple[int, int, int | memoryview]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Malformed("field number 0")
        value: int | memoryview  # slices are views: no copy of the (large) graph field
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire in (_I64, _I32):
            width = 8 if wire == _I64 else 4
            if pos + width > len(buf):
                raise _Truncated(f"field {number} needs {width} bytes, {len(buf) - pos} left")
            value, pos = int.from_bytes(buf[pos : pos + width], "little"), pos + width
        elif wire == _LEN:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise _Truncated(f"field {number} needs {size} bytes, {len(buf) - pos} left")
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise _Malformed(f"field {number} has unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _model_fields(path: Path, data: memoryview) -> list[tuple[int, int, int | memoryview]]:
    """Walk ModelProto's top level, classifying failures as truncated or not-ONNX."""
    not_onnx = f"model file {str(path)!r} is not an ONNX model"
    if not data:
        raise ModelLoadError(f"model file {str(path)!r} is empty (0 bytes); re-export it")
    try:
        fields = _fields(data)
    except _Truncated as err:
        # A truncated ONNX file still starts with a well-formed ir_version field.
        if _starts_like_onnx(data):
            raise ModelLoadError(
                f"model file {str(path)!r} is truncated ({err}, file has {len(data)} bytes); "
                "copy or export it again"
            ) from None
        raise ModelLoadError(f"{not_onnx} (not a protobuf ModelProto)") from None
    except _Malformed as err:
        raise ModelLoadError(f"{not_onnx} ({err})") from None
    for number, wire, _ in fields:
        if _MODEL_FIELDS.get(number, wire) != wire:
            raise ModelLoadError(f"{not_onnx} (field {number} has wire type {wire})")
    numbers = {number for number, _, _ in fields}
    if _IR_VERSION not in numbers or _GRAPH not in numbers:
        raise ModelLoadError(f"{not_onnx} (no ir_version or no graph)")
    return fields


def _starts_like_onnx(data: memoryview) -> bool:
    """True when the buffer begins with ModelProto's ir_version varint (field 1)."""
    try:
        key, pos = _varint(data, 0)
        if key != (_IR_VERSION << 3 | _VARINT):
            return False
        version, _ = _varint(data, pos)
    except (_Truncated, _Malformed):
        return False
    return 3 <= version < 100


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of the ONNX file at ``path`` (key -> value).

    Raises ModelLoadError (one line, naming the file) when the file is missing, empty,
    truncated or not ONNX.
    """
    path = Path(path)
    try:
        data = memoryview(path.read_bytes())
    except FileNotFoundError:
        msg = f"model file {str(path)!r} does not exist; export one with sensorysync-export"
        raise ModelLoadError(msg) from None
    except OSError as err:
        raise ModelLoadError(f"model file {str(path)!r} cannot be read: {err}") from err
    props: dict[str, str] = {}
    for number, _, value in _model_fields(path, data):
        if number != _METADATA_PROPS:
            continue
        assert isinstance(value, memoryview)
        try:
            entry = {n: v for n, w, v in _fields(value) if w == _LEN}
            key = bytes(entry.get(1, b"")).decode()
            props[key] = bytes(entry.get(2, b"")).decode()
        except (_Truncated, _Malformed, UnicodeDecodeError) as err:
            msg = f"model file {str(path)!r} has a corrupt metadata entry ({err})"
            raise ModelLoadError(msg) from None
    return props


def read_manifest(path: str | Path) -> Manifest:
    """The validated manifest embedded in the ONNX file at ``path``.

    Raises ModelLoadError (one line, naming the file) for a missing, truncated or non-ONNX
    file, a file without the manifest, or a manifest that does not validate.
    """
    props = read_metadata(path)
    if METADATA_KEY not in props:
        msg = (
            f"model file {str(path)!r} has no SensorySync manifest (metadata key "
            f"{METADATA_KEY!r} absent; found {sorted(props)}); export it with sensorysync-export"
        )
        raise ModelLoadError(msg)
    try:
        return Manifest.from_json(props[METADATA_KEY])
    except ManifestError as err:
        raise ModelLoadError(f"model file {str(path)!r} has an invalid manifest: {err}") from err
