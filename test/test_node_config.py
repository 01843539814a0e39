"""Node parameters, core message layout and diagnostics levels: pure functions, no ROS graph."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from sensorysync_ros.core_msg import CORE_ENCODING, core_layout, decode_core, encode_core
from sensorysync_ros.errors import CodecError
from sensorysync_ros.fusion import ModalityState, ModalityStatus
from sensorysync_ros.manifest import Manifest, ModalitySpec, RosBinding
from sensorysync_ros.node_config import (
    AUDIO_QOS_DEPTH,
    NodeConfigError,
    build_node_config,
)
from sensorysync_ros.node_diagnostics import (
    FusionReport,
    LatencyWindow,
    SensorStats,
    fusion_status,
    sensor_status,
)

AUDIO = {"sample_rate": 16000, "window_samples": 4000, "n_fft": 256, "hop_length": 128,
         "n_mels": 16, "loc": 0.0, "scale": 1.0}


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return Manifest(
        modalities=(
            ModalitySpec("camera", "image", (3, 8, 8), "laplace", {"encoding": "rgb8"},
                         RosBinding("camera/image_raw", "sensor_msgs/msg/Image", 30.0)),
            ModalitySpec("audio", "audio", (1, 16, 30), "gaussian", dict(AUDIO),
                         RosBinding("audio", "std_msgs/msg/Float32MultiArray", 50.0)),
            ModalitySpec("joints", "vector", (2,), "gaussian",
                         {"joint_names": ["a"], "fields": ["position", "velocity"],
                          "loc": [0, 0], "scale": [1, 1]},
                         RosBinding("joint_states", "sensor_msgs/msg/JointState", 100.0)),
        ),
        core_latent_dim=4,
        modality_latent_dims=(2, 2, 2),
    )


def test_defaults_come_from_the_manifest(manifest):
    config = build_node_config({}, manifest)
    assert config.fusion_rate_hz == 30.0 and config.fusion_timer and not config.trigger_modality
    camera, audio, joints = config.inputs
    assert (camera.topic, camera.msg_type) == ("camera/image_raw", "sensor_msgs/msg/Image")
    assert camera.timeout_s == pytest.approx(3 / 30) and joints.timeout_s == pytest.approx(0.03)
    assert (camera.qos, camera.qos_depth, audio.qos_depth) == ("sensor_data", 1, AUDIO_QOS_DEPTH)
    assert config.intra_op_threads is None and config.providers[-1] == "CPUExecutionProvider"


def test_overrides_are_applied_and_ints_accepted_for_floats(manifest):
    config = build_node_config(
        {
            "fusion_rate_hz": 50,
            "trigger_modality": "camera",
            "intra_op_threads": 2,
            "use_sim_time": True,
            "qos_overrides./audio.subscription.depth": 3,
            "modalities.camera.topic": "/cam/image",
            "modalities.camera.msg_type": "sensor_msgs/msg/CompressedImage",
            "modalities.camera.timeout_s": 0.25,
            "modalities.joints.qos": "reliable",
            "modalities.joints.qos_depth": 4,
            "modalities.audio.sample_rate_hz": 48000,
        },
        manifest,
    )
    assert config.fusion_period_s == pytest.approx(0.02) and config.trigger_modality == "camera"
    camera = config.input("camera")
    assert (camera.topic, camera.timeout_s) == ("/cam/image", 0.25)
    assert camera.msg_type == "sensor_msgs/msg/CompressedImage"
    assert (config.input("joints").qos, config.input("joints").qos_depth) == ("reliable", 4)
    assert config.input("audio").sample_rate_hz == 48000 and config.intra_op_threads == 2


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"fusion_rate_hz": 0.0}, "'fusion_rate_hz' must be a finite number > 0"),
        ({"fusion_rate_hz": -5.0}, "got -5.0"),
        ({"fusion_rate_hz": math.inf}, "'fusion_rate_hz'"),
        ({"fusion_rate_hz": "fast"}, "must be a number, got 'fast'"),
        ({"diagnostics_period_s": 0.0}, "'diagnostics_period_s'"),
        ({"modalities.camera.timeout_s": -0.1}, "modalities.camera.timeout_s must be >= 0"),
        ({"modalities.lidar.timeout_s": 0.1}, "modality 'lidar', which the model does not have"),
        ({"modalities.camera.timeout": 0.1}, "unknown field 'timeout'"),
        ({"modalities.camera.qos": "best"}, "choose one of ['sensor_data', 'default'"),
        ({"modalities.camera.qos_depth": -1}, "qos_depth must be >= 0"),
        ({"modalities.camera.msg_type": "Image"}, "expected 'pkg/msg/Name'"),
        ({"modalities.camera.sample_rate_hz": 8000}, "only valid for audio"),
        ({"trigger_modality": "lidar"}, "'trigger_modality' is 'lidar'"),
        ({"fusion_timer": False}, "nothing would ever trigger fusion"),
        ({"fusion_timer": "yes"}, "must be true or false"),
        ({"providers": []}, "non-empty list of provider names"),
        ({"intra_op_threads": -1}, "'intra_op_threads' must be >= 0"),
        ({"fusion_rate": 30.0}, "unknown parameter 'fusion_rate'"),
    ],
)
def test_bad_parameters_are_rejected_with_the_reason(manifest, params, needle):
    with pytest.raises(NodeConfigError) as err:
        build_node_config(params, manifest)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def _header(stamp_ns: int) -> Header:
    return Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9))


def test_core_message_round_trip():
    mean = np.array([0.5, -1.0, 2.0], np.float32)
    variance = np.array([0.1, 1.0, 4.0], np.float32)
    msg = encode_core(Image, _header(12_345_678_901), mean, variance, np.array([1.0, 0.0]))
    assert (msg.encoding, msg.height, msg.width, msg.step) == (CORE_ENCODING, 1, 8, 32)
    core = decode_core(msg, core_dim=3, n_modalities=2)
    assert core.stamp_ns == 12_345_678_901
    np.testing.assert_allclose(core.mean, mean)
    np.testing.assert_allclose(core.variance, [0.1, 1.0, 4.0], rtol=1e-6)
    assert core.present.tolist() == [True, False]
    with pytest.raises(CodecError, match="expected '32FC1' 1x9"):
        decode_core(msg, core_dim=3, n_modalities=3)
    assert core_layout(3, ("a", "b")) == "32FC1 1x8: mean[0:3] variance[3:6] present[6:8]=a,b"


def _state(age_s: float | None, timeout_s: float) -> ModalityState:
    timeout_ns = round(timeout_s * 1e9)
    if age_s is None:
        return ModalityState(ModalityStatus.NEVER_SEEN, None, None, timeout_ns)
    age_ns = round(age_s * 1e9)
    status = ModalityStatus.PRESENT if age_ns <= timeout_ns else ModalityStatus.STALE
    return ModalityState(status, 1, age_ns, timeout_ns)


def test_sensor_levels_follow_age_and_fusion_errors_when_all_are_gone():
    stats = SensorStats("camera", "/camera/image_raw")
    never = sensor_status(stats, _state(None, 0.1), node_name="n", window_s=1.0)
    assert never.level == DiagnosticStatus.ERROR and never.name == "n: camera"
    stats.window_decoded, stats.malformed = 30, 2
    ok = sensor_status(stats, _state(0.05, 0.1), node_name="n", window_s=1.0)
    values = {kv.key: kv.value for kv in ok.values}
    assert ok.level == DiagnosticStatus.OK and values["rate_hz"] == "30.00"
    assert values["malformed"] == "2" and "2 malformed" in ok.message
    assert values["last_seen_age_s"] == "0.050" and values["timeout_s"] == "0.100"
    stale = sensor_status(stats, _state(0.5, 0.1), node_name="n", window_s=1.0)
    assert stale.level == DiagnosticStatus.WARN and "stale" in stale.message
    assert {kv.key: kv.value for kv in stale.values}["rate_hz"] == "0.00"  # window was reset
    gone = sensor_status(stats, _state(2.0, 0.1), node_name="n", window_s=1.0)
    assert gone.level == DiagnosticStatus.ERROR and "missing" in gone.message

    sensors = [stats, SensorStats("joints", "/joint_states")]
    report = FusionReport("CPUExecutionProvider", "m.onnx", "layout", 10, 9, (1.0, 2.0))
    some = {"camera": _state(2.0, 0.1), "joints": _state(0.01, 0.03)}
    status = fusion_status(sensors, some, report, node_name="n")
    assert status.level == DiagnosticStatus.WARN and status.message == "reconstructing camera"
    assert {kv.key: kv.value for kv in status.values}["inference_latency_p50_ms"] == "1.000"
    none = {"camera": _state(2.0, 0.1), "joints": _state(1.0, 0.03)}
    assert fusion_status(sensors, none, report, node_name="n").level == DiagnosticStatus.ERROR
    every = {"camera": _state(0.0, 0.1), "joints": _state(0.0, 0.03)}
    assert fusion_status(sensors, every, report, node_name="n").level == DiagnosticStatus.OK


def test_latency_window_summarises_and_clears():
    window = LatencyWindow(capacity=3)
    for ns in (1_000_000, 2_000_000, 3_000_000, 9_000_000):
        window.add(ns)
    assert window.summary_ms() == (3.0, 9.0)
    assert window.summary_ms() is None


def test_default_model_is_the_shipped_one_or_the_error_names_where_it_looked():
    from sensorysync_ros.errors import ModelLoadError
    from sensorysync_ros.node import default_model_path

    shipped = Path(__file__).resolve().parents[1] / "models" / "default.onnx"
    if shipped.is_file():
        assert default_model_path().name == "default.onnx"
    else:
        with pytest.raises(ModelLoadError, match="pass model_path:="):
            default_model_path()
