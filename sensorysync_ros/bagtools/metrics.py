"""Reconstruction metrics per modality kind, computed on model tensors (numpy only).

- image: PSNR (dB, data range 1) and SSIM (Wang et al. 2004: Gaussian window 11x11,
  sigma 1.5, K1 = 0.01, K2 = 0.03, mean over channels), tensors (C, H, W) in [0, 1].
- vector (joints): RMSE in physical units after de-normalising ``raw = x * scale + loc``,
  per joint and field, per field, and overall.
- audio: log-spectral distance (dB) between log-mel features after de-normalising
  ``log_mel = x * scale + loc``: per frame the RMS over mel bands of the dB difference,
  averaged over frames. ``log_mel`` is the natural log of mel power, so 1 unit = 10/ln 10 dB.
- categorical: accuracy of the arg-max class.

Accumulators sum per-tick values and divide once at the end.
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
DB_PER_LOG_UNIT = 10.0 / math.log(10.0)
# Per-tick error plotted over time, by kind (lower is better for all).
PRIMARY_ERROR = {"image": "mse", "vector": "rmse", "audio": "lsd_db", "categorical": "error"}


def psnr_db(truth: np.ndarray, recon: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, capped at PSNR_MAX_DB for identical inputs."""
    mse = float(np.mean((truth.astype(np.float64) - recon.astype(np.float64)) ** 2))
    if mse <= data_range**2 * 10 ** (-PSNR_MAX_DB / 10):
        return PSNR_MAX_DB
    return 10.0 * math.log10(data_range**2 / mse)


def _blur(a: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(a, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)


def ssim(truth: np.ndarray, recon: np.ndarray, data_range: float = 1.0) -> float:
    """Mean structural similarity of two (C, H, W) images (Gaussian-window SSIM)."""
    if truth.shape != recon.shape or truth.ndim != 3:
        raise ValueError(
            f"ssim needs two (C, H, W) arrays of one shape, got {truth.shape} and {recon.shape}"
        )
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    total = 0.0
    for x, y in zip(truth.astype(np.float64), recon.astype(np.float64)):
        mu_x, mu_y = _blur(x), _blur(y)
        var_x = _blur(x * x) - mu_x * mu_x
        var_y = _blur(y * y) - mu_y * mu_y
        cov = _blur(x * y) - mu_x * mu_y
        num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
        den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
        total += float(np.mean(num / den))
    return total / truth.shape[0]


def log_spectral_distance_db(truth_log_mel: np.ndarray, recon_log_mel: np.ndarray) -> float:
    """Mean over frames of the RMS (over mel bands) dB difference; inputs (..., n_mels, frames)
    in natural-log mel power."""
    diff_db = DB_PER_LOG_UNIT * (
        truth_log_mel.astype(np.float64) - recon_log_mel.astype(np.float64)
    )
    diff_db = diff_db.reshape(-1, diff_db.shape[-2], diff_db.shape[-1])
    return float(np.mean(np.sqrt(np.mean(diff_db**2, axis=-2))))


class MetricAccumulator:
    """Per-kind scorer: ``add(truth, recon)`` returns the tick's primary error and accumulates;
    ``summary()`` gives the aggregate (None-valued when nothing was added)."""

    def __init__(self, spec: ModalitySpec) -> None:
        self.spec = spec
        self.count = 0
        self._sums: dict[str, float] = {}
        self._sq_err: np.ndarray | None = None
        pre = spec.preprocess
        if spec.kind in ("vector", "audio"):
            self._loc = np.asarray(pre["loc"], dtype=np.float64)
            self._scale = np.asarray(pre["scale"], dtype=np.float64)

    def _acc(self, key: str, value: float) -> None:
        self._sums[key] = self._sums.get(key, 0.0) + value

    def add(self, truth: np.ndarray, recon: np.ndarray) -> float:
        self.count += 1
        kind = self.spec.kind
        if kind == "image":
            mse = float(np.mean((truth.astype(np.float64) - recon.astype(np.float64)) ** 2))
            self._acc("mse", mse)
            self._acc("psnr_db", psnr_db(truth, recon))
            self._acc("ssim", ssim(truth, recon))
            return mse
        if kind == "vector":
            diff = (truth.astype(np.float64) - recon.astype(np.float64)) * self._scale
            sq = diff * diff
            self._sq_err = sq if self._sq_err is None else self._sq_err + sq
            return float(np.sqrt(np.mean(sq)))
        if kind == "audio":
            scale = float(self._scale)
            lsd = log_spectral_distance_db(truth * scale, recon * scale)
            self._acc("lsd_db", lsd)
            return lsd
        wrong = float(np.argmax(truth) != np.argmax(recon))
        self._acc("error", wrong)
        return wrong

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ticks": self.count}
        if self.count == 0:
            return out
        if self.spec.kind == "vector":
            assert self._sq_err is not None
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
