"""``sensorysync-extract``: bags -> aligned training samples, through the node's codecs.

    sensorysync-extract BAG... -o DATASET --config TRAIN_CONFIG.yaml|MODEL.onnx
                        [--window-ms 50] [--reference camera] [--topic camera=/cam/image ...]

For each sample of the reference modality (default: the first image modality) the nearest
sample of every other modality within ``--window-ms`` is taken (by stamp, see ``bagio``); a
reference sample lacking a partner is skipped and counted. Output (written to a temporary
directory, then moved into place):

- ``DATASET/samples.npz``: one float32 array per modality, ``(N, *shape)``, plus
  ``stamp_ns`` (int64, the reference sample's stamp);
- ``DATASET/meta.json``: ``{"modalities": [ModalitySpec dicts as in the manifest],
  "source_bags": [...], "reference": name, "window_ms": W, "skipped": {...},
  "stats": {name: {"count", "mean", "std"}}}``. Stats are in raw (de-normalised) units, so
  they can become a model's ``loc``/``scale``: vector per element, audio one scalar over all
  log-mel features, image per channel (values in [0, 1]).

Modality specs come from a training YAML's ``modalities`` section or a model's manifest. A
vector or audio modality without ``loc``/``scale`` is extracted un-normalised (loc 0, scale 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm import tqdm

from ..codecs import make_codec
from ..errors import CodecError
from ..manifest import Manifest, ModalitySpec, RosBinding
from ..model_file import read_manifest
from .bagio import REORDER_LOOKAHEAD_NS, BagReader, parse_topic_remaps, time_ordered
from .errors import ModalitySpecError
from .staging import run_staged_cli, staged_dir

__all__ = ["Aligner", "build_parser", "load_modality_specs", "main"]

Sample = tuple[int, np.ndarray]


def _with_identity_normalisation(spec: ModalitySpec) -> ModalitySpec:
    pre = dict(spec.preprocess)
    if spec.kind == "vector":
        pre.setdefault("loc", [0.0] * spec.size)
        pre.setdefault("scale", [1.0] * spec.size)
    elif spec.kind == "audio":
        pre.setdefault("loc", 0.0)
        pre.setdefault("scale", 1.0)
    return replace(spec, preprocess=pre)


def _specs_from_yaml(path: Path) -> tuple[ModalitySpec, ...]:
    try:
        data = yaml.safe_load(path.read_text())
        entries = data["modalities"]
        return tuple(
            _with_identity_normalisation(
                ModalitySpec(
                    name=str(m["name"]),
                    kind=str(m["kind"]),
                    shape=tuple(int(d) for d in m["shape"]),
                    likelihood=str(m["likelihood"]),
                    preprocess=dict(m.get("preprocess") or {}),
                    ros=RosBinding(**m["ros"]),
                )
            )
            for m in entries
        )
    except (OSError, yaml.YAMLError) as err:
        raise ModalitySpecError(f"cannot read training config {str(path)!r}: {err}") from err
    except (KeyError, TypeError, ValueError) as err:
        raise ModalitySpecError(
            f"training config {str(path)!r} has no valid 'modalities' section "
            f"({type(err).__name__}: {err}); each entry needs name, kind, shape, likelihood, "
            f"preprocess and ros {{topic, msg_type, rate_hz}}"
        ) from err


def load_modality_specs(path: str | Path) -> tuple[ModalitySpec, ...]:
    """Modality specs from a training YAML or an exported ``.onnx`` model, validated."""
    path = Path(path)
    if path.suffix == ".onnx":
        return read_manifest(path).modalities
    if path.suffix not in (".yaml", ".yml"):
        raise ModalitySpecError(
            f"--config {str(path)!r} must be a training config (.yaml) or a model (.onnx)"
        )
    specs = _specs_from_yaml(path)
    # Validates kinds, shapes and preprocess keys the same way a manifest is validated.
    Manifest(specs, core_latent_dim=1, modality_latent_dims=(1,) * len(specs))
    return specs


class Aligner:
    """Pairs each reference sample with the nearest sample of every other modality within a
    window, streaming over samples in stamp order; results go into preallocated arrays."""

    def __init__(
        self, specs: Sequence[ModalitySpec], reference: str, window_ns: int, capacity: int
    ) -> None:
        self.specs = tuple(specs)
        self.reference = reference
        self.window_ns = window_ns
        self.others = [s.name for s in specs if s.name != reference]
        self.arrays = {s.name: np.empty((capacity, *s.shape), np.float32) for s in specs}
        self.stamps_ns = np.empty(capacity, np.int64)
        self.count = 0
        self.skipped = dict.fromkeys(self.others, 0)
        self._pending: deque[Sample] = deque()
        self._buffers: dict[str, deque[Sample]] = {m: deque() for m in self.others}

    def add(self, modality: str, stamp_ns: int, sample: np.ndarray) -> None:
        if modality == self.reference:
            self._pending.append((stamp_ns, sample.copy()))
        else:
            self._buffers[modality].append((stamp_ns, sample.copy()))
        while self._pending and self._pending[0][0] + self.window_ns < stamp_ns:
            self._resolve(self._pending.popleft())
        oldest_ns = self._pending[0][0] if self._pending else stamp_ns
        for buf in self._buffers.values():
            while buf and buf[0][0] < oldest_ns - self.window_ns:
                buf.popleft()

    def _resolve(self, ref: Sample) -> None:
        stamp_ns, sample = ref
        chosen = {}
        for name in self.others:
            near = min(self._buffers[name], key=lambda s: abs(s[0] - stamp_ns), default=None)
            if near is None or abs(near[0] - stamp_ns) > self.window_ns:
                self.skipped[name] += 1
                return
            chosen[name] = near[1]
        k = self.count
        self.arrays[self.reference][k] = sample
        for name, value in chosen.items():
            self.arrays[name][k] = value
        self.stamps_ns[k] = stamp_ns
        self.count += 1

    def finish(self) -> None:
        """Resolve the reference samples still waiting (end of a bag); forget buffered others."""
        while self._pending:
            self._resolve(self._pending.popleft())
        for buf in self._buffers.values():
            buf.clear()


def _stats(spec: ModalitySpec, tensors: np.ndarray) -> dict[str, Any]:
    """Mean/std in raw units (module doc)."""
    if len(tensors) == 0:
        return {"count": 0, "mean": None, "std": None}
    x = tensors.astype(np.float64)
    if spec.kind in ("vector", "audio"):
        x = x * np.asarray(spec.preprocess["scale"]) + np.asarray(spec.preprocess["loc"])
    if spec.kind == "vector":
        mean, std = x.mean(axis=0), x.std(axis=0)
    elif spec.kind == "image":
        mean, std = x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))
    else:
        mean, std = x.mean(), x.std()
    return {
        "count": len(tensors),
        "mean": np.asarray(mean).tolist(),
        "std": np.asarray(std).tolist(),
    }


def extract(
    bags: Sequence[Path],
    specs: Sequence[ModalitySpec],
    *,
    reference: str,
    window_ms: float,
    remaps: dict[str, str],
    progress: bool,
) -> tuple[Aligner, dict[str, int]]:
    """Align every bag's samples; returns the aligner (arrays filled) and malformed counts."""
    by_name = {s.name: s for s in specs}
    if reference not in by_name:
        raise ModalitySpecError(f"reference modality {reference!r} is not one of {list(by_name)}")
    readers = [BagReader(bag) for bag in bags]
    try:
        bindings = [r.bind(specs, remaps) for r in readers]
        ref_topic_counts = [
            sum(c.msgcount for c in r.connections if c.topic == b.topic)
            for r, bs in zip(readers, bindings)
            for b in bs
            if b.modality == reference
        ]
        total = sum(
            c.msgcount
            for r, bs in zip(readers, bindings)
            for c in r.connections
            if c.topic in {b.topic for b in bs}
        )
        aligner = Aligner(specs, reference, round(window_ms * 1e6), sum(ref_topic_counts))
        malformed = dict.fromkeys(by_name, 0)
        with tqdm(total=total, unit="msg", desc="extract", disable=not progress) as bar:
            for reader, bs in zip(readers, bindings):
                codecs = {s.name: make_codec(s) for s in specs}
                offset_ns = reader.clock_offset_ns(bs)
                stream = reader.messages(bs, clock_offset_ns=offset_ns)
                for m in time_ordered(stream, REORDER_LOOKAHEAD_NS):
                    bar.update()
                    try:
                        sample = codecs[m.modality].decode(m.msg)
                    except CodecError:
                        malformed[m.modality] += 1
                        continue
                    if sample is not None:
                        aligner.add(m.modality, m.stamp_ns, sample)
                aligner.finish()
    finally:
        for r in readers:
            r.close()
    return aligner, malformed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sensorysync-extract",
        description="Turn rosbag2 recordings into aligned training samples (samples.npz + "
        "meta.json) with the node's codecs.",
    )
    parser.add_argument("bags", nargs="+", type=Path, help="rosbag2 directories (read-only)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="dataset directory")
    parser.add_argument(
        "--config",
        type=Path,
        required=True,
        help="training config (.yaml, its modalities section) or exported model (.onnx)",
    )
    parser.add_argument(
        "--window-ms",
        type=float,
        default=50.0,
        help="alignment window: max |stamp difference| to the reference sample, ms",
    )
    parser.add_argument(
        "--reference", help="modality each sample is aligned on (default: first image modality)"
    )
    parser.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="MODALITY=/TOPIC",
        help="read a modality from this topic instead of the config's (repeatable)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    if args.window_ms <= 0:
        raise ModalitySpecError(f"--window-ms must be > 0, got {args.window_ms!r}")
    specs = load_modality_specs(args.config)
    images = [s.name for s in specs if s.kind == "image"]
    reference = args.reference or (images[0] if images else specs[0].name)
    aligner, malformed = extract(
        args.bags,
        specs,
        reference=reference,
        window_ms=args.window_ms,
        remaps=parse_topic_remaps(args.topic),
        progress=sys.stderr.isatty(),
    )
    n = aligner.count
    if n == 0:
        raise ModalitySpecError(
            f"no aligned samples in {[str(b) for b in args.bags]}: every {reference!r} sample "
            f"lacked a partner within {args.window_ms:g} ms (skipped: {aligner.skipped}); "
            f"widen --window-ms"
        )
    arrays = {name: a[:n] for name, a in aligner.arrays.items()}
    meta = {
        "modalities": [asdict(s) for s in specs],
        "source_bags": [str(b.resolve()) for b in args.bags],
        "reference": reference,
        "window_ms": args.window_ms,
        "count": n,
        "skipped": aligner.skipped,
        "malformed": malformed,
        "stats": {s.name: _stats(s, arrays[s.name]) for s in specs},
    }
    with staged_dir(args.out) as staging:
        np.savez(staging / "samples.npz", stamp_ns=aligner.stamps_ns[:n], **arrays)
        (staging / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(
        f"extracted {n} samples aligned on {reference!r} from {len(args.bags)} bag(s) "
        f"(skipped without partner: {aligner.skipped}) -> {args.out}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_staged_cli(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
