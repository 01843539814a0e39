"""Shared tail of the ROS benchmarks' ``main``: own ROS domain, model check, report output."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path


def run_benchmark(args: argparse.Namespace, run: Callable[[argparse.Namespace], str]) -> int:
    """Run ``run(args)`` on ``args.domain_id`` with localhost discovery; print/append its table."""
    # Before rclpy starts here or in a child: an own domain, localhost-only discovery.
    os.environ["ROS_DOMAIN_ID"] = str(args.domain_id)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    if not Path(args.model).is_file():
        print(f"error: model {args.model!r} not found; pass --model <file.onnx>", file=sys.stderr)
        return 1
    report = run(args)
    print(report)
    if args.out:
        with open(args.out, "a") as handle:
            handle.write(report + "\n\n")
    return 0
