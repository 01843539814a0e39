"""Log-mel audio features and their approximate inverse (Griffin-Lim), in numpy.

Features of one window of mono PCM in [-1, 1] (``preprocess`` = the manifest's audio block):

- frames of ``n_fft`` samples every ``hop_length`` samples, no centre padding:
  ``frames = 1 + (window_samples - n_fft) // hop_length``;
- periodic Hann window, power spectrum ``|rfft|^2``;
- triangular mel filterbank of ``n_mels`` bands between ``f_min_hz`` (default 0) and
  ``f_max_hz`` (default sample_rate / 2); ``mel_scale`` "htk" (default: HTK mel formula, no
  area normalisation, as torchaudio's default) or "slaney" (Slaney scale and area
  normalisation, as librosa's default);
- ``log(mel + LOG_FLOOR)``, then normalised ``(log_mel - loc) / scale``.

Result shape ``(1, n_mels, frames)``, float32.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import CodecError, ManifestError

__all__ = [
    "GRIFFIN_LIM_MOMENTUM",
    "LOG_FLOOR",
    "MEL_SCALES",
    "audio_feature_shape",
    "griffin_lim",
    "hz_to_mel",
    "logmel",
    "mel_filterbank",
    "mel_to_hz",
    "mel_to_power",
    "overlap_add",
    "power_spectrogram",
]

LOG_FLOOR = 1e-6
MEL_SCALES = ("htk", "slaney")
_SLANEY_F_SP = 200.0 / 3.0  # Hz per mel below the break
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray | float, scale: str = "htk") -> np.ndarray:
    """Frequency in Hz -> mel on the ``scale`` ("htk" or "slaney")."""
    f = np.asarray(hz, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    brk = _SLANEY_BREAK_HZ / _SLANEY_F_SP
    safe = np.maximum(f, _SLANEY_BREAK_HZ)
    return np.where(
        f >= _SLANEY_BREAK_HZ,
        brk + np.log(safe / _SLANEY_BREAK_HZ) / _SLANEY_LOGSTEP,
        f / _SLANEY_F_SP,
    )


def mel_to_hz(mel: np.ndarray | float, scale: str = "htk") -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    m = np.asarray(mel, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    brk = _SLANEY_BREAK_HZ / _SLANEY_F_SP
    return np.where(
        m >= brk,
        _SLANEY_BREAK_HZ * np.exp(_SLANEY_LOGSTEP * (m - brk)),
        _SLANEY_F_SP * m,
    )


@lru_cache(maxsize=16)
def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min_hz: float, f_max_hz: float, scale: str
) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` triangular filters (read-only, cached)."""
    bin_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    mels = np.linspace(hz_to_mel(f_min_hz, scale), hz_to_mel(f_max_hz, scale), n_mels + 2)
    edges_hz = mel_to_hz(mels, scale)
    lower = (bin_hz[None, :] - edges_hz[:-2, None]) / np.diff(edges_hz)[:-1, None]
    upper = (edges_hz[2:, None] - bin_hz[None, :]) / np.diff(edges_hz)[1:, None]
    bank = np.maximum(0.0, np.minimum(lower, upper))
    if scale == "slaney":
        bank *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    bank = bank.astype(np.float32)
    bank.setflags(write=False)
    return bank


@lru_cache(maxsize=16)
def _hann(n_fft: int) -> np.ndarray:
    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    window.setflags(write=False)
    return window


def _params(preprocess: dict[str, Any]) -> tuple[int, int, int, int, int, float, float, str]:
    """Validated (sample_rate, window, n_fft, hop, n_mels, f_min, f_max, scale)."""
    sample_rate = int(preprocess["sample_rate"])
    window = int(preprocess["window_samples"])
    n_fft = int(preprocess["n_fft"])
    hop = int(preprocess["hop_length"])
    n_mels = int(preprocess["n_mels"])
    f_min = float(preprocess.get("f_min_hz", 0.0))
    f_max = float(preprocess.get("f_max_hz", sample_rate / 2.0))
    scale = str(preprocess.get("mel_scale", "htk"))
    if min(sample_rate, n_fft, hop, n_mels) <= 0 or window < n_fft:
        raise ManifestError(
            f"audio preprocess needs positive sample_rate/n_fft/hop_length/n_mels and "
            f"window_samples >= n_fft, got {preprocess}"
        )
    if not 0.0 <= f_min < f_max <= sample_rate / 2.0:
        raise ManifestError(
            f"audio f_min_hz {f_min} / f_max_hz {f_max} must satisfy 0 <= f_min < f_max <= "
            f"sample_rate / 2 = {sample_rate / 2}"
        )
    if scale not in MEL_SCALES:
        raise ManifestError(f"audio mel_scale {scale!r} is not one of {MEL_SCALES}")
    if float(preprocess["scale"]) <= 0:
        raise ManifestError(f"audio scale must be > 0, got {preprocess['scale']}")
    return sample_rate, window, n_fft, hop, n_mels, f_min, f_max, scale


def audio_feature_shape(preprocess: dict[str, Any]) -> tuple[int, int, int]:
    """``(1, n_mels, frames)`` of the features of one window."""
    _, window, n_fft, hop, n_mels, *_ = _params(preprocess)
    return (1, n_mels, 1 + (window - n_fft) // hop)


def _frames(pcm: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    return np.lib.stride_tricks.sliding_window_view(pcm, n_fft)[::hop]


def power_spectrogram(pcm: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``(frames, n_fft // 2 + 1)`` power of Hann-windowed frames (no centre padding)."""
    spectrum = np.fft.rfft(_frames(pcm, n_fft, hop) * _hann(n_fft), axis=-1)
    return (spectrum.real**2 + spectrum.imag**2).astype(np.float32)


def logmel(pcm: np.ndarray, preprocess: dict[str, Any], *, normalise: bool = True) -> np.ndarray:
    """The model's audio features of the last ``window_samples`` of ``pcm`` (mono, [-1, 1]).

    ``normalise=False`` returns the raw ``log(mel + LOG_FLOOR)`` (for computing loc/scale).
    """
    sample_rate, window, n_fft, hop, n_mels, f_min, f_max, scale = _params(preprocess)
    signal = np.asarray(pcm, dtype=np.float32).reshape(-1)
    if signal.size < window:
        raise CodecError(f"audio window needs {window} samples, got {signal.size}")
    power = power_spectrogram(signal[signal.size - window :], n_fft, hop)
    bank = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max, scale)
    features = np.log(bank @ power.T + LOG_FLOOR)
    if normalise:
        features -= np.float32(preprocess["loc"])
        features /= np.float32(preprocess["scale"])
    return features.astype(np.float32, copy=False)[None]


def mel_to_power(mel_power: np.ndarray, bank: np.ndarray, *, iterations: int = 30) -> np.ndarray:
    """Non-negative linear power ``(bins, frames)`` whose mel projection approximates
    ``mel_power`` ``(n_mels, frames)``: least squares by multiplicative updates (NMF-style),
    which keeps silent bands silent where a pseudo-inverse would spread energy into them."""
    target = bank.T @ mel_power
    power = target + 1e-12
    for _ in range(iterations):
        power *= target / (bank.T @ (bank @ power) + 1e-12)
    return power


GRIFFIN_LIM_MOMENTUM = 0.99  # fast Griffin-Lim (Perraudin, Balazs & Sondergaard, 2013)


def griffin_lim(
    features: np.ndarray, preprocess: dict[str, Any], *, iterations: int = 4, seed: int = 0
) -> np.ndarray:
    """Normalised log-mel ``(1, n_mels, frames)`` -> PCM (float32 in [-1, 1]).

    Mel power is mapped back to non-negative linear power (:func:`mel_to_power`), then
    ``iterations`` rounds of fast Griffin-Lim (momentum ``GRIFFIN_LIM_MOMENTUM``, fixed-seed
    random start) estimate the phase. Output length ``n_fft + hop_length * (frames - 1)``.
    Cost: ``iterations`` inverse and ``iterations - 1`` forward FFTs of every frame, in float32.
    """
    if iterations < 1:
        raise CodecError(f"griffin_lim needs iterations >= 1, got {iterations!r}")
    sample_rate, _, n_fft, hop, n_mels, f_min, f_max, scale = _params(preprocess)
    log_mel = np.asarray(features, dtype=np.float32).reshape(n_mels, -1)
    log_mel = log_mel * np.float32(preprocess["scale"]) + np.float32(preprocess["loc"])
    mel_power = np.maximum(np.exp(np.minimum(log_mel, 30.0)) - LOG_FLOOR, 0.0)
    bank = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max, scale)
    magnitude = np.sqrt(mel_to_power(mel_power, bank)).T.astype(np.float32)  # (frames, bins)
    window = _hann(n_fft)
    norm = overlap_add(np.broadcast_to(window**2, (magnitude.shape[0], n_fft)), hop)
    norm[norm < 1e-8] = 1.0
    angles = np.random.default_rng(seed).random(magnitude.shape, dtype=np.float32)
    phase = np.exp(np.complex64(2j * np.pi) * angles)
    previous: np.ndarray | None = None  # the last consistent spectrum
    signal = np.empty(0, dtype=np.float32)
    for i in range(iterations):
        if i:
            projected = np.fft.rfft(_frames(signal, n_fft, hop) * window, axis=-1)
            accelerated = projected
            if previous is not None:
                accelerated = projected + np.float32(GRIFFIN_LIM_MOMENTUM) * (projected - previous)
            previous = projected
            phase = accelerated / np.maximum(np.abs(accelerated), np.float32(1e-12))
        frames = np.fft.irfft(magnitude * phase, n=n_fft, axis=-1) * window
        signal = overlap_add(frames, hop) / norm
    return np.clip(signal, -1.0, 1.0).astype(np.float32, copy=False)


def overlap_add(frames: np.ndarray, hop: int) -> np.ndarray:
    """Sum of ``(frames, n)`` placed every ``hop`` samples -> ``n + hop * (frames - 1)``."""
    n_frames, n = frames.shape
    if n % hop == 0:  # whole hops per frame: n / hop vectorised adds
        blocks = np.zeros((n_frames + n // hop - 1, hop), dtype=np.float32)
        for j in range(n // hop):
            blocks[j : j + n_frames] += frames[:, j * hop : (j + 1) * hop]
        return blocks.reshape(-1)
    out = np.zeros(n + hop * (n_frames - 1), dtype=np.float32)
    for t in range(n_frames):
        out[t * hop : t * hop + n] += frames[t]
    return out
