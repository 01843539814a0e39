"""Dropout schedules: explicit intervals, seeded random dropouts, and real gaps in a bag.

Times in specs are seconds from the bag start. ``camera:10-20`` withholds every camera
message stamped in [10 s, 20 s) from the fusion core (the evaluator keeps them as truth; the
replay tool does not publish them).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import DropoutSpecError

__all__ = [
    "DropoutInterval",
    "DropoutSchedule",
    "Gap",
    "GapFinder",
    "check_random_dropout",
    "parse_drop_spec",
    "random_dropouts",
]

NS_PER_S = 1_000_000_000
_SPEC = re.compile(r"^\s*([A-Za-z_/][\w/]*)\s*:\s*([0-9]*\.?[0-9]+)\s*-\s*([0-9]*\.?[0-9]+)\s*$")


@dataclass(frozen=True)
class DropoutInterval:
    """Modality ``modality`` withheld for stamps in [start_s, end_s) from the bag start."""

    modality: str
    start_s: float
    end_s: float
    source: str = "explicit"  # "explicit" (--drop) or "random" (--random-dropout)

    @property
    def length_s(self) -> float:
        return self.end_s - self.start_s


def parse_drop_spec(spec: str, modalities: Sequence[str]) -> DropoutInterval:
    """``"camera:10-20"`` -> DropoutInterval("camera", 10.0, 20.0). ``modalities``: the names
    a spec may use (the replay tool also accepts topic names such as ``/camera/image_raw``)."""
    match = _SPEC.match(spec)
    if match is None:
        raise DropoutSpecError(
            f"dropout spec {spec!r} does not parse; write MODALITY:START-END in seconds "
            f"from the bag start, e.g. camera:10-20"
        )
    name, start_s, end_s = match.group(1), float(match.group(2)), float(match.group(3))
    if name not in modalities:
        raise DropoutSpecError(
            f"dropout spec {spec!r} names unknown modality {name!r}; known: {list(modalities)}"
        )
    if end_s <= start_s:
        raise DropoutSpecError(
            f"dropout spec {spec!r}: end {end_s} s must be after start {start_s} s"
        )
    return DropoutInterval(name, start_s, end_s)


def check_random_dropout(rate: float, length_s: float) -> None:
    """Raise DropoutSpecError unless ``rate`` is in (0, 1) and ``length_s`` > 0."""
    if not 0.0 < rate < 1.0:
        raise DropoutSpecError(
            f"random dropout rate {rate!r} must be a fraction of time in (0, 1), e.g. 0.2"
        )
    if length_s <= 0:
        raise DropoutSpecError(f"random dropout length {length_s!r} s must be > 0")


def random_dropouts(
    modalities: Sequence[str],
    duration_s: float,
    rate: float,
    *,
    seed: int,
    length_s: float = 3.0,
) -> list[DropoutInterval]:
    """Seeded random dropouts: each modality is withheld for about ``rate`` of the bag's
    duration, in intervals of ``length_s`` placed at random without overlap."""
    check_random_dropout(rate, length_s)
    rng = np.random.default_rng(seed)
    count = max(1, round(rate * duration_s / length_s))
    length_s = min(length_s, rate * duration_s / count)
    free_s = duration_s - count * length_s
    intervals = []
    for name in modalities:
        gaps_s = free_s * rng.dirichlet(np.ones(count + 1))
        start_s = 0.0
        for k in range(count):
            start_s += float(gaps_s[k])
            intervals.append(DropoutInterval(name, start_s, start_s + length_s, "random"))
            start_s += length_s
    return intervals


class DropoutSchedule:
    """Fast lookup of whether a modality is withheld at a stamp."""

    def __init__(self, intervals: Iterable[DropoutInterval], bag_start_ns: int) -> None:
        self.intervals = sorted(intervals, key=lambda d: (d.modality, d.start_s))
        self.bag_start_ns = bag_start_ns
        self._starts: dict[str, list[int]] = {}
        self._ends: dict[str, list[int]] = {}
        self._by_modality: dict[str, list[DropoutInterval]] = {}
        for d in self.intervals:
            start_ns, end_ns = self.bounds_ns(d)
            starts, ends = (
                self._starts.setdefault(d.modality, []),
                self._ends.setdefault(d.modality, []),
            )
            if starts and start_ns < ends[-1]:
                raise DropoutSpecError(
                    f"dropout interval {d.modality}:{d.start_s:g}-{d.end_s:g} overlaps the "
                    f"previous one for {d.modality!r}; merge them into one interval"
                )
            starts.append(start_ns)
            ends.append(end_ns)
            self._by_modality.setdefault(d.modality, []).append(d)

    @property
    def modalities(self) -> frozenset[str]:
        """Names with at least one interval."""
        return frozenset(self._starts)

    def bounds_ns(self, interval: DropoutInterval) -> tuple[int, int]:
        """The interval's [start, end) as absolute stamps."""
        return (
            self.bag_start_ns + round(interval.start_s * NS_PER_S),
            self.bag_start_ns + round(interval.end_s * NS_PER_S),
        )

    def active(self, modality: str, stamp_ns: int) -> DropoutInterval | None:
        """The interval withholding ``modality`` at ``stamp_ns``, or None."""
        starts = self._starts.get(modality)
        if not starts:
            return None
        k = bisect.bisect_right(starts, stamp_ns) - 1
        if k >= 0 and stamp_ns < self._ends[modality][k]:
            return self._by_modality[modality][k]
        return None

    def dropped(self, modality: str, stamp_ns: int) -> bool:
        return self.active(modality, stamp_ns) is not None

    def check_within(self, duration_s: float) -> None:
        """Every interval must start inside the bag."""
        for d in self.intervals:
            if d.start_s >= duration_s:
                raise DropoutSpecError(
                    f"dropout {d.modality}:{d.start_s:g}-{d.end_s:g} starts after the bag ends "
                    f"({duration_s:.3f} s)"
                )


@dataclass(frozen=True)
class Gap:
    """A real gap in a bag: no message of ``modality`` for longer than its timeout."""

    modality: str
    start_ns: int  # stamp of the last message before the gap (or the bag start)
    end_ns: int  # stamp of the first message after it (or the bag end)


class GapFinder:
    """Finds real gaps while messages stream by in stamp order."""

    def __init__(self, timeouts_ns: dict[str, int], bag_start_ns: int) -> None:
        self.timeouts_ns = dict(timeouts_ns)
        self._last_ns = dict.fromkeys(self.timeouts_ns, bag_start_ns)
        self.gaps: list[Gap] = []

    def see(self, modality: str, stamp_ns: int) -> Gap | None:
        """Record a message; returns the gap it ends, if any."""
        last_ns = self._last_ns[modality]
        self._last_ns[modality] = max(last_ns, stamp_ns)
        if stamp_ns - last_ns > self.timeouts_ns[modality]:
            gap = Gap(modality, last_ns, stamp_ns)
            self.gaps.append(gap)
            return gap
        return None

    def finish(self, bag_end_ns: int) -> list[Gap]:
        """Record the gaps that run to the bag end and return them."""
        tail = [
            Gap(modality, last_ns, bag_end_ns)
            for modality, last_ns in self._last_ns.items()
            if bag_end_ns - last_ns > self.timeouts_ns[modality]
        ]
        self.gaps.extend(tail)
        return tail
