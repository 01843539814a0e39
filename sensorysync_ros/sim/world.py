"""MuJoCo physics of the arm (assets/arm.xml) under the smooth random controller.

Steps at the model's 1 ms timestep with integer-nanosecond time, and reports per step what the
audio synthesis needs: joint speeds, motor torques and impact strengths (new contacts of the
arm with the scene, and joints running into their limits).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from .controller import ControllerConfig, SmoothRandomController
from .errors import SimError

__all__ = ["ASSET_XML", "ArmWorld", "JointSample"]

ASSET_XML = Path(__file__).with_name("assets") / "arm.xml"
_LIMIT_MARGIN_RAD = np.deg2rad(0.5)
_LEVER_M = 0.3  # converts a joint's speed at a limit hit into an impact speed (m/s)


@dataclass(frozen=True)
class JointSample:
    """Joint state at one instant: position (rad), velocity (rad/s), effort (N m)."""

    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray


class ArmWorld:
    """The arm, its scene and its controller; deterministic for a seed."""

    def __init__(
        self,
        seed: int,
        *,
        xml_path: Path = ASSET_XML,
        controller: ControllerConfig | None = None,
    ) -> None:
        try:
            self.model = mujoco.MjModel.from_xml_path(str(xml_path))
        except (ValueError, FileNotFoundError) as err:
            raise SimError(f"cannot load the arm model {str(xml_path)!r}: {err}") from err
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.step_ns = round(m.opt.timestep * 1e9)
        self.joint_names = tuple(m.joint(j).name for j in range(m.njnt))
        self._qadr = np.array([m.jnt_qposadr[j] for j in range(m.njnt)])
        self._dadr = np.array([m.jnt_dofadr[j] for j in range(m.njnt)])
        self.lower_rad = m.jnt_range[:, 0].copy()
        self.upper_rad = m.jnt_range[:, 1].copy()
        self.torque_limit_nm = np.abs(m.actuator_forcerange[:, 1]).copy()
        self._controller = SmoothRandomController(
            self.lower_rad, self.upper_rad, seed=seed, config=controller
        )
        self.data.qpos[self._qadr] = (self.lower_rad + self.upper_rad) / 2.0
        mujoco.mj_forward(m, self.data)
        arm_bodies = {m.body(name).id for name in ("upper_arm", "forearm")}
        self._arm_geom = np.array([m.geom_bodyid[g] in arm_bodies for g in range(m.ngeom)])
        self._contacts: set[tuple[int, int]] = set()
        self._at_limit = np.zeros(m.njnt, dtype=bool)
        self._vel6 = np.zeros(6)
        self.steps = 0

    @property
    def time_ns(self) -> int:
        """Simulated time since the start, in nanoseconds (exact)."""
        return self.steps * self.step_ns

    def joint_velocity(self) -> np.ndarray:
        """Joint speeds (rad/s), in joint order (a view, valid until the next step)."""
        return self.data.qvel[self._dadr]

    def joint_sample(self) -> JointSample:
        d = self.data
        return JointSample(
            position=d.qpos[self._qadr].copy(),
            velocity=d.qvel[self._dadr].copy(),
            effort=d.qfrc_actuator[self._dadr].copy(),
        )

    def step(self) -> float:
        """Advance one timestep; return the summed impact speed (m/s) of new contacts."""
        d = self.data
        d.ctrl[:] = self._controller.target(self.time_ns * 1e-9)
        mujoco.mj_step(self.model, d)
        self.steps += 1
        return self._contact_impacts() + self._limit_impacts()

    def _contact_impacts(self) -> float:
        d, m = self.data, self.model
        current: set[tuple[int, int]] = set()
        impact_m_s = 0.0
        for i in range(d.ncon):
            c = d.contact[i]
            pair = (int(c.geom1), int(c.geom2))
            current.add(pair)
            if pair in self._contacts:
                continue
            arm_geom = pair[0] if self._arm_geom[pair[0]] else pair[1]
            mujoco.mj_objectVelocity(m, d, mujoco.mjtObj.mjOBJ_GEOM, arm_geom, self._vel6, 0)
            impact_m_s += abs(float(np.dot(self._vel6[3:], c.frame[:3])))
        self._contacts = current
        return impact_m_s

    def _limit_impacts(self) -> float:
        q = self.data.qpos[self._qadr]
        at_limit = (q <= self.lower_rad + _LIMIT_MARGIN_RAD) | (
            q >= self.upper_rad - _LIMIT_MARGIN_RAD
        )
        new_hits = at_limit & ~self._at_limit
        self._at_limit = at_limit
        if not new_hits.any():
            return 0.0
        return float(np.abs(self.data.qvel[self._dadr][new_hits]).sum() * _LEVER_M)
