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
    "log_spectral_distance_db",
    "psnr_db",
    "ssim",
]

PSNR_MAX_DB = 100.0  # PSNR of an exact copy, instead of infinity
CV_MAX_CHANNELS = 128  # channels one cv2 call accepts from numpy
DB_PER_LOG_UNIT = 10.0 / math.log(10.0)
# Per-tick error plotted over time, by kind (lower is better for all).
PRIMARY_ERROR = {"image": "mse", "vector": "rmse", "audio": "lsd_db", "categorical": "error"}


def psnr_db(truth: np.ndarray, recon: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Per-sample peak signal-to-noise ratio in dB of (B, ...) batches, capped at PSNR_MAX_DB
    for identical samples."""
    diff = truth.astype(np.float64) - recon.astype(np.float64)
    mse = np.mean(diff.reshape(len(diff), -1) ** 2, axis=1)
    floor = data_range**2 * 10 ** (-PSNR_MAX_DB / 10)
    return 10.0 * np.log10(data_range**2 / np.maximum(mse, floor))


def _blur(a: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(a, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)


def ssim(truth: np.ndarray, recon: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Per-sample mean structural similarity of (B, C, H, W) batches (Gaussian-window SSIM,
    mean over pixels and channels)."""
    if truth.shape != recon.shape or truth.ndim != 4:
        raise ValueError(
            f"ssim needs two (B, C, H, W) arrays of one shape, got {truth.shape} and {recon.shape}"
        )
    b, c, h, w = truth.shape
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    # (H, W, B*C): few blur calls per statistic for the whole batch (cv2: <= 128 channels).
    x_all = np.ascontiguousarray(truth.astype(np.float32).reshape(b * c, h, w).transpose(1, 2, 0))
    y_all = np.ascontiguousarray(recon.astype(np.float32).reshape(b * c, h, w).transpose(1, 2, 0))
    out = np.empty(b * c, np.float64)
    for lo in range(0, b * c, CV_MAX_CHANNELS):
        x, y = x_all[:, :, lo : lo + CV_MAX_CHANNELS], y_all[:, :, lo : lo + CV_MAX_CHANNELS]
        mu_x, mu_y = _blur(x), _blur(y)
        var_x = _blur(x * x) - mu_x * mu_x
        var_y = _blur(y * y) - mu_y * mu_y
        cov = _blur(x * y) - mu_x * mu_y
        num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
        den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
        ratio = (num / den).reshape(h * w, -1)
        out[lo : lo + ratio.shape[1]] = ratio.mean(axis=0)
    return out.reshape(b, c).mean(axis=1)


def log_spectral_distance_db(truth_log_mel: np.ndarray, recon_log_mel: np.ndarray) -> np.ndarray:
    """Per-sample mean over frames of the RMS (over mel bands) dB difference; inputs
    (B, ..., n_mels, frames) in natural-log mel power."""
    diff_db = DB_PER_LOG_UNIT * (
        truth_log_mel.astype(np.float64) - recon_log_mel.astype(np.float64)
    )
    diff_db = diff_db.reshape(len(diff_db), -1, diff_db.shape[-2], diff_db.shape[-1])
    return np.mean(np.sqrt(np.mean(diff_db**2, axis=-2)), axis=(1, 2))


class MetricAccumulator:
    """Per-kind scorer: ``add(truth, recon)`` takes (B, *shape) batches, returns each sample's
    primary error (PRIMARY_ERROR) and accumulates; ``summary()`` gives the aggregate."""

    def __init__(self, spec: ModalitySpec) -> None:
        self.spec = spec
        self.count = 0
        self._sums: dict[str, float] = {}
        self._sq_err = np.zeros(spec.size, np.float64)
        if spec.kind in ("vector", "audio"):
            self._loc = np.asarray(spec.preprocess["loc"], dtype=np.float64)
            self._scale = np.asarray(spec.preprocess["scale"], dtype=np.float64)

    def _acc(self, key: str, values: np.ndarray) -> None:
        self._sums[key] = self._sums.get(key, 0.0) + float(np.sum(values))

    def add(self, truth: np.ndarray, recon: np.ndarray) -> np.ndarray:
        if truth.shape != recon.shape or truth.shape[1:] != self.spec.shape:
            raise ValueError(
                f"modality {self.spec.name!r}: truth {truth.shape} and reconstruction "
                f"{recon.shape} must both be (B, {', '.join(map(str, self.spec.shape))})"
            )
        self.count += len(truth)
        kind = self.spec.kind
        if kind == "image":
            diff = truth.astype(np.float64) - recon.astype(np.float64)
            mse = np.mean(diff.reshape(len(diff), -1) ** 2, axis=1)
            self._acc("mse", mse)
            self._acc("psnr_db", psnr_db(truth, recon))
            self._acc("ssim", ssim(truth, recon))
            return mse
        if kind == "vector":
            diff = (truth.astype(np.float64) - recon.astype(np.float64)) * self._scale
            sq = diff * diff
            self._sq_err += sq.sum(axis=0)
            return np.sqrt(np.mean(sq, axis=1))
        if kind == "audio":
            scale = float(self._scale)
            lsd = log_spectral_distance_db(truth * scale, recon * scale)
            self._acc("lsd_db", lsd)
            return lsd
        flat = len(truth), -1
        wrong = (
            np.argmax(truth.reshape(flat), axis=1) != np.argmax(recon.reshape(flat), axis=1)
        ).astype(np.float64)
        self._acc("error", wrong)
        return wrong

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ticks": self.count}
        if self.count == 0:
            return out
        if self.spec.kind == "vector":
            mean_sq = self._sq_err / self.count
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
            out[key] = total / self.count
        if self.spec.kind == "categorical":
            out["accuracy"] = 1.0 - out.pop("error")
        return out
