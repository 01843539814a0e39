"""``sensorysync-replay``: play a bag's sensor topics on live ROS 2 topics, with dropouts.

    sensorysync-replay BAG [--model MODEL] [--rate 1.0] [--drop camera:10-20 ...]
                       [--random-dropout RATE --seed S] [--loop] [--clock] [--delay-s 1]
                       [--wait-subscribers-s 10]

For testing a running node where ``ros2 bag play`` is not available. Messages go out with
their recorded spacing (receive times, scaled by ``--rate``) as the CDR bytes stored in the bag
(no re-serialisation), with sensor-data QoS as the node expects. ``--clock`` publishes
``/clock`` (bag receive time, every 10 ms of wall time and before each message) for nodes run
with ``use_sim_time``. Dropouts use ``sensorysync-eval``'s rules: a message is withheld when its
header stamp (its receive time when it has no header) lies in the interval, in seconds from the
bag start; intervals name a modality of the model (``--model``, default the shipped model) or a
topic (``/camera/image_raw:10-20``). With ``--loop`` every pass after the first is shifted by
the bag's length: ``/clock`` keeps running forward and header stamps are shifted alike.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import qos_profile_sensor_data
from rclpy.serialization import deserialize_message
from rclpy.utilities import remove_ros_args
from rosbags.interfaces import Connection
from rosgraph_msgs.msg import Clock

from ..errors import SensorySyncError
from ..manifest import Manifest
from ..model_file import read_manifest
from .bagio import BagReader, header_stamp_ns
from .dropout import NS_PER_S, DropoutInterval, DropoutSchedule, parse_drop_spec, random_dropouts
from .errors import BagError, DropoutSpecError, one_line

__all__ = ["build_parser", "main"]

SKIPPED_TOPICS = frozenset({"/clock", "/rosout", "/parameter_events"})
CLOCK_PERIOD_S = 0.01


def ros_message_class(msgtype: str) -> type | None:
    """The rclpy class of ``pkg/msg/Name``, or None when that package is not installed."""
    package, _, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError):
        return None


@dataclass(frozen=True)
class _Plan:
    """What to publish: connections with their rclpy class, the drop schedule by topic."""

    publish: dict[int, tuple[Connection, type]]
    schedule: DropoutSchedule
    skipped: list[str]


def _drop_targets(manifest: Manifest | None, reader: BagReader) -> dict[str, str]:
    """Names a drop spec may use -> topic: the model's modalities (bound to the bag) and the
    bag's topics themselves."""
    targets = {topic: topic for topic in reader.topics}
    if manifest is not None:
        for b in reader.bind(manifest.modalities):
            targets[b.modality] = b.topic
    return targets


def _plan(args: argparse.Namespace, reader: BagReader, manifest: Manifest | None) -> _Plan:
    targets = _drop_targets(manifest, reader)
    duration_s = (reader.end_ns - reader.start_ns) / NS_PER_S
    if args.random_dropout is not None:
        names = [b for b in targets if not b.startswith("/")] or list(reader.topics)
        intervals = random_dropouts(
            names, duration_s, args.random_dropout, seed=args.seed, length_s=args.dropout_length_s
        )
    else:
        intervals = [parse_drop_spec(spec, list(targets)) for spec in args.drop]
    by_topic = [
        DropoutInterval(targets[d.modality], d.start_s, d.end_s, d.source) for d in intervals
    ]
    publish, skipped = {}, []
    for conn in reader.connections:
        cls = ros_message_class(conn.msgtype) if conn.topic not in SKIPPED_TOPICS else None
        if cls is None:
            skipped.append(f"{conn.topic} ({conn.msgtype})")
        else:
            publish[conn.id] = (conn, cls)
    return _Plan(publish, DropoutSchedule(by_topic, reader.start_ns), skipped)


def _stamp_ns(reader: BagReader, conn: Connection, recv_ns: int, raw: bytes) -> int:
    stamp_ns = header_stamp_ns(reader.deserialize(raw, conn, recv_ns))
    return recv_ns if stamp_ns is None else stamp_ns


class _Player:
    """The rclpy side: one publisher per topic, /clock, paced publishing."""

    def __init__(self, plan: _Plan, clock: bool) -> None:
        self.node = rclpy.create_node("sensorysync_replay")
        self.pubs = {
            conn_id: self.node.create_publisher(cls, conn.topic, qos_profile_sensor_data)
            for conn_id, (conn, cls) in plan.publish.items()
        }
        self.classes = {conn_id: cls for conn_id, (_, cls) in plan.publish.items()}
        self.clock_msg = Clock()
        self.clock_pub = self.node.create_publisher(Clock, "/clock", 10) if clock else None

    def publish_clock(self, bag_ns: int) -> None:
        if self.clock_pub is not None:
            self.clock_msg.clock.sec, self.clock_msg.clock.nanosec = divmod(bag_ns, NS_PER_S)
            self.clock_pub.publish(self.clock_msg)

    def wait_until(self, wall_s: float, bag_ns_at: Any) -> None:
        """Sleep until ``wall_s`` (monotonic), publishing /clock every CLOCK_PERIOD_S."""
        while (left_s := wall_s - time.monotonic()) > 0:
            time.sleep(min(left_s, CLOCK_PERIOD_S))
            self.publish_clock(bag_ns_at(min(time.monotonic(), wall_s)))

    def publish(self, conn_id: int, raw: bytes, shift_ns: int) -> None:
        if shift_ns == 0:
            self.pubs[conn_id].publish(raw)
            return
        msg = deserialize_message(raw, self.classes[conn_id])
        if hasattr(msg, "header"):
            stamp_ns = msg.header.stamp.sec * NS_PER_S + msg.header.stamp.nanosec + shift_ns
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, NS_PER_S)
        self.pubs[conn_id].publish(msg)

    def wait_for_subscribers(self, timeout_s: float) -> bool:
        """Spin until every sensor topic has a subscriber (at most ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while any(p.get_subscription_count() == 0 for p in self.pubs.values()):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self) -> None:
        self.node.destroy_node()


def play(args: argparse.Namespace, reader: BagReader, plan: _Plan, player: _Player) -> int:
    """Publish the bag (repeatedly with --loop); returns the number of messages published."""
    start_ns = reader.start_ns
    # One pass lasts the bag's span plus one period of its busiest topic, so the first message
    # of a pass follows the last of the previous one at the recorded rhythm.
    span_ns = reader.end_ns - start_ns
    busiest = max((conn.msgcount for conn, _ in plan.publish.values()), default=1)
    length_ns = span_ns + span_ns // max(1, busiest - 1)
    conns = [conn for conn, _ in plan.publish.values()]
    published = 0
    if args.wait_subscribers_s > 0 and not player.wait_for_subscribers(args.wait_subscribers_s):
        print(
            f"warning: not every topic has a subscriber after {args.wait_subscribers_s:g} s; "
            f"playing anyway",
            file=sys.stderr,
        )
    time.sleep(args.delay_s)  # let subscribers discover the publishers
    wall0 = time.monotonic()
    loop = 0
    while True:
        shift_ns = loop * length_ns
        loop_wall0 = wall0 + shift_ns / NS_PER_S / args.rate

        def bag_ns_at(wall_s: float, base: float = loop_wall0, shift: int = shift_ns) -> int:
            return start_ns + shift + round((wall_s - base) * args.rate * NS_PER_S)

        for conn, recv_ns, raw in reader.raw_messages(conns):
            if conn.topic in plan.schedule.modalities and plan.schedule.dropped(
                conn.topic, _stamp_ns(reader, conn, recv_ns, raw)
            ):
                continue
            target_s = loop_wall0 + (recv_ns - start_ns) / NS_PER_S / args.rate
            player.wait_until(target_s, bag_ns_at)
            player.publish_clock(recv_ns + shift_ns)
            player.publish(conn.id, raw, shift_ns)
            published += 1
        if not args.loop:
            return published
        player.wait_until(loop_wall0 + length_ns / NS_PER_S / args.rate, bag_ns_at)
        loop += 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sensorysync-replay",
        description="Publish a rosbag2's sensor topics live with their recorded timing and "
        "injected dropouts (for testing a running node without ros2 bag play).",
    )
    parser.add_argument("bag", type=Path, help="rosbag2 directory (sqlite3 or mcap), read-only")
    parser.add_argument(
        "--model", type=Path, help="model whose modality names --drop may use (and topics)"
    )
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    drops = parser.add_mutually_exclusive_group()
    drops.add_argument(
        "--drop",
        action="append",
        default=[],
        metavar="NAME:START-END",
        help="withhold a modality or topic for [START, END) s from the bag start (repeatable)",
    )
    drops.add_argument(
        "--random-dropout", type=float, metavar="RATE", help="fraction of time each is withheld"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --random-dropout")
    parser.add_argument("--dropout-length-s", type=float, default=3.0, help="random interval")
    parser.add_argument("--loop", action="store_true", help="replay until interrupted")
    parser.add_argument("--clock", action="store_true", help="publish /clock (use_sim_time)")
    parser.add_argument(
        "--delay-s", type=float, default=1.0, help="wait before the first message (discovery)"
    )
    parser.add_argument(
        "--wait-subscribers-s",
        type=float,
        default=0.0,
        help="first wait up to this long until every sensor topic has a subscriber",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    if args.rate <= 0:
        raise DropoutSpecError(f"--rate must be > 0, got {args.rate!r}")
    manifest = read_manifest(args.model) if args.model is not None else None
    with BagReader(args.bag) as reader:
        plan = _plan(args, reader, manifest)
        if not plan.publish:
            raise BagError(
                f"bag {str(args.bag)!r} has no topic whose message type rclpy can import "
                f"(skipped: {plan.skipped})"
            )
        if plan.skipped:
            print(
                f"not publishing (type not installed): {', '.join(plan.skipped)}", file=sys.stderr
            )
        rclpy.init()
        player = _Player(plan, args.clock)
        try:
            published = play(args, reader, plan, player)
        except (KeyboardInterrupt, ExternalShutdownException):
            return 0
        finally:
            player.close()
            rclpy.try_shutdown()
    print(f"replayed {published} messages from {args.bag} at {args.rate:g}x")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(remove_ros_args(["sensorysync-replay", *argv])[1:])
    try:
        return run(args)
    except (SensorySyncError, OSError) as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
