"""Streaming resampler for chunked mono PCM (audio published at a rate other than the model's).

State is carried across chunks, so any chunking of a stream gives the same output as the whole
stream at once: when the rate goes down, a Hann-windowed-sinc low-pass (cut-off
``CUTOFF_FRACTION`` x the new Nyquist rate) keeps what lies above the new Nyquist rate from
aliasing; then linear interpolation at a continuous phase picks the output samples. The filter
delays the stream by ``(taps - 1) / 2`` input samples (0.6 ms for 48 -> 16 kHz).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import CodecError

__all__ = ["CUTOFF_FRACTION", "ZERO_CROSSINGS", "StreamResampler", "lowpass_kernel"]

CUTOFF_FRACTION = 0.9  # low-pass cut-off, as a fraction of the output's Nyquist frequency
ZERO_CROSSINGS = 8  # half-length of the sinc kernel, in output-rate periods


def lowpass_kernel(ratio: float) -> np.ndarray:
    """Unit-gain windowed-sinc low-pass for decimating by ``ratio`` (> 1), float32."""
    cutoff = CUTOFF_FRACTION * 0.5 / ratio  # cycles per input sample
    half = math.ceil(ZERO_CROSSINGS * ratio)
    n = np.arange(-half, half + 1, dtype=np.float64)
    kernel = np.sinc(2.0 * cutoff * n) * np.hanning(2 * half + 3)[1:-1]
    return (kernel / kernel.sum()).astype(np.float32)


class StreamResampler:
    """Resamples consecutive chunks of one mono stream from ``from_hz`` to ``to_hz``."""

    def __init__(self, from_hz: int, to_hz: int) -> None:
        if from_hz <= 0 or to_hz <= 0:
            raise CodecError(f"sample rates must be > 0, got {from_hz} -> {to_hz} Hz")
        self.from_hz, self.to_hz = from_hz, to_hz
        self._step = from_hz / to_hz  # input samples per output sample
        self._kernel = lowpass_kernel(self._step) if from_hz > to_hz else None
        history = 0 if self._kernel is None else self._kernel.size - 1
        self._history = np.zeros(history, dtype=np.float32)  # last inputs, for the filter
        self._previous = np.float32(0.0)  # last filtered sample of the previous chunk
        self._position = 0.0  # next output position, in samples from this chunk's start

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """The output samples that ``samples`` (the next chunk of the stream) complete."""
        chunk = np.asarray(samples, dtype=np.float32)
        if self._kernel is not None:
            extended = np.concatenate([self._history, chunk])
            self._history = extended[extended.size - self._history.size :]
            chunk = np.convolve(extended, self._kernel, mode="valid").astype(np.float32)
        m = chunk.size
        if m == 0:
            return chunk
        count = max(0, math.floor((m - 1 - self._position) / self._step) + 1)
        positions = self._position + self._step * np.arange(count)
        known = np.concatenate([[self._previous], chunk])  # index 0 = position -1
        out = np.interp(positions + 1.0, np.arange(m + 1), known).astype(np.float32)
        self._position += self._step * count - m
        self._previous = chunk[-1]
        return out
