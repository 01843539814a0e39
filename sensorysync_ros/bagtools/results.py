"""What one evaluation pass produces: per-tick conditions, traces, dropout events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..manifest import ModalitySpec

__all__ = [
    "CONDITIONS",
    "DETECTING",
    "DROPOUT",
    "MISSING",
    "PRESENT",
    "DropoutEvent",
    "EvalResult",
    "FrameSample",
    "ModalityTrace",
]

# Condition of one modality at one tick (see sensorysync_ros.bagtools.evaluation).
PRESENT, DROPOUT, DETECTING, MISSING = 0, 1, 2, 3
CONDITIONS = ("present", "dropout", "detecting", "missing")


@dataclass
class DropoutEvent:
    """A scheduled dropout or a real gap, with when the core first reported it missing."""

    modality: str
    start_s: float
    end_s: float
    source: str  # "explicit", "random" or "gap"
    detected_s: float | None = None

    @property
    def detection_delay_s(self) -> float | None:
        return None if self.detected_s is None else self.detected_s - self.start_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "modality": self.modality,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "source": self.source,
            "detected_s": self.detected_s,
            "detection_delay_s": self.detection_delay_s,
        }


@dataclass(frozen=True)
class FrameSample:
    """One dropout tick of an image modality kept for the frame grid."""

    t_s: float
    truth: np.ndarray
    recon: np.ndarray
    hold: np.ndarray


@dataclass
class ModalityTrace:
    """Per-tick record of one modality (for the plots)."""

    condition: list[int] = field(default_factory=list)
    error_model: list[float] = field(default_factory=list)
    error_hold: list[float] = field(default_factory=list)
    truth: list[np.ndarray] = field(default_factory=list)  # vector modalities only
    recon: list[np.ndarray] = field(default_factory=list)  # vector modalities only
    frames: list[FrameSample] = field(default_factory=list)  # image modalities only


@dataclass
class EvalResult:
    """Everything the report needs: ``summary`` is metrics.json, the rest feeds the plots."""

    summary: dict[str, Any]
    specs: tuple[ModalitySpec, ...]
    tick_s: np.ndarray
    traces: dict[str, ModalityTrace]
    events: list[DropoutEvent]
