"""One offline evaluation pass over a bag: the node's codecs and fusion core on recorded time.

Messages are decoded with ``sensorysync_ros.codecs`` and pushed into
``sensorysync_ros.fusion.FusionCore`` in stamp order (module doc of ``bagio``); the core
ticks at ``rate_hz`` on bag time, starting one period after the bag start. A scheduled dropout
withholds a modality's messages from the core (and from its codec, so an audio ring buffer
refills after the dropout exactly as on the robot) while the evaluator keeps them as truth.

At each tick and for each modality the tick falls in one condition:

- ``present``: the core has the modality; its reconstruction is the autoencoding reference;
- ``dropout``: withheld by the schedule and reported missing: the reconstruction the node
  would publish, scored against the latest true sample, beside two baselines: ``hold`` (the
  last sample the core received) and ``mean`` (the training-set mean, or the mean over the
  bag's non-withheld samples);
- ``detecting``: withheld but not yet stale (the core still uses the last sample);
- ``missing``: reported missing without a scheduled dropout (a real gap in the bag, an audio
  window still filling, or no modality present at all).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..codecs import make_codec
from ..core_msg import encode_core
from ..engine import Engine
from ..errors import CodecError
from ..fusion import FusionCore
from ..manifest import ModalitySpec
from .bagio import BagReader, TopicBinding, time_ordered
from .dropout import NS_PER_S, DropoutInterval, DropoutSchedule, Gap, GapFinder
from .metrics import MetricAccumulator
from .outbag import OutputBag

__all__ = [
    "CONDITIONS",
    "DropoutEvent",
    "EvalResult",
    "FrameSample",
    "ModalityTrace",
    "evaluate_bag",
]

PRESENT, DROPOUT, DETECTING, MISSING = 0, 1, 2, 3
CONDITIONS = ("present", "dropout", "detecting", "missing")
LATE_DROPOUT_S = 0.5  # "late" dropout metrics: ticks at least this far into a dropout
FRAMES_PER_GRID = 8
REORDER_LOOKAHEAD_NS = 200_000_000


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


def _provenance_means(provenance: Mapping[str, Any], spec: ModalitySpec) -> np.ndarray | None:
    """``provenance["tensor_mean"][name]``: the training-set mean in tensor space, if carried."""
    means = provenance.get("tensor_mean")
    if not isinstance(means, Mapping) or spec.name not in means:
        return None
    mean = np.asarray(means[spec.name], dtype=np.float32)
    return mean.reshape(spec.shape) if mean.size == spec.size else None


def _bag_means(
    reader: BagReader,
    bindings: Sequence[TopicBinding],
    schedule: DropoutSchedule,
    specs: Mapping[str, ModalitySpec],
    clock_offset_ns: int,
) -> dict[str, np.ndarray]:
    """Mean tensor over the bag's non-withheld samples, per bound modality."""
    codecs = {b.modality: make_codec(specs[b.modality]) for b in bindings}
    sums = {b.modality: np.zeros(specs[b.modality].shape, np.float64) for b in bindings}
    counts = dict.fromkeys(sums, 0)
    for m in reader.messages(bindings, clock_offset_ns=clock_offset_ns):
        if schedule.dropped(m.modality, m.stamp_ns):
            continue
        try:
            sample = codecs[m.modality].decode(m.msg)
        except CodecError:
            continue
        if sample is not None:
            sums[m.modality] += sample
            counts[m.modality] += 1
    return {k: (sums[k] / max(counts[k], 1)).astype(np.float32) for k in sums}


class _Pass:
    """State of one evaluation pass (see the module doc)."""

    def __init__(
        self,
        engine: Engine,
        specs: tuple[ModalitySpec, ...],
        schedule: DropoutSchedule,
        means: Mapping[str, np.ndarray],
        bag_start_ns: int,
        out_bag: OutputBag | None,
        bindings: Sequence[TopicBinding],
        clock_offset_ns: int,
    ) -> None:
        self.specs = specs
        self.names = tuple(s.name for s in specs)
        self.schedule = schedule
        self.means = means
        self.t0_ns = bag_start_ns
        self.out_bag = out_bag
        self.clock_offset_ns = clock_offset_ns
        self.msgtypes = {b.modality: b.msgtype for b in bindings}
        self.core = FusionCore(engine)  # the node's default staleness timeouts
        self.timeouts_ns = dict(self.core.timeouts_ns)
        self.feed_codecs = {s.name: make_codec(s) for s in specs}
        # Stateful codecs (audio ring buffer) need a second instance fed every message for truth.
        self.truth_codecs = {s.name: make_codec(s) for s in specs if s.kind == "audio"}
        self.truth: dict[str, np.ndarray] = {}
        self.fed: dict[str, np.ndarray] = {}
        self.frame_ids: dict[str, str] = dict.fromkeys(self.names, "")
        self.malformed = dict.fromkeys(self.names, 0)
        self.gaps = GapFinder(self.timeouts_ns, bag_start_ns)
        self.missing_since_ns: dict[str, int | None] = dict.fromkeys(self.names, None)
        self.events: dict[DropoutInterval, DropoutEvent] = {
            d: DropoutEvent(d.modality, d.start_s, d.end_s, d.source) for d in schedule.intervals
        }
        self.gap_events: list[DropoutEvent] = []
        self.acc = {
            s.name: {
                key: MetricAccumulator(s)
                for key in ("present", "dropout", "hold", "mean", "dropout_late", "hold_late")
            }
            for s in specs
        }
        self.counts = {s.name: [0, 0, 0, 0] for s in specs}
        self.traces = {s.name: ModalityTrace() for s in specs}
        self.tick_ns: list[int] = []
        self.empty_ticks = 0
        self.frame_targets = self._frame_targets()

    def _frame_targets(self) -> dict[str, list[int]]:
        """Tick times at which to keep a frame for the grid, spread over each image dropout."""
        targets: dict[str, list[int]] = {}
        for s in self.specs:
            if s.kind != "image":
                continue
            own = [d for d in self.schedule.intervals if d.modality == s.name]
            if not own:
                continue
            per = max(1, FRAMES_PER_GRID // len(own))
            times = []
            for d in own:
                start_ns, end_ns = self.schedule.bounds_ns(d)
                start_ns += self.timeouts_ns[s.name]
                times += [start_ns + (end_ns - start_ns) * (k + 0.5) // per for k in range(per)]
            targets[s.name] = sorted(times)[:FRAMES_PER_GRID]
        return targets

    def _t_s(self, stamp_ns: int) -> float:
        return (stamp_ns - self.t0_ns) / NS_PER_S

    def push(self, modality: str, stamp_ns: int, msg: Any) -> None:
        gap = self.gaps.see(modality, stamp_ns)
        if gap is not None:
            self._gap_event(gap)
        header = getattr(msg, "header", None)
        if header is not None:
            self.frame_ids[modality] = str(header.frame_id)
        dropped = self.schedule.dropped(modality, stamp_ns)
        truth_codec = self.truth_codecs.get(modality)
        try:
            if truth_codec is None:
                sample = self.feed_codecs[modality].decode(msg)
                truth = sample
            else:
                truth = truth_codec.decode(msg)
                sample = None if dropped else self.feed_codecs[modality].decode(msg)
        except CodecError:
            self.malformed[modality] += 1
            return
        if truth is not None:
            self.truth[modality] = np.array(truth, dtype=np.float32)
        if not dropped and sample is not None:
            try:
                self.core.push(stamp_ns, modality, sample)
            except ValueError:  # non-finite values the codec let through
                self.malformed[modality] += 1
                return
            self.fed[modality] = self.truth[modality] if truth_codec is None else np.array(sample)

    def _gap_event(self, gap: Gap) -> None:
        since_ns = self.missing_since_ns[gap.modality]
        detected = since_ns if since_ns is not None and since_ns >= gap.start_ns else None
        self.gap_events.append(
            DropoutEvent(
                gap.modality,
                self._t_s(gap.start_ns),
                self._t_s(gap.end_ns),
                "gap",
                None if detected is None else self._t_s(detected),
            )
        )

    def tick(self, now_ns: int) -> None:
        self.tick_ns.append(now_ns)
        out = self.core.tick(now_ns)
        if out is None:
            self.empty_ticks += 1
        for name in self.names:
            present = out is not None and out.present[name]
            self._score(name, now_ns, present, None if out is None else out.recon[name])
        if out is not None and self.out_bag is not None:
            self._write(now_ns, out)

    def _score(self, name: str, now_ns: int, present: bool, recon: np.ndarray | None) -> None:
        trace, acc = self.traces[name], self.acc[name]
        interval = self.schedule.active(name, now_ns)
        if present:
            self.missing_since_ns[name] = None
        elif self.missing_since_ns[name] is None:
            self.missing_since_ns[name] = now_ns
        truth = self.truth.get(name)
        error_model = error_hold = float("nan")
        if interval is None and present and truth is not None and recon is not None:
            condition = PRESENT
            error_model = acc["present"].add(truth, recon)
        elif interval is not None and not present and truth is not None and recon is not None:
            condition = DROPOUT
            event = self.events[interval]
            if event.detected_s is None:
                event.detected_s = self._t_s(now_ns)
            error_model = acc["dropout"].add(truth, recon)
            late = self._t_s(now_ns) - interval.start_s >= LATE_DROPOUT_S
            if late:
                acc["dropout_late"].add(truth, recon)
            hold = self.fed.get(name)
            if hold is not None:
                error_hold = acc["hold"].add(truth, hold)
                if late:
                    acc["hold_late"].add(truth, hold)
            if name in self.means:
                acc["mean"].add(truth, self.means[name])
            self._keep_frame(name, now_ns, truth, recon, hold)
        elif interval is not None and present:
            condition = DETECTING
        else:
            condition = MISSING
            if interval is not None and self.events[interval].detected_s is None:
                self.events[interval].detected_s = self._t_s(now_ns)
        self.counts[name][condition] += 1
        trace.condition.append(condition)
        trace.error_model.append(error_model)
        trace.error_hold.append(error_hold)
        if self.specs[self.names.index(name)].kind == "vector":
            nan = np.full(self.specs[self.names.index(name)].size, np.nan, np.float32)
            trace.truth.append(nan if truth is None else truth.ravel())
            trace.recon.append(nan if recon is None else np.asarray(recon).ravel())

    def _keep_frame(
        self,
        name: str,
        now_ns: int,
        truth: np.ndarray,
        recon: np.ndarray,
        hold: np.ndarray | None,
    ) -> None:
        targets = self.frame_targets.get(name)
        if targets and now_ns >= targets[0]:
            targets.pop(0)
            self.traces[name].frames.append(
                FrameSample(
                    self._t_s(now_ns),
                    truth.copy(),
                    np.array(recon),
                    np.zeros_like(truth) if hold is None else hold.copy(),
                )
            )

    def _write(self, now_ns: int, out: Any) -> None:
        assert self.out_bag is not None
        bag = self.out_bag
        mask = np.array([out.present[name] for name in self.names], np.float32)
        core = encode_core(
            bag.msg_class("sensor_msgs/msg/Image"),
            bag.header(now_ns, "sensorysync_core"),
            out.core_mean,
            np.log(np.maximum(out.core_var, np.finfo(np.float32).tiny)),
            mask,
        )
        if isinstance(core.data, bytes):  # rosbags wants a uint8 array where rclpy takes bytes
            core = dataclasses.replace(core, data=np.frombuffer(core.data, np.uint8))
        recv_ns = now_ns + self.clock_offset_ns
        bag.write("/sensorysync/core", "sensor_msgs/msg/Image", recv_ns, core)
        for k, name in enumerate(self.names):
            if mask[k]:
                continue
            msgtype = self.msgtypes[name]
            msg = self.feed_codecs[name].encode(
                out.recon[name],
                bag.header(now_ns, self.frame_ids[name]),
                msg_cls=bag.msg_class(msgtype),
            )
            bag.write(f"/sensorysync/{name}/reconstruction", msgtype, recv_ns, msg)

    def finish(self, end_ns: int) -> None:
        for gap in self.gaps.finish(end_ns):
            self._gap_event(gap)


def _condition_summary(p: _Pass, name: str) -> dict[str, Any]:
    acc, counts = p.acc[name], p.counts[name]
    return {
        "ticks": dict(zip(CONDITIONS, counts)),
        "present": {"model": acc["present"].summary()},
        "dropout": {
            "model": acc["dropout"].summary(),
            "hold": acc["hold"].summary(),
            "mean": acc["mean"].summary(),
        },
        f"dropout_after_{LATE_DROPOUT_S:g}s": {
            "model": acc["dropout_late"].summary(),
            "hold": acc["hold_late"].summary(),
        },
        "malformed_messages": p.malformed[name],
    }


def evaluate_bag(
    bag: Path,
    engine: Engine,
    *,
    intervals_for: Callable[[float], list[DropoutInterval]],
    topic_remaps: Mapping[str, str] | None = None,
    rate_hz: float,
    out_bag_path: Path | None = None,
    progress: bool = True,
) -> EvalResult:
    """Run one evaluation pass (module doc).

    Args:
        bag: rosbag2 directory (read-only).
        engine: the model.
        intervals_for: ``callable(duration_s) -> list[DropoutInterval]`` (the schedule may
            depend on the bag's duration, e.g. random dropouts).
        topic_remaps: modality -> topic overrides.
        rate_hz: fusion tick rate on bag time.
        out_bag_path: where to write the ``--write-bag`` output (must not exist), or None.
        progress: show a tqdm bar over bag time.
    """
    manifest = engine.manifest
    specs = manifest.modalities
    by_name = {s.name: s for s in specs}
    wall_start = time.perf_counter()
    with BagReader(bag) as reader:
        bindings = reader.bind(specs, topic_remaps)
        offset_ns = reader.clock_offset_ns(bindings)
        t0_ns = reader.start_ns - offset_ns
        duration_s = (reader.end_ns - reader.start_ns) / NS_PER_S
        schedule = DropoutSchedule(intervals_for(duration_s), t0_ns)
        schedule.check_within(duration_s)
        dropped_names = sorted({d.modality for d in schedule.intervals})
        means: dict[str, np.ndarray] = {}
        mean_source: dict[str, str] = {}
        for name in dropped_names:
            mean = _provenance_means(manifest.provenance, by_name[name])
            if mean is not None:
                means[name], mean_source[name] = mean, "training-set mean (model provenance)"
        need = [b for b in bindings if b.modality in dropped_names and b.modality not in means]
        if need:
            means.update(_bag_means(reader, need, schedule, by_name, offset_ns))
            for b in need:
                mean_source[b.modality] = "mean over the bag's non-withheld samples"
        out_bag = OutputBag(out_bag_path, reader) if out_bag_path is not None else None
        p = _Pass(engine, specs, schedule, means, t0_ns, out_bag, bindings, offset_ns)
        period_ns = round(NS_PER_S / rate_hz)
        next_tick_ns = t0_ns + period_ns
        last_ns = t0_ns
        loop_start = time.perf_counter()
        with tqdm(
            total=round(duration_s, 3), unit="s", desc="bag time", disable=not progress
        ) as bar:
            for m in time_ordered(
                reader.messages(bindings, clock_offset_ns=offset_ns), REORDER_LOOKAHEAD_NS
            ):
                while next_tick_ns < m.stamp_ns:
                    p.tick(next_tick_ns)
                    next_tick_ns += period_ns
                p.push(m.modality, m.stamp_ns, m.msg)
                if m.stamp_ns - last_ns > NS_PER_S // 10:
                    bar.update(round((m.stamp_ns - last_ns) / NS_PER_S, 3))
                    last_ns = m.stamp_ns
            end_ns = max(last_ns, reader.end_ns - offset_ns)
            while next_tick_ns <= end_ns:
                p.tick(next_tick_ns)
                next_tick_ns += period_ns
            bar.update(max(0.0, round(duration_s - bar.n, 3)))
        p.finish(end_ns)
        loop_wall_s = time.perf_counter() - loop_start
        if out_bag is not None:
            with out_bag:
                out_bag.copy_originals()
    wall_s = time.perf_counter() - wall_start
    ticks = len(p.tick_ns)
    events = sorted([*p.events.values(), *p.gap_events], key=lambda e: (e.start_s, e.modality))
    summary = {
        "bag": str(bag),
        "storage": reader.storage,
        "model": str(getattr(engine, "path", "")),
        "provider": getattr(engine, "provider", ""),
        "topics": {b.modality: b.topic for b in bindings},
        "duration_s": duration_s,
        "rate_hz": rate_hz,
        "ticks": ticks,
        "ticks_without_output": p.empty_ticks,
        "ticks_per_bag_s": ticks / duration_s if duration_s > 0 else 0.0,
        "timeouts_s": {k: v / NS_PER_S for k, v in p.timeouts_ns.items()},
        "clock_offset_s": offset_ns / NS_PER_S,
        "wall_s": wall_s,
        "speedup_vs_real_time": duration_s / wall_s if wall_s > 0 else float("inf"),
        "fusion_loop_wall_s": loop_wall_s,
        "mean_baseline": mean_source,
        "dropouts": [e.as_dict() for e in events if e.source != "gap"],
        "real_gaps": [e.as_dict() for e in events if e.source == "gap"],
        "modalities": {s.name: _condition_summary(p, s.name) for s in specs},
    }
    tick_s = (np.asarray(p.tick_ns, dtype=np.int64) - t0_ns) / NS_PER_S
    return EvalResult(summary, specs, tick_s, p.traces, events)
