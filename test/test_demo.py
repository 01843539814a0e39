"""sensorysync-demo end to end: simulator + node processes, dropouts, recorded report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

DEMO = str(Path(sys.executable).with_name("sensorysync-demo"))


def _demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DEMO, *args], capture_output=True, text=True, timeout=240, env=env)


def test_live_demo_reports_reconstructions_during_dropouts(tmp_path: Path, tiny_robot_model):
    out = tmp_path / "demo"
    result = _demo("--out", str(out), "--model", str(tiny_robot_model), "--duration", "6",
                   "--camera-size", "32", "--drop", "camera:2-3.5", "--drop", "audio:4-5")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith(f"report: {out / 'report.md'}")
    for name in ("report.md", "metrics.json", "error_over_time.png",
                 "frames_camera_dropout.png", "latency.png", "offline/report.md"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    # 1.5 s of 30 Hz ticks in the dropout, 4.5 s present; a loaded machine skips some ticks
    assert metrics["camera"]["dropout"]["ssim"]["n"] >= 10
    assert metrics["camera"]["present"]["ssim"]["n"] >= 30
    delays = {d["modality"]: d["detection_delay_s"] for d in metrics["dropouts"]}
    assert 0 <= delays["camera"] < 0.3 and 0 <= delays["audio"] < 0.3
    assert metrics["latency_ms"]["n"] > 100 and metrics["latency_ms"]["p50"] > 0
    recorded = metrics["messages_recorded"]
    assert recorded["/truth/camera/image_raw"] > recorded["/camera/image_raw"] + 20, (
        "the camera was not dropped while the truth kept flowing"
    )
    assert not (tmp_path / "demo.partial").exists()


def test_without_opengl_the_demo_falls_back_to_the_sample_bag(tmp_path: Path,
                                                              tiny_robot_model):
    out = tmp_path / "demo"
    env = {**os.environ, "MUJOCO_GL": "bogus"}
    result = _demo("--out", str(out), "--model", str(tiny_robot_model), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MUJOCO_GL=bogus" in result.stderr and "libosmesa6" in result.stderr
    assert "falling back to the shipped sample bag" in result.stderr
    assert (out / "offline" / "report.md").is_file()
    assert result.stdout.strip().splitlines()[-1].endswith(
        f"report: {out / 'offline' / 'report.md'}"
    )


def test_bad_dropout_spec_is_one_line_error_and_no_output(tmp_path: Path, tiny_robot_model):
    out = tmp_path / "demo"
    result = _demo("--out", str(out), "--model", str(tiny_robot_model), "--drop", "lidar:1-2")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: dropout spec 'lidar:1-2'")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()
