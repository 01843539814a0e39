"""Audio PCM chunks <-> log-mel feature windows (manifest kind ``audio``).

Accepted chunk messages (duck-typed by their fields, so rclpy and rosbags messages both work):

- std_msgs/Float32MultiArray, Float64MultiArray (samples in [-1, 1]) and Int16MultiArray,
  Int32MultiArray (full-scale integers), interleaved when ``channels`` > 1; their sample rate
  is the codec's ``sample_rate_hz`` (default: the model's);
- ros-drivers audio_common_msgs AudioData / AudioDataStamped: ``uint8[] data`` of raw S16LE
  PCM ("wave" format);
- mgonzs13 audio_common_msgs Audio / AudioStamped: typed arrays selected by ``info.format``
  (PyAudio constants), rate and channels from ``info``.

Chunks are mixed down to mono, resampled to the model's rate if needed (:mod:`.resample`,
state carried across chunks) and written to a preallocated ring buffer of ``window_samples``;
``decode`` returns the features of the latest window once the buffer has been filled once,
else None.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..errors import CodecError
from ..manifest import ModalitySpec
from ._ros import (
    as_uint8,
    field_class,
    field_names,
    message_type_name,
    multiarray_layout,
    sequence_value,
)
from .audio_features import audio_feature_shape, griffin_lim, logmel
from .base import BaseCodec
from .resample import StreamResampler

__all__ = [
    "AudioCodec",
    "PcmChunk",
    "PcmRing",
    "pcm_from_msg",
    "pcm_to_msg",
]

# PyAudio sample formats used by mgonzs13/audio_common's AudioInfo.format -> AudioData field.
PYAUDIO_FORMATS: dict[int, tuple[str, type[np.generic]]] = {
    1: ("float32_data", np.float32),
    2: ("int32_data", np.int32),
    8: ("int16_data", np.int16),
    16: ("int8_data", np.int8),
    32: ("uint8_data", np.uint8),
}
FLOAT32_FORMAT = 1
MULTIARRAY_DTYPES: dict[str, type[np.generic]] = {
    "Float32MultiArray": np.float32,
    "Float64MultiArray": np.float64,
    "Int16MultiArray": np.int16,
    "Int32MultiArray": np.int32,
}


class PcmChunk(NamedTuple):
    """Mono samples in [-1, 1] and their rate."""

    samples: np.ndarray  # float32, (n,)
    rate_hz: int


def _to_float(values: np.ndarray) -> np.ndarray:
    """Integer PCM at full scale (or float PCM) -> float32 in [-1, 1]."""
    if values.dtype.kind == "f":
        return values.astype(np.float32, copy=False)
    if values.dtype == np.uint8:
        return (values.astype(np.float32) - 128.0) / 128.0
    if values.dtype.kind == "i":
        return values.astype(np.float32) / np.float32(-np.iinfo(values.dtype).min)
    raise CodecError(f"audio samples of dtype {values.dtype} are not PCM")


def _raw_pcm(msg: Any, rate_hz: int, channels: int) -> tuple[np.ndarray, int, int]:
    """(interleaved samples in [-1, 1], rate, channels) of any supported audio message."""
    if hasattr(msg, "audio"):  # AudioDataStamped / AudioStamped wrap the chunk
        return _raw_pcm(msg.audio, rate_hz, channels)
    if hasattr(msg, "audio_data") and hasattr(msg, "info"):  # mgonzs13 Audio
        info = msg.info
        if int(info.format) not in PYAUDIO_FORMATS:
            raise CodecError(
                f"audio info.format {info.format} is not a supported PyAudio format "
                f"{sorted(PYAUDIO_FORMATS)}"
            )
        field, dtype = PYAUDIO_FORMATS[int(info.format)]
        values = np.asarray(getattr(msg.audio_data, field), dtype=dtype)
        return _to_float(values), int(info.rate), int(info.channels)
    if hasattr(msg, "layout") and hasattr(msg, "data"):  # std_msgs/*MultiArray
        name = message_type_name(msg).rsplit("/", 1)[-1]
        if name not in MULTIARRAY_DTYPES:
            raise CodecError(
                f"audio in {message_type_name(msg)!r} is not supported; use one of "
                f"{sorted(MULTIARRAY_DTYPES)}"
            )
        return _to_float(np.asarray(msg.data, dtype=MULTIARRAY_DTYPES[name])), rate_hz, channels
    if hasattr(msg, "data") and np.ndim(msg.data) == 1:  # ros-drivers AudioData: S16LE bytes
        raw = as_uint8(msg.data)
        if raw.size % 2:
            raise CodecError(f"S16LE audio data has an odd byte count {raw.size}")
        return _to_float(np.frombuffer(raw, dtype="<i2")), rate_hz, channels
    raise CodecError(f"{message_type_name(msg)} is not an audio message")


def pcm_from_msg(msg: Any, *, sample_rate_hz: int, channels: int = 1) -> PcmChunk:
    """Mono float32 samples of an audio chunk; ``sample_rate_hz``/``channels`` apply to messages
    that do not carry their own (all but mgonzs13 Audio)."""
    samples, rate_hz, n_channels = _raw_pcm(msg, sample_rate_hz, channels)
    if samples.size == 0:
        raise CodecError(f"empty audio chunk in {message_type_name(msg)}")
    if rate_hz <= 0 or n_channels <= 0:
        raise CodecError(f"audio chunk has rate {rate_hz} Hz and {n_channels} channels")
    if samples.size % n_channels:
        raise CodecError(
            f"audio chunk of {samples.size} samples is not a whole number of "
            f"{n_channels}-channel frames"
        )
    if not np.isfinite(samples).all():
        raise CodecError(f"audio chunk of {samples.size} samples contains NaN or inf")
    if n_channels > 1:
        samples = samples.reshape(-1, n_channels).mean(axis=1, dtype=np.float32)
    return PcmChunk(samples, rate_hz)


class PcmRing:
    """Preallocated ring of the last ``size`` samples; never grows."""

    def __init__(self, size: int) -> None:
        self._ring = np.zeros(size, dtype=np.float32)
        self._window = np.zeros(size, dtype=np.float32)
        self._pos = 0
        self._written = 0

    @property
    def full(self) -> bool:
        """True once ``size`` samples have been written since the last reset."""
        return self._written >= self._ring.size

    def reset(self) -> None:
        self._pos = 0
        self._written = 0

    def write(self, samples: np.ndarray) -> None:
        size = self._ring.size
        n = samples.size
        if n >= size:
            self._ring[:] = samples[n - size :]
            self._pos = 0
        else:
            first = min(n, size - self._pos)
            self._ring[self._pos : self._pos + first] = samples[:first]
            self._ring[: n - first] = samples[first:]
            self._pos = (self._pos + n) % size
        self._written = min(self._written + n, size)

    def window(self) -> np.ndarray:
        """The last ``size`` samples, oldest first (a reused buffer: copy to keep)."""
        tail = self._ring.size - self._pos
        self._window[:tail] = self._ring[self._pos :]
        self._window[tail:] = self._ring[: self._pos]
        return self._window


def _from_float(pcm: np.ndarray, dtype: type[np.generic]) -> np.ndarray:
    """float PCM in [-1, 1] -> ``dtype`` samples (integers at full scale, uint8 offset 128)."""
    if np.dtype(dtype).kind == "f":
        return pcm.astype(dtype)
    clipped = np.clip(pcm, -1.0, 1.0).astype(np.float64)
    if dtype is np.uint8:
        return np.round(clipped * 127.0 + 128.0).astype(np.uint8)
    return np.round(clipped * np.iinfo(dtype).max).astype(dtype)


def pcm_to_msg(pcm: np.ndarray, header: Any, msg_cls: type, sample_rate_hz: int) -> Any:
    """Mono float PCM -> a chunk message of ``msg_cls`` (any type :func:`pcm_from_msg` reads)."""
    fields = field_names(msg_cls)
    if "audio" in fields:  # stamped wrapper
        inner = pcm_to_msg(pcm, header, field_class(msg_cls, "audio"), sample_rate_hz)
        return msg_cls(header=header, audio=inner)
    if "audio_data" in fields:  # mgonzs13 Audio
        data_cls = field_class(msg_cls, "audio_data")
        arrays = {f: np.empty(0, dtype=dtype) for f, dtype in PYAUDIO_FORMATS.values()}
        arrays["float32_data"] = _from_float(pcm, np.float32)
        arrays = {f: sequence_value(data_cls, a) for f, a in arrays.items()}
        info = field_class(msg_cls, "info")(
            format=FLOAT32_FORMAT, channels=1, rate=sample_rate_hz, chunk=pcm.size
        )
        return msg_cls(audio_data=data_cls(**arrays), info=info)
    name = message_type_name(msg_cls).rsplit("/", 1)[-1]
    if "layout" in fields and name in MULTIARRAY_DTYPES:
        return msg_cls(
            layout=multiarray_layout(msg_cls, "samples", pcm.size),
            data=sequence_value(msg_cls, _from_float(pcm, MULTIARRAY_DTYPES[name])),
        )
    if fields == ("data",):  # ros-drivers AudioData
        s16le = _from_float(pcm, np.int16).astype("<i2").view(np.uint8)
        return msg_cls(data=sequence_value(msg_cls, s16le))
    raise CodecError(f"cannot publish audio as {message_type_name(msg_cls)!r}")


class AudioCodec(BaseCodec):
    """Audio. Overrides: ``sample_rate_hz`` and ``channels`` of messages that do not carry them,
    ``griffin_lim_iterations`` of the inverse used for reconstructions (cost grows linearly)."""

    kind = "audio"

    def __init__(
        self,
        spec: ModalitySpec,
        *,
        sample_rate_hz: int | None = None,
        channels: int = 1,
        griffin_lim_iterations: int = 4,
    ) -> None:
        super().__init__(spec)
        shape = audio_feature_shape(spec.preprocess)
        if spec.shape != shape:
            raise CodecError(
                f"audio modality {spec.name!r}: shape {spec.shape} != {shape} computed from "
                f"its preprocess {spec.preprocess}"
            )
        self.model_rate_hz = int(spec.preprocess["sample_rate"])
        self.input_rate_hz = int(sample_rate_hz or self.model_rate_hz)
        if self.input_rate_hz <= 0 or channels <= 0 or griffin_lim_iterations <= 0:
            raise CodecError(
                f"audio modality {spec.name!r}: sample_rate_hz {sample_rate_hz}, channels "
                f"{channels} and griffin_lim_iterations {griffin_lim_iterations} must be > 0"
            )
        self.channels = channels
        self.griffin_lim_iterations = griffin_lim_iterations
        self.ring = PcmRing(int(spec.preprocess["window_samples"]))
        self._resampler: StreamResampler | None = None  # for chunks not at the model's rate

    def reset(self) -> None:
        self.ring.reset()
        self._resampler = None

    def _at_model_rate(self, chunk: PcmChunk) -> np.ndarray:
        if chunk.rate_hz == self.model_rate_hz:
            return chunk.samples
        if self._resampler is None or self._resampler.from_hz != chunk.rate_hz:
            self._resampler = StreamResampler(chunk.rate_hz, self.model_rate_hz)
        return self._resampler(chunk.samples)

    def decode(self, msg: Any) -> np.ndarray | None:
        chunk = pcm_from_msg(msg, sample_rate_hz=self.input_rate_hz, channels=self.channels)
        self.ring.write(self._at_model_rate(chunk))
        if not self.ring.full:
            return None
        return logmel(self.ring.window(), self.spec.preprocess)

    def encode(self, tensor: np.ndarray, header: Any, *, msg_cls: type | None = None) -> Any:
        pcm = griffin_lim(
            self.sample(tensor), self.spec.preprocess, iterations=self.griffin_lim_iterations
        )
        return pcm_to_msg(pcm, header, self.output_class(msg_cls), self.model_rate_hz)
