"""One offline evaluation pass over a bag: the node's codecs and fusion core on recorded time.

Messages are decoded with ``sensorysync_ros.codecs`` and pushed into
``sensorysync_ros.fusion.FusionCore`` in stamp order (module doc of ``bagio``); the core
ticks at ``rate_hz`` on bag time, starting one period after the bag start. A scheduled dropout
withholds a modality's messages from the core (and from its codec, so an audio ring buffer
refills after the dropout exactly as on the robot) while the evaluator keeps them as truth.

Engine calls are batched: the core's ``tick`` runs unchanged against a stand-in engine that
copies the inputs and mask the core built into one row of a batch; the real engine then runs
``BATCH_TICKS`` ticks in one call, in a worker thread while the next batch is decoded
(per-sample results equal batch-1 calls, which the engine guarantees and ``test_bag_evaluate``
checks against plain ``FusionCore.tick``).

At each tick and for each modality the tick falls in one condition:

- ``present``: the core has the modality; its reconstruction is the autoencoding reference
  (scored on every ``PRESENT_SCORE_EVERY``-th tick: a reference, not the object of study);
- ``dropout``: withheld by the schedule and reported missing: the reconstruction the node
  would publish, scored against the latest true sample, beside two baselines: ``hold`` (the
  last sample the core received) and ``mean`` (the training-set mean, or the mean over the
  bag's non-withheld samples);
- ``detecting``: withheld but not yet stale (the core still uses the last sample);
- ``missing``: reported missing without a scheduled dropout (a real gap in the bag, an audio
  window still filling, or no modality present at all).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..codecs import make_codec
from ..core_msg import CORE_FRAME_ID, encode_core
from ..engine import Engine, EngineResult
from ..errors import CodecError
from ..fusion import FusionCore
from ..manifest import ModalitySpec
from .bagio import REORDER_LOOKAHEAD_NS, BagMessage, BagReader, TopicBinding, time_ordered
from .batching import BatchingEngine
from .dropout import NS_PER_S, DropoutInterval, DropoutSchedule, Gap, GapFinder
from .errors import BagError
from .metrics import MetricAccumulator, Scores, primary_error, score
from .outbag import OutputBag
from .results import (
    CONDITIONS,
    DETECTING,
    DROPOUT,
    MISSING,
    PRESENT,
    DropoutEvent,
    EvalResult,
    FrameSample,
    ModalityTrace,
)

__all__ = ["BATCH_TICKS", "LATE_DROPOUT_S", "PRESENT_SCORE_EVERY", "evaluate_bag"]

LATE_DROPOUT_S = 0.5  # "late" dropout metrics: ticks at least this far into a dropout
FRAMES_PER_GRID = 8
BATCH_TICKS = 64  # ticks fused per engine call (results equal batch-1 calls)
PRESENT_SCORE_EVERY = 3  # the autoencoding reference is scored on every 3rd present tick
STATEFUL_KINDS = frozenset({"audio"})  # codecs carrying state between messages (ring buffer)
MEAN_BASELINE_TICKS = 4096  # dropout ticks kept per modality to score the mean baseline


def _provenance_means(provenance: Mapping[str, Any], spec: ModalitySpec) -> np.ndarray | None:
    """``provenance["tensor_mean"][name]``: the training-set mean in tensor space (nested list
    of the modality's shape), when the model carries it."""
    means = provenance.get("tensor_mean")
    if not isinstance(means, Mapping) or spec.name not in means:
        return None
    mean = np.asarray(means[spec.name], dtype=np.float32)
    return mean.reshape(spec.shape) if mean.size == spec.size else None


@dataclass
class _Tick:
    """A tick whose scoring waits for its batch: presence is known, the recon is not yet."""

    index: int
    now_ns: int
    row: int | None  # row in the engine batch; None when no modality was present
    present: dict[str, bool]
    condition: dict[str, int]
    intervals: dict[str, DropoutInterval | None]
    truth: dict[str, np.ndarray | None]
    hold: dict[str, np.ndarray | None]


class _Pass:
    """State of one evaluation pass (see the module doc)."""

    def __init__(
        self,
        engine: Engine,
        schedule: DropoutSchedule,
        provenance_means: Mapping[str, np.ndarray],
        bag_start_ns: int,
        out_bag: OutputBag | None,
        bindings: Sequence[TopicBinding],
        clock_offset_ns: int,
        timeouts_ns: Mapping[str, int],
    ) -> None:
        self.specs = engine.manifest.modalities
        self.kinds = {s.name: s.kind for s in self.specs}
        self.spec_of = {s.name: s for s in self.specs}
        self.names = tuple(s.name for s in self.specs)
        self.schedule = schedule
        self.provenance_means = provenance_means
        self.fed_sum = {s.name: np.zeros(s.shape, np.float64) for s in self.specs}
        self.fed_count = dict.fromkeys(self.names, 0)
        # Dropout truths for the mean baseline, scored once the bag's mean is known.
        self.dropout_truths: dict[str, list[np.ndarray]] = {n: [] for n in self.names}
        self.dropout_seen = dict.fromkeys(self.names, 0)
        self.rng = np.random.default_rng(0)
        self.t0_ns = bag_start_ns
        self.out_bag = out_bag
        self.clock_offset_ns = clock_offset_ns
        self.msgtypes = {b.modality: b.msgtype for b in bindings}
        self.batcher = BatchingEngine(engine, BATCH_TICKS)
        # the node's default staleness timeouts unless overridden, as by the node's parameters
        self.core = FusionCore(self.batcher, timeouts_ns=timeouts_ns)
        self.timeouts_ns = dict(self.core.timeouts_ns)
        self.feed_codecs = {s.name: make_codec(s) for s in self.specs}
        # While a modality is withheld (and until its codec state has caught up again) a copy
        # of its codec keeps decoding every message, for the truth.
        self.truth_codecs: dict[str, Any] = {}
        self.waiting: dict[str, list[tuple[BagMessage, bool]]] = {
            s.name: [] for s in self.specs if s.kind not in STATEFUL_KINDS
        }
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
            for s in self.specs
        }
        self.counts = {s.name: [0, 0, 0, 0] for s in self.specs}
        self.traces = {s.name: ModalityTrace() for s in self.specs}
        self.tick_ns: list[int] = []
        self.pending: list[_Tick] = []
        self.in_flight: tuple[Future[EngineResult] | None, list[_Tick]] | None = None
        self.empty_ticks = 0
        self.frame_targets = self._frame_targets()

    def _frame_targets(self) -> dict[str, list[int]]:
        """Tick times at which to keep a frame for the grid, spread over each image dropout."""
        targets: dict[str, list[int]] = {}
        for s in self.specs:
            own = [d for d in self.schedule.intervals if d.modality == s.name]
            if s.kind != "image" or not own:
                continue
            per = max(1, FRAMES_PER_GRID // len(own))
            times = []
            for d in own:
                start_ns, end_ns = self.schedule.bounds_ns(d)
                start_ns += self.timeouts_ns[s.name]
                times += [
                    start_ns + (end_ns - start_ns) * (2 * k + 1) // (2 * per) for k in range(per)
                ]
            targets[s.name] = sorted(times)[:FRAMES_PER_GRID]
        return targets

    def _t_s(self, stamp_ns: int) -> float:
        return (stamp_ns - self.t0_ns) / NS_PER_S

    def _decode(self, modality: str, msg: Any, dropped: bool) -> tuple[Any, Any]:
        """(sample for the core or None, truth sample or None); raises CodecError."""
        feed = self.feed_codecs[modality]
        if self.kinds[modality] not in STATEFUL_KINDS:
            sample = feed.decode(msg)
            return (None if dropped else sample), sample
        truth_codec = self.truth_codecs.get(modality)
        if dropped:
            if truth_codec is None:
                truth_codec = self.truth_codecs[modality] = copy.deepcopy(feed)
            return None, truth_codec.decode(msg)
        sample = feed.decode(msg)
        if truth_codec is None:
            return sample, sample
        truth = truth_codec.decode(msg)
        if truth is not None and sample is not None and np.array_equal(truth, sample):
            del self.truth_codecs[modality]  # caught up: the feed codec is the truth again
        return sample, truth

    def push(self, m: BagMessage) -> None:
        """Take one message (stamp order). Stateless kinds are decoded lazily at the next tick:
        only the newest valid sample before a tick can reach the core, as on the robot."""
        gap = self.gaps.see(m.modality, m.stamp_ns)
        if gap is not None:
            self._gap_event(gap)
        dropped = self.schedule.dropped(m.modality, m.stamp_ns)
        if self.kinds[m.modality] in STATEFUL_KINDS:
            self._take(m, dropped)
        else:
            self.waiting[m.modality].append((m, dropped))

    def _settle(self) -> None:
        """Decode the waiting stateless messages, newest first, until the truth and the core's
        sample are known."""
        for waiting in self.waiting.values():
            need_truth = need_feed = True
            for m, dropped in reversed(waiting):
                if not (need_truth or need_feed):
                    break
                want_feed = need_feed and not dropped
                if need_truth or want_feed:
                    fed, truth = self._take(m, dropped, truth=need_truth, feed=want_feed)
                    need_truth &= not truth
                    need_feed &= not fed
            waiting.clear()

    def _take(
        self, m: BagMessage, dropped: bool, *, truth: bool = True, feed: bool = True
    ) -> tuple[bool, bool]:
        """Decode ``m``; keep it as truth and push it into the core (unless withheld).
        Returns (pushed, kept as truth); malformed messages are counted and skipped."""
        modality = m.modality
        try:
            msg = m.msg
            sample, true_sample = self._decode(modality, msg, dropped)
        except (CodecError, BagError):
            self.malformed[modality] += 1
            return False, False
        header = getattr(msg, "header", None)
        if header is not None:
            self.frame_ids[modality] = str(header.frame_id)
        kept = truth and true_sample is not None
        if kept:
            self.truth[modality] = np.array(true_sample, dtype=np.float32)
        if not feed or sample is None:
            return False, kept
        try:
            self.core.push(m.stamp_ns, modality, sample)
        except ValueError:  # non-finite values the codec let through
            self.malformed[modality] += 1
            return False, kept
        fed = self.fed[modality] = np.array(sample, dtype=np.float32)
        self.fed_sum[modality] += fed
        self.fed_count[modality] += 1
        return True, kept

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
        """Presence, conditions and detection now; scoring when the batch is full."""
        self._settle()
        row = self.batcher.rows
        out = self.core.tick(now_ns)
        if out is None:
            self.empty_ticks += 1
        present = {n: out is not None and out.present[n] for n in self.names}
        t = _Tick(
            len(self.tick_ns),
            now_ns,
            None if out is None else row,
            present,
            {},
            {},
            {n: self.truth.get(n) for n in self.names},
            {n: self.fed.get(n) for n in self.names},
        )
        self.tick_ns.append(now_ns)
        for name in self.names:
            interval = self.schedule.active(name, now_ns)
            t.intervals[name] = interval
            if present[name]:
                self.missing_since_ns[name] = None
            elif self.missing_since_ns[name] is None:
                self.missing_since_ns[name] = now_ns
            if interval is not None and not present[name]:
                event = self.events[interval]
                if event.detected_s is None:
                    event.detected_s = self._t_s(now_ns)
            scorable = t.row is not None and t.truth[name] is not None
            if interval is None and present[name] and scorable:
                condition = PRESENT
            elif interval is not None and not present[name] and scorable:
                condition = DROPOUT
            elif interval is not None and present[name]:
                condition = DETECTING
            else:
                condition = MISSING
            t.condition[name] = condition
            self.counts[name][condition] += 1
            trace = self.traces[name]
            trace.condition.append(condition)
            trace.error_model.append(float("nan"))
            trace.error_hold.append(float("nan"))
        self.pending.append(t)
        if self.batcher.full:
            self.flush()

    def flush(self) -> None:
        """Start the engine on the pending batch; score the batch before it meanwhile."""
        future = self.batcher.flush()
        ticks, self.pending = self.pending, []
        previous, self.in_flight = self.in_flight, (future, ticks)
        if previous is not None:
            self._collect(*previous)

    def _collect(self, future: Future[EngineResult] | None, ticks: list[_Tick]) -> None:
        """Score a batch's ticks once its engine result is in."""
        result = None if future is None else future.result()
        if result is None:
            self._record_vectors(ticks, None)
            return
        for name in self.names:
            self._score(name, ticks, result.recon[name])
        self._record_vectors(ticks, result)
        if self.out_bag is not None:
            for t in ticks:
                if t.row is not None:
                    self._write(t, result)

    def _score(self, name: str, ticks: list[_Tick], recon: np.ndarray) -> None:
        """Score a batch's present (every PRESENT_SCORE_EVERY-th) and dropout ticks; each
        sample is scored once and its scores go to every accumulator it belongs to."""
        acc, trace, spec = self.acc[name], self.traces[name], self.spec_of[name]

        def scored(sel: list[_Tick], values: np.ndarray, key: str) -> Scores:
            scores = score(spec, np.stack([t.truth[name] for t in sel]), values)
            acc[key].add_scores(scores)
            return scores

        present = [
            t for t in ticks if t.condition[name] == PRESENT and t.index % PRESENT_SCORE_EVERY == 0
        ]
        if present:
            scores = scored(present, recon[[t.row for t in present]], "present")
            for t, err in zip(present, primary_error(spec.kind, scores)):
                trace.error_model[t.index] = float(err)
        sel = [t for t in ticks if t.condition[name] == DROPOUT]
        if not sel:
            return
        rec = recon[[t.row for t in sel]]
        late = np.array(
            [self._t_s(t.now_ns) - t.intervals[name].start_s >= LATE_DROPOUT_S for t in sel]
        )
        scores = scored(sel, rec, "dropout")
        acc["dropout_late"].add_scores({k: v[late] for k, v in scores.items()})
        for t, err in zip(sel, primary_error(spec.kind, scores)):
            trace.error_model[t.index] = float(err)
        held = [k for k, t in enumerate(sel) if t.hold[name] is not None]
        if held:
            hold_sel = [sel[k] for k in held]
            hold = scored(hold_sel, np.stack([t.hold[name] for t in hold_sel]), "hold")
            acc["hold_late"].add_scores({k: v[late[held]] for k, v in hold.items()})
            for t, err in zip(hold_sel, primary_error(spec.kind, hold)):
                trace.error_hold[t.index] = float(err)
        for k, t in enumerate(sel):
            self._keep_dropout_truth(name, t.truth[name])
            self._keep_frame(name, t, rec[k])

    def _keep_dropout_truth(self, name: str, truth: np.ndarray) -> None:
        """Reservoir sample (uniform, seeded) of at most MEAN_BASELINE_TICKS dropout truths."""
        kept, seen = self.dropout_truths[name], self.dropout_seen[name]
        self.dropout_seen[name] += 1
        if len(kept) < MEAN_BASELINE_TICKS:
            kept.append(truth)
            return
        k = int(self.rng.integers(0, seen + 1))
        if k < MEAN_BASELINE_TICKS:
            kept[k] = truth

    def mean_baseline(self) -> dict[str, str]:
        """Score the mean baseline on the kept dropout truths; returns its source per modality."""
        sources = {}
        for spec in self.specs:
            kept = self.dropout_truths[spec.name]
            if not kept:
                continue
            mean = self.provenance_means.get(spec.name)
            if mean is not None:
                sources[spec.name] = "training-set mean (model provenance tensor_mean)"
            else:
                mean = (self.fed_sum[spec.name] / max(self.fed_count[spec.name], 1)).astype(
                    np.float32
                )
                sources[spec.name] = "mean over the bag's non-withheld samples"
            if len(kept) < self.dropout_seen[spec.name]:
                sources[spec.name] += (
                    f", scored on a seeded sample of {len(kept)} of "
                    f"{self.dropout_seen[spec.name]} dropout ticks"
                )
            for lo in range(0, len(kept), BATCH_TICKS):
                truth = np.stack(kept[lo : lo + BATCH_TICKS])
                self.acc[spec.name]["mean"].add(truth, np.broadcast_to(mean, truth.shape))
        return sources

    def _record_vectors(self, ticks: list[_Tick], result: EngineResult | None) -> None:
        for spec in self.specs:
            if spec.kind != "vector":
                continue
            trace, nan = self.traces[spec.name], np.full(spec.size, np.nan, np.float32)
            for t in ticks:
                truth = t.truth[spec.name]
                trace.truth.append(nan if truth is None else truth.ravel())
                no_recon = result is None or t.row is None
                trace.recon.append(nan if no_recon else result.recon[spec.name][t.row].ravel())

    def _keep_frame(self, name: str, t: _Tick, recon: np.ndarray) -> None:
        targets = self.frame_targets.get(name)
        if targets and t.now_ns >= targets[0]:
            targets.pop(0)
            truth, hold = t.truth[name], t.hold[name]
            assert truth is not None
            self.traces[name].frames.append(
                FrameSample(
                    self._t_s(t.now_ns),
                    truth,
                    np.array(recon),
                    np.zeros_like(truth) if hold is None else hold,
                )
            )

    def _write(self, t: _Tick, result: EngineResult) -> None:
        assert self.out_bag is not None and t.row is not None
        bag = self.out_bag
        mask = np.array([t.present[n] for n in self.names], np.float32)
        core = encode_core(
            bag.msg_class("sensor_msgs/msg/Image"),
            bag.header(t.now_ns, CORE_FRAME_ID),
            mean=result.core_mean[t.row],
            variance=np.exp(result.core_logvar[t.row]),  # as FusionOutput.core_var
            present=mask,
        )
        recv_ns = t.now_ns + self.clock_offset_ns
        bag.write("/sensorysync/core", "sensor_msgs/msg/Image", recv_ns, core)
        for name in self.names:
            if t.present[name]:
                continue
            msgtype = self.msgtypes[name]
            msg = self.feed_codecs[name].encode(
                result.recon[name][t.row],
                bag.header(t.now_ns, self.frame_ids[name]),
                msg_cls=bag.msg_class(msgtype),
            )
            bag.write(f"/sensorysync/{name}/reconstruction", msgtype, recv_ns, msg)

    def finish(self, end_ns: int) -> None:
        self.flush()
        if self.in_flight is not None:
            self._collect(*self.in_flight)
            self.in_flight = None
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


def _drive(
    p: _Pass,
    reader: BagReader,
    bindings: Sequence[TopicBinding],
    offset_ns: int,
    rate_hz: float,
    duration_s: float,
    progress: bool,
) -> int:
    """Feed every message in stamp order, ticking at ``rate_hz`` on bag time from one period
    after the bag start to the bag end (a message stamped exactly at a tick is pushed first).
    Returns the end stamp."""
    period_ns = round(NS_PER_S / rate_hz)
    next_tick_ns = p.t0_ns + period_ns
    last_ns = p.t0_ns
    shown_s = 0
    messages = reader.messages(bindings, clock_offset_ns=offset_ns)
    with tqdm(total=math.ceil(duration_s), unit="s", desc="bag", disable=not progress) as bar:
        for m in time_ordered(messages, REORDER_LOOKAHEAD_NS):
            while next_tick_ns < m.stamp_ns:
                p.tick(next_tick_ns)
                next_tick_ns += period_ns
            p.push(m)
            last_ns = max(last_ns, m.stamp_ns)
            if (bag_s := (last_ns - p.t0_ns) // NS_PER_S) > shown_s:
                bar.update(bag_s - shown_s)
                shown_s = bag_s
        end_ns = max(last_ns, reader.end_ns - offset_ns)
        while next_tick_ns <= end_ns:
            p.tick(next_tick_ns)
            next_tick_ns += period_ns
        bar.update(bar.total - shown_s)
    return end_ns


def evaluate_bag(
    bag: Path,
    engine: Engine,
    *,
    intervals_for: Callable[[float], list[DropoutInterval]],
    topic_remaps: Mapping[str, str] | None = None,
    rate_hz: float,
    out_bag_path: Path | None = None,
    timeouts_s: Mapping[str, float] | None = None,
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
        timeouts_s: per-modality staleness timeouts overriding the node's defaults.
        progress: show a tqdm bar over bag time.
    """
    manifest = engine.manifest
    specs = manifest.modalities
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    with BagReader(bag) as reader:
        bindings = reader.bind(specs, topic_remaps)
        offset_ns = reader.clock_offset_ns(bindings)
        t0_ns = reader.start_ns - offset_ns
        duration_s = (reader.end_ns - reader.start_ns) / NS_PER_S
        schedule = DropoutSchedule(intervals_for(duration_s), t0_ns)
        schedule.check_within(duration_s)
        means = {
            s.name: mean
            for s in specs
            if (mean := _provenance_means(manifest.provenance, s)) is not None
        }
        timeouts_ns = {k: round(v * NS_PER_S) for k, v in (timeouts_s or {}).items()}
        with ExitStack() as stack:
            out_bag = None
            if out_bag_path is not None:
                out_bag = stack.enter_context(OutputBag(out_bag_path, reader))
            p = _Pass(engine, schedule, means, t0_ns, out_bag, bindings, offset_ns, timeouts_ns)
            stack.enter_context(p.batcher)
            loop_start = time.perf_counter()
            end_ns = _drive(p, reader, bindings, offset_ns, rate_hz, duration_s, progress)
            p.finish(end_ns)
            mean_source = p.mean_baseline()
            loop_wall_s = time.perf_counter() - loop_start
            if out_bag is not None:
                out_bag.copy_originals()
    wall_s = time.perf_counter() - wall_start
    cpu_s = time.process_time() - cpu_start
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
        "cpu_s": cpu_s,  # CPU time of all this process's threads (engine threads included)
        "pass_wall_s": loop_wall_s,
        "mean_baseline": mean_source,
        "dropouts": [e.as_dict() for e in events if e.source != "gap"],
        "real_gaps": [e.as_dict() for e in events if e.source == "gap"],
        "modalities": {s.name: _condition_summary(p, s.name) for s in specs},
    }
    tick_s = (np.asarray(p.tick_ns, dtype=np.int64) - t0_ns) / NS_PER_S
    return EvalResult(summary, specs, tick_s, p.traces, events)
