"""The node over real DDS between processes: dropouts, malformed input, bad start-up.

One node process (the ``python -m sensorysync_ros.node`` entry point, autostart) and one
publisher process (test/ros_helpers/sensor_publisher.py) per scenario; this process observes the
node's outputs. Every process inherits the test's own ROS_DOMAIN_ID (conftest.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from ros_helpers.observer import Observer, stamp_ns, values

from sensorysync_ros.core_msg import decode_core
from sensorysync_ros.model_file import read_manifest

REPO = Path(__file__).resolve().parents[1]
PUBLISHER = REPO / "test" / "ros_helpers" / "sensor_publisher.py"
PARAMS_FILE = REPO / "config" / "sensorysync.yaml"
RATE_HZ = 30.0
PERIOD_S = 1.0 / RATE_HZ
# Delivery slack (publish stamp -> node callback) on a loaded 2-core machine.
SLACK_S = 0.06
# Bound on timer stalls for the absolute "within" checks (gross failures only).
STALL_S = 0.3
PHASES = "all:1.5,nocamera:1.0,all:1.0,malformed:1.0,none:1.2"


def node_command(model: Path, *params: str, params_file: bool = True) -> list[str]:
    """The node's command line with the shipped params file plus ``name:=value`` overrides.

    (rcl silently drops a ``-p`` override whose type differs from the params file's value.)
    """
    args = ["--params-file", str(PARAMS_FILE)] if params_file else []
    args += ["-p", f"model_path:={model}"]
    for param in params:
        args += ["-p", param]
    return [sys.executable, "-m", "sensorysync_ros.node", "--ros-args", *args]


def start(command: list[str], log: Path) -> subprocess.Popen:
    handle = log.open("w")
    return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=os.environ.copy())


def stop(process: subprocess.Popen, timeout_s: float = 10.0) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def reconstruction_run(stamps_ns: list[int]) -> list[int]:
    """The first run of consecutive ticks (no gap over two periods) in ``stamps_ns``."""
    run: list[int] = []
    for t in sorted(stamps_ns):
        if run and t - run[-1] > 1e9 * (2 * PERIOD_S + STALL_S):
            break
        run.append(t)
    return run


def camera_on_windows(phases: dict, timeout_s: float) -> list[tuple[int, int]]:
    """Stamp windows in which the camera streamed for at least ``timeout_s`` already."""
    return [
        (p["start_ns"] + 1e9 * (timeout_s + 0.5), p["end_ns"])
        for key, p in phases.items()
        if key in ("all0", "all2", "malformed3")
    ]


def _published(log: dict, modality: str, kind: str = "good") -> list[int]:
    return [t for m, t, k in log["published"] if m == modality and k == kind]


@pytest.mark.timeout(120)
def test_dropout_reconstruction_malformed_input_and_total_loss(tiny_robot_model, tmp_path):
    manifest = read_manifest(tiny_robot_model)
    # Camera: the default 3 periods (0.1 s), the timing under test. Joints and audio: longer
    # than their defaults (0.03 s, 0.06 s), so a loaded machine's stalls do not flap them.
    timeouts_s = {"camera": 3.0 / 30.0, "joints": 0.1, "audio": 0.15}
    node = start(
        node_command(
            tiny_robot_model,
            f"fusion_rate_hz:={RATE_HZ}",
            "diagnostics_period_s:=0.25",
            f"modalities.joints.timeout_s:={timeouts_s['joints']}",
            f"modalities.audio.timeout_s:={timeouts_s['audio']}",
            # Deep enough that no malformed message is overwritten before the node reads it.
            "modalities.camera.qos_depth:=5",
            "modalities.joints.qos_depth:=5",
        ),
        tmp_path / "node.log",
    )
    try:
        with Observer(["camera", "joints", "audio"]) as obs:
            assert obs.wait_for(lambda: obs.diagnostics.items, 60), (
                "node never published diagnostics: " + (tmp_path / "node.log").read_text()
            )
            # Anything else on this domain (a stray process) would corrupt every figure below.
            assert obs.node.count_publishers("/sensorysync/core") == 1
            assert obs.node.count_publishers("/camera/image_raw") == 0
            publisher = subprocess.run(
                [sys.executable, str(PUBLISHER), "--model", str(tiny_robot_model),
                 "--phases", PHASES, "--log", str(tmp_path / "published.json")],
                capture_output=True, text=True, timeout=60, env=os.environ.copy(),
            )
            assert publisher.returncode == 0, publisher.stderr
            published = json.loads((tmp_path / "published.json").read_text())
            phases = {p["name"] + str(i): p for i, p in enumerate(published["phases"])}
            end_ns = phases["none4"]["end_ns"]
            assert obs.wait_for(
                lambda: obs.diagnostics.items and stamp_ns(obs.diagnostics.items[-1][1]) > end_ns,
                10,
            )
            statuses = obs.last_statuses()
        assert stop(node) == 0, (tmp_path / "node.log").read_text()
    finally:
        stop(node)

    camera = _published(published, "camera")
    core = [decode_core(m, manifest.core_latent_dim, 3) for _, m in obs.core.items]
    camera_recon = obs.recon["camera"].stamps_ns()

    # Camera stops: its reconstruction appears within timeout + one tick, and not before.
    gap_start, gap_end = phases["nocamera1"]["start_ns"], phases["all2"]["start_ns"]
    last_before = max(t for t in camera if t < gap_start)
    first_after = min(t for t in camera if t >= gap_end)
    run = reconstruction_run([t for t in camera_recon if t >= gap_start])
    assert run, "no camera reconstruction while the camera was silent"
    # Judged on the node's own ticks (core stamps), so a loaded machine's timer jitter does not
    # count against it: the first tick past the timeout reconstructs the camera ...
    ticks = sorted(c.stamp_ns for c in core)
    delay_s = (run[0] - last_before) / 1e9
    assert timeouts_s["camera"] <= delay_s <= timeouts_s["camera"] + PERIOD_S + STALL_S
    deadline = last_before + 1e9 * (timeouts_s["camera"] + SLACK_S)
    assert not [t for t in ticks if deadline < t < run[0]], "ticks past the timeout missed it"
    # ... and at most one tick after the camera's return still does.
    assert len([t for t in ticks if first_after < t <= run[-1]]) <= 1
    assert (run[-1] - first_after) / 1e9 <= PERIOD_S + STALL_S
    # While the camera streams, it is not reconstructed (bar rare scheduling stalls).
    streaming = [
        t for t in camera_recon
        if any(lo < t < hi for lo, hi in camera_on_windows(phases, timeouts_s["camera"]))
    ]
    assert len(streaming) <= 0.05 * RATE_HZ * 3.5, streaming
    # Meanwhile the core keeps coming, with the camera marked absent and the joints present.
    gap_core = [c for c in core if last_before + timeouts_s["camera"] * 1e9 < c.stamp_ns
                < first_after]
    assert len(gap_core) >= 0.4 * RATE_HZ * (first_after - last_before) / 1e9
    assert not any(c.present[0] for c in gap_core)
    assert sum(c.present[2] for c in gap_core) >= 0.8 * len(gap_core)

    # Malformed messages: each counted (per modality), skipped, and the output goes on.
    bad_start, bad_end = phases["malformed3"]["start_ns"], phases["malformed3"]["end_ns"]
    for name in ("camera", "joints", "audio"):
        sent = sum(1 for m, _, k in published["published"] if m == name and k != "good")
        assert sent > 0
        assert values(statuses[name])["malformed"] == str(sent), (name, values(statuses[name]))
    bad_core = [c for c in core if bad_start < c.stamp_ns < bad_end]
    assert len(bad_core) >= 0.4 * RATE_HZ * (bad_end - bad_start) / 1e9
    assert sum(c.present.all() for c in bad_core) >= 0.8 * len(bad_core)

    # Every sensor gone: core output stops and diagnostics turn to ERROR.
    last_sample = max(t for m, t, k in published["published"] if k == "good")
    quiet_after = last_sample + 1e9 * (max(timeouts_s.values()) + PERIOD_S + STALL_S)
    assert max(c.stamp_ns for c in core) <= quiet_after
    assert statuses["fusion"].level == DiagnosticStatus.ERROR
    assert statuses["fusion"].message == "no sensor present: no core output"
    assert values(statuses["fusion"])["execution_provider"] == "CPUExecutionProvider"
    latencies = [
        float(values(status)["inference_latency_p50_ms"])
        for _, msg in obs.diagnostics.items
        for status in msg.status
        if status.name.endswith(": fusion")
    ]
    assert any(0 < ms < 1000 for ms in latencies), latencies
    for name in ("camera", "joints", "audio"):
        assert statuses[name].level != DiagnosticStatus.OK
        assert int(values(statuses[name])["decoded"]) > 0


@pytest.mark.timeout(90)
def test_autostart_refuses_bad_model_or_parameters_with_one_line(tiny_robot_model, tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(tiny_robot_model.read_bytes()[:5000])
    cases = {
        "missing": (node_command(tmp_path / "nope.onnx"), "nope.onnx"),
        "corrupt": (node_command(corrupt), "corrupt.onnx"),
        "zero_rate": (node_command(tiny_robot_model, "fusion_rate_hz:=0.0"), "fusion_rate_hz"),
        "bad_autostart": (
            node_command(tiny_robot_model, "autostart:=maybe", params_file=False),
            "'autostart' must be true or false",
        ),
        "unknown_modality": (
            node_command(tiny_robot_model, "modalities.lidar.topic:=/scan"),
            "modality 'lidar'",
        ),
    }
    runs = {
        name: subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=os.environ.copy())
        for name, (cmd, _) in cases.items()
    }
    try:
        for name, process in runs.items():
            _, stderr = process.communicate(timeout=60)
            last = stderr.strip().splitlines()[-1]
            assert process.returncode == 1, (name, stderr)
            assert last.startswith("error: ") and cases[name][1] in last, (name, stderr)
    finally:
        for process in runs.values():
            if process.poll() is None:
                process.kill()
