"""``sensorysync-eval``: offline evaluation of a model on a recorded bag with injected dropouts.

    sensorysync-eval BAG --model MODEL [--drop camera:10-20 ...]
                     [--random-dropout RATE --seed S] [--topic camera=/cam/image ...]
                     [--rate-hz 30] [--write-bag] --out DIR

Outputs go to a temporary directory beside DIR and are moved into place when complete
(``os.replace``), so an interrupted run never leaves a report that looks complete; the input
bag is opened read-only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..engine import DEFAULT_PROVIDERS, Engine
from ..manifest import Manifest
from ..node_config import PARAMETERS
from .bagio import parse_topic_remaps
from .dropout import DropoutInterval, check_random_dropout, parse_drop_spec, random_dropouts
from .errors import DropoutSpecError
from .evaluation import EvalResult, evaluate_bag
from .report import write_report
from .staging import run_staged_cli, staged_dir

__all__ = ["build_parser", "main", "summary_line"]

DEFAULT_RATE_HZ = float(PARAMETERS["fusion_rate_hz"].default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sensorysync-eval",
        description="Replay a rosbag2 through the node's codecs and fusion core with injected "
        "sensor dropouts; score reconstructions against the recorded truth.",
    )
    parser.add_argument("bag", type=Path, help="rosbag2 directory (sqlite3 or mcap), read-only")
    parser.add_argument("--model", type=Path, required=True, help="exported .onnx model")
    parser.add_argument("--out", type=Path, required=True, help="output directory (replaced)")
    drops = parser.add_mutually_exclusive_group()
    drops.add_argument(
        "--drop",
        action="append",
        default=[],
        metavar="MODALITY:START-END",
        help="withhold a modality for [START, END) seconds from the bag start (repeatable)",
    )
    drops.add_argument(
        "--random-dropout",
        type=float,
        metavar="RATE",
        help="withhold each modality for this fraction of the bag, in random intervals",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --random-dropout")
    parser.add_argument(
        "--dropout-length-s",
        type=float,
        default=3.0,
        help="length of each random dropout interval in seconds",
    )
    parser.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="MODALITY=/TOPIC",
        help="read a modality from this topic instead of the manifest's (repeatable)",
    )
    parser.add_argument(
        "--rate-hz",
        type=float,
        default=DEFAULT_RATE_HZ,
        help=f"fusion tick rate on bag time (default {DEFAULT_RATE_HZ:g}, the node's default)",
    )
    parser.add_argument(
        "--timeout",
        action="append",
        default=[],
        metavar="MODALITY=SECONDS",
        help="staleness timeout of a modality, as the node's parameter (default 3 periods)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="ONNX Runtime intra-op threads (default 1: the evaluator batches its engine calls, "
        "and idle pool threads spin on a shared machine)",
    )
    parser.add_argument(
        "--providers",
        default=",".join(DEFAULT_PROVIDERS),
        help="ONNX Runtime execution providers in priority order, comma-separated",
    )
    parser.add_argument(
        "--write-bag",
        action="store_true",
        help="also write DIR/<bag>_sensorysync: the bag plus core and reconstruction topics",
    )
    return parser


def schedule_builder(
    args: argparse.Namespace, manifest: Manifest
) -> tuple[list[DropoutInterval], bool]:
    """Explicit intervals from ``--drop`` (parsed now, so bad specs fail before any work);
    ``True`` when the schedule is random and has to wait for the bag's duration."""
    names = manifest.names
    if args.random_dropout is not None:
        check_random_dropout(args.random_dropout, args.dropout_length_s)
        return [], True
    return [parse_drop_spec(spec, names) for spec in args.drop], False


def parse_timeouts(items: Sequence[str], names: Sequence[str]) -> dict[str, float]:
    """``["camera=0.2"]`` -> ``{"camera": 0.2}``, seconds > 0 for known modalities."""
    timeouts = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            seconds = float(value)
        except ValueError:
            seconds = float("nan")
        if name not in names or not seconds > 0:
            raise DropoutSpecError(
                f"--timeout {item!r} must be MODALITY=SECONDS with a modality of {list(names)} "
                f"and seconds > 0, e.g. camera=0.2"
            )
        timeouts[name] = seconds
    return timeouts


def summary_line(result: EvalResult, out: Path) -> str:
    s = result.summary
    parts = [
        f"evaluated {s['bag']}: {s['duration_s']:.1f} s of bag in {s['wall_s']:.2f} s "
        f"({s['speedup_vs_real_time']:.1f}x real time), {s['ticks']} ticks"
    ]
    for spec in result.specs:
        model = s["modalities"][spec.name]["dropout"]["model"]
        if model["ticks"]:
            key = {"image": "ssim", "vector": "rmse", "audio": "lsd_db"}.get(spec.kind, "accuracy")
            parts.append(f"{spec.name} dropout {key} {model[key]:.3g}")
    return "; ".join(parts) + f" -> {out}"


def run(args: argparse.Namespace) -> int:
    if args.rate_hz <= 0:
        raise DropoutSpecError(f"--rate-hz must be > 0, got {args.rate_hz!r}")
    if args.threads < 1:
        raise DropoutSpecError(f"--threads must be >= 1, got {args.threads!r}")
    providers = [p for p in args.providers.split(",") if p]
    engine = Engine(args.model, providers=providers, threads=args.threads)
    remaps = parse_topic_remaps(args.topic)
    timeouts_s = parse_timeouts(args.timeout, engine.manifest.names)
    explicit, is_random = schedule_builder(args, engine.manifest)

    def intervals_for(duration_s: float) -> list[DropoutInterval]:
        if not is_random:
            return explicit
        return random_dropouts(
            engine.manifest.names,
            duration_s,
            args.random_dropout,
            seed=args.seed,
            length_s=args.dropout_length_s,
        )

    with staged_dir(args.out) as staging:
        result = evaluate_bag(
            args.bag,
            engine,
            intervals_for=intervals_for,
            topic_remaps=remaps,
            rate_hz=args.rate_hz,
            timeouts_s=timeouts_s,
            out_bag_path=staging / f"{args.bag.name}_sensorysync" if args.write_bag else None,
            progress=sys.stderr.isatty(),
        )
        write_report(result, staging)
    print(summary_line(result, args.out))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_staged_cli(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
