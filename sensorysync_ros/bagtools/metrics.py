"""Reconstruction metrics per modality kind, computed on model tensors (numpy only).

- image: PSNR (dB, data range 1) and SSIM (Wang et al. 2004: Gaussian window 11x11,
  sigma 1.5, K1 = 0.01, K2 = 0.03, mean over channels), tensors (C, H, W) in [0, 1].
- vector (joints): RMSE in physical units after de-normalising ``raw = x * scale + loc``,
  per joint and field, per field, and overall.
- audio: log-spectral distance (dB) between log-mel features after de-normalising
  ``log_mel = x * scale + loc``: per frame the RMS over mel bands of the dB difference,
  averaged over frames. ``log_mel`` is the natural log of mel power, so 1 unit = 10/ln 10 dB.
- categorical: accuracy of the arg-max class.

All functions take batches (B, ...) and return one value per sample; accumulators sum
per-tick values and divide once at the end.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from ..manifest import ModalitySpec

__all__ = [
    "PRIMARY_ERROR",
    "MetricAccumulator",
    "Scores",
    "log_spectral_distance_db",
    "primary_error",
    "psnr_db",
    "score",
    "ssim",
]

PSNR_MAX_DB = 100.0  # PSNR of an exact copy, instead of infinity
DB_PER_LOG_UNIT = 10.0 / math.log(10.0)
# Per-tick error plotted over time, by kind (lower is better for all).
PRIMARY_ERROR = {"image": "mse", "vector": "rmse", "audio": "lsd_db", "categorical": "error"}


def _mse(truth: np.ndarray, recon: np.ndarray) -> np.ndarray:
    diff = np.asarray(truth, np.float32) - np.asarray(recon, np.float32)
    return np.mean(np.square(diff).reshape(len(diff), -1), axis=1, dtype=np.float64)


def _psnr_from_mse(mse: np.ndarray, data_range: float) -> np.ndarray:
    floor = data_range**2 * 10 ** (-PSNR_MAX_DB / 10)
    return 10.0 * np.log10(data_range**2 / np.maximum(mse, floor))


def psnr_db(truth: np.ndarray, recon: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Per-sample peak signal-to-noise ratio in dB of (B, ...) batches, capped at PSNR_MAX_DB
    for identical samples."""
    return _psnr_from_mse(_mse(truth, recon), data_range)


def _blur(a: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(a, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)


def _ssim_hwc(x: np.ndarray, y: np.ndarray, c1: float, c2: float) -> float:
    mu_x, mu_y = _blur(x), _blur(y)
    var_x = _blur(x * x) - mu_x * mu_x
    var_y = _blur(y * y) - mu_y * mu_y
    cov = _blur(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return float(np.mean(num / den))


def ssim(truth: np.ndarray, recon: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Per-sample mean structural similarity of (B, C, H, W) batches (Gaussian-window SSIM,
    mean over pixels and channels)."""
    if truth.shape != recon.shape or truth.ndim != 4:
        raise ValueError(
            f"ssim needs two (B, C, H, W) arrays of one shape, got {truth.shape} and {recon.shape}"
        )
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    # One image (H, W, C) per cv2 call: its 1-4 channel paths are the fast ones.
    x = np.ascontiguousarray(np.moveaxis(np.asarray(truth, np.float32), 1, -1))
    y = np.ascontiguousarray(np.moveaxis(np.asarray(recon, np.float32), 1, -1))
    return np.array([_ssim_hwc(x[i], y[i], c1, c2) for i in range(len(x))], np.float64)


def log_spectral_distance_db(truth_log_mel: np.ndarray, recon_log_mel: np.ndarray) -> np.ndarray:
    """Per-sample mean over frames of the RMS (over mel bands) dB difference; inputs
    (B, ..., n_mels, frames) in natural-log mel power."""
    diff_db = DB_PER_LOG_UNIT * (
        np.asarray(truth_log_mel, np.float64) - np.asarray(recon_log_mel, np.float64)
    )
    diff_db = diff_db.reshape(len(diff_db), -1, diff_db.shape[-2], diff_db.shape[-1])
    return np.mean(np.sqrt(np.mean(diff_db**2, axis=-2)), axis=(1, 2))


Scores = dict[str, np.ndarray]


def score(spec: ModalitySpec, truth: np.ndarray, recon: np.ndarray) -> Scores:
    """Per-sample metrics of (B, *shape) batches, by kind: image ``mse``, ``psnr_db``,
    ``ssim``; vector ``sq_err`` (B, D) in physical units; audio ``lsd_db``; categorical
    ``error``. Index every array with the same mask to take a subset."""
    if truth.shape != recon.shape or truth.shape[1:] != spec.shape:
        raise ValueError(
            f"modality {spec.name!r}: truth {truth.shape} and reconstruction "
            f"{recon.shape} must both be (B, {', '.join(map(str, spec.shape))})"
        )
    if spec.kind == "image":
        mse = _mse(truth, recon)
        return {"mse": mse, "psnr_db": _psnr_from_mse(mse, 1.0), "ssim": ssim(truth, recon)}
    if spec.kind == "vector":
        scale = np.asarray(spec.preprocess["scale"], np.float64)
        diff = (np.asarray(truth, np.float64) - np.asarray(recon, np.float64)) * scale
        return {"sq_err": diff * diff}
    if spec.kind == "audio":
        scale = float(spec.preprocess["scale"])
        return {"lsd_db": log_spectral_distance_db(truth * scale, recon * scale)}
    flat = len(truth), -1
    wrong = np.argmax(truth.reshape(flat), axis=1) != np.argmax(recon.reshape(flat), axis=1)
    return {"error": wrong.astype(np.float64)}


def primary_error(kind: str, scores: Scores) -> np.ndarray:
    """The per-sample error plotted over time (PRIMARY_ERROR of the kind)."""
    if kind == "vector":
        return np.sqrt(np.mean(scores["sq_err"], axis=1))
    return scores[PRIMARY_ERROR[kind]]


class MetricAccumulator:
    """Sums per-sample scores of one modality and divides once at the end."""

    def __init__(self, spec: ModalitySpec) -> None:
        self.spec = spec
        self.count = 0
        self._sums: dict[str, Any] = {}

    def add(self, truth: np.ndarray, recon: np.ndarray) -> np.ndarray:
        """Score and accumulate a batch; returns each sample's primary error."""
        scores = score(self.spec, truth, recon)
        self.add_scores(scores)
        return primary_error(self.spec.kind, scores)

    def add_scores(self, scores: Scores) -> None:
        for key, values in scores.items():
            self._sums[key] = self._sums.get(key, 0.0) + np.sum(values, axis=0)
        self.count += len(next(iter(scores.values())))

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ticks": self.count}
        if self.count == 0:
            return out
        if self.spec.kind == "vector":
            mean_sq = self._sums["sq_err"] / self.count
            fields = list(self.spec.preprocess["fields"])
            joints = list(self.spec.preprocess["joint_names"])
            per = mean_sq.reshape(len(fields), len(joints))
            out["rmse"] = float(np.sqrt(np.mean(mean_sq)))
            out["rmse_per_field"] = {
                f: float(np.sqrt(np.mean(per[i]))) for i, f in enumerate(fields)
            }
            out["rmse_per_joint"] = {
                f: {j: float(np.sqrt(per[i, k])) for k, j in enumerate(joints)}
                for i, f in enumerate(fields)
            }
            return out
        for key, total in self._sums.items():
            out[key] = float(total) / self.count
        if self.spec.kind == "categorical":
            out["accuracy"] = 1.0 - out.pop("error")
        return out
