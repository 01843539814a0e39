"""Fusion core on a real exported model run by the real Engine (ONNX Runtime)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float32MultiArray, Header

from sensorysync_ros.codecs import make_codec
from sensorysync_ros.engine import Engine
from sensorysync_ros.fusion import FusionCore, ModalityStatus

T0_NS = 5_000_000_000
MS = 1_000_000


@pytest.fixture(scope="module")
def engine(tiny_robot_model) -> Engine:
    return Engine(tiny_robot_model, threads=1)


def _samples(engine: Engine, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        m.name: rng.uniform(0.0, 1.0, m.shape).astype(np.float32)
        for m in engine.manifest.modalities
    }


def _direct(engine: Engine, samples: dict[str, np.ndarray], present: dict[str, bool]):
    mask = np.array([[float(present[n]) for n in engine.manifest.names]], np.float32)
    inputs = {n: samples[n][None] for n in engine.manifest.names if present[n]}
    return engine.run(inputs, mask)


def test_default_timeouts_are_three_sensor_periods(engine):
    core = FusionCore(engine)
    rates = {m.name: m.ros.rate_hz for m in engine.manifest.modalities}
    assert core.timeouts_ns == {n: round(3e9 / rate) for n, rate in rates.items()}
    assert core.timeouts_ns["camera"] == 100 * MS  # 30 Hz
    custom = FusionCore(engine, timeouts_ns={"audio": 7})
    assert custom.timeouts_ns["audio"] == 7 and custom.timeouts_ns["camera"] == 100 * MS


def test_nothing_present_gives_none(engine):
    core = FusionCore(engine)
    assert core.tick(T0_NS) is None
    core.push(T0_NS, "joints", _samples(engine)["joints"])
    assert core.tick(T0_NS) is not None
    assert core.tick(T0_NS + core.timeouts_ns["joints"] + 1) is None  # all stale again


def test_staleness_boundary_is_exactly_the_timeout(engine):
    core = FusionCore(engine, timeouts_ns={"camera": 40 * MS, "joints": 10**9})
    samples = _samples(engine)
    core.push(T0_NS, "camera", samples["camera"])
    core.push(T0_NS, "joints", samples["joints"])
    at_timeout = core.tick(T0_NS + 40 * MS)
    assert at_timeout is not None and at_timeout.present["camera"]
    one_ns_later = core.tick(T0_NS + 40 * MS + 1)
    assert one_ns_later is not None and not one_ns_later.present["camera"]
    assert one_ns_later.missing == ("camera", "audio")
    assert one_ns_later.age_ns["camera"] == 40 * MS + 1
    assert one_ns_later.last_stamp_ns["camera"] == T0_NS
    assert one_ns_later.last_stamp_ns["audio"] is None and one_ns_later.age_ns["audio"] is None


def test_a_sample_stamped_after_now_counts_as_fresh(engine):
    core = FusionCore(engine)
    core.push(T0_NS + 10 * MS, "camera", _samples(engine)["camera"])
    out = core.tick(T0_NS)
    assert out is not None and out.present["camera"] and out.age_ns["camera"] == -10 * MS


def test_mask_and_outputs_equal_a_direct_engine_call(engine):
    core = FusionCore(engine)
    samples = _samples(engine, seed=1)
    core.push(T0_NS, "camera", samples["camera"])
    core.push(T0_NS + 5 * MS, "joints", samples["joints"])
    out = core.tick(T0_NS + 10 * MS)
    present = {"camera": True, "audio": False, "joints": True}
    assert out is not None and out.present == present
    assert list(out.present) == list(engine.manifest.names)  # manifest order
    direct = _direct(engine, samples, present)
    np.testing.assert_array_equal(out.core_mean, direct.core_mean[0])
    np.testing.assert_allclose(out.core_var, np.exp(direct.core_logvar[0]), rtol=1e-6)
    for name in engine.manifest.names:
        assert out.recon[name].shape == engine.manifest.modality(name).shape
        np.testing.assert_array_equal(out.recon[name], direct.recon[name][0])
    assert out.stamp_ns == T0_NS + 10 * MS
    assert out.age_ns == {"camera": 10 * MS, "audio": None, "joints": 5 * MS}


def test_missing_modality_is_reconstructed_from_the_masked_path(engine):
    samples = _samples(engine, seed=2)
    core = FusionCore(engine)
    for name in engine.manifest.names:
        core.push(T0_NS, name, samples[name])
    all_present = core.tick(T0_NS)
    stale_audio_at = T0_NS + core.timeouts_ns["audio"] + 1  # audio stale, camera still fresh
    core.push(stale_audio_at, "joints", samples["joints"])
    out = core.tick(stale_audio_at)
    assert out is not None and out.missing == ("audio",)
    masked = _direct(engine, samples, {"camera": True, "audio": False, "joints": True})
    np.testing.assert_array_equal(out.recon["audio"], masked.recon["audio"][0])
    assert not np.allclose(out.recon["audio"], all_present.recon["audio"], atol=1e-4)
    # the stale sample itself never reaches the model: other stale audio, same output
    other = FusionCore(engine)
    other.push(T0_NS, "audio", np.zeros_like(samples["audio"]))
    other.push(T0_NS, "camera", samples["camera"])
    other.push(stale_audio_at, "joints", samples["joints"])
    np.testing.assert_array_equal(other.tick(stale_audio_at).recon["audio"], out.recon["audio"])


def test_latest_sample_wins_and_older_ones_are_refused(engine):
    core = FusionCore(engine)
    first, second = _samples(engine, 3)["joints"], _samples(engine, 4)["joints"]
    assert core.push(T0_NS, "joints", first)
    assert core.push(T0_NS + 1, "joints", second)
    assert not core.push(T0_NS, "joints", first)  # out of order: refused
    out = core.tick(T0_NS + 1)
    only = _direct(engine, {"joints": second}, {"camera": False, "audio": False, "joints": True})
    np.testing.assert_array_equal(out.core_mean, only.core_mean[0])


def test_status_reports_present_stale_and_never_seen(engine):
    core = FusionCore(engine)
    core.push(T0_NS, "camera", _samples(engine)["camera"])
    core.push(T0_NS, "joints", _samples(engine)["joints"])
    now = T0_NS + 50 * MS  # camera timeout 100 ms, joints 30 ms
    status = core.status(now)
    assert {n: s.status for n, s in status.items()} == {
        "camera": ModalityStatus.PRESENT,
        "audio": ModalityStatus.NEVER_SEEN,
        "joints": ModalityStatus.STALE,
    }
    assert status["joints"].age_ns == 50 * MS and status["joints"].timeout_ns == 30 * MS
    assert status["audio"].last_stamp_ns is None
    core.reset("camera")
    assert core.status(now)["camera"].status is ModalityStatus.NEVER_SEEN
    core.reset()
    assert all(s.status is ModalityStatus.NEVER_SEEN for s in core.status(now).values())


def test_outputs_are_not_overwritten_by_later_ticks(engine):
    core = FusionCore(engine)
    core.push(T0_NS, "joints", _samples(engine, 5)["joints"])
    first = core.tick(T0_NS)
    kept = first.core_mean.copy(), first.recon["camera"].copy()
    core.push(T0_NS + 1, "joints", _samples(engine, 6)["joints"])
    core.tick(T0_NS + 1)
    np.testing.assert_array_equal(first.core_mean, kept[0])
    np.testing.assert_array_equal(first.recon["camera"], kept[1])


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((T0_NS, "lidar", np.zeros(3)), r"unknown modality 'lidar'; the model has"),
        ((T0_NS, "joints", np.zeros(8)), r"'joints': sample of shape \(8,\) does not fit"),
        ((T0_NS, "joints", np.full(9, np.nan)), r"'joints': sample contains NaN"),
    ],
)
def test_bad_push_is_named(engine, args, match):
    with pytest.raises(ValueError, match=match):
        FusionCore(engine).push(*args)


@pytest.mark.parametrize(
    ("timeouts", "match"),
    [
        ({"lidar": 5}, r"unknown modalities \['lidar'\]"),
        ({"camera": 0}, r"timeout of modality 'camera' must be a positive int of ns, got 0"),
        ({"audio": -5}, r"'audio' must be a positive int of ns, got -5"),
        ({"audio": 0.5}, r"got 0.5"),
        ({"audio": True}, r"got True"),
    ],
)
def test_bad_timeouts_are_named(engine, timeouts, match):
    with pytest.raises(ValueError, match=match):
        FusionCore(engine, timeouts_ns=timeouts)


def test_push_and_tick_from_two_threads(engine):
    core = FusionCore(engine)
    samples = _samples(engine)
    errors: list[BaseException] = []
    stop = threading.Event()

    def feed() -> None:
        stamp = T0_NS
        try:
            while not stop.is_set():
                stamp += 1
                core.push(stamp, "joints", samples["joints"])
                core.push(stamp, "camera", samples["camera"])
        except BaseException as err:  # report in the main thread
            errors.append(err)

    thread = threading.Thread(target=feed)
    thread.start()
    try:
        outputs = [core.tick(T0_NS + 10 * MS) for _ in range(50)]
    finally:
        stop.set()
        thread.join()
    assert not errors
    expected = _direct(engine, samples, {"camera": True, "audio": False, "joints": True})
    for out in outputs:
        if out is not None and out.present["camera"]:
            np.testing.assert_array_equal(out.core_mean, expected.core_mean[0])


def test_codecs_feed_the_core_and_publish_reconstructions(engine):
    """Real messages -> codecs -> fusion -> engine -> codecs -> messages of the input types."""
    codecs = {m.name: make_codec(m) for m in engine.manifest.modalities}
    rgb = np.random.default_rng(9).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    image = Image(height=48, width=64, encoding="rgb8", step=192, data=rgb.tobytes())
    joints = JointState(
        name=["wrist", "elbow", "shoulder", "gripper"],
        position=[0.1, 0.2, 0.3, 0.4],
        velocity=[0.0] * 4,
        effort=[1.0] * 4,
    )
    core = FusionCore(engine)
    core.push(T0_NS, "camera", codecs["camera"].decode(image))
    core.push(T0_NS, "joints", codecs["joints"].decode(joints))
    audio_spec = engine.manifest.modality("audio")
    window = int(audio_spec.preprocess["window_samples"])
    chunk = Float32MultiArray(data=np.zeros(window // 2, np.float32))
    assert codecs["audio"].decode(chunk) is None  # half a window: not ready, nothing pushed
    out = core.tick(T0_NS + MS)
    assert out is not None and out.missing == ("audio",)
    audio_msg = codecs["audio"].encode(out.recon["audio"], Header(), msg_cls=Float32MultiArray)
    assert len(audio_msg.data) > 0 and np.isfinite(np.asarray(audio_msg.data)).all()
    camera_msg = codecs["camera"].encode(out.recon["camera"], Header(), msg_cls=Image)
    assert (camera_msg.height, camera_msg.width) == engine.manifest.modality("camera").shape[1:]
    joint_msg = codecs["joints"].encode(out.recon["joints"], Header(), msg_cls=JointState)
    assert list(joint_msg.name) == ["shoulder", "elbow", "wrist"]
