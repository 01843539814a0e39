"""What the node reports on ``/diagnostics``: per-sensor and fusion status, built from counters.

Pure functions over plain counters and the fusion core's per-modality state (no node, no
clock reads), so the levels are tested without a ROS graph. Levels:

- sensor OK: its last decoded sample is within its staleness timeout (it is fused).
- sensor WARN "stale": older than its timeout (it is reconstructed) for up to
  ``MISSING_AFTER_TIMEOUTS`` timeouts.
- sensor ERROR "missing": no valid sample since activation, or stale for longer than that.
- fusion: OK when every sensor is present, WARN when some are reconstructed, ERROR when none
  is present (the node then publishes no core output).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from .fusion import ModalityState, ModalityStatus

__all__ = [
    "MISSING_AFTER_TIMEOUTS",
    "FusionReport",
    "LatencyWindow",
    "SensorStats",
    "fusion_status",
    "sensor_status",
]

MISSING_AFTER_TIMEOUTS = 10.0
OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


@dataclass
class SensorStats:
    """Counters of one input since activation (``window_*``: since the last report)."""

    modality: str
    topic: str
    received: int = 0  # messages delivered to the callback
    decoded: int = 0  # samples pushed into the fusion core
    malformed: int = 0  # messages rejected by the codec
    qos_incompatible: int = 0  # publishers whose QoS this subscription cannot match
    last_error: str = ""
    window_decoded: int = 0


@dataclass
class LatencyWindow:
    """Durations of recent fusion ticks (bounded), summarised per diagnostics report."""

    capacity: int = 4096
    _ns: deque[int] = field(default_factory=deque)

    def add(self, duration_ns: int) -> None:
        if len(self._ns) >= self.capacity:
            self._ns.popleft()
        self._ns.append(duration_ns)

    def summary_ms(self) -> tuple[float, float] | None:
        """(p50, max) in milliseconds of the durations since the last call; None if none."""
        if not self._ns:
            return None
        values = np.fromiter(self._ns, dtype=np.float64) / 1e6
        self._ns.clear()
        return float(np.median(values)), float(values.max())


def _values(pairs: Sequence[tuple[str, object]]) -> list[KeyValue]:
    return [KeyValue(key=k, value=str(v)) for k, v in pairs]


def sensor_status(
    stats: SensorStats, state: ModalityState, *, node_name: str, window_s: float
) -> DiagnosticStatus:
    """Status of one sensor from its counters and fusion state; resets its window counter."""
    rate_hz = stats.window_decoded / window_s if window_s > 0 else 0.0
    stats.window_decoded = 0
    if state.status is ModalityStatus.NEVER_SEEN or state.age_ns is None:
        level, message, age = ERROR, "missing: no valid sample since activation", "never"
    else:
        age_s = state.age_ns / 1e9
        age = f"{age_s:.3f}"
        if state.status is ModalityStatus.PRESENT:
            level, message = OK, "present"
        elif state.age_ns <= MISSING_AFTER_TIMEOUTS * state.timeout_ns:
            level, message = WARN, f"stale: last sample {age_s:.3f} s ago; reconstructed"
        else:
            level, message = ERROR, f"missing: last sample {age_s:.3f} s ago; reconstructed"
    if stats.malformed:
        message += f"; {stats.malformed} malformed message(s) skipped"
    return DiagnosticStatus(
        level=level,
        name=f"{node_name}: {stats.modality}",
        message=message,
        hardware_id=stats.topic,
        values=_values(
            [
                ("rate_hz", f"{rate_hz:.2f}"),
                ("last_seen_age_s", age),
                ("timeout_s", f"{state.timeout_ns / 1e9:.3f}"),
                ("received", stats.received),
                ("decoded", stats.decoded),
                ("malformed", stats.malformed),
                ("last_malformed_reason", stats.last_error),
                ("qos_incompatible", stats.qos_incompatible),
            ]
        ),
    )


@dataclass(frozen=True)
class FusionReport:
    """Node-wide figures for the fusion status."""

    provider: str
    model_path: str
    core_layout: str
    ticks: int
    outputs: int
    latency_ms: tuple[float, float] | None  # (p50, max) over the window


def fusion_status(
    sensors: Sequence[SensorStats],
    states: Mapping[str, ModalityState],
    report: FusionReport,
    *,
    node_name: str,
) -> DiagnosticStatus:
    """Overall status: which sensors are fused, inference latency, provider, error counts."""
    missing = [name for name, s in states.items() if s.status is not ModalityStatus.PRESENT]
    if len(missing) == len(states):
        level, message = ERROR, "no sensor present: no core output"
    elif missing:
        level, message = WARN, f"reconstructing {', '.join(missing)}"
    else:
        level, message = OK, f"all {len(sensors)} sensors present"
    p50, worst = report.latency_ms if report.latency_ms else (float("nan"), float("nan"))
    return DiagnosticStatus(
        level=level,
        name=f"{node_name}: fusion",
        message=message,
        hardware_id=report.model_path,
        values=_values(
            [
                ("execution_provider", report.provider),
                ("inference_latency_p50_ms", f"{p50:.3f}"),
                ("inference_latency_max_ms", f"{worst:.3f}"),
                ("ticks", report.ticks),
                ("outputs", report.outputs),
                ("missing", ",".join(missing)),
                ("malformed_total", sum(s.malformed for s in sensors)),
                ("qos_incompatible_total", sum(s.qos_incompatible for s in sensors)),
                ("core_layout", report.core_layout),
            ]
        ),
    )
