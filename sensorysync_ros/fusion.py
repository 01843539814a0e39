"""The fusion core: latest sample per modality, staleness, mask, one engine call per tick.

ROS-agnostic (no ROS types): the node feeds it from subscription callbacks and a timer with
its clock's time, the bag evaluator from recorded timestamps, so what is measured offline is
exactly what runs on the robot.

    core = FusionCore(engine)                       # timeouts default to 3 / ros.rate_hz
    core.push(stamp_ns, "camera", codec.decode(msg))
    out = core.tick(now_ns)                         # None when no modality is present
    out.recon["audio"]                              # from p(z^m | z^c) if audio was missing

A modality is *present* at ``now_ns`` iff it has a sample and ``now_ns - last_stamp_ns <=
timeout_ns`` (a sample stamped after ``now_ns`` counts as fresh). ``push`` and ``tick`` may be
called from different threads; a lock serialises them (a push waits for at most one engine
call).
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .manifest import Manifest

__all__ = [
    "DEFAULT_TIMEOUT_PERIODS",
    "FusionCore",
    "FusionOutput",
    "ModalityState",
    "ModalityStatus",
]

DEFAULT_TIMEOUT_PERIODS = 3.0  # default staleness timeout, in expected sensor periods
_NEVER = np.iinfo(np.int64).min


class EngineLike(Protocol):
    """What the fusion core needs of :class:`sensorysync_ros.engine.Engine`."""

    manifest: Manifest

    def run(self, inputs: Mapping[str, np.ndarray], mask: np.ndarray) -> Any:
        """Returns an object with ``core_mean``, ``core_logvar`` (B, Dc) and ``recon``."""


class ModalityStatus(enum.Enum):
    """Liveness of one modality at a given time."""

    PRESENT = "present"  # a sample within its timeout
    STALE = "stale"  # seen, but the last sample is older than its timeout
    NEVER_SEEN = "never_seen"  # no sample since construction or reset()


@dataclass(frozen=True)
class ModalityState:
    """Diagnostics of one modality at a given time."""

    status: ModalityStatus
    last_stamp_ns: int | None  # None: never seen
    age_ns: int | None  # now - last_stamp_ns; None: never seen
    timeout_ns: int


@dataclass(frozen=True)
class FusionOutput:
    """What one tick produced. Arrays are fresh per tick (safe to keep)."""

    stamp_ns: int  # the tick's time
    present: dict[str, bool]  # manifest order; the mask the engine saw
    core_mean: np.ndarray  # (core_latent_dim,)
    core_var: np.ndarray  # (core_latent_dim,) = exp(core_logvar)
    recon: dict[str, np.ndarray]  # modality -> tensor-space reconstruction, manifest shape
    last_stamp_ns: dict[str, int | None]  # None: never seen
    age_ns: dict[str, int | None]  # stamp_ns - last_stamp_ns; None: never seen

    @property
    def missing(self) -> tuple[str, ...]:
        """Modalities reconstructed from the core latent (absent in the mask)."""
        return tuple(name for name, ok in self.present.items() if not ok)


class FusionCore:
    """Keeps the latest sample per modality and fuses the fresh ones on every tick.

    Args:
        engine: anything with ``.manifest`` and ``.run(inputs, mask)`` (an Engine).
        timeouts_ns: per-modality staleness timeout in ns; modalities left out default to
            ``DEFAULT_TIMEOUT_PERIODS / manifest ros.rate_hz`` seconds.

    Raises:
        ValueError: an unknown modality name or a timeout that is not > 0.
    """

    def __init__(self, engine: EngineLike, *, timeouts_ns: Mapping[str, int] | None = None):
        self.engine = engine
        self.manifest = engine.manifest
        self.names = self.manifest.names
        self._index = {name: i for i, name in enumerate(self.names)}
        given = dict(timeouts_ns or {})
        unknown = sorted(set(given) - set(self.names))
        if unknown:
            raise ValueError(
                f"timeouts_ns names unknown modalities {unknown}; the model has {list(self.names)}"
            )
        timeouts = []
        for spec in self.manifest.modalities:
            default = round(DEFAULT_TIMEOUT_PERIODS * 1e9 / spec.ros.rate_hz)
            timeout = given.get(spec.name, default)
            if (
                not isinstance(timeout, (int, np.integer))
                or isinstance(timeout, bool)
                or timeout <= 0
            ):
                raise ValueError(
                    f"timeout of modality {spec.name!r} must be a positive int of ns, "
                    f"got {timeout!r}"
                )
            timeouts.append(int(timeout))
        self.timeouts_ns: dict[str, int] = dict(zip(self.names, timeouts))
        self._timeouts = np.array(timeouts, dtype=np.int64)
        self._last = np.full(len(self.names), _NEVER, dtype=np.int64)
        self._ages = np.zeros(len(self.names), dtype=np.int64)
        self._seen = np.zeros(len(self.names), dtype=bool)
        self._present = np.zeros(len(self.names), dtype=bool)
        self._mask = np.zeros((1, len(self.names)), dtype=np.float32)
        self._inputs = {
            m.name: np.zeros((1, *m.shape), np.float32) for m in self.manifest.modalities
        }
        self._lock = threading.Lock()

    def push(self, stamp_ns: int, modality: str, sample: np.ndarray) -> bool:
        """Store ``sample`` (one sample of the manifest shape) as the latest of ``modality``.

        Returns False (and keeps the stored one) when ``sample`` is older than the stored
        sample. Raises ValueError for an unknown modality, a wrong shape or non-finite values.
        """
        i = self._index.get(modality)
        if i is None:
            raise ValueError(f"unknown modality {modality!r}; the model has {list(self.names)}")
        buffer = self._inputs[modality]
        values = np.asarray(sample)
        if values.size != buffer.size:
            raise ValueError(
                f"modality {modality!r}: sample of shape {values.shape} does not fit the "
                f"manifest shape {buffer.shape[1:]}"
            )
        if not np.isfinite(values).all():
            raise ValueError(f"modality {modality!r}: sample contains NaN or inf")
        with self._lock:
            if stamp_ns < self._last[i]:
                return False
            np.copyto(buffer, values.reshape(buffer.shape), casting="same_kind")
            self._last[i] = stamp_ns
        return True

    def _update_presence(self, now_ns: int) -> None:
        """Fill ``_ages``, ``_present`` and ``_mask`` for ``now_ns`` (caller holds the lock)."""
        np.not_equal(self._last, _NEVER, out=self._seen)
        np.subtract(now_ns, self._last, out=self._ages, where=self._seen)
        np.less_equal(self._ages, self._timeouts, out=self._present)
        self._present &= self._seen
        self._mask[0] = self._present

    def tick(self, now_ns: int) -> FusionOutput | None:
        """Fuse the modalities present at ``now_ns``; None when none is present."""
        with self._lock:
            self._update_presence(now_ns)
            if not self._present.any():
                return None
            inputs = {n: self._inputs[n] for n, ok in zip(self.names, self._present) if ok}
            result = self.engine.run(inputs, self._mask)
            present = dict(zip(self.names, self._present.tolist()))
            last, ages = self._stamps()
        return FusionOutput(
            stamp_ns=now_ns,
            present=present,
            core_mean=result.core_mean[0],
            core_var=np.exp(result.core_logvar[0]),
            recon={name: result.recon[name][0] for name in self.names},
            last_stamp_ns=last,
            age_ns=ages,
        )

    def _stamps(self) -> tuple[dict[str, int | None], dict[str, int | None]]:
        last: dict[str, int | None] = {}
        ages: dict[str, int | None] = {}
        for i, name in enumerate(self.names):
            seen = self._last[i] != _NEVER
            last[name] = int(self._last[i]) if seen else None
            ages[name] = int(self._ages[i]) if seen else None
        return last, ages

    def status(self, now_ns: int) -> dict[str, ModalityState]:
        """Per-modality liveness at ``now_ns`` (for diagnostics), manifest order."""
        with self._lock:
            self._update_presence(now_ns)
            last, ages = self._stamps()
            present = self._present.tolist()
        return {
            name: ModalityState(
                status=ModalityStatus.PRESENT
                if present[i]
                else ModalityStatus.NEVER_SEEN
                if last[name] is None
                else ModalityStatus.STALE,
                last_stamp_ns=last[name],
                age_ns=ages[name],
                timeout_ns=self.timeouts_ns[name],
            )
            for i, name in enumerate(self.names)
        }

    def reset(self, modality: str | None = None) -> None:
        """Forget the stored sample of ``modality`` (all when None), e.g. after a clock jump."""
        with self._lock:
            if modality is None:
                self._last[:] = _NEVER
            else:
                if modality not in self._index:
                    raise ValueError(
                        f"unknown modality {modality!r}; the model has {list(self.names)}"
                    )
                self._last[self._index[modality]] = _NEVER
