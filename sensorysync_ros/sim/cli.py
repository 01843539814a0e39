"""sensorysync-sim: the simulated robot as a live ROS 2 node, or recorded into a rosbag2 file.

    sensorysync-sim                                  # live node, real time, until Ctrl-C
    sensorysync-sim --duration 60 --drop camera:10-15
    sensorysync-sim --record BAG --duration 1800 --seed 0 [--camera-size 64]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..errors import SensorySyncError
from .gl import ensure_backend

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sensorysync-sim",
        description="MuJoCo arm with camera, joint states and motor audio: live ROS 2 topics "
        "in real time, or a rosbag2 (mcap) recording written faster than real time.",
    )
    p.add_argument("--record", type=Path, metavar="BAG", help="write a bag here instead of "
                   "publishing (the path must not exist)")
    p.add_argument("--duration", type=float, metavar="S", help="simulated seconds to run "
                   "(required with --record; live node runs until Ctrl-C without it)")
    p.add_argument("--seed", type=int, default=0, help="controller and audio noise seed")
    p.add_argument("--camera-size", type=int, default=64, metavar="PX",
                   help="square camera image size in pixels (default 64)")
    p.add_argument("--start-ns", type=int, default=None,
                   help="stamp of simulated time zero for --record (default: now)")
    p.add_argument("--drop", action="append", default=[], metavar="MODALITY:START-END",
                   help="live node: stop publishing a sensor (camera, joints, audio) from "
                   "START to END seconds after start; repeatable")
    p.add_argument("--drop-origin-ns", type=int, default=None, metavar="NS",
                   help="live node: --drop times count from this stamp (default: node start)")
    p.add_argument("--truth-prefix", default="", metavar="PREFIX",
                   help="live node: also publish every sensor message, dropped or not, under "
                   "PREFIX/<topic> (ground truth for scoring reconstructions)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _strip_ros_args(argv: list[str]) -> list[str]:
    """argv without ``--ros-args ... [--]`` (rclpy's own parser, where rclpy is installed)."""
    try:
        from rclpy.utilities import remove_ros_args
    except ImportError:  # recording needs no ROS installation
        return argv
    return remove_ros_args(["sensorysync-sim", *argv])[1:]


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(_strip_ros_args(args_in))
    try:
        if args.camera_size <= 0:
            raise SensorySyncError(f"--camera-size must be > 0 pixels, got {args.camera_size}")
        if args.duration is not None and args.duration <= 0:
            raise SensorySyncError(f"--duration must be > 0 s, got {args.duration}")
        if args.record is not None and args.duration is None:
            raise SensorySyncError("--record needs --duration S (simulated seconds)")
        backend = ensure_backend()
        if args.record is not None:
            from .recorder import record_bag
            from .robot import RobotConfig

            start_ns = time.time_ns() if args.start_ns is None else args.start_ns
            config = RobotConfig(
                seed=args.seed,
                camera_width=args.camera_size,
                camera_height=args.camera_size,
                start_ns=start_ns,
            )
            summary = record_bag(args.record, args.duration, config,
                                 progress=not args.no_progress)
            counts = ", ".join(f"{t}: {n}" for t, n in summary.messages.items())
            print(f"wrote {summary.path} ({summary.duration_s:g} s simulated in "
                  f"{summary.wall_s:.1f} s, MUJOCO_GL={backend}; {counts})")
            return 0
        from .node import run_node

        return run_node(args_in, args)
    except SensorySyncError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
