"""The simulated robot: camera frames, joint motion, motor audio carrying motion information."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from sensorysync_ros.sim.audio import MotorAudio
from sensorysync_ros.sim.errors import SimError
from sensorysync_ros.sim.robot import AudioChunk, CameraFrame, JointFrame, RobotConfig, SimRobot

S_NS = 1_000_000_000


def _split(events):
    frames = [e for e in events if isinstance(e, CameraFrame)]
    joints = [e for e in events if isinstance(e, JointFrame)]
    audio = [e for e in events if isinstance(e, AudioChunk)]
    return frames, joints, audio


@pytest.fixture(scope="module")
def run_20s():
    """20 s of one seeded run without the camera: joints and audio."""
    with SimRobot(RobotConfig(seed=7), camera=False) as robot:
        _, joints, audio = _split(robot.advance(20 * S_NS))
    return joints, audio


def test_camera_frames_have_the_configured_shape_and_the_arm_moves_them():
    with SimRobot(RobotConfig(seed=3, camera_width=48, camera_height=40)) as robot:
        frames, joints, _ = _split(robot.advance(3 * S_NS))
    assert len(frames) == 90
    assert all(f.rgb.shape == (40, 48, 3) and f.rgb.dtype == np.uint8 for f in frames)
    pose = {j.stamp_ns: j.sample.position for j in joints}
    nearest = [pose[min(pose, key=lambda t: abs(t - f.stamp_ns))] for f in frames]
    moved = next(i for i, q in enumerate(nearest) if np.abs(q - nearest[0]).max() > 0.3)
    diff = np.abs(frames[moved].rgb.astype(np.int16) - frames[0].rgb.astype(np.int16))
    assert (diff.max(axis=2) > 30).mean() > 0.01, "the arm moved 0.3 rad, the image did not"


def test_same_pose_renders_the_same_image():
    """The scene is static: the image is a function of the joint angles alone."""
    with SimRobot(RobotConfig(seed=3)) as robot:
        data = robot.world.data
        start = robot.camera.render(data)
        pose = data.qpos.copy()
        robot.advance(S_NS // 2, render_camera=False)
        moved = robot.camera.render(data)
        data.qpos[:] = pose
        mujoco.mj_forward(robot.world.model, data)
        back = robot.camera.render(data)
    assert not np.array_equal(start, moved)
    assert np.array_equal(start, back)


def test_the_arm_moves_and_touches_things(run_20s):
    joints, _ = run_20s
    positions = np.array([j.sample.position for j in joints])
    velocity = np.array([j.sample.velocity for j in joints])
    assert (positions.max(0) - positions.min(0) > 0.5).all(), "every joint sweeps > 0.5 rad"
    assert (np.abs(velocity).max(0) > 1.0).all()


def test_same_seed_same_streams_and_different_seed_differs():
    def audio(seed):
        with SimRobot(RobotConfig(seed=seed), camera=False) as robot:
            return np.concatenate([e.pcm for e in _split(robot.advance(S_NS))[2]])

    assert np.array_equal(audio(1), audio(1))
    assert not np.allclose(audio(1), audio(2))


def test_stream_rates_and_stamps():
    cfg = RobotConfig(seed=0, start_ns=5 * S_NS)
    with SimRobot(cfg, camera=False) as robot:
        _, joints, audio = _split(robot.advance(cfg.start_ns + 2 * S_NS))
    joint_ns = np.array([j.stamp_ns for j in joints])
    audio_ns = np.array([a.stamp_ns for a in audio])
    assert len(audio) == 100 and all(a.pcm.shape == (320,) for a in audio)
    assert np.all(np.diff(audio_ns) == 20_000_000)
    assert audio_ns[0] == cfg.start_ns + 20_000_000  # stamped at the chunk's last sample
    assert np.all(np.diff(joint_ns) == 10_000_000)
    assert joint_ns[0] > cfg.start_ns


def test_motor_pitch_and_loudness_rise_with_joint_speed():
    synth = MotorAudio(n_joints=3, step_s=0.001, seed=0)
    steps = 500

    def tone(speed_rad_s: float) -> np.ndarray:
        speed = np.zeros((steps, 3))
        speed[:, 1] = speed_rad_s
        return synth.synthesize(speed, np.zeros((steps, 3)), np.zeros(steps))[2000:]

    def peak_hz(pcm: np.ndarray) -> float:
        spectrum = np.abs(np.fft.rfft(pcm * np.hanning(pcm.size)))
        return float(np.fft.rfftfreq(pcm.size, 1 / 16000)[np.argmax(spectrum)])

    slow, fast = tone(0.5), tone(3.0)
    assert peak_hz(fast) > 1.5 * peak_hz(slow)
    assert np.sqrt(np.mean(fast**2)) > 1.5 * np.sqrt(np.mean(slow**2))


def test_audio_energy_tracks_joint_speed_in_the_simulation(run_20s):
    joints, audio = run_20s
    speed = np.array([np.abs(j.sample.velocity).sum() for j in joints])
    # per 20 ms chunk: mean speed over the chunk's two joint samples vs the chunk's RMS
    chunk_speed = speed[: 2 * len(audio)].reshape(len(audio), 2).mean(1)
    rms = np.array([np.sqrt(np.mean(a.pcm**2)) for a in audio])
    assert np.corrcoef(chunk_speed, rms)[0, 1] > 0.5


def test_contacts_produce_transients():
    synth = MotorAudio(n_joints=3, step_s=0.001, seed=0)
    impacts = np.zeros(40)
    impacts[25] = 1.0  # 1 m/s impact 25 ms into the block
    pcm = synth.synthesize(np.zeros((40, 3)), np.zeros((40, 3)), impacts)
    before, after = pcm[: 25 * 16], pcm[25 * 16 : 30 * 16]
    assert np.abs(after).max() > 20 * np.abs(before).max()
    tail = synth.synthesize(np.zeros((40, 3)), np.zeros((40, 3)), np.zeros(40))
    assert np.abs(tail[:80]).max() > np.abs(tail[-80:]).max(), "the transient decays"


def test_simulated_impacts_are_heard():
    """Chunks in which the arm hits an object or a limit ring loudly at 2.25-3 kHz."""
    with SimRobot(RobotConfig(seed=7), camera=False) as robot:
        world = robot.world
        hit_steps = []
        original_step = world.step

        def step() -> float:
            impact = original_step()
            if impact > 0.2:
                hit_steps.append(world.steps)
            return impact

        world.step = step
        _, _, audio = _split(robot.advance(20 * S_NS))
    assert hit_steps, "the arm touched nothing in 20 s"
    band = np.abs(np.fft.rfft([a.pcm for a in audio], axis=1))[:, 45:60].mean(1)
    hit_chunks = sorted({(s - 1) // 20 for s in hit_steps})
    quiet = np.setdiff1d(np.arange(len(audio)), [c + d for c in hit_chunks for d in (-1, 0, 1)])
    assert np.median(band[hit_chunks]) > 3 * np.median(band[quiet])


def test_bad_camera_size_is_an_error():
    with pytest.raises(SimError, match="camera size must be positive"):
        SimRobot(RobotConfig(camera_width=0))
