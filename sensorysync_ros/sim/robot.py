"""The simulated robot as a sensor stream: physics, camera and audio on one clock.

``SimRobot.advance(until_ns)`` steps the physics and returns the sensor events that fell due,
in time order, each stamped with the simulated time at which it was measured: camera frames
(30 Hz), joint states (100 Hz) and audio chunks (20 ms, stamped at the chunk's last sample).
The recorder (faster than real time) and the ROS node (real time) both drive this one object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..closing import Closing
from .audio import MotorAudio
from .camera import Camera
from .errors import SimError
from .world import ArmWorld, JointSample

__all__ = ["AudioChunk", "CameraFrame", "JointFrame", "RobotConfig", "SensorEvent", "SimRobot"]


@dataclass(frozen=True)
class RobotConfig:
    """Sensor layout of the simulated robot."""

    seed: int = 0
    camera_width: int = 64
    camera_height: int = 64
    camera_rate_hz: float = 30.0
    joint_rate_hz: float = 100.0
    audio_chunk_samples: int = 320  # 20 ms at 16 kHz
    start_ns: int = 0  # stamp of simulated time zero


@dataclass(frozen=True)
class CameraFrame:
    stamp_ns: int
    rgb: np.ndarray  # (H, W, 3) uint8


@dataclass(frozen=True)
class JointFrame:
    stamp_ns: int
    sample: JointSample


@dataclass(frozen=True)
class AudioChunk:
    stamp_ns: int  # time of the chunk's last sample
    pcm: np.ndarray  # (audio_chunk_samples,) float32 in [-1, 1]


SensorEvent = CameraFrame | JointFrame | AudioChunk


class SimRobot(Closing):
    """Arm world + camera + motor audio; deterministic for a seed. Close it when done."""

    def __init__(self, config: RobotConfig | None = None, *, camera: bool = True) -> None:
        self.config = cfg = config or RobotConfig()
        for name in ("camera_rate_hz", "joint_rate_hz"):
            if getattr(cfg, name) <= 0:
                raise SimError(f"RobotConfig.{name} must be > 0, got {getattr(cfg, name)}")
        self.world = ArmWorld(cfg.seed)
        step_s = self.world.step_ns * 1e-9
        self.audio = MotorAudio(len(self.world.joint_names), step_s, seed=cfg.seed + 1)
        steps_per_chunk = cfg.audio_chunk_samples / self.audio.samples_per_step
        if cfg.audio_chunk_samples <= 0 or steps_per_chunk != int(steps_per_chunk):
            msg = (
                f"audio_chunk_samples={cfg.audio_chunk_samples} must be a positive multiple "
                f"of {self.audio.samples_per_step} samples (one physics step)"
            )
            raise SimError(msg)
        self._steps_per_chunk = int(steps_per_chunk)
        self.camera = (
            Camera(self.world.model, cfg.camera_width, cfg.camera_height) if camera else None
        )
        j = len(self.world.joint_names)
        self._speed = np.zeros((self._steps_per_chunk, j))
        self._torque = np.zeros((self._steps_per_chunk, j))
        self._impact = np.zeros(self._steps_per_chunk)
        self._chunk_fill = 0
        self._start_ns = cfg.start_ns
        self._frames = 1  # index of the next camera frame; frame k is due at k / rate
        self._joint_msgs = 1

    @property
    def joint_names(self) -> tuple[str, ...]:
        return self.world.joint_names

    @property
    def sample_rate_hz(self) -> int:
        return self.audio.cfg.sample_rate_hz

    @property
    def now_ns(self) -> int:
        """Stamp of the current simulated instant."""
        return self._start_ns + self.world.time_ns

    def start_at(self, start_ns: int) -> None:
        """Set the stamp of simulated time zero (a live node: its clock's time at start)."""
        if self.world.steps:
            raise SimError(f"start_at({start_ns}) after {self.world.steps} steps; call it first")
        self._start_ns = start_ns

    def _due_ns(self, count: int, rate_hz: float) -> int:
        return math.ceil(count * 1e9 / rate_hz - 1e-3)

    def advance(self, until_ns: int, *, render_camera: bool = True) -> list[SensorEvent]:
        """Step the physics up to stamp ``until_ns``; return the sensor events that fell due.

        With ``render_camera=False`` due frames are skipped (not rendered, not returned).
        """
        cfg, world = self.config, self.world
        events: list[SensorEvent] = []
        torque_limit = world.torque_limit_nm
        while self.now_ns + world.step_ns <= until_ns:
            impact = world.step()
            t_ns = world.time_ns
            i = self._chunk_fill
            d = world.data
            self._speed[i] = world.joint_velocity()
            self._torque[i] = d.actuator_force / torque_limit
            self._impact[i] = impact
            self._chunk_fill += 1
            if t_ns >= self._due_ns(self._joint_msgs, cfg.joint_rate_hz):
                self._joint_msgs += 1
                events.append(JointFrame(self.now_ns, world.joint_sample()))
            if self._chunk_fill == self._steps_per_chunk:
                pcm = self.audio.synthesize(self._speed, self._torque, self._impact)
                self._chunk_fill = 0
                events.append(AudioChunk(self.now_ns, pcm))
            if t_ns >= self._due_ns(self._frames, cfg.camera_rate_hz):
                self._frames += 1
                if render_camera and self.camera is not None:
                    events.append(CameraFrame(self.now_ns, self.camera.render(d)))
        return events

    def close(self) -> None:
        if self.camera is not None:
            self.camera.close()
