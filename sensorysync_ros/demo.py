"""sensorysync-demo: a camera dies, and the node keeps publishing a faithful camera image.

    sensorysync-demo --out demo_out

Starts the SensorySync node (``sensorysync_node``, the shipped default model) and the simulated
robot (``sensorysync-sim``) as processes, drops the camera and later the audio for a few seconds
each, records the simulator's ground truth and the node's outputs (two mcap bags), and writes a
report: truth vs reconstruction frames, error over time with the dropouts shaded, latency; plus
the bag evaluator's report on the same recording (``offline/``). Without a working MuJoCo
OpenGL backend it falls back to evaluating the shipped sample bag with the same dropouts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from rosbags.highlevel import AnyReader

from .bagtools import evaluate
from .bagtools.dropout import DropoutInterval, parse_drop_spec
from .errors import SensorySyncError
from .model_file import read_manifest
from .sim.errors import RenderBackendError
from .sim.gl import ensure_backend

__all__ = ["build_parser", "main", "sample_bag_path"]

TRUTH_PREFIX = "/truth"
REPO = Path(__file__).resolve().parents[1]
_STARTUP_TIMEOUT_S = 60.0
_LEAD_S = 2.0  # simulator start -> time zero of the dropout schedule (DDS discovery settles)


def sample_bag_path() -> Path:
    """The shipped sample bag (source checkout, or the installed share folder)."""
    candidates = [REPO / "data" / "sample_bag"]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("sensorysync_ros")) / "sample_bag")
    except (ImportError, LookupError, OSError):
        pass
    for path in candidates:
        if path.is_dir():
            return path
    raise SensorySyncError(f"no sample bag at {[str(p) for p in candidates]}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sensorysync-demo",
        description="Simulated robot + SensorySync node: drop the camera, then the audio, and "
        "report how faithfully the node reconstructs them.",
    )
    p.add_argument("--out", type=Path, required=True, help="report folder (replaced)")
    p.add_argument("--model", type=Path, help="exported .onnx model (default: the shipped one)")
    p.add_argument("--duration", type=float, default=30.0, metavar="S",
                   help="simulated seconds (default 30)")
    p.add_argument("--drop", action="append", metavar="MODALITY:START-END",
                   help="dropouts in seconds after the simulator start (repeatable; default "
                   "camera:8-14 and audio:19-24, scaled to --duration)")
    p.add_argument("--seed", type=int, default=11, help="simulator seed (default 11)")
    p.add_argument("--camera-size", type=int, default=64, metavar="PX")
    return p


def _default_drops(duration_s: float) -> list[str]:
    f = duration_s / 30.0
    return [f"camera:{8 * f:g}-{14 * f:g}", f"audio:{19 * f:g}-{24 * f:g}"]


def _tool(name: str) -> str:
    """A console script of this package, beside the running interpreter (or on PATH)."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise SensorySyncError(f"cannot find the {name!r} console script; pip install -e .")
    return found


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _live(args: argparse.Namespace, model: Path, drops: list[DropoutInterval],
          work: Path) -> tuple[dict[str, object], int]:
    """Run node + simulator, record, and write the live report into ``work``.

    Returns the metrics and the stamp that the dropout times count from.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from .demo_recorder import TopicRecorder
    from .demo_report import load_run, write_live_report
    from .sim.msgs import TOPICS

    manifest = read_manifest(model)
    truth_bag, live_bag = work / "truth_bag", work / "live_bag"
    outputs = {f"/sensorysync/{m.name}/reconstruction": m.ros.msg_type
               for m in manifest.modalities}
    outputs |= {"/sensorysync/core": "sensor_msgs/msg/Image",
                "/camera/image_raw": "sensor_msgs/msg/Image"}
    groups = {
        truth_bag: {f"{TRUTH_PREFIX}{topic}": msgtype for topic, msgtype in TOPICS.values()},
        live_bag: outputs,
    }
    logs = {name: open(work / f"{name}.log", "wb") for name in ("node", "sim")}  # noqa: SIM115
    rclpy.init()
    node = rclpy.create_node("sensorysync_demo_recorder")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with TopicRecorder(node, groups) as recorder:
            procs.append(subprocess.Popen(
                [_tool("sensorysync_node"), "--ros-args", "-p", f"model_path:={model}",
                 "-p", "publish_present_reconstructions:=true"],
                stdout=logs["node"], stderr=subprocess.STDOUT))
            _wait_for_node(node, procs[0], work / "node.log")
            print(f"node up; simulating {args.duration:g} s with dropouts "
                  + ", ".join(f"{d.modality} {d.start_s:g}-{d.end_s:g} s" for d in drops),
                  flush=True)
            origin_ns = time.time_ns() + round(_LEAD_S * 1e9)
            sim_cmd = [_tool("sensorysync-sim"), "--duration", f"{args.duration + _LEAD_S:g}",
                       "--seed", str(args.seed), "--camera-size", str(args.camera_size),
                       "--truth-prefix", TRUTH_PREFIX, "--drop-origin-ns", str(origin_ns)]
            for d in drops:
                sim_cmd += ["--drop", f"{d.modality}:{d.start_s:g}-{d.end_s:g}"]
            procs.append(subprocess.Popen(sim_cmd, stdout=logs["sim"], stderr=subprocess.STDOUT))
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            spinner = threading.Thread(target=executor.spin, daemon=True)
            spinner.start()
            try:
                procs[1].wait(timeout=args.duration + _STARTUP_TIMEOUT_S)
                time.sleep(0.5)  # the last messages in flight
            except subprocess.TimeoutExpired as err:
                raise SensorySyncError(
                    f"the simulator ran past {args.duration:g} s + {_STARTUP_TIMEOUT_S:g} s; "
                    f"see {work / 'sim.log'}"
                ) from err
            finally:
                executor.shutdown()
                spinner.join()
            if procs[1].returncode != 0:
                raise SensorySyncError(f"the simulator failed; see {work / 'sim.log'}")
            counts = dict(recorder.counts)
    finally:
        for proc in reversed(procs):
            _stop(proc)
        node.destroy_node()
        rclpy.try_shutdown()
        for f in logs.values():
            f.close()
    run = load_run(truth_bag, live_bag, manifest, TRUTH_PREFIX, origin_ns)
    notes = {"model": str(model), "duration_s": args.duration, "seed": args.seed,
             "camera_size": args.camera_size, "messages_recorded": counts,
             "offline_report": "offline/report.md"}
    return write_live_report(run, manifest, drops, work, notes=notes), origin_ns


def _wait_for_node(node: object, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until the SensorySync node publishes /diagnostics (configured and active)."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray

    seen: list[int] = []
    sub = node.create_subscription(DiagnosticArray, "/diagnostics", lambda _: seen.append(1), 10)
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    while not seen:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:]
            raise SensorySyncError(f"sensorysync_node exited: {' '.join(tail)} (see {log})")
        if time.monotonic() > deadline:
            raise SensorySyncError(f"sensorysync_node did not come up in "
                                   f"{_STARTUP_TIMEOUT_S:g} s; see {log}")
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_subscription(sub)


def _offline(bag: Path, model: Path, drops: list[DropoutInterval], out: Path,
             remaps: dict[str, str], shift_s: float = 0.0) -> int:
    """sensorysync-eval on ``bag``; dropout times shifted by ``shift_s`` (bag start -> origin).

    On a loaded machine the recording can start after a dropout began: that dropout is clipped
    to the bag's start (and left out when it ended before the bag began).
    """
    argv = [str(bag), "--model", str(model), "--out", str(out)]
    for d in drops:
        start_s, end_s = max(0.0, d.start_s + shift_s), d.end_s + shift_s
        if end_s > start_s:
            argv += ["--drop", f"{d.modality}:{start_s:.3f}-{end_s:.3f}"]
    argv += [a for m, t in remaps.items() for a in ("--topic", f"{m}={t}")]
    return evaluate.main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.monotonic()
    try:
        if args.duration <= 0:
            raise SensorySyncError(f"--duration must be > 0 s, got {args.duration}")
        from .node import default_model_path

        model = args.model or default_model_path()
        names = read_manifest(model).names
        drops = [parse_drop_spec(s, names) for s in (args.drop or _default_drops(args.duration))]
        out = args.out
        work = out.with_name(out.name + ".partial")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            ensure_backend()
        except RenderBackendError as err:
            print(f"note: the simulator cannot render here ({err}).\nnote: falling back to "
                  f"the shipped sample bag, evaluated with the same dropouts.", file=sys.stderr)
            rc = _offline(sample_bag_path(), model, drops, work / "offline", {})
            summary = "offline/report.md"
        else:
            from .sim.msgs import TOPICS

            _, origin_ns = _live(args, model, drops, work)
            remaps = {m: f"{TRUTH_PREFIX}{TOPICS[m][0]}" for m in names if m in TOPICS}
            with AnyReader([work / "truth_bag"]) as reader:
                shift_s = (origin_ns - reader.start_time) / 1e9
            rc = _offline(work / "truth_bag", model, drops, work / "offline", remaps, shift_s)
            summary = "report.md"
        if rc != 0:
            return rc
        shutil.rmtree(out, ignore_errors=True)
        os.replace(work, out)
    except (SensorySyncError, OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"demo finished in {time.monotonic() - t0:.0f} s; report: {out / summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
