"""16 kHz mono audio synthesized from the physics.

Each joint's motor is a phase-continuous harmonic tone whose pitch rises with the joint's
speed and whose loudness follows speed and torque (a servo straining against a limit or an
object hums louder); new contacts and limit hits add decaying impact transients. So the sound
carries real information about the motion. Pure numpy, deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["AudioConfig", "MotorAudio"]


@dataclass(frozen=True)
class AudioConfig:
    """Synthesis parameters. Frequencies in Hz, times in seconds, amplitudes in PCM units."""

    sample_rate_hz: int = 16_000
    base_pitch_hz: tuple[float, ...] = (90.0, 240.0, 640.0)  # per joint, at rest
    pitch_per_rad_s: float = 0.5  # relative pitch rise per rad/s of joint speed
    harmonics: int = 3
    speed_gain: float = 0.22  # loudness from speed, saturating
    speed_half_rad_s: float = 0.8  # speed at half the speed loudness
    torque_gain: float = 0.10  # loudness from |torque| / torque limit
    impact_gain: float = 0.5  # transient peak per m/s of impact speed
    impact_peak_max: float = 0.9
    impact_decay_s: float = 0.006
    impact_length_s: float = 0.04
    impact_ring_hz: float = 2600.0
    noise_floor: float = 0.002


class MotorAudio:
    """Turns per-step joint speed, torque and impacts into PCM, one block at a time."""

    def __init__(
        self, n_joints: int, step_s: float, seed: int, config: AudioConfig | None = None
    ) -> None:
        self.cfg = cfg = config or AudioConfig()
        if len(cfg.base_pitch_hz) < n_joints:
            msg = (
                f"AudioConfig.base_pitch_hz has {len(cfg.base_pitch_hz)} pitches for "
                f"{n_joints} joints; give one per joint"
            )
            raise ValueError(msg)
        samples = step_s * cfg.sample_rate_hz
        if abs(samples - round(samples)) > 1e-9:
            msg = (
                f"physics step {step_s} s is not a whole number of samples at "
                f"{cfg.sample_rate_hz} Hz; use a timestep that is"
            )
            raise ValueError(msg)
        self.samples_per_step = round(samples)
        self._base_hz = np.asarray(cfg.base_pitch_hz[:n_joints], dtype=np.float64)
        self._phase = np.zeros(n_joints)
        self._rng = np.random.default_rng(seed)
        n_tail = round(cfg.impact_length_s * cfg.sample_rate_hz)
        t_s = np.arange(n_tail) / cfg.sample_rate_hz
        self._impact_env = np.exp(-t_s / cfg.impact_decay_s)
        self._impact_ring = np.sin(2.0 * np.pi * cfg.impact_ring_hz * t_s)
        self._tail = np.zeros(n_tail)
        self._harm = np.arange(1, cfg.harmonics + 1, dtype=np.float64)

    def pitch_hz(self, speed_rad_s: np.ndarray) -> np.ndarray:
        """Fundamental of each motor for joint speeds ``speed_rad_s`` (..., J)."""
        return self._base_hz * (1.0 + self.cfg.pitch_per_rad_s * np.abs(speed_rad_s))

    def loudness(self, speed_rad_s: np.ndarray, torque_frac: np.ndarray) -> np.ndarray:
        """Amplitude of each motor from joint speed and |torque| / torque limit (..., J)."""
        cfg = self.cfg
        s = np.abs(speed_rad_s)
        return cfg.speed_gain * s / (s + cfg.speed_half_rad_s) + cfg.torque_gain * np.clip(
            np.abs(torque_frac), 0.0, 1.0
        )

    def synthesize(
        self, speed_rad_s: np.ndarray, torque_frac: np.ndarray, impact_m_s: np.ndarray
    ) -> np.ndarray:
        """PCM (float32 in [-1, 1]) for S physics steps.

        speed_rad_s, torque_frac: (S, J) per step; impact_m_s: (S,) impact speed per step.
        Returns S * samples_per_step samples, continuing the previous block seamlessly.
        """
        cfg, k = self.cfg, self.samples_per_step
        n_steps = speed_rad_s.shape[0]
        n = n_steps * k
        freq = np.repeat(self.pitch_hz(speed_rad_s), k, axis=0)  # (n, J)
        amp = np.repeat(self.loudness(speed_rad_s, torque_frac), k, axis=0)
        phase = self._phase + np.cumsum(2.0 * np.pi * freq / cfg.sample_rate_hz, axis=0)
        self._phase = np.mod(phase[-1], 2.0 * np.pi)
        tone = np.sin(phase[..., None] * self._harm) / self._harm  # (n, J, H)
        pcm = (amp * tone.sum(axis=-1)).sum(axis=-1)
        pcm += cfg.noise_floor * self._rng.standard_normal(n)
        pcm += self._impacts(impact_m_s, n)
        return np.clip(pcm, -1.0, 1.0).astype(np.float32)

    def _impacts(self, impact_m_s: np.ndarray, n: int) -> np.ndarray:
        """Impact transients of this block, plus the tails of earlier ones (overlap-add)."""
        cfg = self.cfg
        n_tail = self._tail.size
        buf = np.zeros(n + n_tail)
        buf[:n_tail] = self._tail
        for step in np.flatnonzero(impact_m_s > 0.0):
            peak = min(cfg.impact_peak_max, cfg.impact_gain * float(impact_m_s[step]))
            noise = self._rng.standard_normal(n_tail)
            start = step * self.samples_per_step
            buf[start : start + n_tail] += peak * self._impact_env * (
                0.6 * noise + 0.4 * self._impact_ring
            )
        self._tail = buf[n : n + n_tail].copy()
        return buf[:n]
